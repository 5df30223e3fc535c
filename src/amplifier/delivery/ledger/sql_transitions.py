"""A post's transitions in the SQL ledger (a mixin of :class:`~.sql.SqlLedger`): claims, leases and fencing,
the parts of a thread, and every change from claimed (or planned) on. See :mod:`.base` for the life of a post.

Each is ONE transaction that reads the post under the backend's lock (SQLite's write lock, PostgreSQL's row
lock: :attr:`~.dialect.Dialect.for_update`) and writes it, so two processes can never both claim one post.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.dialect import Connection
from amplifier.delivery.ledger.sql import NOT_PAUSED, SqlCore
from amplifier.delivery.ledger.types import (
    CLAIMED_ONLY,
    UNFINISHED,
    ClaimMismatch,
    IllegalTransition,
    PartConflict,
    State,
    UnknownPost,
    check_reason,
    dump_json,
)


def _normal(value: Mapping[str, Any]) -> Any:
    """``value`` as it reads back from the database's JSON (the same normalisation on every backend)."""
    return json.loads(dump_json(dict(value)))


class SqlTransitions(SqlCore):
    """claim, take_over, extend_lease, record_part, mark_* , schedule_retry, release."""

    def _current(
        self, conn: Connection, post_id: str, allowed: frozenset[State], action: str, token: str | None
    ) -> tuple[State, int]:
        """Lock the post and check that it is in an ``allowed`` state (held by ``token``, if given):
        (state, part count)."""
        found = conn.execute(
            f"SELECT state, claim_token, part_count FROM posts WHERE id = ?{self.dialect.for_update}",
            (post_id,),
        ).fetchone()
        if found is None:
            raise UnknownPost(post_id)
        state = State(found[0])
        if state not in allowed:
            raise IllegalTransition(post_id, state, action)
        if token is not None and state == State.CLAIMED and found[1] != token:
            raise ClaimMismatch(post_id, token, found[1])
        return state, int(found[2])

    def _changed_or_unknown(self, conn: Connection, cursor: Any, post_id: str) -> bool:
        """True if the conditional change ``cursor`` ran changed the post; False if the post is there but was
        not in the state it asked for; :class:`UnknownPost` if it is not there."""
        if cursor.rowcount == 1:
            return True
        if conn.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)).fetchone() is None:
            raise UnknownPost(post_id)
        return False

    def claim(self, post_id: str, now: datetime, token: str, *, lease_until: datetime | None = None) -> bool:
        """Take the post for publishing, atomically: True if this call moved it from planned to claimed.

        False if it is not planned (someone else claimed it, or it is finished) or its account, or everything,
        is paused. Raises :class:`UnknownPost` for an id the ledger does not have.
        """
        if not token:
            raise ValueError("a claim needs a non-empty token")
        stamp = self.dialect.time(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE posts SET state = 'claimed', claimed_at = ?, claim_token = ?, updated_at = ?,"
                f" lease_until = ? WHERE id = ? AND state = 'planned' AND {NOT_PAUSED}",
                (stamp, token, stamp, self.dialect.optional_time(lease_until), post_id),
            )
            return self._changed_or_unknown(conn, cursor, post_id)

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
        stamp = self.dialect.time(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE posts SET claim_token = ?, lease_until = ?, updated_at = ?"
                " WHERE id = ? AND state = 'claimed' AND claim_token = ?",
                (new_token, self.dialect.optional_time(lease_until), stamp, post_id, old_token),
            )
            return self._changed_or_unknown(conn, cursor, post_id)

    def extend_lease(self, token: str, lease_until: datetime, now: datetime) -> int:
        """The lease of every claim ``token`` holds runs to ``lease_until`` at least (see the interface)."""
        until = self.dialect.time(lease_until)
        stamp = self.dialect.time(now)
        with self._transaction() as conn:
            conn.execute(
                "UPDATE posts SET lease_until = ?, updated_at = ? WHERE state = 'claimed' AND claim_token = ?"
                " AND (lease_until IS NULL OR lease_until < ?)",
                (until, stamp, token, until),
            )
            found = conn.execute(
                "SELECT COUNT(*) FROM posts WHERE state = 'claimed' AND claim_token = ?", (token,)
            ).fetchone()
        return 0 if found is None else int(found[0])

    def record_part(
        self, post_id: str, index: int, result: Mapping[str, Any], now: datetime, *, token: str | None = None
    ) -> None:
        """Record that part ``index`` (0-based) of the claimed post is published, with its platform result.

        Recording the same result again is a no-op; another result for a recorded part raises
        :class:`PartConflict`.
        """
        stamp = self.dialect.time(now)
        value = _normal(result)
        with self._transaction() as conn:
            _, part_count = self._current(conn, post_id, CLAIMED_ONLY, f"record part {index}", token)
            if not 0 <= index < part_count:
                raise ValueError(f"post {post_id!r} has {part_count} part(s): no part {index}")
            self._insert_part(conn, post_id, index, value, stamp)
            conn.execute("UPDATE posts SET updated_at = ? WHERE id = ?", (stamp, post_id))

    def _insert_part(self, conn: Connection, post_id: str, index: int, value: Any, stamp: Any) -> None:
        found = conn.execute(
            "SELECT result FROM post_parts WHERE post_id = ? AND part_index = ?", (post_id, index)
        ).fetchone()
        if found is None:
            conn.execute(
                "INSERT INTO post_parts (post_id, part_index, result, recorded_at) VALUES (?, ?, ?, ?)",
                (post_id, index, self.dialect.json(value), stamp),
            )
        elif self.dialect.read_json(found[0]) != value:
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
        d = self.dialect
        stamp = d.time(now)
        values = None if parts is None else [_normal(part) for part in parts]
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
                "SELECT part_index, result FROM post_parts WHERE post_id = ? ORDER BY part_index", (post_id,)
            ).fetchall()
            missing = sorted(set(range(part_count)) - {index for index, _ in recorded})
            if missing:
                raise IllegalTransition(
                    post_id, State.CLAIMED, f"mark it published: part(s) {missing} are not recorded"
                )
            conn.execute(
                "UPDATE posts SET state = 'published', published_at = ?, result = ?, updated_at = ?,"
                " unknown_since = NULL WHERE id = ?",
                (stamp, d.json([d.read_json(result) for _, result in recorded]), stamp, post_id),
            )

    def mark_failed(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Claimed -> failed for good (the attempt counts); ``reason`` is stored as given."""
        stamp = self.dialect.time(now)
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
        stamp = self.dialect.time(now)
        next_at = self.dialect.time(next_attempt_at)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "schedule a retry", token)
            conn.execute(
                "UPDATE posts SET state = 'planned', attempts = attempts + 1, next_attempt_at = ?,"
                " last_error = ?, claimed_at = NULL, claim_token = NULL, updated_at = ? WHERE id = ?",
                (next_at, reason, stamp, post_id),
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
        stamp = self.dialect.time(now)
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
        stamp = self.dialect.time(now)
        check = self.dialect.time(check_at)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, CLAIMED_ONLY, "mark its outcome unknown", token)
            conn.execute(
                "UPDATE posts SET attempts = attempts + ?, last_error = ?, next_attempt_at = ?,"
                " unknown_since = COALESCE(unknown_since, claimed_at), updated_at = ? WHERE id = ?",
                (1 if attempt else 0, reason, check, stamp, post_id),
            )

    def mark_expired(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Planned or claimed -> expired (its window was missed); ``reason`` is stored as given."""
        self._finish(post_id, State.EXPIRED, reason, now, token)

    def mark_skipped(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Planned or claimed -> skipped (on purpose); ``reason`` is stored as given."""
        self._finish(post_id, State.SKIPPED, reason, now, token)

    def _finish(self, post_id: str, to: State, reason: str, now: datetime, token: str | None) -> None:
        stamp = self.dialect.time(now)
        reason = check_reason(reason)
        with self._transaction() as conn:
            self._current(conn, post_id, UNFINISHED, f"mark it {to.value}", token)
            conn.execute(
                "UPDATE posts SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
                (to.value, reason, stamp, post_id),
            )
