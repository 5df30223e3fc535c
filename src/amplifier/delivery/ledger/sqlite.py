"""The SQLite ledger (:class:`SqliteLedger`): the :class:`~amplifier.delivery.ledger.base.Ledger` in one file,
``ledger.sqlite3`` in the state folder.

Storage (see :mod:`amplifier.delivery.ledger.migrations` for the schema):

* WAL journal, so readers (the CLI's ``status``) never block the daemon's writes, and a killed process leaves
  the database consistent: a transaction is in the database entirely or not at all.
* ``synchronous=FULL``: every commit is fsynced before it returns. ``NORMAL`` is crash-safe for a killed
  *process*, but after a power loss or an OS crash it may lose the last commits; losing a ``claimed`` or
  ``published`` record would mean posting twice. Commits are few (a handful per post), so the fsync costs
  nothing that matters.
* A busy timeout (5 s by default), so two processes queue for the write lock instead of failing; foreign keys
  on.
* Every state change is ONE ``BEGIN IMMEDIATE`` transaction that reads the row and writes it under the write
  lock, so two processes (or threads) can never both claim one post.

The operations are :class:`~amplifier.delivery.ledger.sql_ledger.SqlLedger`'s, shared with the PostgreSQL ledger
(in SQLite's :data:`~amplifier.delivery.ledger.dialect.SQLITE` dialect); this module adds the connection, the
transaction and its lock, a re-plan's statements, and the file-level helpers (:func:`copy_ledger`,
:func:`read_pause_reason`).

The clock is a parameter: every method that records a time takes an aware ``now``. Times are stored as UTC ISO
8601 text of fixed width, so text order is time order. Rows hold no secrets: ``last_error`` is exactly the
reason text a caller passes in, and callers must pass texts that are safe to show (as
:class:`amplifier.errors.AmplifierError` messages are).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

from amplifier.delivery.ledger.dialect import SQLITE, Connection, Dialect
from amplifier.delivery.ledger.migrations import migrate
from amplifier.delivery.ledger.plandiff import PlanDiff, PlanKey
from amplifier.delivery.ledger.sql_ledger import SqlLedger
from amplifier.delivery.ledger.sqlite_report import SqliteReport
from amplifier.delivery.ledger.types import (
    CANCELLED_REASON,
    LedgerBusy,
    LedgerError,
    LedgerUnreachable,
    to_db_time,
)

DEFAULT_BUSY_TIMEOUT = 5.0  # seconds
LEDGER_NAME = "ledger.sqlite3"  # in the state folder


_EXISTING = (
    "SELECT id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
    " EXISTS (SELECT 1 FROM post_parts WHERE post_id = posts.id) FROM posts"
)
_EXISTING_IN_WINDOW = _EXISTING + " INDEXED BY posts_due_at"


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents with mode 0700; leave existing ones as they are."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue  # created by another process meanwhile
        path.chmod(0o700)  # mkdir's mode is filtered by the umask


def _make_private_file(path: Path) -> None:
    """Create ``path`` with mode 0600 if missing; take group and other permissions away if it has them."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    else:
        os.close(fd)
        path.chmod(0o600)


def _in_the_way(db_path: Path) -> str:
    """What in the file system keeps this user from the ledger, as ``: ...`` to add to SQLite's own words
    (``unable to open database file`` says neither which file nor why); empty when nothing is seen."""
    import stat

    # SQLite writes the ledger and, beside it, its -wal and -shm files: both need reading and writing.
    for target, what in ((db_path, "the ledger file"), (db_path.parent, "the state folder")):
        try:
            info = target.stat()
        except OSError:
            continue
        if target == db_path and stat.S_ISDIR(info.st_mode):
            return f": {target} is a folder, not a ledger file"
        need = os.R_OK | os.W_OK | (os.X_OK if stat.S_ISDIR(info.st_mode) else 0)
        if not os.access(target, need):
            return (
                f": permission denied: {what} {target} (owner uid {info.st_uid}, mode"
                f" {stat.S_IMODE(info.st_mode):04o}) must be readable and writable by the user amplifier runs as"
                f" (uid {os.getuid()})"
            )
    return ""


