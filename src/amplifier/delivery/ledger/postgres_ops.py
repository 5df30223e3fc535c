"""The PostgreSQL ledger's aggregate queries (``status``, ``status --check``, ``history``) and an operator's actions
(``skip``, ``cancel``, ``retry``, ``pause``, ``resume``): a mixin of :class:`~.postgres.PostgresLedger`.

Every query here is answered from an index (``tests/unit/test_ledger_plans.py`` checks the plans): ``status`` on
a ledger of a million rows reads aggregates, never the rows. Every action is one transaction that locks the posts' rows (``FOR UPDATE``), changes them and records the action, so an
action is safe while the daemon runs: a post the daemon has just claimed is refused (:class:`PostBusy`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from amplifier.delivery.ledger.base import (
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
    to_db_time,
)

_NOT_PAUSED = (
    "NOT EXISTS (SELECT 1 FROM paused_accounts WHERE paused_accounts.account = posts.account)"
    " AND NOT (SELECT paused FROM global_pause WHERE id = 1)"
)
RETRYABLE = frozenset({State.FAILED, State.EXPIRED})


def _in(values: Iterable[str]) -> list[str]:
    return sorted({State(value).value for value in values})


def _utc(value: datetime) -> datetime:
    to_db_time(value)  # refuses a naive time, as the SQLite ledger does
    return value


def record_action(
    conn: psycopg.Connection,
    stamp: datetime,
    by: str,
    action: str,
    target: str,
    reason: str | None,
    posts: int,
) -> None:
    if not by or not by.strip():
        raise ValueError("an operator's action needs who did it")
    conn.execute(
        "INSERT INTO operator_actions (at, by, action, target, reason, posts) VALUES (%s, %s, %s, %s, %s, %s)",
        (stamp, by, action, target, reason, posts),
    )


class PostgresOperations:
    """Aggregates, streaming and an operator's actions over the PostgreSQL ledger."""

    _lock: Any

    if TYPE_CHECKING:

        def _connection(self) -> psycopg.Connection: ...

        def _errors(self) -> AbstractContextManager[None]: ...

        def _transaction(self) -> AbstractContextManager[psycopg.Connection]: ...

        def _select(self, where: str, params: Sequence[Any] = (), tail: str = "") -> list[Row]: ...

    # -- queries -------------------------------------------------------------------------------------------

    def summaries(self) -> dict[str, AccountSummary]:
        with self._lock, self._errors():
            counted = (
                self._connection()
                .execute(
                    "SELECT account, state, COUNT(*), MAX(published_at) FROM posts GROUP BY account, state"
                )
                .fetchall()
            )
            upcoming: dict[str, datetime] = dict(
                self._connection()
                .execute(
                    "SELECT account, MIN(next_attempt_at) FROM posts WHERE state = 'planned' GROUP BY account"
                )
                .fetchall()
            )
        counts: dict[str, dict[State, int]] = {}
        last: dict[str, datetime] = {}
        for account, state, count, published in counted:
            counts.setdefault(account, dict.fromkeys(State, 0))[State(state)] = int(count)
            if published is not None and (account not in last or published > last[account]):
                last[account] = published
        return {
            account: AccountSummary(
                account=account,
                counts=counts[account],
                last_published_at=last.get(account),
                next_due_at=upcoming.get(account),
            )
            for account in sorted(counts)
        }

    def latest(self, states: Iterable[State], limit: int, *, by_published: bool = False) -> list[Row]:
        column = "published_at" if by_published else "updated_at"
        rows: list[Row] = []
        for state in sorted({State(value) for value in states}):
            # one index range per state (state, column), merged here: never a sort of every failure
            rows.extend(self._select("state = %s", (state.value, limit), f"ORDER BY {column} DESC LIMIT %s"))
        key = (
            (lambda row: row.published_at or row.updated_at) if by_published else (lambda row: row.updated_at)
        )
        return sorted(rows, key=key, reverse=True)[:limit]

    def finished_since(self, states: Iterable[State], since: datetime, limit: int = 100) -> list[Row]:
        rows: list[Row] = []
        for state in sorted({State(value) for value in states}):
            rows.extend(
                self._select(
                    "state = %s AND updated_at >= %s",
                    (state.value, since, limit),
                    "ORDER BY updated_at DESC LIMIT %s",
                )
            )
        return sorted(rows, key=lambda row: row.updated_at, reverse=True)[:limit]

    def overdue(self, before: datetime, limit: int = 100) -> list[Row]:
        return self._select(
            f"state = 'planned' AND next_attempt_at < %s AND {_NOT_PAUSED}",
            (before, limit),
            "ORDER BY next_attempt_at, id LIMIT %s",
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
        where = "due_at < %s"
        params: list[Any] = [_utc(end)]
        first = _utc(start)
        if account is not None:
            where += " AND account = %s"
            params.append(account)
        if states is not None:
            wanted = _in(states)
            if not wanted:
                return
            where += " AND state = ANY(%s)"
            params.append(wanted)
        after: tuple[datetime, str] | None = None
        bounds: list[Any]
        while True:
            # Keyset pagination: each batch is one short read from where the last one ended (the lower bound
            # seeks the index; the lock is never held between batches).
            if after is None:
                page, bounds = f"due_at >= %s AND {where}", [first]
            else:
                page, bounds = f"due_at >= %s AND (due_at, id) > (%s, %s) AND {where}", [after[0], *after]
            rows = self._select(page, [*bounds, *params, batch], "ORDER BY due_at, id LIMIT %s")
            yield from rows
            if len(rows) < batch:
                return
            after = (rows[-1].due_at, rows[-1].id)

    def operator_actions(self, since: datetime | None = None, limit: int = 20) -> list[OperatorAction]:
        where, params = ("WHERE at >= %s", [since]) if since is not None else ("", [])
        with self._lock, self._errors():
            found = (
                self._connection()
                .execute(
                    f"SELECT at, by, action, target, reason, posts FROM operator_actions {where}"
                    " ORDER BY at DESC, seq DESC LIMIT %s",
                    (*params, limit),
                )
                .fetchall()
            )
        return [
            OperatorAction(at, by, action, target, reason, int(posts))
            for at, by, action, target, reason, posts in found
        ]

    # -- an operator's actions -----------------------------------------------------------------------------

    def skip_posts(self, post_ids: Sequence[str], reason: str, now: datetime, *, by: str) -> None:
        stamp = _utc(now)
        check_reason(reason)
        ids = list(dict.fromkeys(post_ids))
        if not ids:
            raise ValueError("no post to skip")
        with self._transaction() as conn:
            for post_id in ids:
                found = conn.execute(
                    "SELECT state FROM posts WHERE id = %s FOR UPDATE", (post_id,)
                ).fetchone()
                if found is None:
                    raise UnknownPost(post_id)
                state = State(found[0])
                if state == State.CLAIMED:
                    raise PostBusy(post_id, "skip it")
                if state != State.PLANNED:
                    raise IllegalTransition(post_id, state, "skip it")
            conn.execute(
                "UPDATE posts SET state = 'skipped', last_error = %s, updated_at = %s"
                " WHERE id = ANY(%s) AND state = 'planned'",
                (f"skipped by {by}: {reason}", stamp, ids),
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
        stamp = _utc(now)
        check_reason(reason)
        if account is None and rules is None:
            raise ValueError("cancel needs an account or rules")
        where = "state = 'planned'"
        params: list[Any] = []
        if account is not None:
            where += " AND account = %s"
            params.append(account)
        if rules is not None:
            where += " AND rule = ANY(%s)"
            params.append(list(rules))
        with self._transaction() as conn:
            ids = [
                str(found[0])
                for found in conn.execute(
                    f"SELECT id FROM posts WHERE {where} ORDER BY due_at, id FOR UPDATE", params
                )
            ]
            conn.execute(
                "UPDATE posts SET state = 'skipped', last_error = %s, updated_at = %s"
                " WHERE id = ANY(%s) AND state = 'planned'",
                (f"cancelled by {by} ({target}): {reason}", stamp, ids),
            )
            record_action(conn, stamp, by, "cancel", target, reason, len(ids))
        return ids

    def retry_post(
        self, post_id: str, reason: str, now: datetime, *, by: str, late_until: datetime | None = None
    ) -> None:
        stamp = now
        late = None if late_until is None else _utc(late_until)
        check_reason(reason)
        with self._transaction() as conn:
            found = conn.execute("SELECT state FROM posts WHERE id = %s FOR UPDATE", (post_id,)).fetchone()
            if found is None:
                raise UnknownPost(post_id)
            state = State(found[0])
            if state not in RETRYABLE:
                raise IllegalTransition(post_id, state, "retry it (only a failed or expired post can be)")
            conn.execute(
                "UPDATE posts SET state = 'planned', attempts = 0, next_attempt_at = %s, last_error = NULL,"
                " claimed_at = NULL, claim_token = NULL, late_until = %s, updated_at = %s WHERE id = %s",
                (stamp, late, stamp, post_id),
            )
            record_action(conn, stamp, by, "retry --late" if late else "retry", post_id, reason, 1)

    # -- pauses --------------------------------------------------------------------------------------------

    def pause_account(self, account: str, reason: str, now: datetime, *, by: str | None = None) -> None:
        """Stop claiming the account's posts until :meth:`resume_account` (pausing again updates reason)."""
        stamp = _utc(now)
        check_reason(reason)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO paused_accounts (account, reason, paused_at, paused_by) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (account) DO UPDATE SET reason = EXCLUDED.reason,"
                " paused_at = EXCLUDED.paused_at, paused_by = EXCLUDED.paused_by",
                (account, reason, stamp, by),
            )
            if by is not None:
                record_action(conn, stamp, by, "pause", f"account {account}", reason, 0)

    def resume_account(self, account: str, *, by: str | None = None, now: datetime | None = None) -> bool:
        """Resume the account; True if it was paused."""
        if by is not None and now is None:
            raise ValueError("an operator's resume needs the time")
        with self._transaction() as conn:
            resumed = conn.execute("DELETE FROM paused_accounts WHERE account = %s", (account,)).rowcount == 1
            if by is not None and now is not None and resumed:
                record_action(conn, now, by, "resume", f"account {account}", None, 0)
            return resumed

    def account_pauses(self) -> list[AccountPause]:
        with self._lock, self._errors():
            rows = (
                self._connection()
                .execute("SELECT account, reason, paused_at, paused_by FROM paused_accounts ORDER BY account")
                .fetchall()
            )
        return [AccountPause(str(a), str(r), at, by) for a, r, at, by in rows]


__all__ = ["RETRYABLE", "UNFINISHED", "PostgresOperations"]
