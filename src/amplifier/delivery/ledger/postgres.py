"""The PostgreSQL ledger (:class:`PostgresLedger`): the :class:`~amplifier.delivery.ledger.base.Ledger` in a
PostgreSQL database that several amplifier nodes share (``AMPLIFIER_LEDGER=postgresql://...``).

The guarantees are the interface's (the contract tests run against both backends):

* Every state change is one transaction that locks the post's row (``SELECT ... FOR UPDATE``) before it checks
  and writes it; a claim is one conditional ``UPDATE`` (planned -> claimed), which PostgreSQL's row locks make
  atomic across connections and machines: two nodes can never both claim one post.
* A commit returns once it is durable (PostgreSQL's default ``synchronous_commit``; keep ``fsync`` on).
* A writer waits at most :data:`LOCK_TIMEOUT` for a row lock, then raises :class:`LedgerBusy`; readers never wait.
* A re-plan (:meth:`sync_plan`) holds a transaction-scoped advisory lock, so two nodes' re-plans never
  interleave.
* A connection that breaks (the server restarted, the network dropped) raises :class:`LedgerError` for the call
  it broke, and the next call connects again: a transaction is in the database entirely or not at all.

The database URL is a secret (it may hold a password): it never appears in a message; the ledger is named by
host, port and database only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import conninfo
from psycopg.types.json import Jsonb

from amplifier.delivery.ledger.base import (
    CANCELLED_REASON,
    CLAIMED_ONLY,
    EXPORT_BATCH,
    UNFINISHED,
    ClaimMismatch,
    EditRecord,
    Existing,
    GateChange,
    IllegalTransition,
    JSONObject,
    LedgerBusy,
    LedgerError,
    NodeBeat,
    PartConflict,
    PlanEntry,
    PlanSource,
    Row,
    State,
    SyncReport,
    UnknownPost,
    check_edit,
    check_finish,
    check_gate_change,
    check_reason,
    check_source,
    diff_plan,
    dump_json,
    plan_keys,
    to_db_time,
)
from amplifier.delivery.ledger.pg_engagement import PostgresEngagement
from amplifier.delivery.ledger.pg_migrations import migrate
from amplifier.delivery.ledger.pg_report import PostgresReport
from amplifier.delivery.ledger.postgres_ops import PostgresOperations
from amplifier.redact import redact

LOCK_TIMEOUT = "5s"
CONNECT_TIMEOUT = 10  # seconds
SYNC_LOCK = 0x616D7073  # the advisory lock a re-plan holds

_COLUMNS = (
    "id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
    " last_error, claimed_at, claim_token, published_at, result, created_at, updated_at, unknown_since,"
    " (SELECT jsonb_object_agg(part_index, result) FROM post_parts WHERE post_id = posts.id) AS parts,"
    " late_until, lease_until"
)

_PLAIN_COLUMNS = (
    "id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
    " last_error, claimed_at, claim_token, published_at, result, created_at, updated_at, unknown_since,"
    " lease_until"
)

_NOT_PAUSED = (
    "NOT EXISTS (SELECT 1 FROM paused_accounts WHERE paused_accounts.account = posts.account)"
    " AND NOT (SELECT paused FROM global_pause WHERE id = 1)"
)


_PLAN_ARRAYS = "%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::int[]"
_PLAN_NAMES = "id, account, platform, rule, due_at, content_hash, part_count"
_UNNEST_PLAN = f"unnest({_PLAN_ARRAYS}) AS t({_PLAN_NAMES})"
_UNNEST_PLAN_NEXT = f"unnest({_PLAN_ARRAYS}, %s::timestamptz[]) AS t({_PLAN_NAMES}, next_at)"


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows as one list per column (the arrays an ``unnest`` takes)."""
    return [list(column) for column in zip(*rows, strict=True)]


