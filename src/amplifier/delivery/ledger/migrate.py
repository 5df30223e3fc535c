"""The migration runner, once for every backend: named migrations, each applied once, in the order listed.

Modelled on simonw/llm's ``migrations.py``: a migration is a function registered in a backend's list (SQLite's
:mod:`.migrations`, PostgreSQL's :mod:`.pg_migrations`); its name (the function's name) is recorded in the
``_migrations`` table once it has run, and :func:`run_migrations` runs the ones not recorded yet. Each runs in
its own transaction together with the row that records it, so a crash (or an error) mid-way leaves the database
exactly as before that migration, and two processes opening a fresh database at once cannot both apply one
migration: the whole run holds the backend's exclusive lock (PostgreSQL's advisory lock), and each migration's
transaction re-reads ``_migrations`` under the write lock (SQLite's ``BEGIN IMMEDIATE``). Never edit or rename
a migration that has shipped: add one.

A backend gives a :class:`MigrationStore`: how it reads and writes ``_migrations`` and takes its locks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from amplifier.errors import AmplifierError, ExitCode


class SchemaError(AmplifierError):
    """The database was written by a newer amplifier (it has migrations this version does not know)."""

    exit_code = ExitCode.PUBLISH  # the ledger's code, as every other ledger error


class MigrationStore(Protocol):
    """A backend's ``_migrations`` table and locks, as :func:`run_migrations` uses them."""

    conn: Any  # what each migration function is given

    def applied(self) -> list[str] | None:
        """The names applied, in the order they were (None: no ``_migrations`` table yet); takes no lock."""
        ...

    def exclusive(self) -> AbstractContextManager[None]:
        """Held for the whole run (one process migrates at a time), or nothing if :meth:`step` suffices."""
        ...

    def step(self) -> AbstractContextManager[None]:
        """One transaction under the write lock: committed if the block returns, else rolled back."""
        ...

    def ensure_table(self) -> None: ...

    def is_applied(self, name: str) -> bool: ...

    def record(self, name: str, now: datetime) -> None: ...


def run_migrations(store: MigrationStore, steps: Sequence[Callable[[Any], None]], now: datetime) -> list[str]:
    """Apply the migrations of ``steps`` not applied yet, each in one transaction; return the names applied now.

    ``now`` (aware) is recorded as each migration's ``applied_at``. Raises :class:`SchemaError` when the
    database has applied migrations that ``steps`` does not contain (a database from a newer version).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    names = [fn.__name__ for fn in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate migration names in {names}")
    # Usually all is applied already: see that without a lock, so opening the ledger (say, for the CLI's
    # status) never waits for a writer.
    if store.applied() == names:
        return []
    done: list[str] = []
    with store.exclusive():
        with store.step():
            store.ensure_table()
            already = store.applied() or []
        unknown = [name for name in already if name not in names]
        if unknown:
            raise SchemaError(
                f"the database has migrations this version of amplifier does not know ({', '.join(unknown)}): "
                "it was written by a newer version; upgrade amplifier"
            )
        for fn in steps:
            name = fn.__name__
            if name in already:
                continue
            with store.step():
                # Another process may have applied it between our read and this write lock.
                if store.is_applied(name):
                    continue
                fn(store.conn)
                store.record(name, now)
            done.append(name)
    return done
