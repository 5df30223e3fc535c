"""The delivery ledger: one SQLite file that makes publishing exactly-once.

Every planned post (or thread) has one row, keyed by its stable id. Its life::

    planned --claim--> claimed --mark_published--> published
       ^                  |  --mark_failed-------> failed     (reason)
       |                  |  --mark_expired------> expired    (reason; also straight from planned)
       +--schedule_retry--+  --mark_skipped------> skipped    (reason; also straight from planned)
       +--release---------+  --mark_unknown------> claimed    (outcome unknown: only reconciliation goes on)
    planned --sync_plan--> cancelled (removed by a re-plan) --sync_plan--> planned (back in the plan)

An attempt whose outcome is unknown (a Mastodon status request that timed out: the server may have created the
status) is recorded by :meth:`Ledger.mark_unknown`: the attempt counts, the post stays **claimed** (so
:meth:`Ledger.due` never returns it and nothing re-sends it blindly), and ``unknown_since`` keeps the first
moment an attempt could have created it (the claim time of that attempt), across later re-claims, until the
post is published or a lookup proves it absent (``release(..., absent=True)``). ``next_attempt_at`` of such a
row is when reconciliation should look at it next (:meth:`Ledger.unknown_due`).

``schedule_retry`` counts an attempt (``attempts + 1``) and sets ``next_attempt_at``; ``release`` (a graceful
shutdown) does not. ``mark_failed`` counts the last attempt too. Any other change raises
:class:`IllegalTransition`.

A thread publishes part by part: :meth:`Ledger.record_part` stores each part's result (platform id, URI, CID,
URL) as soon as it is out, so a retry after a failure (or a crash) resumes at :attr:`Row.next_part` and
threads the missing parts onto the ones already published.

Storage (see :mod:`amplifier.delivery.migrations` for the schema):

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

import enum
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from amplifier.delivery.migrations import migrate
from amplifier.errors import AmplifierError, ExitCode, StateError
from amplifier.plan.post import PlannedPost

DEFAULT_BUSY_TIMEOUT = 5.0  # seconds
CANCELLED_REASON = "removed from the plan"

JSONObject = dict[str, Any]


class State(enum.StrEnum):
    PLANNED = "planned"
    CLAIMED = "claimed"
    PUBLISHED = "published"
    FAILED = "failed"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


# The legal transitions, and nothing else.
TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.PLANNED: frozenset({State.CLAIMED, State.EXPIRED, State.SKIPPED, State.CANCELLED}),
    State.CLAIMED: frozenset({State.PUBLISHED, State.FAILED, State.EXPIRED, State.SKIPPED, State.PLANNED}),
    State.CANCELLED: frozenset({State.PLANNED}),
    State.PUBLISHED: frozenset(),
    State.FAILED: frozenset(),
    State.EXPIRED: frozenset(),
    State.SKIPPED: frozenset(),
}
_CLAIMED = frozenset({State.CLAIMED})  # where publishing, failing, retrying and releasing start
_UNFINISHED = frozenset({State.PLANNED, State.CLAIMED})  # where expiring and skipping start


class LedgerError(AmplifierError):
    """The ledger cannot do what was asked (an unknown post, a change its state forbids, an unusable file)."""

    exit_code = ExitCode.PUBLISH


class LedgerUnreachable(LedgerError, StateError):
    """The ledger's folder or file cannot be created or opened: the state folder is unusable (exit 5)."""

    exit_code = ExitCode.STATE


class LedgerBusy(LedgerError):
    """Another process held the ledger's write lock for longer than the busy timeout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"{path}: the ledger is busy (another amplifier process is writing to it); try again"
        )


class UnknownPost(LedgerError):
    def __init__(self, post_id: str) -> None:
        self.post_id = post_id
        super().__init__(f"no post {post_id!r} in the ledger")


class IllegalTransition(LedgerError):
    """A state change that the post's current state does not allow (e.g. publishing a post nobody claimed)."""

    def __init__(self, post_id: str, state: State, action: str) -> None:
        self.post_id = post_id
        self.state = state
        self.action = action
        super().__init__(f"post {post_id!r} is {state.value}: cannot {action}")


class ClaimMismatch(LedgerError):
    """The post is claimed by another claimant than the one that asks (its claim was released and retaken)."""

    def __init__(self, post_id: str, token: str, holder: str | None) -> None:
        self.post_id = post_id
        self.token = token
        self.holder = holder
        super().__init__(f"post {post_id!r} is claimed by {holder!r}, not by {token!r}")


