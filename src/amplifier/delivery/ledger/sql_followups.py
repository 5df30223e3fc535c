"""The SQL ledger's follow-up operations (a mixin of :class:`~.sql.SqlLedger`): planning follow-up jobs, finding
the due ones, claiming, finishing and releasing them. See :mod:`.followups`; retraction is in :mod:`.sql_retractions`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.followups import (
    FOLLOWUP_STATES,
    FollowupClaimLost,
    FollowupJob,
    FollowupState,
)
from amplifier.delivery.ledger.sql import SqlCore
from amplifier.delivery.ledger.types import EXPORT_BATCH, UnknownPost, check_reason

COLUMNS = (
    "post_id, kind, account, platform, due_at, state, reason, detail, attempts, is_unknown, next_at, result,"
    " by_whom, requested_at, updated_at, claim_token, lease_until"
)
KEY = "post_id = ? AND kind = ? AND account = ?"
CLAIMABLE = (
    "((state = 'planned' AND (next_at IS NULL OR next_at <= ?)) OR (state = 'claimed' AND lease_until < ?))"
)
KINDS = ("boost", "unboost", "pin", "unpin", "delete")


class SqlFollowupRows(SqlCore):
    """Reading and inserting rows of ``followups``: shared by the job queue and by retraction."""

    def _job(self, values: Sequence[Any]) -> FollowupJob:
        d = self.dialect
        (post_id, kind, account, platform, due_at, state, reason, detail, attempts, unknown, next_at, result,
         by, requested_at, updated_at, token, lease_until) = values  # fmt: skip
        return FollowupJob(
            post_id=post_id,
            kind=kind,
            account=account,
            platform=platform,
            due_at=d.read_time(due_at),
            state=state,
            reason=reason,
            detail=detail,
            attempts=int(attempts),
            unknown=bool(unknown),
            next_at=d.read_optional_time(next_at),
            result=None if result is None else d.read_json(result),
            by=by,
            requested_at=d.read_optional_time(requested_at),
            updated_at=d.read_optional_time(updated_at),
            token=token,
            lease_until=d.read_optional_time(lease_until),
        )

    def _jobs(self, conn: Any, where: str, params: Sequence[Any], tail: str = "") -> list[FollowupJob]:
        rows = conn.execute(f"SELECT {COLUMNS} FROM followups WHERE {where} {tail}", params).fetchall()
        return [self._job(row) for row in rows]

    def _insert(self, conn: Any, job: FollowupJob, now: datetime) -> int:
        d = self.dialect
        if job.kind not in KINDS:
            raise ValueError(f"unknown follow-up kind {job.kind!r}")
        if job.state not in FOLLOWUP_STATES:
            raise ValueError(f"unknown follow-up state {job.state!r}")
        count: int = conn.execute(
            f"INSERT INTO followups ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (post_id, kind, account) DO NOTHING",
            (
                job.post_id,
                job.kind,
                job.account,
                job.platform,
                d.time(job.due_at),
                job.state,
                job.reason,
                job.detail,
                job.attempts,
                d.flag(job.unknown),
                d.optional_time(job.next_at),
                None if job.result is None else d.json(job.result),
                job.by,
                d.optional_time(job.requested_at),
                d.time(job.updated_at or now),
                job.token,
                d.optional_time(job.lease_until),
            ),
        ).rowcount
        return count


class SqlFollowups(SqlFollowupRows):
    """plan_followups, followups_due, claim_followup, finish_followup, release_followup, followups,
    export_followups; the jobs of a moved ledger go in with import_contents. Retraction: :mod:`.sql_retractions`."""

    def plan_followups(self, jobs: Iterable[FollowupJob]) -> int:
        jobs = list(jobs)
        if not jobs:
            return 0
        added = 0
        with self._transaction() as conn:
            for post_id in sorted({job.post_id for job in jobs}):
                if conn.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)).fetchone() is None:
                    raise UnknownPost(post_id)
            for job in jobs:
                added += self._insert(conn, job, job.updated_at or job.due_at)
        return added

    def followups_due(self, now: datetime, limit: int = 100) -> list[FollowupJob]:
        at = self.dialect.time(now)
        with self._reading() as conn:
            return self._jobs(
                conn,
                f"state IN ('planned', 'claimed') AND due_at <= ? AND {CLAIMABLE}",
                (at, at, at, limit),
                "ORDER BY due_at, post_id, kind, account LIMIT ?",
            )

    def claim_followup(
        self, key: tuple[str, str, str], token: str, now: datetime, lease_until: datetime
    ) -> FollowupJob | None:
        d = self.dialect
        at = d.time(now)
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE followups SET claim_token = ?, lease_until = ?, updated_at = ?,"
                " is_unknown = CASE WHEN state = 'claimed' THEN ? ELSE is_unknown END, state = 'claimed'"
                f" WHERE {KEY} AND due_at <= ? AND {CLAIMABLE}",
                (token, d.time(lease_until), at, d.flag(True), *key, at, at, at),
            ).rowcount
            if not changed:
                return None
            return self._jobs(conn, KEY, key)[0]

    def finish_followup(
        self,
        key: tuple[str, str, str],
        token: str,
        state: FollowupState,
        detail: str,
        now: datetime,
        result: dict[str, Any] | None = None,
    ) -> None:
        if state not in ("done", "failed", "skipped"):
            raise ValueError(f"a follow-up finishes done, failed or skipped, not {state!r}")
        d = self.dialect
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE followups SET state = ?, detail = ?, result = ?, updated_at = ?, lease_until = NULL"
                f" WHERE {KEY} AND state = 'claimed' AND claim_token = ?",
                (
                    state,
                    check_reason(detail),
                    None if result is None else d.json(result),
                    d.time(now),
                    *key,
                    token,
                ),
            ).rowcount
            if not changed:
                raise FollowupClaimLost(" ".join(key))

    def release_followup(
        self,
        key: tuple[str, str, str],
        token: str,
        now: datetime,
        *,
        next_at: datetime,
        detail: str,
        unknown: bool,
        attempt: bool = True,
    ) -> FollowupJob:
        d = self.dialect
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE followups SET state = 'planned', next_at = ?, detail = ?, is_unknown = ?,"
                " attempts = attempts + ?, lease_until = NULL, updated_at = ?"
                f" WHERE {KEY} AND state = 'claimed' AND claim_token = ?",
                (
                    d.time(next_at),
                    check_reason(detail),
                    d.flag(unknown),
                    int(attempt),
                    d.time(now),
                    *key,
                    token,
                ),
            ).rowcount
            if not changed:
                raise FollowupClaimLost(" ".join(key))
            return self._jobs(conn, KEY, key)[0]

    def followups(self, post_ids: Sequence[str]) -> list[FollowupJob]:
        if not post_ids:
            return []
        condition, params = self.dialect.in_list("post_id", list(post_ids))
        with self._reading() as conn:
            return self._jobs(conn, condition, params, "ORDER BY post_id, due_at, kind, account")

    def followups_done_since(self, kind: str, since: datetime) -> list[FollowupJob]:
        with self._reading() as conn:
            return self._jobs(
                conn,
                "kind = ? AND state = 'done' AND updated_at >= ?",
                (kind, self.dialect.time(since)),
                "ORDER BY updated_at, post_id, account",
            )

    def followups_failed_since(self, since: datetime, limit: int) -> list[FollowupJob]:
        with self._reading() as conn:
            return self._jobs(
                conn,
                "state = 'failed' AND updated_at >= ?",
                (self.dialect.time(since),),
                f"ORDER BY updated_at DESC, post_id, kind, account LIMIT {int(limit)}",
            )

    # ------------------------------------------------------------------ moving a ledger

    def export_followups(self) -> Iterator[FollowupJob]:
        after: tuple[str, str, str] | None = None
        while True:
            with self._reading() as conn:
                if after is None:
                    batch = self._jobs(
                        conn, "1 = 1", (EXPORT_BATCH,), "ORDER BY post_id, kind, account LIMIT ?"
                    )
                else:
                    batch = self._jobs(
                        conn,
                        "(post_id, kind, account) > (?, ?, ?)",
                        (*after, EXPORT_BATCH),
                        "ORDER BY post_id, kind, account LIMIT ?",
                    )
            yield from batch
            if len(batch) < EXPORT_BATCH:
                return
            after = batch[-1].key

    def _insert_followups(self, conn: Any, jobs: Iterable[FollowupJob]) -> int:
        """Insert ``jobs`` as they are (moving a ledger, inside :meth:`import_contents`'s transaction)."""
        return sum(self._insert(conn, job, job.updated_at or job.due_at) for job in jobs)
