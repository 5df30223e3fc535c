"""The SQL ledger's aggregate queries (``status``, ``status --check``, ``history``), an operator's actions
(``skip``, ``cancel``, ``retry``, ``pause``, ``resume``) and the account pauses: a mixin of
:class:`~.sql.SqlLedger`.

Every query here is answered from an index (``tests/unit/test_ledger_plans.py`` checks SQLite's plans):
``status`` on a ledger of a million rows reads aggregates, never the rows. Every action is one transaction that
checks the posts' states under the backend's lock (SQLite's write lock; PostgreSQL's row locks, ``FOR
UPDATE``), changes them and records the action, so an action is safe while the daemon runs: a post the daemon
has just claimed is refused (:class:`PostBusy`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.dialect import Connection
from amplifier.delivery.ledger.sql import NOT_PAUSED, SqlCore
from amplifier.delivery.ledger.types import (
    UNFINISHED,
    AccountPause,
    AccountSummary,
    IllegalTransition,
    OperatorAction,
    PostBusy,
    Row,
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
    """Aggregates, streaming, an operator's actions and the account pauses."""

    # -- queries -------------------------------------------------------------------------------------------

    def summaries(self) -> dict[str, AccountSummary]:
        d = self.dialect
        with self._reading() as conn:
            counted = conn.execute(
                "SELECT account, state, COUNT(*), MAX(published_at) FROM posts GROUP BY account, state"
            ).fetchall()
            upcoming = dict(
                conn.execute(
                    f"SELECT account, MIN(next_attempt_at) FROM posts{d.indexed('posts_planned')}"
                    " WHERE state = 'planned' GROUP BY account"
                ).fetchall()
            )
        counts: dict[str, dict[State, int]] = {}
        last: dict[str, Any] = {}
        for account, state, count, published in counted:
            counts.setdefault(account, dict.fromkeys(State, 0))[State(state)] = int(count)
            if published is not None and (account not in last or published > last[account]):
                last[account] = published
        return {
            account: AccountSummary(
                account=account,
                counts=counts[account],
                last_published_at=d.read_optional_time(last.get(account)),
                next_due_at=d.read_optional_time(upcoming.get(account)),
            )
            for account in sorted(counts)
        }

    def latest(self, states: Iterable[State], limit: int, *, by_published: bool = False) -> list[Row]:
        column, index = (
            ("published_at", "posts_state_published")
            if by_published
            else ("updated_at", "posts_state_updated")
        )
        rows: list[Row] = []
        for state in sorted({State(value) for value in states}):
            # one index range per state (state, column), merged here: never a sort of every failure
            rows.extend(
                self._select(
                    "state = ?", (state.value, limit), f"ORDER BY {column} DESC LIMIT ?", index=index
                )
            )
        key = (
            (lambda row: row.published_at or row.updated_at) if by_published else (lambda row: row.updated_at)
        )
        return sorted(rows, key=key, reverse=True)[:limit]

    def finished_since(self, states: Iterable[State], since: datetime, limit: int = 100) -> list[Row]:
        rows: list[Row] = []
        for state in sorted({State(value) for value in states}):
            rows.extend(
                self._select(
                    "state = ? AND updated_at >= ?",
                    (state.value, self.dialect.time(since), limit),
                    "ORDER BY updated_at DESC LIMIT ?",
                    index="posts_state_updated",
                )
            )
        return sorted(rows, key=lambda row: row.updated_at, reverse=True)[:limit]

    def overdue(self, before: datetime, limit: int = 100) -> list[Row]:
        return self._select(
            f"state = 'planned' AND next_attempt_at < ? AND {NOT_PAUSED}",
            (self.dialect.time(before), limit),
            "ORDER BY next_attempt_at, id LIMIT ?",
            index="posts_planned_next",
        )

    def iter_history(
        self,
        start: datetime,
        end: datetime,
        account: str | None = None,
        states: Iterable[State] | None = None,
        *,
        batch: int = 1000,
    ) -> Iterator[Row]:
        where = "due_at < ?"
        params: list[Any] = [self.dialect.time(end)]
        first = self.dialect.time(start)
        if account is not None:
            where += " AND account = ?"
            params.append(account)
        if states is not None:
            wanted = sorted({State(value).value for value in states})
            if not wanted:
                return
            condition, values = self.dialect.in_list("state", wanted)
            where += f" AND {condition}"
            params.extend(values)
        index = "posts_due_at" if account is None else "posts_account_due_at"
        after: tuple[Any, str] | None = None
        bounds: list[Any]
        while True:
            # Keyset pagination: each batch is one short read from where the last one ended (the lower bound
            # seeks the index; the lock is never held between batches).
            if after is None:
                page, bounds = f"due_at >= ? AND {where}", [first]
            else:
                page, bounds = f"due_at >= ? AND (due_at, id) > (?, ?) AND {where}", [after[0], *after]
            rows = self._select(page, [*bounds, *params, batch], "ORDER BY due_at, id LIMIT ?", index=index)
            yield from rows
            if len(rows) < batch:
                return
            after = (self.dialect.time(rows[-1].due_at), rows[-1].id)

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
        """Stop claiming the account's posts until :meth:`resume_account` (pausing again updates reason)."""
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
        """Resume the account; True if it was paused."""
        if by is not None and now is None:
            raise ValueError("an operator's resume needs the time")
        with self._transaction() as conn:
            resumed = conn.execute("DELETE FROM paused_accounts WHERE account = ?", (account,)).rowcount == 1
            if by is not None and now is not None and resumed:
                record_action(conn, self.dialect.time(now), by, "resume", f"account {account}", None, 0)
            return resumed

    def paused_accounts(self) -> dict[str, str]:
        """Paused account -> reason."""
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