class PartConflict(LedgerError):
    """A part of a thread was recorded already with another result: it would be published twice."""

    def __init__(self, post_id: str, index: int) -> None:
        self.post_id = post_id
        self.index = index
        super().__init__(f"part {index} of post {post_id!r} is already recorded with a different result")


def to_db_time(value: datetime) -> str:
    """``value`` (aware) as fixed-width UTC ISO 8601 text, e.g. ``2027-10-25T10:00:00.000000+00:00``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the ledger needs aware datetimes")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _optional_time(text: str | None) -> datetime | None:
    return None if text is None else from_db_time(text)


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def content_hash(post: PlannedPost) -> str:
    """A hash of all a post would send (its parts' text, payloads, images), to tell a changed text."""
    return hashlib.sha256(_dump([part.to_json() for part in post.parts]).encode()).hexdigest()


@dataclass(frozen=True)
class PlanEntry:
    """What the ledger needs to know of one planned post."""

    id: str
    account: str
    platform: str
    rule: str
    due_at: datetime  # aware
    content_hash: str
    part_count: int = 1

    @classmethod
    def from_post(cls, post: PlannedPost) -> PlanEntry:
        return cls(
            id=post.id,
            account=post.account,
            platform=post.platform,
            rule=post.rule,
            due_at=post.at,
            content_hash=content_hash(post),
            part_count=len(post.parts),
        )


@dataclass(frozen=True)
class Row:
    """One post as the ledger knows it. Times are aware UTC datetimes."""

    id: str
    account: str
    platform: str
    rule: str
    due_at: datetime
    content_hash: str
    part_count: int
    state: State
    attempts: int  # attempts that ended in an error (retried or failed)
    next_attempt_at: datetime
    last_error: str | None  # the reason of the last error, or of failed / expired / skipped / cancelled
    claimed_at: datetime | None
    claim_token: str | None  # who holds (or last held) the claim
    published_at: datetime | None
    result: tuple[JSONObject, ...] | None  # when published: one result per part
    created_at: datetime
    updated_at: datetime
    parts: Mapping[int, JSONObject] = field(default_factory=dict)  # part index -> result, as recorded so far
    # The first moment an attempt whose outcome is unknown could have created the post (see mark_unknown).
    unknown_since: datetime | None = None

    @property
    def missing_parts(self) -> tuple[int, ...]:
        return tuple(index for index in range(self.part_count) if index not in self.parts)

    @property
    def next_part(self) -> int | None:
        """The index of the first part still to publish, None when every part is out."""
        missing = self.missing_parts
        return missing[0] if missing else None


@dataclass(frozen=True)
class SyncReport:
    """What :meth:`Ledger.sync_plan` did, by post id."""

    inserted: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()  # still planned; due time, text or account changed
    revived: tuple[str, ...] = ()  # cancelled by an earlier re-plan, back in the plan
    cancelled: tuple[str, ...] = ()  # planned, gone from the plan
    ignored: tuple[str, ...] = ()  # the plan changes or drops them, but they are claimed, started or finished
    unchanged: int = 0


_COLUMNS = (
    "id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
    " last_error, claimed_at, claim_token, published_at, result, created_at, updated_at, unknown_since,"
    " (SELECT json_group_object(part_index, json(result)) FROM post_parts WHERE post_id = posts.id) AS parts"
)

_NOT_PAUSED = (
    "NOT EXISTS (SELECT 1 FROM paused_accounts WHERE paused_accounts.account = posts.account)"
    " AND NOT (SELECT paused FROM global_pause WHERE id = 1)"
)


def _row(values: Sequence[Any]) -> Row:
    parts_json: dict[str, JSONObject] = json.loads(values[18]) if values[18] else {}
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
        claimed_at=_optional_time(values[11]),
        claim_token=values[12],
        published_at=_optional_time(values[13]),
        result=None if values[14] is None else tuple(json.loads(values[14])),
        created_at=from_db_time(values[15]),
        updated_at=from_db_time(values[16]),
        parts={int(index): result for index, result in parts_json.items()},
        unknown_since=_optional_time(values[17]),
    )


def _check_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise ValueError("a reason must be a non-empty text")
    return reason


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


