"""Every post of a report window with its engagement, streamed (a mixin of :class:`~.sql.SqlLedger`): the
posts by due time and id, a page at a time (keyset pagination on ``posts_due_at``), each page's engagement
from its readings (:func:`~.sql_engagement.totals_sql`), so ``amplifier report --posts`` writes a million
posts in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from amplifier.delivery.ledger.engagement import PostEngagement
from amplifier.delivery.ledger.sql import SqlCore
from amplifier.delivery.ledger.sql_engagement import engagement_totals_of, totals_sql

PAGE = 2000

_POSTS = (
    "SELECT id, account, platform, rule, state, due_at, variant, result FROM posts{index}"
    " WHERE due_at >= ? AND due_at < ? {after} ORDER BY due_at, id LIMIT ?"
)
_AFTER = "AND (due_at > ? OR (due_at = ? AND id > ?))"


class SqlReportPosts(SqlCore):
    """``report_posts``."""

    def report_posts(
        self, start: datetime, end: datetime, *, as_of: datetime | None = None
    ) -> Iterator[PostEngagement]:
        d = self.dialect
        window = (d.time(start), d.time(end))
        at = d.max_time if as_of is None else d.time(as_of)
        after: tuple[Any, Any] | None = None
        while True:
            sql = _POSTS.format(index=d.indexed("posts_due_at"), after="" if after is None else _AFTER)
            params = (*window, *(() if after is None else (after[0], after[0], after[1])), PAGE)
            with self._reading() as conn:
                rows = conn.execute(sql, params).fetchall()
                if rows:
                    last = d.read_time(rows[-1][5]) + timedelta(microseconds=1)
                    counted = {"start": rows[0][5], "end": d.time(last), "as_of": at, "account": None}
                    found = conn.execute(totals_sql(d).format(account=""), counted).fetchall()
            if not rows:
                return
            totals = {total.post_id: total for total in engagement_totals_of(d, found)}
            for post_id, account, platform, rule, state, due_at, variant, result in rows:
                parts = d.read_json(result) if result is not None else None
                url = parts[0].get("url") if parts else None
                yield PostEngagement(
                    post_id, account, platform, rule, state, d.read_time(due_at), variant,
                    url if isinstance(url, str) else None, totals.get(post_id),
                )  # fmt: skip
            if len(rows) < PAGE:
                return
            after = (rows[-1][5], rows[-1][0])
