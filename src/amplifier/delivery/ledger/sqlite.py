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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

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
    LedgerUnreachable,
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
    from_db_time,
    optional_time,
    plan_keys,
    to_db_time,
)
from amplifier.delivery.ledger.migrations import migrate
from amplifier.delivery.ledger.sqlite_engagement import SqliteEngagement
from amplifier.delivery.ledger.sqlite_ops import SqliteOperations
from amplifier.delivery.ledger.sqlite_report import SqliteReport
from amplifier.redact import redact

DEFAULT_BUSY_TIMEOUT = 5.0  # seconds
LEDGER_NAME = "ledger.sqlite3"  # in the state folder


_COLUMNS = (
    "id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
    " last_error, claimed_at, claim_token, published_at, result, created_at, updated_at, unknown_since,"
    " CASE WHEN result IS NULL THEN"
    " (SELECT json_group_object(part_index, json(result)) FROM post_parts WHERE post_id = posts.id) END AS parts,"
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


_EXISTING = (
    "SELECT id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
    " EXISTS (SELECT 1 FROM post_parts WHERE post_id = posts.id) FROM posts"
)
_EXISTING_IN_WINDOW = _EXISTING + " INDEXED BY posts_due_at"


def _existing_query(
    plan: Mapping[str, Any], start: datetime | None, end: datetime | None
) -> tuple[str, Sequence[Any]]:
    """What a re-plan must read: the posts due in [start, end) (it may cancel them) and the posts of the plan
    (by id), never the rest of the ledger; everything when a bound is open."""
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


def _row(values: Sequence[Any]) -> Row:
    # A published post's parts are its result, in order (mark_published writes it from post_parts): read once.
    result = None if values[14] is None else tuple(json.loads(values[14]))
    parts_json: dict[str, JSONObject] = json.loads(values[18]) if values[18] else {}
    if result is not None:
        parts_json = {str(index): part for index, part in enumerate(result)}
    return Row(
        id=values[0],
        account=values[1],
        platform=values[2],
        rule=values[3],
        due_at=from_db_time(values[4]),
        content_hash=values[5],
        part_count=values[6],
        state=State(values[7]),
        attempts=values[8],
        next_attempt_at=from_db_time(values[9]),
        last_error=values[10],
        claimed_at=optional_time(values[11]),
        claim_token=values[12],
        published_at=optional_time(values[13]),
        result=result,
        created_at=from_db_time(values[15]),
        updated_at=from_db_time(values[16]),
        parts={int(index): result for index, result in parts_json.items()},
        unknown_since=optional_time(values[17]),
        late_until=optional_time(values[19]),
        lease_until=optional_time(values[20]),
    )


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


class SqliteLedger(SqliteEngagement, SqliteOperations, SqliteReport):
    """The delivery ledger in one SQLite file. Open it with :meth:`open` (or, as callers outside the ledger do,
    :func:`amplifier.delivery.ledger.open_ledger`), as a context manager; threads may share it."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._grouping = False  # inside group(): each transaction is a savepoint of the group's one
        self.path = path

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
            raise LedgerUnreachable(f"{db_path}: cannot open the ledger: {error}") from error
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
            if error.sqlite_errorcode == sqlite3.SQLITE_CANTOPEN:
                raise LedgerUnreachable(f"{db_path}: cannot open the ledger: {error}") from error
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
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
        with self._transaction() as conn:
            self._grouping = True
            try:
                for call in calls:
                    try:
                        results.append(call())
                    except Exception as exc:  # the caller's, raised in its own thread
                        results.append(exc)
            finally:
                self._grouping = False
            if not conn.in_transaction:  # a call ended the transaction: its changes are not one group
                raise LedgerError(f"{self.path}: a grouped change ended the group's transaction")
        return results

    def _select(
        self, where: str, params: Sequence[Any] = (), tail: str = "", *, index: str | None = None
    ) -> list[Row]:
        """Rows of ``posts`` matching ``where``; ``index``: the index the query must use (see m005)."""
        source = f"posts INDEXED BY {index}" if index else "posts"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM {source} WHERE {where} {tail}", params
            ).fetchall()
        return [_row(values) for values in rows]

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
        """Make the planned posts match ``entries``, in one transaction.

        New ids are inserted as planned (due, and next attempt, at ``due_at``). A still-planned post whose due
        time, content hash, account, platform, rule or part count changed is updated (a post waiting for a
        retry keeps its later ``next_attempt_at``). A cancelled post that is back in the plan is planned
        again. A planned post missing from ``entries`` is cancelled, but only if its due time is within
        [``start``, ``end``) (a bound may be None: unbounded), so a plan of a window does not cancel the posts
        outside it.

        Posts that are claimed, finished (published, failed, expired, skipped) or planned with parts already
        published (a thread waiting for a retry) are never changed or cancelled; when the plan would change or
        drop one, its id is in :attr:`SyncReport.ignored`.
        """
        stamp = to_db_time(now)
        plan = plan_keys(entries, to_db_time)
        with self._transaction() as conn:
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
                for values in conn.execute(*_existing_query(plan, start, end))
            )
            diff = diff_plan(
                existing,
                plan,
                None if start is None else to_db_time(start),
                None if end is None else to_db_time(end),
            )
            conn.executemany(
                "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
                " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?, ?)",
                [(post_id, *key, key[3], stamp, stamp) for post_id, key in diff.inserted],
            )
            conn.executemany(
                "UPDATE posts SET account = ?, platform = ?, rule = ?, due_at = ?, content_hash = ?,"
                " part_count = ?, next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'planned'",
                [(*key, next_at, stamp, post_id) for post_id, key, next_at in diff.updated],
            )
            conn.executemany(
                "UPDATE posts SET account = ?, platform = ?, rule = ?, due_at = ?, content_hash = ?,"
                " part_count = ?, next_attempt_at = ?, updated_at = ?, state = 'planned', last_error = NULL"
                " WHERE id = ? AND state = 'cancelled'",
                [(*key, key[3], stamp, post_id) for post_id, key in diff.revived],
            )
            conn.executemany(
                "UPDATE posts SET state = 'cancelled', last_error = ?, updated_at = ?"
                " WHERE id = ? AND state = 'planned'",
                [(CANCELLED_REASON, stamp, post_id) for post_id in diff.cancelled],
            )
        return diff.report()

    def _record_source(self, conn: Any, source: PlanSource, stamp: Any) -> None:
        """Refuse (:class:`StalePlan`) files older than the recorded ones, else record ``source``."""
        check_source(self._read_source(conn), source)
        conn.execute(
            "INSERT INTO plan_source (id, content_hash, revision, revised_at, node, planned_at)"
            " VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET content_hash = excluded.content_hash,"
            " revision = excluded.revision, revised_at = excluded.revised_at, node = excluded.node,"
            " planned_at = excluded.planned_at",
            (source.content_hash, source.revision, to_db_time(source.revised_at), source.node, stamp),
        )

    @staticmethod
    def _read_source(conn: Any) -> PlanSource | None:
        found = conn.execute(
            "SELECT content_hash, revision, revised_at, node, planned_at FROM plan_source WHERE id = 1"
        ).fetchone()
        if found is None:
            return None
        return PlanSource(found[0], found[1], from_db_time(found[2]), found[3], optional_time(found[4]))

    def plan_source(self) -> PlanSource | None:
        with self._lock:
            return self._read_source(self._conn)

    def beat_node(self, node: str, now: datetime, *, leader: bool, holds: Sequence[str]) -> None:
        stamp = to_db_time(now)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO nodes (node, beat_at, leader, holds) VALUES (?, ?, ?, ?) ON CONFLICT (node)"
                " DO UPDATE SET beat_at = excluded.beat_at, leader = excluded.leader, holds = excluded.holds",
                (node, stamp, int(leader), dump_json(list(holds))),
            )

    def nodes(self) -> list[NodeBeat]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT node, beat_at, leader, holds FROM nodes ORDER BY beat_at DESC, node"
            ).fetchall()
        return [
            NodeBeat(values[0], from_db_time(values[1]), bool(values[2]), tuple(json.loads(values[3])))
            for values in rows
        ]

    # -- transitions ---------------------------------------------------------------------------------------

    def _current(
        self,
        conn: sqlite3.Connection,
        post_id: str,
        allowed: frozenset[State],
        action: str,
        token: str | None,
    ) -> tuple[State, int]:
        """Check, under the write lock, that the post is in an ``allowed`` state: (state, part count)."""
        found = conn.execute(
            "SELECT state, claim_token, part_count FROM posts WHERE id = ?", (post_id,)
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
        """Take the post for publishing, atomically: True if this call moved it from planned to claimed.

        False if it is not planned (someone else claimed it, or it is finished) or its account, or everything,
        is paused. Raises :class:`UnknownPost` for an id the ledger does not have.
        """
        if not token:
            raise ValueError("a claim needs a non-empty token")
        stamp = to_db_time(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE posts SET state = 'claimed', claimed_at = ?, claim_token = ?, updated_at = ?,"
                f" lease_until = ? WHERE id = ? AND state = 'planned' AND {_NOT_PAUSED}",
                (stamp, token, stamp, _db_time_or_none(lease_until), post_id),
            )
            if cursor.rowcount == 1:
                return True
            if conn.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)).fetchone() is None:
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
        stamp = to_db_time(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE posts SET claim_token = ?, lease_until = ?, updated_at = ?"
                " WHERE id = ? AND state = 'claimed' AND claim_token = ?",
                (new_token, _db_time_or_none(lease_until), stamp, post_id, old_token),
            )
            if cursor.rowcount == 1:
                return True
            if conn.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)).fetchone() is None:
                raise UnknownPost(post_id)
            return False

    def extend_lease(self, token: str, lease_until: datetime, now: datetime) -> int:
        """The lease of every claim ``token`` holds runs to ``lease_until`` at least (see the interface)."""
        until = to_db_time(lease_until)
        stamp = to_db_time(now)
        with self._transaction() as conn:
            conn.execute(
                "UPDATE posts SET lease_until = ?, updated_at = ? WHERE state = 'claimed' AND claim_token = ?"
                " AND (lease_until IS NULL OR lease_until < ?)",
                (until, stamp, token, until),
            )
            found = conn.execute(
                "SELECT COUNT(*) FROM posts WHERE state = 'claimed' AND claim_token = ?", (token,)
            ).fetchone()
        return int(found[0])

    def record_part(
        self, post_id: str, index: int, result: Mapping[str, Any], now: datetime, *, token: str | None = None
    ) -> None:
        """Record that part ``index`` (0-based) of the claimed post is published, with its platform result.

        Recording the same result again is a no-op; another result for a recorded part raises
        :class:`PartConflict`.
        """
        stamp = to_db_time(now)
        text = dump_json(dict(result))
        with self._transaction() as conn:
            _, part_count = self._current(conn, post_id, CLAIMED_ONLY, f"record part {index}", token)
            if not 0 <= index < part_count:
                raise ValueError(f"post {post_id!r} has {part_count} part(s): no part {index}")
            self._insert_part(conn, post_id, index, text, stamp)
            conn.execute("UPDATE posts SET updated_at = ? WHERE id = ?", (stamp, post_id))

    @staticmethod
    def _insert_part(conn: sqlite3.Connection, post_id: str, index: int, text: str, stamp: str) -> None:
        found = conn.execute(
            "SELECT result FROM post_parts WHERE post_id = ? AND part_index = ?", (post_id, index)
        ).fetchone()
        if found is None:
            conn.execute(
                "INSERT INTO post_parts (post_id, part_index, result, recorded_at) VALUES (?, ?, ?, ?)",
                (post_id, index, text, stamp),
            )
        elif json.loads(found[0]) != json.loads(text):
            raise PartConflict(post_id, index)

    def mark_published(
        self,
        post_id: str,
        parts: Sequence[Mapping[str, Any]] | None,
        now: datetime,
        *,
        token: str | None = None,
    ) -> None:
        """Claimed -> published. ``parts`` is one result per part (None: every part was recorded already)."""
        stamp = to_db_time(now)
        texts = None if parts is None else [dump_json(dict(part)) for part in parts]
        with self._transaction() as conn:
            _, part_count = self._current(conn, post_id, CLAIMED_ONLY, "mark it published", token)
            if texts is not None:
                if len(texts) != part_count:
                    raise ValueError(f"post {post_id!r} has {part_count} part(s), got {len(texts)} result(s)")
                for index, text in enumerate(texts):
                    self._insert_part(conn, post_id, index, text, stamp)
            recorded = conn.execute(
                "SELECT part_index, result FROM post_parts WHERE post_id = ? ORDER BY part_index", (post_id,)
            ).fetchall()
            missing = sorted(set(range(part_count)) - {index for index, _ in recorded})
            if missing:
                raise IllegalTransition(
                    post_id, State.CLAIMED, f"mark it published: part(s) {missing} are not recorded"
                )
            result = "[" + ",".join(text for _, text in recorded) + "]"
            conn.execute(
                "UPDATE posts SET state = 'published', published_at = ?, result = ?, updated_at = ?,"
                " unknown_since = NULL WHERE id = ?",
                (stamp, result, stamp, post_id),
            )

    def mark_failed(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Claimed -> failed for good (the attempt counts); ``reason`` is stored as given."""
        stamp = to_db_time(now)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "mark it failed", token)
            conn.execute(
                "UPDATE posts SET state = 'failed', attempts = attempts + 1, last_error = ?, updated_at = ?"
                " WHERE id = ?",
                (reason, stamp, post_id),
            )

    def schedule_retry(
        self, post_id: str, reason: str, next_attempt_at: datetime, now: datetime, *, token: str | None = None
    ) -> None:
        """Claimed -> planned, to try again at ``next_attempt_at``; the attempt counts, ``reason`` is kept."""
        stamp = to_db_time(now)
        next_text = to_db_time(next_attempt_at)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "schedule a retry", token)
            conn.execute(
                "UPDATE posts SET state = 'planned', attempts = attempts + 1, next_attempt_at = ?,"
                " last_error = ?, claimed_at = NULL, claim_token = NULL, updated_at = ? WHERE id = ?",
                (next_text, reason, stamp, post_id),
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
        """Claimed -> planned without counting an attempt (a graceful shutdown before anything was sent).

        ``unknown_since`` is kept (a post released to be re-sent under its Idempotency-Key stays unknown
        until it is published), unless ``absent``: a lookup proved the post is not on the platform.
        ``unknown``: the outcome of the claim being released is unknown (a crash left it claimed): when
        ``unknown_since`` is not set yet, it becomes the claim time."""
        if absent and unknown:
            raise ValueError("a post cannot be both absent and unknown")
        stamp = to_db_time(now)
        clear = ""
        if absent:
            clear = ", unknown_since = NULL"
        elif unknown:
            clear = ", unknown_since = COALESCE(unknown_since, claimed_at)"
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "release it", token)
            conn.execute(
                "UPDATE posts SET state = 'planned', claimed_at = NULL, claim_token = NULL, updated_at = ?"
                f"{clear} WHERE id = ?",
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
        """Claimed -> still claimed, outcome unknown: only reconciliation may move it on.

        ``unknown_since`` is set to the claim time (the earliest the request could have gone out) unless it
        is set already: it keeps the FIRST such moment across re-claims, because Mastodon's Idempotency-Key
        lives an hour from the status's creation and a repeat does not extend it. ``next_attempt_at`` becomes
        ``check_at``, when reconciliation should look next; ``reason`` is kept as ``last_error``. ``attempt``:
        whether a publish attempt ended here (counted), or only a lookup failed (not counted)."""
        stamp = to_db_time(now)
        check_text = to_db_time(check_at)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "mark its outcome unknown", token)
            conn.execute(
                "UPDATE posts SET attempts = attempts + ?, last_error = ?, next_attempt_at = ?,"
                " unknown_since = COALESCE(unknown_since, claimed_at), updated_at = ? WHERE id = ?",
                (1 if attempt else 0, reason, check_text, stamp, post_id),
            )

    def mark_expired(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Planned or claimed -> expired (its window was missed); ``reason`` is stored as given."""
        self._finish(post_id, State.EXPIRED, reason, now, token)

    def mark_skipped(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Planned or claimed -> skipped (on purpose); ``reason`` is stored as given."""
        self._finish(post_id, State.SKIPPED, reason, now, token)

    def _finish(self, post_id: str, to: State, reason: str, now: datetime, token: str | None) -> None:
        stamp = to_db_time(now)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, UNFINISHED, f"mark it {to.value}", token)
            conn.execute(
                "UPDATE posts SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
                (to.value, reason, stamp, post_id),
            )

    # -- queries -------------------------------------------------------------------------------------------

    def get(self, post_id: str) -> Row:
        rows = self._select("id = ?", (post_id,))
        if not rows:
            raise UnknownPost(post_id)
        return rows[0]

    def due(self, now: datetime, limit: int | None = None) -> list[Row]:
        """Planned posts whose next attempt is at or before ``now``, by due time then id; none of a paused
        account, and none at all while everything is paused."""
        return self._select(
            f"state = 'planned' AND next_attempt_at <= ? AND {_NOT_PAUSED}",
            (to_db_time(now), -1 if limit is None else limit),
            "ORDER BY due_at, id LIMIT ?",
            index="posts_planned_next",
        )

    def next_due_at(self) -> datetime | None:
        """The earliest next attempt of a planned post that :meth:`due` could return (pauses considered)."""
        with self._lock:
            found = self._conn.execute(
                "SELECT MIN(next_attempt_at) FROM posts INDEXED BY posts_planned_next"
                f" WHERE state = 'planned' AND {_NOT_PAUSED}"
            ).fetchone()
        return optional_time(found[0])

    def claimed(self, older_than: datetime | None = None) -> list[Row]:
        """Claimed posts (claimed before ``older_than``, if given), by claim time: after a crash, their fate
        is unknown and must be reconciled with the platform."""
        if older_than is None:
            return self._select("state = 'claimed'", (), "ORDER BY claimed_at, id", index="posts_claimed")
        return self._select(
            "state = 'claimed' AND claimed_at < ?",
            (to_db_time(older_than),),
            "ORDER BY claimed_at, id",
            index="posts_claimed",
        )

    def unknown_due(self, now: datetime) -> list[Row]:
        """Claimed posts whose outcome is unknown (:meth:`mark_unknown`) and whose next check is at or before
        ``now``, by that time then id."""
        return self._select(
            "state = 'claimed' AND unknown_since IS NOT NULL AND next_attempt_at <= ?",
            (to_db_time(now),),
            "ORDER BY next_attempt_at, id",
            index="posts_claimed",
        )

    def next_check_at(self) -> datetime | None:
        """The earliest next check of a claimed post whose outcome is unknown (None: there is none)."""
        with self._lock:
            found = self._conn.execute(
                "SELECT MIN(next_attempt_at) FROM posts INDEXED BY posts_claimed"
                " WHERE state = 'claimed' AND unknown_since IS NOT NULL"
            ).fetchone()
        return optional_time(found[0])

    def history(
        self,
        start: datetime,
        end: datetime,
        account: str | None = None,
        states: Iterable[State] | None = None,
    ) -> list[Row]:
        """Posts due in [``start``, ``end``), by due time then id; optionally of one account, some states."""
        where = "due_at >= ? AND due_at < ?"
        params: list[Any] = [to_db_time(start), to_db_time(end)]
        if account is not None:
            where += " AND account = ?"
            params.append(account)
        if states is not None:
            wanted = sorted({State(state).value for state in states})
            if not wanted:
                return []
            where += f" AND state IN ({', '.join('?' * len(wanted))})"
            params.extend(wanted)
        index = "posts_due_at" if account is None else "posts_account_due_at"
        return self._select(where, params, "ORDER BY due_at, id", index=index)

    def remote_ids(self, account: str, *, except_post: str | None = None) -> frozenset[str]:
        """The platform ids (Mastodon status ids, Bluesky record keys) recorded for any part of any post of
        ``account``, leaving out ``except_post``'s own: a search for a post must never take one of these."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT json_extract(pp.result, '$.id') FROM posts p"
                " JOIN post_parts pp ON pp.post_id = p.id"
                " WHERE p.account = ? AND p.id IS NOT ?",
                (account, except_post),
            ).fetchall()
        return frozenset(str(value) for (value,) in rows if value not in (None, ""))

    def counts_by_state(self) -> dict[State, int]:
        """How many posts are in each state (every state present, 0 included)."""
        with self._lock:
            found = dict(self._conn.execute("SELECT state, COUNT(*) FROM posts GROUP BY state").fetchall())
        return {state: int(found.get(state.value, 0)) for state in State}

    # -- pauses --------------------------------------------------------------------------------------------

    def paused_accounts(self) -> dict[str, str]:
        """Paused account -> reason."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT account, reason FROM paused_accounts ORDER BY account"
            ).fetchall()
        return {str(account): str(reason) for account, reason in rows}

    def set_paused(self, paused: bool, reason: str | None, now: datetime) -> None:
        """Pause (or resume) all publishing; a pause needs a reason."""
        stamp = to_db_time(now)
        if paused:
            reason = check_reason(reason or "")
        with self._transaction() as conn:
            conn.execute(
                "UPDATE global_pause SET paused = ?, reason = ?, changed_at = ? WHERE id = 1",
                (int(paused), reason if paused else None, stamp),
            )

    def is_paused(self) -> bool:
        with self._lock:
            return bool(self._conn.execute("SELECT paused FROM global_pause WHERE id = 1").fetchone()[0])

    def pause_reason(self) -> str | None:
        """Why everything is paused, None when it is not."""
        with self._lock:
            found = self._conn.execute("SELECT paused, reason FROM global_pause WHERE id = 1").fetchone()
        return str(found[1]) if found[0] else None

    # -- moving a ledger -----------------------------------------------------------------------------------

    # -- operator actions on published posts --------------------------------------------------------------

    def record_gate_change(self, change: GateChange) -> None:
        change = check_gate_change(change)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM posts WHERE id = ?", (change.post_id,)).fetchone() is None:
                raise UnknownPost(change.post_id)
            conn.execute(
                "INSERT INTO gate_changes (post_id, account, by_whom, at, replies, quotes, outcome, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    change.post_id,
                    change.account,
                    change.by,
                    to_db_time(change.at),
                    change.replies,
                    change.quotes,
                    change.outcome,
                    change.detail,
                ),
            )

    def gate_changes(self, post_id: str | None = None) -> list[GateChange]:
        where, params = ("WHERE post_id = ?", (post_id,)) if post_id is not None else ("", ())
        with self._lock:
            rows = self._conn.execute(
                "SELECT post_id, account, by_whom, at, replies, quotes, outcome, detail FROM gate_changes"
                f" {where} ORDER BY at, seq",
                params,
            ).fetchall()
        return [
            GateChange(post, account, by, from_db_time(at), replies, quotes, outcome, detail)
            for post, account, by, at, replies, quotes, outcome, detail in rows
        ]

    # -- edits of published posts (amplifier correct) -------------------------------------------------------

    def begin_edit(self, edit: EditRecord) -> int:
        edit = check_edit(edit)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM posts WHERE id = ?", (edit.post_id,)).fetchone() is None:
                raise UnknownPost(edit.post_id)
            return self._insert_edit(conn, edit)

    def _insert_edit(self, conn: Any, edit: EditRecord) -> int:
        found = conn.execute(
            "INSERT INTO edits (post_id, part, account, by_whom, at, old_text, new_text, outcome, detail, done_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            (
                edit.post_id,
                edit.part,
                edit.account,
                edit.by,
                to_db_time(edit.at),
                edit.old_text,
                edit.new_text,
                edit.outcome,
                edit.detail,
                None if edit.done_at is None else to_db_time(edit.done_at),
            ),
        ).fetchone()
        return int(found[0])

    def finish_edit(self, edit_id: int, outcome: str, detail: str, now: datetime) -> None:
        check_finish(outcome, now)
        with self._transaction() as conn:
            found = conn.execute("SELECT outcome FROM edits WHERE seq = ?", (edit_id,)).fetchone()
            if found is None:
                raise LedgerError(f"no edit {edit_id} in the ledger")
            if found[0] != "pending":
                raise LedgerError(f"edit {edit_id} is already finished ({found[0]})")
            conn.execute(
                "UPDATE edits SET outcome = ?, detail = ?, done_at = ? WHERE seq = ?",
                (outcome, redact(detail), to_db_time(now), edit_id),
            )

    def edits(self, post_id: str | None = None) -> list[EditRecord]:
        where, params = ("WHERE post_id = ?", (post_id,)) if post_id is not None else ("", ())
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
                from_db_time(at),
                old,
                new,
                outcome,
                detail,
                int(seq),
                None if done is None else from_db_time(done),
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
        after: tuple[str, str] | None = None
        while True:
            if after is None:
                batch = self._select("1 = 1", (EXPORT_BATCH,), "ORDER BY due_at, id LIMIT ?")
            else:
                batch = self._select(
                    "(due_at, id) > (?, ?)", (*after, EXPORT_BATCH), "ORDER BY due_at, id LIMIT ?"
                )
            yield from batch
            if len(batch) < EXPORT_BATCH:
                return
            after = (to_db_time(batch[-1].due_at), batch[-1].id)

    def import_rows(self, rows: Iterable[Row]) -> int:
        count = 0
        with self._transaction() as conn:
            for row in rows:
                try:
                    conn.execute(
                        f"INSERT INTO posts ({_PLAIN_COLUMNS}) VALUES ({', '.join('?' * 19)})",
                        (
                            row.id,
                            row.account,
                            row.platform,
                            row.rule,
                            to_db_time(row.due_at),
                            row.content_hash,
                            row.part_count,
                            row.state.value,
                            row.attempts,
                            to_db_time(row.next_attempt_at),
                            row.last_error,
                            _db_time_or_none(row.claimed_at),
                            row.claim_token,
                            _db_time_or_none(row.published_at),
                            None if row.result is None else dump_json(list(row.result)),
                            to_db_time(row.created_at),
                            to_db_time(row.updated_at),
                            _db_time_or_none(row.unknown_since),
                            _db_time_or_none(row.lease_until),
                        ),
                    )
                except sqlite3.IntegrityError as error:
                    raise LedgerError(f"{self.path}: cannot import post {row.id!r}: {error}") from None
                conn.executemany(
                    "INSERT INTO post_parts (post_id, part_index, result, recorded_at) VALUES (?, ?, ?, ?)",
                    [
                        (row.id, index, dump_json(dict(result)), to_db_time(row.updated_at))
                        for index, result in sorted(row.parts.items())
                    ],
                )
                count += 1
        return count


def _db_time_or_none(value: datetime | None) -> str | None:
    return None if value is None else to_db_time(value)


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