class Ledger:
    """The delivery ledger. Open it with :meth:`open`, as a context manager; threads may share it."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.RLock()
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

    def _select(self, where: str, params: Sequence[Any] = (), tail: str = "") -> list[Row]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM posts WHERE {where} {tail}", params).fetchall()
        return [_row(values) for values in rows]

    # -- the plan ------------------------------------------------------------------------------------------

    def sync_plan(
        self,
        entries: Iterable[PlanEntry],
        now: datetime,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
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
        start_text = None if start is None else to_db_time(start)
        end_text = None if end is None else to_db_time(end)
        plan: dict[str, tuple[str, str, str, str, str, int]] = {}
        for entry in entries:
            if not entry.id:
                raise ValueError("a plan entry needs a non-empty id")
            if entry.part_count < 1:
                raise ValueError(f"plan entry {entry.id!r}: part_count must be at least 1")
            if entry.id in plan:
                raise ValueError(f"the plan holds the id {entry.id!r} twice")
            plan[entry.id] = (
                entry.account,
                entry.platform,
                entry.rule,
                to_db_time(entry.due_at),
                entry.content_hash,
                entry.part_count,
            )

        inserted: list[tuple[Any, ...]] = []
        updated: list[tuple[Any, ...]] = []
        revived: list[tuple[Any, ...]] = []
        cancelled: list[tuple[Any, ...]] = []
        ignored: list[str] = []
        unchanged = 0
        with self._transaction() as conn:
            existing = conn.execute(
                "SELECT id, account, platform, rule, due_at, content_hash, part_count, state, attempts,"
                " next_attempt_at, EXISTS (SELECT 1 FROM post_parts WHERE post_id = posts.id) FROM posts"
            ).fetchall()
            known: set[str] = set()
            for (
                post_id,
                account,
                platform,
                rule,
                due_at,
                digest,
                part_count,
                state,
                attempts,
                next_at,
                started,
            ) in existing:
                known.add(post_id)
                wanted = plan.get(post_id)
                if wanted is None:
                    if state not in (State.PLANNED, State.CLAIMED):
                        continue
                    if (start_text is not None and due_at < start_text) or (
                        end_text is not None and due_at >= end_text
                    ):
                        continue
                    if state == State.PLANNED and not started:
                        cancelled.append((CANCELLED_REASON, stamp, post_id))
                    else:
                        ignored.append(post_id)
                    continue
                if wanted == (account, platform, rule, due_at, digest, part_count):
                    if state == State.CANCELLED:
                        revived.append((*wanted, wanted[3], stamp, post_id))
                    else:
                        unchanged += 1
                    continue
                if state == State.PLANNED and not started:
                    new_next = wanted[3] if attempts == 0 else max(wanted[3], next_at)
                    updated.append((*wanted, new_next, stamp, post_id))
                elif state == State.CANCELLED:
                    revived.append((*wanted, wanted[3], stamp, post_id))
                else:
                    ignored.append(post_id)
            for post_id, wanted in plan.items():
                if post_id not in known:
                    inserted.append((post_id, *wanted, State.PLANNED.value, wanted[3], stamp, stamp))

            conn.executemany(
                "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
                " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inserted,
            )
            conn.executemany(
                "UPDATE posts SET account = ?, platform = ?, rule = ?, due_at = ?, content_hash = ?,"
                " part_count = ?, next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'planned'",
                updated,
            )
            conn.executemany(
                "UPDATE posts SET account = ?, platform = ?, rule = ?, due_at = ?, content_hash = ?,"
                " part_count = ?, next_attempt_at = ?, updated_at = ?, state = 'planned', last_error = NULL"
                " WHERE id = ? AND state = 'cancelled'",
                revived,
            )
            conn.executemany(
                "UPDATE posts SET state = 'cancelled', last_error = ?, updated_at = ?"
                " WHERE id = ? AND state = 'planned'",
                cancelled,
            )
        return SyncReport(
            inserted=tuple(values[0] for values in inserted),
            updated=tuple(values[-1] for values in updated),
            revived=tuple(values[-1] for values in revived),
            cancelled=tuple(values[-1] for values in cancelled),
            ignored=tuple(sorted(ignored)),
            unchanged=unchanged,
        )

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

    def claim(self, post_id: str, now: datetime, token: str) -> bool:
        """Take the post for publishing, atomically: True if this call moved it from planned to claimed.

        False if it is not planned (someone else claimed it, or it is finished) or its account, or everything,
        is paused. Raises :class:`UnknownPost` for an id the ledger does not have.
        """
        if not token:
            raise ValueError("a claim needs a non-empty token")
        stamp = to_db_time(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE posts SET state = 'claimed', claimed_at = ?, claim_token = ?, updated_at = ?"
                f" WHERE id = ? AND state = 'planned' AND {_NOT_PAUSED}",
                (stamp, token, stamp, post_id),
            )
            if cursor.rowcount == 1:
                return True
            if conn.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)).fetchone() is None:
                raise UnknownPost(post_id)
            return False

    def record_part(
        self, post_id: str, index: int, result: Mapping[str, Any], now: datetime, *, token: str | None = None
    ) -> None:
        """Record that part ``index`` (0-based) of the claimed post is published, with its platform result.

        Recording the same result again is a no-op; another result for a recorded part raises
        :class:`PartConflict`.
        """
        stamp = to_db_time(now)
        text = _dump(dict(result))
        with self._transaction() as conn:
            _, part_count = self._current(conn, post_id, _CLAIMED, f"record part {index}", token)
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
        texts = None if parts is None else [_dump(dict(part)) for part in parts]
        with self._transaction() as conn:
            _, part_count = self._current(conn, post_id, _CLAIMED, "mark it published", token)
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
        _check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, _CLAIMED, "mark it failed", token)
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
        _check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, _CLAIMED, "schedule a retry", token)
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
            self._current(conn, post_id, _CLAIMED, "release it", token)
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
        _check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, _CLAIMED, "mark its outcome unknown", token)
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
        _check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, _UNFINISHED, f"mark it {to.value}", token)
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
        )

    def next_due_at(self) -> datetime | None:
        """The earliest next attempt of a planned post that :meth:`due` could return (pauses considered)."""
        with self._lock:
            found = self._conn.execute(
                f"SELECT MIN(next_attempt_at) FROM posts WHERE state = 'planned' AND {_NOT_PAUSED}"
            ).fetchone()
        return _optional_time(found[0])

    def claimed(self, older_than: datetime | None = None) -> list[Row]:
        """Claimed posts (claimed before ``older_than``, if given), by claim time: after a crash, their fate
        is unknown and must be reconciled with the platform."""
        if older_than is None:
            return self._select("state = 'claimed'", (), "ORDER BY claimed_at, id")
        return self._select(
            "state = 'claimed' AND claimed_at < ?", (to_db_time(older_than),), "ORDER BY claimed_at, id"
        )

    def unknown_due(self, now: datetime) -> list[Row]:
        """Claimed posts whose outcome is unknown (:meth:`mark_unknown`) and whose next check is at or before
        ``now``, by that time then id."""
        return self._select(
            "state = 'claimed' AND unknown_since IS NOT NULL AND next_attempt_at <= ?",
            (to_db_time(now),),
            "ORDER BY next_attempt_at, id",
        )

    def next_check_at(self) -> datetime | None:
        """The earliest next check of a claimed post whose outcome is unknown (None: there is none)."""
        with self._lock:
            found = self._conn.execute(
                "SELECT MIN(next_attempt_at) FROM posts WHERE state = 'claimed' AND unknown_since IS NOT NULL"
            ).fetchone()
        return _optional_time(found[0])

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
        return self._select(where, params, "ORDER BY due_at, id")

    def counts_by_state(self) -> dict[State, int]:
        """How many posts are in each state (every state present, 0 included)."""
        with self._lock:
            found = dict(self._conn.execute("SELECT state, COUNT(*) FROM posts GROUP BY state").fetchall())
        return {state: int(found.get(state.value, 0)) for state in State}

    # -- pauses --------------------------------------------------------------------------------------------

    def pause_account(self, account: str, reason: str, now: datetime) -> None:
        """Stop claiming the account's posts until :meth:`resume_account` (pausing again updates reason)."""
        stamp = to_db_time(now)
        _check_reason(reason)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO paused_accounts (account, reason, paused_at) VALUES (?, ?, ?)"
                " ON CONFLICT (account) DO UPDATE SET reason = excluded.reason,"
                " paused_at = excluded.paused_at",
                (account, reason, stamp),
            )

    def resume_account(self, account: str) -> bool:
        """Resume the account; True if it was paused."""
        with self._transaction() as conn:
            return conn.execute("DELETE FROM paused_accounts WHERE account = ?", (account,)).rowcount == 1

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
            _check_reason(reason or "")
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
