"""The PostgreSQL ledger (:class:`PostgresLedger`): the :class:`~amplifier.delivery.ledger.base.Ledger` in a
PostgreSQL database that several amplifier nodes share (``AMPLIFIER_LEDGER=postgresql://...``).

The guarantees are the interface's (the contract tests run against both backends):

* Every state change is one transaction that locks the post's row (``SELECT ... FOR UPDATE``) before it checks
  and writes it; a claim is one conditional ``UPDATE`` (planned -> claimed), which PostgreSQL's row locks make
  atomic across connections and machines: two nodes can never both claim one post.
* A commit returns once it is durable (PostgreSQL's default ``synchronous_commit``; keep ``fsync`` on).
* A writer waits at most :data:`LOCK_TIMEOUT` for a row lock, then raises :class:`LedgerBusy`; readers never wait
  for a row lock (the session's ``lock_timeout``, set with the connection, so no transaction spends a round trip
  on it; a migration waits for another node's as long as it takes).
* A transaction the server rolls back to break a deadlock or a serialization conflict (two nodes' transactions
  meeting on the same rows, e.g. a report summary group) wrote nothing, so the operation runs again, up to
  :data:`ROLLBACK_TRIES` times in all, then raises :class:`LedgerBusy` (:func:`_retrying`): only an operation
  called outside any transaction of this ledger, and only if it committed nothing before, so a retry never
  writes anything twice. A :meth:`~PostgresLedger.group` that one of its calls lost that way is rolled back
  whole and run again (it held the locks the other transaction waited for).
* A re-plan (:meth:`sync_plan`) holds a transaction-scoped advisory lock, so two nodes' re-plans never
  interleave.
* A connection that breaks (the server restarted, the network dropped) raises :class:`LedgerError` for the call
  it broke, and the next call connects again: a transaction is in the database entirely or not at all.

The operations are :class:`~amplifier.delivery.ledger.sql_ledger.SqlLedger`'s, shared with the SQLite ledger
(in :class:`~amplifier.delivery.ledger.dialect.PostgresDialect`); this module adds the connection, the
transaction, the re-plan's advisory lock and set-based writes.

The database URL is a secret (it may hold a password): it never appears in a message; the ledger is named by
host, port and database only.
"""

from __future__ import annotations

import functools
import inspect
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar, Self

import psycopg
from psycopg import conninfo

from amplifier.delivery.ledger.dialect import Connection, Dialect, PgConnection, PostgresDialect
from amplifier.delivery.ledger.pg_migrations import migrate
from amplifier.delivery.ledger.pg_report import PostgresReport
from amplifier.delivery.ledger.plandiff import PlanDiff, PlanKey
from amplifier.delivery.ledger.sql_ledger import SqlLedger
from amplifier.delivery.ledger.types import CANCELLED_REASON, LedgerBusy, LedgerError, to_db_time
from amplifier.redact import redact, register

LOCK_TIMEOUT = "5s"  # the session's lock_timeout: a row lock, an advisory lock
CONNECT_TIMEOUT = 10  # seconds
SYNC_LOCK = 0x616D7073  # the advisory lock a re-plan holds
# The errors of a transaction the server rolled back (SQLSTATE class 40): psycopg makes each a subclass of
# OperationalError, not of TransactionRollback (40000), so they are named one by one.
ROLLED_BACK = (
    psycopg.errors.TransactionRollback,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)
ROLLBACK_TRIES = 5  # runs of an operation whose transaction the server rolled back (deadlock, serialization)
ROLLBACK_PAUSE = 0.02  # seconds: the first pause before a run again (at random up to it, doubled each time)

_PLAN_ARRAYS = "?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::text[], ?::int[]"
_PLAN_NAMES = "id, account, platform, rule, due_at, content_hash, part_count"
_UNNEST_PLAN_NEXT = (
    f"unnest({_PLAN_ARRAYS}, ?::int[], ?::timestamptz[]) AS t({_PLAN_NAMES}, variant, next_at)"
)
_UNNEST_PLAN_VARIANT = f"unnest({_PLAN_ARRAYS}, ?::int[]) AS t({_PLAN_NAMES}, variant)"


def rolled_back(error: BaseException) -> bool:
    """Whether ``error`` is a transaction the server rolled back (a deadlock, a serialization conflict)."""
    return isinstance(error, LedgerBusy) and isinstance(error.__cause__, ROLLED_BACK)