def describe(url: str) -> str:
    """``host:port/dbname`` of a PostgreSQL URL: how a message names the ledger, never with its password."""
    try:
        info = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the PostgreSQL ledger (its URL cannot be read)"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"postgresql://{host}:{port}/{info.get('dbname') or ''}"


def _row(values: Sequence[Any]) -> Row:
    parts: dict[str, JSONObject] = values[18] or {}
    return Row(
        id=values[0],
        account=values[1],
        platform=values[2],
        rule=values[3],
        due_at=values[4],
        content_hash=values[5],
        part_count=values[6],
        state=State(values[7]),
        attempts=values[8],
        next_attempt_at=values[9],
        last_error=values[10],
        claimed_at=values[11],
        claim_token=values[12],
        published_at=values[13],
        result=None if values[14] is None else tuple(values[14]),
        created_at=values[15],
        updated_at=values[16],
        parts={int(index): result for index, result in parts.items()},
        unknown_since=values[17],
        late_until=values[19],
        lease_until=values[20],
    )


_EXISTING = (
    "SELECT id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
    " EXISTS (SELECT 1 FROM post_parts WHERE post_id = posts.id) FROM posts"
)


def _existing_query(
    plan: Mapping[str, Any], start: datetime | None, end: datetime | None
) -> tuple[str, Sequence[Any]]:
    """What a re-plan must read: the posts due in [start, end) and the posts of the plan (by id), never the
    rest of the ledger; everything when a bound is open."""
    if start is None or end is None:
        return _EXISTING, ()
    window = (_utc(start), _utc(end))
    return (
        f"{_EXISTING} WHERE due_at >= %s AND due_at < %s"
        f" UNION ALL {_EXISTING} WHERE id = ANY(%s) AND NOT (due_at >= %s AND due_at < %s)",
        (*window, list(plan), *window),
    )


def _utc(value: datetime) -> datetime:
    to_db_time(value)  # refuses a naive time, as the SQLite ledger does
    return value


