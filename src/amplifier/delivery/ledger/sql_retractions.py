"""The SQL ledger's retraction (a mixin of :class:`~.sql_ledger.SqlLedger`): :meth:`retract` stops what is still
to be boosted or pinned, plans the undoing on Bluesky and the delete job; :meth:`retractions` reads them back.
See :mod:`.followups`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.followups import RETRACTED, FollowupJob, Retraction
from amplifier.delivery.ledger.sql_followups import SqlFollowupRows
from amplifier.delivery.ledger.types import IllegalTransition, State, UnknownPost
from amplifier.redact import redact


class SqlRetractions(SqlFollowupRows):
    """retract, retractions."""

    def retract(self, post_id: str, *, by: str, reason: str, now: datetime) -> list[FollowupJob]:
        d = self.dialect
        at = d.time(now)
        with self._transaction() as conn:
            found = conn.execute(
                f"SELECT account, platform, state FROM posts WHERE id = ?{d.for_update}", (post_id,)
            ).fetchone()
            if found is None:
                raise UnknownPost(post_id)
            author, platform, state = found
            if state != "published":
                raise IllegalTransition(post_id, State(state), "retract it (it is not published)")
            # Nothing more is boosted or pinned.
            conn.execute(
                "UPDATE followups SET state = 'skipped', detail = ?, updated_at = ?"
                " WHERE post_id = ? AND kind IN ('boost', 'pin') AND state = 'planned'",
                (RETRACTED, at, post_id),
            )
            if (
                platform == "bluesky"
            ):  # Mastodon removes reblogs and the pin with the status; Bluesky does not
                for made, undo in (("boost", "unboost"), ("pin", "unpin")):
                    conn.execute(
                        "INSERT INTO followups (post_id, kind, account, platform, due_at, state, attempts,"
                        " is_unknown, by_whom, requested_at, updated_at)"
                        " SELECT post_id, ?, account, platform, ?, 'planned', 0, ?, ?, ?, ? FROM followups"
                        " WHERE post_id = ? AND kind = ? AND state IN ('done', 'claimed')"
                        " ON CONFLICT (post_id, kind, account) DO UPDATE SET due_at = excluded.due_at,"
                        " by_whom = excluded.by_whom, requested_at = excluded.requested_at"
                        " WHERE followups.state = 'planned' AND followups.due_at > excluded.due_at",
                        (undo, at, d.flag(False), by, at, at, post_id, made),
                    )
            conn.execute(
                "UPDATE followups SET state = 'skipped', detail = ?, updated_at = ?"
                " WHERE post_id = ? AND kind = 'unpin' AND state = 'planned' AND due_at > ?",
                (RETRACTED, at, post_id, at),
            )
            conn.execute(
                "INSERT INTO followups (post_id, kind, account, platform, due_at, state, reason, attempts,"
                " is_unknown, by_whom, requested_at, updated_at) VALUES (?, 'delete', ?, ?, ?, 'planned', ?, 0,"
                " ?, ?, ?, ?) ON CONFLICT (post_id, kind, account) DO UPDATE SET due_at = excluded.due_at,"
                " reason = excluded.reason, by_whom = excluded.by_whom, requested_at = excluded.requested_at,"
                " next_at = NULL, attempts = 0, state = 'planned', updated_at = excluded.updated_at"
                " WHERE followups.state IN ('planned', 'failed')",
                (post_id, author, platform, at, redact(reason), d.flag(False), by, at, at),
            )
            return self._jobs(
                conn,
                "post_id = ? AND kind IN ('delete', 'unboost', 'unpin') AND state IN ('planned', 'claimed')"
                " AND due_at <= ?",
                (post_id, at),
                "ORDER BY kind, account",
            )

    def retractions(self, post_ids: Sequence[str] | None = None) -> dict[str, Retraction]:
        where = "kind = 'delete' AND (requested_at IS NOT NULL OR state <> 'planned')"
        params: list[Any] = []
        if post_ids is not None:
            if not post_ids:
                return {}
            condition, params = self.dialect.in_list("post_id", list(post_ids))
            where += f" AND {condition}"
        with self._reading() as conn:
            jobs = self._jobs(conn, where, params, "ORDER BY post_id")
        return {
            job.post_id: Retraction(
                post_id=job.post_id,
                by=job.by or "",
                at=job.requested_at or job.updated_at or job.due_at,
                reason=job.reason or "",
                state=job.state,
                done_at=job.updated_at if job.state == "done" else None,
            )
            for job in jobs
        }