def _retrying(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of the ledger, run again when the server rolled its transaction back (see the module
    docstring): at most :data:`ROLLBACK_TRIES` runs in all, after a short random pause (two nodes that met
    on the same rows do not meet again at once). Inside a transaction (a :meth:`~PostgresLedger.group`), or
    after the method committed a transaction of its own, the error goes to the caller as it is."""

    @functools.wraps(method)
    def run(self: PostgresLedger, *args: Any, **kwargs: Any) -> Any:
        local = self._local
        for attempt in range(ROLLBACK_TRIES - 1):
            if getattr(local, "depth", 0):
                break
            commits = getattr(local, "commits", 0)
            try:
                return method(self, *args, **kwargs)
            except LedgerBusy as exc:
                if not rolled_back(exc) or getattr(local, "commits", 0) != commits:
                    raise
            time.sleep(random.uniform(0, ROLLBACK_PAUSE * 2**attempt))
        return method(self, *args, **kwargs)

    return run


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows as one list per column (the arrays an ``unnest`` takes)."""
    return [list(column) for column in zip(*rows, strict=True)]


UNREADABLE_URL = (  # after describe()'s "the PostgreSQL ledger (its URL cannot be read)"
    "percent-encode the special characters of its user name and password (% as %25, @ as %40, : as %3A, / as %2F)"
)


def register_password(url: str) -> None:
    """Have :func:`amplifier.redact.redact` mask the URL's password (as written and decoded) from now on: a
    message of the driver or the server that quotes it never reaches the output."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        register(password)
        register(unquote(password))


def describe(url: str) -> str:
    """``host:port/dbname`` of a PostgreSQL URL: how a message names the ledger, never with its password."""
    try:
        info = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the PostgreSQL ledger (its URL cannot be read)"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"postgresql://{host}:{port}/{info.get('dbname') or ''}"


def connect_reason(error: psycopg.Error) -> str:
    """Why a connection failed, in one line, redacted: psycopg's last line alone is a hint without its cause
    (``\tIs the server running on that host...``), so the line that says what failed goes with it."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    failed = [line for line in lines if "failed:" in line]
    text = failed[-1].split("failed:")[-1].strip() if failed else lines[-1]
    hint = lines[-1] if lines[-1] != text and not lines[-1].endswith(text) else ""
    return redact(f"{text}; {hint}" if hint and "failed:" not in hint else text)


_EXISTING = (
    "SELECT id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
    " EXISTS (SELECT 1 FROM post_parts WHERE post_id = posts.id) FROM posts"
)


class PostgresLedger(PostgresReport, SqlLedger):
    """The delivery ledger in a PostgreSQL database. Open it with :meth:`open` (callers outside the ledger use
    :func:`amplifier.delivery.ledger.open_ledger`), as a context manager; threads may share it."""

    dialect: ClassVar[Dialect] = PostgresDialect()

    def __init__(self, url: str) -> None:
        register_password(url)
        self._url = url
        self.name = describe(url)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._local = threading.local()  # this thread's transaction depth and commits (see _retrying)

    @classmethod
    def open(cls, url: str, now: datetime) -> Self:
        """Connect to the database at ``url`` and migrate its schema."""
        to_db_time(now)  # refuses a naive time
        ledger = cls(url)
        with ledger._lock:
            conn = ledger._connection()
            try:
                conn.execute("SET lock_timeout = 0")  # another node's migrations may run for longer
                migrate(conn, now)
                conn.execute("RESET lock_timeout")
            except psycopg.Error as error:
                ledger.close()
                raise LedgerError(
                    f"{ledger.name}: not a usable ledger database: {redact(str(error))}"
                ) from None
        return ledger

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            options = conninfo.conninfo_to_dict(self._url).get("options") or ""
        except psycopg.Error:  # its message quotes the part it cannot read: the password, often
            raise LedgerError(
                f"{self.name}: cannot connect to the ledger database ({UNREADABLE_URL})"
            ) from None
        try:
            # The session's time zone is UTC whatever the server's default, and its lock timeout is ours (set
            # with the connection: no statement of its own in every transaction); options in the URL are kept.
            self._conn = psycopg.connect(
                conninfo.make_conninfo(
                    self._url,
                    options=f"{options} -c timezone=UTC -c lock_timeout={LOCK_TIMEOUT}".strip(),
                    connect_timeout=CONNECT_TIMEOUT,
                    application_name="amplifier",
                ),
                autocommit=True,
            )
        except psycopg.Error as error:
            # psycopg's message names host and port, never the password; say it in our words all the same.
            reason = connect_reason(error)
            raise LedgerError(f"{self.name}: cannot connect to the ledger database ({reason})") from None
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """PostgreSQL's errors as the ledger's: a lock wait past the timeout, or a transaction the server rolled
        back to break a deadlock or a serialization conflict (two nodes' transactions meeting on the same rows,
        e.g. a report summary group), is :class:`LedgerBusy`: nothing of it was written and the caller tries
        again as it does for a busy ledger. A broken connection is a :class:`LedgerError` (the next call
        connects again)."""
        try:
            yield
        except (psycopg.errors.LockNotAvailable, *ROLLED_BACK) as error:
            raise LedgerBusy(self.name) from error
        except psycopg.OperationalError as error:
            raise LedgerError(f"{self.name}: the ledger database connection failed ({error})") from None

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One transaction: committed if the block returns, rolled back if it raises (nested: a savepoint)."""
        local = self._local
        with self._lock, self._errors():
            conn = self._connection()
            local.depth = getattr(local, "depth", 0) + 1
            try:
                with conn.transaction():
                    yield PgConnection(conn, self.dialect)
            finally:
                local.depth -= 1
            if not local.depth:
                local.commits = getattr(local, "commits", 0) + 1

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._lock, self._errors():
            yield PgConnection(self._connection(), self.dialect)

    def group(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run ``calls`` in one transaction, each one in a savepoint of its own (psycopg nests
        ``transaction()`` as savepoints): one commit for all of them (see :meth:`Ledger.group`). A call the server
        rolled back (a deadlock) rolls the whole group back: ``calls`` are this ledger's operations, which
        :func:`_retrying` runs again together."""
        results: list[Any] = []
        with self._transaction():
            for call in calls:
                try:
                    results.append(call())
                except LedgerBusy as exc:
                    if rolled_back(exc):  # the server broke a deadlock: the group goes whole, and runs again
                        raise
                    results.append(exc)
                except Exception as exc:  # the caller's, raised in its own thread
                    results.append(exc)
        return results

    # -- a re-plan's statements (see SqlPlan.sync_plan) --------------------------------------------------------

    def _lock_plan(self, conn: Connection) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (SYNC_LOCK,))

    def _existing_query(
        self, plan: Mapping[str, PlanKey], start: datetime | None, end: datetime | None
    ) -> tuple[str, Sequence[Any]]:
        """What a re-plan must read: the posts due in [start, end) and the posts of the plan (by id), never the
        rest of the ledger; everything when a bound is open."""
        if start is None or end is None:
            return _EXISTING, ()
        window = (self.dialect.time(start), self.dialect.time(end))
        return (
            f"{_EXISTING} WHERE due_at >= ? AND due_at < ?"
            f" UNION ALL {_EXISTING} WHERE id = ANY(?) AND NOT (due_at >= ? AND due_at < ?)",
            (*window, list(plan), *window),
        )

    def _write_plan(self, conn: Connection, diff: PlanDiff, stamp: Any) -> None:
        """Set-based writes: one statement per kind of change, the values as column arrays (unnest)."""
        if diff.inserted:
            conn.execute(
                "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
                " next_attempt_at, created_at, updated_at, variant)"
                " SELECT id, account, platform, rule, due_at, content_hash, part_count, 'planned', due_at,"
                f" ?, ?, variant FROM {_UNNEST_PLAN_VARIANT}",
                (stamp, stamp, *_columns([(i, *key, diff.variants.get(i)) for i, key in diff.inserted])),
            )
        if diff.updated:
            conn.execute(
                "UPDATE posts SET account = t.account, platform = t.platform, rule = t.rule, due_at = t.due_at,"
                " content_hash = t.content_hash, part_count = t.part_count, next_attempt_at = t.next_at,"
                " variant = COALESCE(t.variant, posts.variant),"
                f" updated_at = ? FROM {_UNNEST_PLAN_NEXT} WHERE posts.id = t.id AND posts.state = 'planned'",
                (
                    stamp,
                    *_columns([(i, *key, diff.variants.get(i), next_at) for i, key, next_at in diff.updated]),
                ),
            )
        if diff.revived:
            conn.execute(
                "UPDATE posts SET account = t.account, platform = t.platform, rule = t.rule, due_at = t.due_at,"
                " content_hash = t.content_hash, part_count = t.part_count, next_attempt_at = t.due_at,"
                " updated_at = ?, state = 'planned', last_error = NULL, variant = COALESCE(t.variant, posts.variant)"
                f" FROM {_UNNEST_PLAN_VARIANT} WHERE posts.id = t.id AND posts.state = 'cancelled'",
                (stamp, *_columns([(i, *key, diff.variants.get(i)) for i, key in diff.revived])),
            )
        if diff.cancelled:
            conn.execute(
                "UPDATE posts SET state = 'cancelled', last_error = ?, updated_at = ?"
                " WHERE id = ANY(?) AND state = 'planned'",
                (CANCELLED_REASON, stamp, diff.cancelled),
            )


# Every public operation, run again when the server rolls its transaction back (see _retrying).
for _name, _method in inspect.getmembers(PostgresLedger, inspect.isfunction):
    if not _name.startswith("_"):
        setattr(PostgresLedger, _name, _retrying(_method))