class PostgresLedger(PostgresEngagement, PostgresOperations, PostgresReport):
    """The delivery ledger in a PostgreSQL database. Open it with :meth:`open` (callers outside the ledger use
    :func:`amplifier.delivery.ledger.open_ledger`), as a context manager; threads may share it."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.name = describe(url)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None

    @classmethod
    def open(cls, url: str, now: datetime) -> Self:
        """Connect to the database at ``url`` and migrate its schema."""
        _utc(now)
        ledger = cls(url)
        with ledger._lock:
            conn = ledger._connection()
            try:
                migrate(conn, now)
            except psycopg.Error as error:
                ledger.close()
                raise LedgerError(f"{ledger.name}: not a usable ledger database: {error}") from None
        return ledger

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            # The session's time zone is UTC whatever the server's default; options in the URL are kept.
            options = conninfo.conninfo_to_dict(self._url).get("options") or ""
            self._conn = psycopg.connect(
                conninfo.make_conninfo(
                    self._url,
                    options=f"{options} -c timezone=UTC".strip(),
                    connect_timeout=CONNECT_TIMEOUT,
                    application_name="amplifier",
                ),
                autocommit=True,
            )
        except psycopg.Error as error:
            # psycopg's message names host and port, never the password; say it in our words all the same.
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise LedgerError(f"{self.name}: cannot connect to the ledger database ({reason})") from None
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """PostgreSQL's errors as the ledger's: a lock wait past the timeout is :class:`LedgerBusy`, a broken
        connection a :class:`LedgerError` (the next call connects again)."""
        try:
            yield
        except psycopg.errors.LockNotAvailable as error:
            raise LedgerBusy(self.name) from error
        except psycopg.OperationalError as error:
            raise LedgerError(f"{self.name}: the ledger database connection failed ({error})") from None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        """One transaction: committed if the block returns, rolled back if it raises."""
        with self._lock, self._errors():
            conn = self._connection()
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                yield conn

    def group(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run ``calls`` in one transaction, each one in a savepoint of its own (psycopg nests
        ``transaction()`` as savepoints): one commit for all of them (see :meth:`Ledger.group`)."""
        results: list[Any] = []
        with self._transaction():
            for call in calls:
                try:
                    results.append(call())
                except Exception as exc:  # the caller's, raised in its own thread
                    results.append(exc)
        return results

    def _select(self, where: str, params: Sequence[Any] = (), tail: str = "") -> list[Row]:
        with self._lock, self._errors():
            rows = self._connection().execute(f"SELECT {_COLUMNS} FROM posts WHERE {where} {tail}", params)
            return [_row(values) for values in rows.fetchall()]

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock, self._errors():
            found = self._connection().execute(sql, params).fetchone()
        return None if found is None else found[0]

    # -- the plan ------------------------------------------------------------------------------------------

    def sync_plan(
        self,
        entries: Iterable[PlanEntry],
        now: datetime,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        source: PlanSource | None = None,
    ) -> SyncReport:
        """Make the planned posts match ``entries``, in one transaction (see the interface)."""
        stamp = _utc(now)
        plan = plan_keys(entries, _utc)
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK,))
            if source is not None:
                self._record_source(conn, source, stamp)
            existing = (
                Existing(
                    id=values[0],
                    key=tuple(values[1:7]),
                    state=State(values[7]),
                    attempts=values[8],
                    next_attempt_at=values[9],
                    started=bool(values[10]),
                )
                for values in conn.execute(*_existing_query(plan, start, end)).fetchall()
            )
            diff = diff_plan(existing, plan, start, end)
            # Set-based writes: one statement per kind of change, the values as column arrays (unnest).
            if diff.inserted:
                conn.execute(
                    "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
                    " next_attempt_at, created_at, updated_at)"
                    f" SELECT id, account, platform, rule, due_at, content_hash, part_count, 'planned', due_at,"
                    f" %s, %s FROM {_UNNEST_PLAN}",
                    (stamp, stamp, *_columns([(post_id, *key) for post_id, key in diff.inserted])),
                )
            if diff.updated:
                conn.execute(
                    "UPDATE posts SET account = t.account, platform = t.platform, rule = t.rule, due_at = t.due_at,"
                    " content_hash = t.content_hash, part_count = t.part_count, next_attempt_at = t.next_at,"
                    f" updated_at = %s FROM {_UNNEST_PLAN_NEXT} WHERE posts.id = t.id AND posts.state = 'planned'",
                    (stamp, *_columns([(post_id, *key, next_at) for post_id, key, next_at in diff.updated])),
                )
            if diff.revived:
                conn.execute(
                    "UPDATE posts SET account = t.account, platform = t.platform, rule = t.rule, due_at = t.due_at,"
                    " content_hash = t.content_hash, part_count = t.part_count, next_attempt_at = t.due_at,"
                    " updated_at = %s, state = 'planned', last_error = NULL"
                    f" FROM {_UNNEST_PLAN} WHERE posts.id = t.id AND posts.state = 'cancelled'",
                    (stamp, *_columns([(post_id, *key) for post_id, key in diff.revived])),
                )
            if diff.cancelled:
                conn.execute(
                    "UPDATE posts SET state = 'cancelled', last_error = %s, updated_at = %s"
                    " WHERE id = ANY(%s) AND state = 'planned'",
                    (CANCELLED_REASON, stamp, diff.cancelled),
                )
        return diff.report()

    def _record_source(self, conn: Any, source: PlanSource, stamp: Any) -> None:
        """Refuse (:class:`StalePlan`) files older than the recorded ones, else record ``source``."""
        check_source(self._read_source(conn), source)
        conn.execute(
            "INSERT INTO plan_source (id, content_hash, revision, revised_at, node, planned_at)"
            " VALUES (1, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET content_hash = excluded.content_hash,"
            " revision = excluded.revision, revised_at = excluded.revised_at, node = excluded.node,"
            " planned_at = excluded.planned_at",
            (source.content_hash, source.revision, _utc(source.revised_at), source.node, stamp),
        )

    @staticmethod
    def _read_source(conn: Any) -> PlanSource | None:
        found = conn.execute(
            "SELECT content_hash, revision, revised_at, node, planned_at FROM plan_source WHERE id = 1"
        ).fetchone()
        if found is None:
            return None
        return PlanSource(found[0], found[1], found[2], found[3], found[4])

    def plan_source(self) -> PlanSource | None:
        with self._lock, self._errors():
            return self._read_source(self._connection())

    def beat_node(self, node: str, now: datetime, *, leader: bool, holds: Sequence[str]) -> None:
        stamp = _utc(now)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO nodes (node, beat_at, leader, holds) VALUES (%s, %s, %s, %s) ON CONFLICT (node)"
                " DO UPDATE SET beat_at = excluded.beat_at, leader = excluded.leader, holds = excluded.holds",
                (node, stamp, leader, dump_json(list(holds))),
            )

    def nodes(self) -> list[NodeBeat]:
        with self._lock, self._errors():
            rows = (
                self._connection()
                .execute("SELECT node, beat_at, leader, holds FROM nodes ORDER BY beat_at DESC, node")
                .fetchall()
            )
        return [
            NodeBeat(values[0], values[1], bool(values[2]), tuple(json.loads(values[3]))) for values in rows
        ]

    # -- transitions ---------------------------------------------------------------------------------------

    @staticmethod
    def _current(
        conn: psycopg.Connection, post_id: str, allowed: frozenset[State], action: str, token: str | None
    ) -> tuple[State, int]:
        """Lock the post's row and check that it is in an ``allowed`` state: (state, part count)."""
        found = conn.execute(
            "SELECT state, claim_token, part_count FROM posts WHERE id = %s FOR UPDATE", (post_id,)
        ).fetchone()
        if found is None:
            raise UnknownPost(post_id)
        state = State(found[0])
        if state not in allowed:
            raise IllegalTransition(post_id, state, action)
        if token is not None and state == State.CLAIMED and found[1] != token:
            raise ClaimMismatch(post_id, token, found[1])
        return state, int(found[2])

    def claim(self, post_id: str, now: datetime, token: str, *, lease_until: datetime | None = None) -> bool:
        if not token:
            raise ValueError("a claim needs a non-empty token")
        stamp = _utc(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE posts SET state = 'claimed', claimed_at = %s, claim_token = %s, updated_at = %s,"
                f" lease_until = %s WHERE id = %s AND state = 'planned' AND {_NOT_PAUSED}",
                (stamp, token, stamp, None if lease_until is None else _utc(lease_until), post_id),
            )
            if cursor.rowcount == 1:
                return True
            if conn.execute("SELECT 1 FROM posts WHERE id = %s", (post_id,)).fetchone() is None:
                raise UnknownPost(post_id)
            return False

    def take_over(
        self,
        post_id: str,
        old_token: str,
        new_token: str,
        now: datetime,
        *,
        lease_until: datetime | None = None,
    ) -> bool:
        """Fencing: a compare-and-swap of the claim's token (see the interface)."""
        if not new_token:
            raise ValueError("a claim needs a non-empty token")
        stamp = _utc(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE posts SET claim_token = %s, lease_until = %s, updated_at = %s"
                " WHERE id = %s AND state = 'claimed' AND claim_token = %s",
                (new_token, None if lease_until is None else _utc(lease_until), stamp, post_id, old_token),
            )
            if cursor.rowcount == 1:
                return True
            if conn.execute("SELECT 1 FROM posts WHERE id = %s", (post_id,)).fetchone() is None:
                raise UnknownPost(post_id)
            return False

    def extend_lease(self, token: str, lease_until: datetime, now: datetime) -> int:
        """The lease of every claim ``token`` holds runs to ``lease_until`` at least (see the interface)."""
        until = _utc(lease_until)
        stamp = _utc(now)
        with self._transaction() as conn:
            conn.execute(
                "UPDATE posts SET lease_until = %s, updated_at = %s WHERE state = 'claimed' AND claim_token = %s"
                " AND (lease_until IS NULL OR lease_until < %s)",
                (until, stamp, token, until),
            )
            found = conn.execute(
                "SELECT COUNT(*) FROM posts WHERE state = 'claimed' AND claim_token = %s", (token,)
            ).fetchone()
        return 0 if found is None else int(found[0])

    def record_part(
        self, post_id: str, index: int, result: Mapping[str, Any], now: datetime, *, token: str | None = None
    ) -> None:
        stamp = _utc(now)
        value = _json(result)
        with self._transaction() as conn:
            _, part_count = self._current(conn, post_id, CLAIMED_ONLY, f"record part {index}", token)
            if not 0 <= index < part_count:
                raise ValueError(f"post {post_id!r} has {part_count} part(s): no part {index}")
            self._insert_part(conn, post_id, index, value, stamp)
            conn.execute("UPDATE posts SET updated_at = %s WHERE id = %s", (stamp, post_id))

    @staticmethod
    def _insert_part(conn: psycopg.Connection, post_id: str, index: int, value: Any, stamp: datetime) -> None:
        found = conn.execute(
            "SELECT result FROM post_parts WHERE post_id = %s AND part_index = %s", (post_id, index)
        ).fetchone()
        if found is None:
            conn.execute(
                "INSERT INTO post_parts (post_id, part_index, result, recorded_at) VALUES (%s, %s, %s, %s)",
                (post_id, index, Jsonb(value), stamp),
            )
        elif found[0] != value:
            raise PartConflict(post_id, index)

    def mark_published(
        self,
        post_id: str,
        parts: Sequence[Mapping[str, Any]] | None,
        now: datetime,
        *,
        token: str | None = None,
    ) -> None:
        stamp = _utc(now)
        values = None if parts is None else [_json(part) for part in parts]
        with self._transaction() as conn:
            _, part_count = self._current(conn, post_id, CLAIMED_ONLY, "mark it published", token)
            if values is not None:
                if len(values) != part_count:
                    raise ValueError(
                        f"post {post_id!r} has {part_count} part(s), got {len(values)} result(s)"
                    )
                for index, value in enumerate(values):
                    self._insert_part(conn, post_id, index, value, stamp)
            recorded = conn.execute(
                "SELECT part_index, result FROM post_parts WHERE post_id = %s ORDER BY part_index", (post_id,)
            ).fetchall()
            missing = sorted(set(range(part_count)) - {index for index, _ in recorded})
            if missing:
                raise IllegalTransition(
                    post_id, State.CLAIMED, f"mark it published: part(s) {missing} are not recorded"
                )
            conn.execute(
                "UPDATE posts SET state = 'published', published_at = %s, result = %s, updated_at = %s,"
                " unknown_since = NULL WHERE id = %s",
                (stamp, Jsonb([result for _, result in recorded]), stamp, post_id),
            )

    def mark_failed(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        stamp = _utc(now)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "mark it failed", token)
            conn.execute(
                "UPDATE posts SET state = 'failed', attempts = attempts + 1, last_error = %s, updated_at = %s"
                " WHERE id = %s",
                (reason, stamp, post_id),
            )

    def schedule_retry(
        self, post_id: str, reason: str, next_attempt_at: datetime, now: datetime, *, token: str | None = None
    ) -> None:
        stamp = _utc(now)
        _utc(next_attempt_at)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "schedule a retry", token)
            conn.execute(
                "UPDATE posts SET state = 'planned', attempts = attempts + 1, next_attempt_at = %s,"
                " last_error = %s, claimed_at = NULL, claim_token = NULL, updated_at = %s WHERE id = %s",
                (next_attempt_at, reason, stamp, post_id),
            )

    def release(
        self,
        post_id: str,
        now: datetime,
        *,
        token: str | None = None,
        absent: bool = False,
        unknown: bool = False,
    ) -> None:
        if absent and unknown:
            raise ValueError("a post cannot be both absent and unknown")
        stamp = _utc(now)
        clear = ""
        if absent:
            clear = ", unknown_since = NULL"
        elif unknown:
            clear = ", unknown_since = COALESCE(unknown_since, claimed_at)"
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "release it", token)
            conn.execute(
                "UPDATE posts SET state = 'planned', claimed_at = NULL, claim_token = NULL, updated_at = %s"
                f"{clear} WHERE id = %s",
                (stamp, post_id),
            )

    def mark_unknown(
        self,
        post_id: str,
        reason: str,
        now: datetime,
        *,
        check_at: datetime,
        token: str | None = None,
        attempt: bool = True,
    ) -> None:
        stamp = _utc(now)
        _utc(check_at)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "mark its outcome unknown", token)
            conn.execute(
                "UPDATE posts SET attempts = attempts + %s, last_error = %s, next_attempt_at = %s,"
                " unknown_since = COALESCE(unknown_since, claimed_at), updated_at = %s WHERE id = %s",
                (1 if attempt else 0, reason, check_at, stamp, post_id),
            )

    def mark_expired(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        self._finish(post_id, State.EXPIRED, reason, now, token)

    def mark_skipped(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        self._finish(post_id, State.SKIPPED, reason, now, token)

    def _finish(self, post_id: str, to: State, reason: str, now: datetime, token: str | None) -> None:
        stamp = _utc(now)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, UNFINISHED, f"mark it {to.value}", token)
            conn.execute(
                "UPDATE posts SET state = %s, last_error = %s, updated_at = %s WHERE id = %s",
                (to.value, reason, stamp, post_id),
            )

    # -- queries -------------------------------------------------------------------------------------------

    def get(self, post_id: str) -> Row:
        rows = self._select("id = %s", (post_id,))
        if not rows:
            raise UnknownPost(post_id)
        return rows[0]

    def due(self, now: datetime, limit: int | None = None) -> list[Row]:
        return self._select(
            f"state = 'planned' AND next_attempt_at <= %s AND {_NOT_PAUSED}",
            (_utc(now), limit),
            "ORDER BY due_at, id LIMIT %s",
        )

    def next_due_at(self) -> datetime | None:
        found: datetime | None = self._scalar(
            f"SELECT MIN(next_attempt_at) FROM posts WHERE state = 'planned' AND {_NOT_PAUSED}"
        )
        return found

    def claimed(self, older_than: datetime | None = None) -> list[Row]:
        if older_than is None:
            return self._select("state = 'claimed'", (), "ORDER BY claimed_at, id")
        return self._select(
            "state = 'claimed' AND claimed_at < %s", (_utc(older_than),), "ORDER BY claimed_at, id"
        )

    def unknown_due(self, now: datetime) -> list[Row]:
        return self._select(
            "state = 'claimed' AND unknown_since IS NOT NULL AND next_attempt_at <= %s",
            (_utc(now),),
            "ORDER BY next_attempt_at, id",
        )

    def next_check_at(self) -> datetime | None:
        found: datetime | None = self._scalar(
            "SELECT MIN(next_attempt_at) FROM posts WHERE state = 'claimed' AND unknown_since IS NOT NULL"
        )
        return found

    def history(
        self,
        start: datetime,
        end: datetime,
        account: str | None = None,
        states: Iterable[State] | None = None,
    ) -> list[Row]:
        where = "due_at >= %s AND due_at < %s"
        params: list[Any] = [_utc(start), _utc(end)]
        if account is not None:
            where += " AND account = %s"
            params.append(account)
        if states is not None:
            wanted = sorted({State(state).value for state in states})
            if not wanted:
                return []
            where += " AND state = ANY(%s)"
            params.append(wanted)
        return self._select(where, params, "ORDER BY due_at, id")

    def remote_ids(self, account: str, *, except_post: str | None = None) -> frozenset[str]:
        with self._lock, self._errors():
            rows = (
                self._connection()
                .execute(
                    "SELECT pp.result ->> 'id' FROM posts p JOIN post_parts pp ON pp.post_id = p.id"
                    " WHERE p.account = %s AND p.id IS DISTINCT FROM %s",
                    (account, except_post),
                )
                .fetchall()
            )
        return frozenset(str(value) for (value,) in rows if value not in (None, ""))

    def counts_by_state(self) -> dict[State, int]:
        with self._lock, self._errors():
            rows = self._connection().execute("SELECT state, COUNT(*) FROM posts GROUP BY state").fetchall()
        found: dict[str, int] = {str(state): int(count) for state, count in rows}
        return {state: int(found.get(state.value, 0)) for state in State}

    # -- pauses --------------------------------------------------------------------------------------------

    def paused_accounts(self) -> dict[str, str]:
        with self._lock, self._errors():
            rows = self._connection().execute("SELECT account, reason FROM paused_accounts ORDER BY account")
            return {str(account): str(reason) for account, reason in rows.fetchall()}

    def set_paused(self, paused: bool, reason: str | None, now: datetime) -> None:
        stamp = _utc(now)
        if paused:
            reason = check_reason(reason or "")
        with self._transaction() as conn:
            conn.execute(
                "UPDATE global_pause SET paused = %s, reason = %s, changed_at = %s WHERE id = 1",
                (paused, reason if paused else None, stamp),
            )

    def is_paused(self) -> bool:
        return bool(self._scalar("SELECT paused FROM global_pause WHERE id = 1"))

    def pause_reason(self) -> str | None:
        with self._lock, self._errors():
            found = (
                self._connection().execute("SELECT paused, reason FROM global_pause WHERE id = 1").fetchone()
            )
        return str(found[1]) if found and found[0] else None

    # -- moving a ledger -----------------------------------------------------------------------------------

    # -- operator actions on published posts --------------------------------------------------------------

    def record_gate_change(self, change: GateChange) -> None:
        change = check_gate_change(change)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM posts WHERE id = %s", (change.post_id,)).fetchone() is None:
                raise UnknownPost(change.post_id)
            conn.execute(
                "INSERT INTO gate_changes (post_id, account, by_whom, at, replies, quotes, outcome, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    change.post_id,
                    change.account,
                    change.by,
                    _utc(change.at),
                    change.replies,
                    change.quotes,
                    change.outcome,
                    change.detail,
                ),
            )

    def gate_changes(self, post_id: str | None = None) -> list[GateChange]:
        where, params = ("WHERE post_id = %s", (post_id,)) if post_id is not None else ("", ())
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT post_id, account, by_whom, at, replies, quotes, outcome, detail FROM gate_changes"
                f" {where} ORDER BY at, seq",
                params,
            ).fetchall()
        return [
            GateChange(post, account, by, _utc(at), replies, quotes, outcome, detail)
            for post, account, by, at, replies, quotes, outcome, detail in rows
        ]

    # -- edits of published posts (amplifier correct) -------------------------------------------------------

    def begin_edit(self, edit: EditRecord) -> int:
        edit = check_edit(edit)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM posts WHERE id = %s", (edit.post_id,)).fetchone() is None:
                raise UnknownPost(edit.post_id)
            return self._insert_edit(conn, edit)

    def _insert_edit(self, conn: Any, edit: EditRecord) -> int:
        found = conn.execute(
            "INSERT INTO edits (post_id, part, account, by_whom, at, old_text, new_text, outcome, detail, done_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq",
            (
                edit.post_id,
                edit.part,
                edit.account,
                edit.by,
                _utc(edit.at),
                edit.old_text,
                edit.new_text,
                edit.outcome,
                edit.detail,
                None if edit.done_at is None else _utc(edit.done_at),
            ),
        ).fetchone()
        return int(found[0])

    def finish_edit(self, edit_id: int, outcome: str, detail: str, now: datetime) -> None:
        check_finish(outcome, now)
        with self._transaction() as conn:
            found = conn.execute("SELECT outcome FROM edits WHERE seq = %s", (edit_id,)).fetchone()
            if found is None:
                raise LedgerError(f"no edit {edit_id} in the ledger")
            if found[0] != "pending":
                raise LedgerError(f"edit {edit_id} is already finished ({found[0]})")
            conn.execute(
                "UPDATE edits SET outcome = %s, detail = %s, done_at = %s WHERE seq = %s",
                (outcome, redact(detail), _utc(now), edit_id),
            )

    def edits(self, post_id: str | None = None) -> list[EditRecord]:
        where, params = ("WHERE post_id = %s", (post_id,)) if post_id is not None else ("", ())
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT seq, post_id, part, account, by_whom, at, old_text, new_text, outcome, detail, done_at"
                f" FROM edits {where} ORDER BY at, seq",
                params,
            ).fetchall()
        return [
            EditRecord(
                post,
                int(part),
                account,
                by,
                _utc(at),
                old,
                new,
                outcome,
                detail,
                int(seq),
                None if done is None else _utc(done),
            )
            for seq, post, part, account, by, at, old, new, outcome, detail, done in rows
        ]

    def import_edits(self, edits: Iterable[EditRecord]) -> int:
        count = 0
        with self._transaction() as conn:
            for edit in edits:
                self._insert_edit(conn, replace(edit, detail=redact(edit.detail)))
                count += 1
        return count

    def export_rows(self) -> Iterator[Row]:
        after: tuple[datetime, str] | None = None
        while True:
            if after is None:
                batch = self._select("true", (EXPORT_BATCH,), "ORDER BY due_at, id LIMIT %s")
            else:
                batch = self._select(
                    "(due_at, id) > (%s, %s)", (*after, EXPORT_BATCH), "ORDER BY due_at, id LIMIT %s"
                )
            yield from batch
            if len(batch) < EXPORT_BATCH:
                return
            after = (batch[-1].due_at, batch[-1].id)

    def import_rows(self, rows: Iterable[Row]) -> int:
        count = 0
        with self._transaction() as conn:
            for row in rows:
                try:
                    conn.execute(
                        f"INSERT INTO posts ({_PLAIN_COLUMNS}) VALUES ({', '.join(['%s'] * 19)})",
                        (
                            row.id,
                            row.account,
                            row.platform,
                            row.rule,
                            row.due_at,
                            row.content_hash,
                            row.part_count,
                            row.state.value,
                            row.attempts,
                            row.next_attempt_at,
                            row.last_error,
                            row.claimed_at,
                            row.claim_token,
                            row.published_at,
                            None if row.result is None else Jsonb(list(row.result)),
                            row.created_at,
                            row.updated_at,
                            row.unknown_since,
                            row.lease_until,
                        ),
                    )
                except psycopg.errors.UniqueViolation:
                    raise LedgerError(
                        f"{self.name}: cannot import post {row.id!r}: it is there already"
                    ) from None
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO post_parts (post_id, part_index, result, recorded_at) VALUES (%s, %s, %s, %s)",
                        [
                            (row.id, index, Jsonb(dict(result)), row.updated_at)
                            for index, result in sorted(row.parts.items())
                        ],
                    )
                count += 1
        return count


def _json(value: Mapping[str, Any]) -> Any:
    """``value`` as it reads back from ``jsonb`` (the same normalisation the SQLite ledger's JSON text gets)."""
    return json.loads(dump_json(dict(value)))
