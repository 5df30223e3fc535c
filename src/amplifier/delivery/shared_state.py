"""The state store in the ledger's database, for the nodes of a shared PostgreSQL ledger.

One machine keeps what it learns between runs in its state folder (:class:`~amplifier.publish.state.StateDir`).
Several nodes on one PostgreSQL ledger keep it in that database instead (:class:`LedgerState`, the same
:class:`~amplifier.publish.state.StateStore` interface over the ledger's ``state_*`` operations, tables
``shared_state`` and ``state_locks``), so that what one node learns every node knows:

* a Bluesky session one node refreshed (its refresh token rotates: the refresh runs under the session's lock,
  and a node that waited for it takes the fresh session instead of spending the spent token);
* the login guard (attempts and the fingerprints of rejected secrets: never a secret), and the fingerprints' key,
  so a credential pause one node recorded is resumed by any node once the secret changed;
* the instance limits read from a Mastodon server; the credential pause records;
* the blocks a 429 set (:mod:`amplifier.delivery.ratelimit`): a reset one node got is respected by all.

The sessions hold tokens: in this mode they are stored in the database, as the state folder stores them on one
machine, and never logged. A lock is a row with a holder and a lease (:data:`LOCK_LEASE`): a node that dies
holding one loses it when the lease passes. :func:`state_store` picks the store where the ledger is opened.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from amplifier.clock import Clock, utcnow
from amplifier.delivery.ledger import Ledger, ledger_url
from amplifier.errors import StateError
from amplifier.publish.base import PublishContext
from amplifier.publish.state import LOCK_WAIT, StateDir, StateStore, dumps, loads

LOCK_LEASE = timedelta(seconds=40)  # a lock's life without its holder (a refresh: one request, 30 s at most)


class LedgerState:
    """Documents and locks in the ledger's database (see the module docstring)."""

    def __init__(self, ledger: Ledger, node: str, clock: Clock = utcnow) -> None:
        self.ledger = ledger
        self.node = node
        self.clock = clock

    def read(self, sub: str, name: str) -> bytes | None:
        return self.ledger.state_read(sub, [name]).get(name)

    def read_many(self, sub: str, names: Iterable[str]) -> dict[str, bytes]:
        wanted = sorted(set(names))
        return self.ledger.state_read(sub, wanted) if wanted else {}

    def write(self, sub: str, name: str, data: bytes) -> None:
        self.ledger.state_write(sub, name, data, self.clock())

    def delete(self, sub: str, name: str) -> None:
        self.ledger.state_delete(sub, name)

    def create(self, sub: str, name: str, data: bytes) -> bytes:
        return self.ledger.state_create(sub, name, data, self.clock())

    @contextlib.contextmanager
    def locked(self, sub: str, name: str, *, wait: float = LOCK_WAIT) -> Iterator[None]:
        holder = f"{self.node}:{threading.get_ident()}:{os.urandom(4).hex()}"
        deadline = time.monotonic() + wait
        while True:
            now = self.clock()
            if self.ledger.state_lock(sub, name, holder, now + LOCK_LEASE, now):
                break
            if time.monotonic() >= deadline:
                raise StateError(f"{self.where(sub, name)}: still locked by another node after {wait:.0f} s")
            time.sleep(0.02)
        try:
            yield
        finally:
            self.ledger.state_unlock(sub, name, holder)

    def where(self, sub: str, name: str) -> str:
        return f"{sub}/{name} in the ledger's database ({self.ledger.name})"

    def read_json(self, sub: str, name: str) -> Any:
        return loads(self.read(sub, name))

    def write_json(self, sub: str, name: str, data: Any) -> None:
        self.write(sub, name, dumps(data))


def state_store(
    ledger: Ledger, state_dir: Path, *, shared: bool, node: str, clock: Clock = utcnow
) -> StateStore:
    """Where what amplifier learns between runs is kept: the ledger's database when ``shared`` (several nodes on
    a PostgreSQL ledger), else the state folder ``state_dir``."""
    if shared:
        return LedgerState(ledger, node, clock)
    return StateDir(state_dir)


def share_state(ctx: PublishContext, ledger: Ledger, node: str) -> None:
    """A command that publishes (``send``, ``gate``) with a shared ledger open (``AMPLIFIER_LEDGER``): its
    publishers keep their state in the ledger's database, as the daemons do; else nothing changes."""
    if ledger_url() is not None:
        ctx.state = LedgerState(ledger, node, ctx.clock)


SHARED = (
    "sessions",
    "logins",
    "keys",
    "limits",
    "pauses",
    "blocks",
)  # what a node's state folder gives the nodes


def copy_state(folder: StateDir, store: StateStore) -> int:
    """``ledger migrate``: the documents of the state folder the nodes share (:data:`SHARED`: the sessions, the
    login guard and the fingerprints' key, so a credential pause recorded before the move is still recognised;
    limits, pause records, blocks) into ``store``, each unless the store has it already. How many were copied."""
    copied = 0
    for sub in SHARED:
        try:
            files = sorted(path for path in (folder.path / sub).iterdir() if path.is_file())
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StateError(f"{folder.path / sub}: cannot read: {exc.strerror}") from exc
        for path in files:
            if path.name.startswith("."):  # locks, temporary files
                continue
            data = folder.read(sub, path.name)
            if data is not None and store.create(sub, path.name, data) == data:
                copied += 1
    return copied