class SqliteLedger(SqliteReport, SqlLedger):
    """The delivery ledger in one SQLite file. Open it with :meth:`open` (or, as callers outside the ledger do,
    :func:`amplifier.delivery.ledger.open_ledger`), as a context manager; threads may share it."""

    dialect: ClassVar[Dialect] = SQLITE

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._grouping = False  # inside group(): each transaction is a savepoint of the group's one
        self.path = path
        self.name = str(path)

    # -- opening -------------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], now: datetime, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    ) -> Self:
        """Open the ledger at ``path`` (creating its folders 0700, the file 0600) and migrate its schema."""
        to_db_time(now)
        db_path = Path(path)
        try:
            _make_private_dirs(db_path.parent)
            _make_private_file(db_path)
        except OSError as error:
            raise LedgerUnreachable(f"{db_path}: cannot create the ledger: {error.strerror}") from error
        try:
            conn = sqlite3.connect(
                db_path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise LedgerUnreachable(
                f"{db_path}: cannot open the ledger: {error}{_in_the_way(db_path)}"
            ) from error
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerError(f"{db_path}: cannot switch the ledger to WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, now)
        except sqlite3.OperationalError as error:
            conn.close()
            if error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise LedgerBusy(db_path) from error
            if error.sqlite_errorcode in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
                raise LedgerUnreachable(
                    f"{db_path}: cannot open the ledger: {error}{_in_the_way(db_path)}"
                ) from error
            raise LedgerError(f"{db_path}: not a usable ledger database: {error}") from error
        except sqlite3.DatabaseError as error:
            conn.close()
            raise LedgerError(f"{db_path}: not a usable ledger database: {error}") from error
        except BaseException:
            conn.close()
            raise
        return cls(conn, db_path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed if the block returns, rolled back if it raises."""
        with self._lock:
            conn = self._conn
            if self._grouping:  # one change of a group (only its thread holds the lock meanwhile)
                conn.execute("SAVEPOINT change")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK TO change")
                    conn.execute("RELEASE change")
                    raise
                conn.execute("RELEASE change")
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise LedgerBusy(self.path) from error
                raise
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def group(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run ``calls`` in ONE ``BEGIN IMMEDIATE`` transaction, each one in a savepoint of its own: one fsync
        for all of them, none returned before it (see :meth:`Ledger.group`)."""
        results: list[Any] = []
        with self._transaction():
            self._grouping = True
            try:
                for call in calls:
                    try:
                        results.append(call())
                    except Exception as exc:  # the caller's, raised in its own thread
                        results.append(exc)
            finally:
                self._grouping = False
            if not self._conn.in_transaction:  # a call ended the transaction: its changes are not one group
                raise LedgerError(f"{self.path}: a grouped change ended the group's transaction")
        return results

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._lock:
            yield self._conn

    # -- a re-plan's statements (see SqlPlan.sync_plan) --------------------------------------------------------

    def _existing_query(
        self, plan: Mapping[str, PlanKey], start: datetime | None, end: datetime | None
    ) -> tuple[str, Sequence[Any]]:
        """What a re-plan must read: the posts due in [start, end) (it may cancel them) and the posts of the
        plan (by id), never the rest of the ledger; everything when a bound is open."""
        if start is None or end is None:
            return _EXISTING, ()
        window = (to_db_time(start), to_db_time(end))
        ids = json.dumps(list(plan))
        return (
            f"{_EXISTING_IN_WINDOW} WHERE due_at >= ? AND due_at < ?"
            f" UNION ALL {_EXISTING} WHERE id IN (SELECT value FROM json_each(?))"
            " AND NOT (due_at >= ? AND due_at < ?)",
            (*window, ids, *window),
        )

    def _write_plan(self, conn: Connection, diff: PlanDiff, stamp: Any) -> None:
        conn.executemany(
            "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
            " next_attempt_at, created_at, updated_at, variant) VALUES (?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?, ?, ?)",
            [
                (post_id, *key, key[3], stamp, stamp, diff.variants.get(post_id))
                for post_id, key in diff.inserted
            ],
        )
        conn.executemany(
            "UPDATE posts SET account = ?, platform = ?, rule = ?, due_at = ?, content_hash = ?,"
            " part_count = ?, next_attempt_at = ?, updated_at = ?, variant = COALESCE(?, variant)"
            " WHERE id = ? AND state = 'planned'",
            [
                (*key, next_at, stamp, diff.variants.get(post_id), post_id)
                for post_id, key, next_at in diff.updated
            ],
        )
        conn.executemany(
            "UPDATE posts SET account = ?, platform = ?, rule = ?, due_at = ?, content_hash = ?,"
            " part_count = ?, next_attempt_at = ?, updated_at = ?, state = 'planned', last_error = NULL,"
            " variant = COALESCE(?, variant) WHERE id = ? AND state = 'cancelled'",
            [(*key, key[3], stamp, diff.variants.get(post_id), post_id) for post_id, key in diff.revived],
        )
        conn.executemany(
            "UPDATE posts SET state = 'cancelled', last_error = ?, updated_at = ?"
            " WHERE id = ? AND state = 'planned'",
            [(CANCELLED_REASON, stamp, post_id) for post_id in diff.cancelled],
        )


def copy_ledger(source: Path, target: Path) -> None:
    """Copy the ledger at ``source`` (read-only; a missing one: nothing) to ``target``, consistently even while
    a daemon writes to it (SQLite's online backup)."""
    if not source.exists():
        return
    # as_uri() percent-encodes the path: a "#" or "?" in a folder's name is not read as URI syntax
    uri = f"{source.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as src, closing(sqlite3.connect(target)) as dst:
            src.backup(dst)
    except sqlite3.Error as error:
        if error.sqlite_errorcode in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
            raise LedgerUnreachable(
                f"{source}: cannot read the ledger: {error}{_in_the_way(source)}"
            ) from error
        raise LedgerError(f"{source}: not a usable ledger database: {error}") from error


def read_pause_reason(path: Path) -> str | None:
    """Why the ledger at ``path`` has all posting paused, read-only and without migrating (None: not paused,
    or no usable ledger there)."""
    if not path.exists():
        return None
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as conn:
            found = conn.execute("SELECT paused, reason FROM global_pause WHERE id = 1").fetchone()
    except sqlite3.Error:
        return None
    if found is None or not found[0]:
        return None
    return str(found[1] or "paused")
