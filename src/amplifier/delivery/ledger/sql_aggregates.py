"""The SQL ledger's aggregate queries (``status``, ``status --check``, ``history``): a mixin of
:class:`~.sql_ledger.SqlLedger`.

Every query here is answered from an index (``tests/unit/test_ledger_plans.py`` checks SQLite's plans):
``status`` on a ledger of a million rows reads aggregates, never the rows; ``history`` streams in batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.sql import NOT_PAUSED, SqlCore
from amplifier.delivery.ledger.types import AccountSummary, Row, State


class SqlAggregates(SqlCore):
    """What ``status`` and ``history`` read: per-account summaries, the latest and overdue posts, the stream."""

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
