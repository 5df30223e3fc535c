"""The SQL ledger's operator's actions (``skip``, ``cancel``, ``retry``, ``pause``, ``resume``) and the account
pauses: a mixin of :class:`~.sql_ledger.SqlLedger` (the aggregates of ``status`` and ``history`` are in
:mod:`.sql_aggregates`).

Every action is one transaction that
checks the posts' states under the backend's lock (SQLite's write lock; PostgreSQL's row locks, ``FOR
UPDATE``), changes them and records the action, so an action is safe while the daemon runs: a post the daemon
has just claimed is refused (:class:`PostBusy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.dialect import Connection
from amplifier.delivery.ledger.operator_records import AccountPause, OperatorAction
from amplifier.delivery.ledger.sql import SqlCore
from amplifier.delivery.ledger.types import (
    UNFINISHED,
    IllegalTransition,
    PostBusy,
    State,
    UnknownPost,
    check_reason,
)

RETRYABLE = frozenset({State.FAILED, State.EXPIRED})


def record_action(
    conn: Connection, stamp: Any, by: str, action: str, target: str, reason: str | None, posts: int
) -> None:
    if not by or not by.strip():
        raise ValueError("an operator's action needs who did it")
    conn.execute(
        "INSERT INTO operator_actions (at, by, action, target, reason, posts) VALUES (?, ?, ?, ?, ?, ?)",
        (stamp, by, action, target, reason, posts),
    )


class SqlOperations(SqlCore):
    """An operator's actions and the account pauses."""

    def operator_actions(self, since: datetime | None = None, limit: int = 20) -> list[OperatorAction]:
        where, params = ("WHERE at >= ?", [self.dialect.time(since)]) if since is not None else ("", [])
        with self._reading() as conn:
            found = conn.execute(
                f"SELECT at, by, action, target, reason, posts FROM operator_actions {where}"
                " ORDER BY at DESC, seq DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [
            OperatorAction(self.dialect.read_time(at), by, action, target, reason, int(posts))
            for at, by, action, target, reason, posts in found
        ]

    def _locked_state(self, conn: Connection, post_id: str) -> State:
        """The post's state, its row locked until the transaction ends; :class:`UnknownPost`."""
        found = conn.execute(
            f"SELECT state FROM posts WHERE id = ?{self.dialect.for_update}", (post_id,)
        ).fetchone()
        if found is None:
            raise UnknownPost(post_id)
        return State(found[0])

    # -- an operator's actions -----------------------------------------------------------------------------

    def skip_posts(self, post_ids: Sequence[str], reason: str, now: datetime, *, by: str) -> None:
        stamp = self.dialect.time(now)
        check_reason(reason)
        ids = list(dict.fromkeys(post_ids))
        if not ids:
            raise ValueError("no post to skip")
        with self._transaction() as conn:
            for post_id in ids:
                state = self._locked_state(conn, post_id)
                if state == State.CLAIMED:
                    raise PostBusy(post_id, "skip it")
                if state != State.PLANNED:
                    raise IllegalTransition(post_id, state, "skip it")
            self.dialect.update_ids(
                conn,
                "UPDATE posts SET state = 'skipped', last_error = ?, updated_at = ? WHERE id = ? AND state = 'planned'",
                (f"skipped by {by}: {reason}", stamp),
                ids,
            )
            for post_id in ids:
                record_action(conn, stamp, by, "skip", post_id, reason, 1)

    def cancel_posts(
        self,
        reason: str,
        now: datetime,
        *,
        by: str,
        target: str,
        account: str | None = None,
        rules: Sequence[str] | None = None,
    ) -> list[str]:
        stamp = self.dialect.time(now)
        check_reason(reason)
        if account is None and rules is None:
            raise ValueError("cancel needs an account or rules")
        where = "state = 'planned'"
        params: list[Any] = []
        if account is not None:
            where += " AND account = ?"
            params.append(account)
        if rules is not None:
            condition, values = self.dialect.in_list("rule", list(rules))
            where += f" AND {condition}"
            params.extend(values)
        index = "posts_planned" if account is not None else "posts_planned_next"
        with self._transaction() as conn:
            ids = [
                str(found[0])
                for found in conn.execute(
                    f"SELECT id FROM posts{self.dialect.indexed(index)} WHERE {where} ORDER BY due_at, id"
                    f"{self.dialect.for_update}",
                    params,
                )
            ]
            self.dialect.update_ids(
                conn,
                "UPDATE posts SET state = 'skipped', last_error = ?, updated_at = ? WHERE id = ? AND state = 'planned'",
                (f"cancelled by {by} ({target}): {reason}", stamp),
                ids,
            )
            record_action(conn, stamp, by, "cancel", target, reason, len(ids))
        return ids

    def retry_post(
        self, post_id: str, reason: str, now: datetime, *, by: str, late_until: datetime | None = None
    ) -> None:
        stamp = self.dialect.time(now)
        late = None if late_until is None else self.dialect.time(late_until)
        check_reason(reason)
        with self._transaction() as conn:
            state = self._locked_state(conn, post_id)
            if state not in RETRYABLE:
                raise IllegalTransition(post_id, state, "retry it (only a failed or expired post can be)")
            conn.execute(
                "UPDATE posts SET state = 'planned', attempts = 0, next_attempt_at = ?, last_error = NULL,"
                " claimed_at = NULL, claim_token = NULL, late_until = ?, updated_at = ? WHERE id = ?",
                (stamp, late, stamp, post_id),
            )
            record_action(conn, stamp, by, "retry --late" if late else "retry", post_id, reason, 1)

    # -- pauses --------------------------------------------------------------------------------------------

    def pause_account(self, account: str, reason: str, now: datetime, *, by: str | None = None) -> None:
        stamp = self.dialect.time(now)
        check_reason(reason)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO paused_accounts (account, reason, paused_at, paused_by) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (account) DO UPDATE SET reason = excluded.reason,"
                " paused_at = excluded.paused_at, paused_by = excluded.paused_by",
                (account, reason, stamp, by),
            )
            if by is not None:
                record_action(conn, stamp, by, "pause", f"account {account}", reason, 0)

    def resume_account(self, account: str, *, by: str | None = None, now: datetime | None = None) -> bool:
        if by is not None and now is None:
            raise ValueError("an operator's resume needs the time")
        with self._transaction() as conn:
            resumed = conn.execute("DELETE FROM paused_accounts WHERE account = ?", (account,)).rowcount == 1
            if by is not None and now is not None and resumed:
                record_action(conn, self.dialect.time(now), by, "resume", f"account {account}", None, 0)
            return resumed

    def paused_accounts(self) -> dict[str, str]:
        with self._reading() as conn:
            rows = conn.execute("SELECT account, reason FROM paused_accounts ORDER BY account").fetchall()
        return {str(account): str(reason) for account, reason in rows}

    def account_pauses(self) -> list[AccountPause]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT account, reason, paused_at, paused_by FROM paused_accounts ORDER BY account"
            ).fetchall()
        return [AccountPause(str(a), str(r), self.dialect.read_time(at), by) for a, r, at, by in rows]


__all__ = ["RETRYABLE", "UNFINISHED", "SqlOperations"]
