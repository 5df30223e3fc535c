"""The read-back and report queries of the PostgreSQL ledger (a mixin of :class:`~.postgres.PostgresLedger`),
the same as the SQLite ledger's (:mod:`.sqlite_report`); see :mod:`.report` for what they answer."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import psycopg

from amplifier.delivery.ledger.base import Row, to_db_time
from amplifier.delivery.ledger.engagement import EngagementTotal, top_first
from amplifier.delivery.ledger.report import ReadAges, ReportRow, report_groups
from amplifier.delivery.ledger.sql import SqlCore
from amplifier.delivery.ledger.sql_engagement import engagement_totals_of, totals_sql

_NO_READING_AFTER_AGE = (
    "(posts.published_at <= ? AND NOT EXISTS (SELECT 1 FROM engagement e WHERE e.post_id = posts.id"
    " AND e.read_at >= posts.published_at + ?::interval))"
)
_NO_READING_AFTER = "(posts.rule = ? AND NOT EXISTS (SELECT 1 FROM engagement e WHERE e.post_id = posts.id AND e.read_at >= ?))"

_KEY = "substr(p.id, length(p.rule) + length(p.account) + 3)"  # the id is rule:account:key
_GROUP = f"p.rule, p.account, p.platform, p.state, k.variant, substr({_KEY}, 1, 10)"
# The variants the caller numbered, by rule and occurrence key.
_KEYS = "unnest(%(rules)s::text[], %(keys)s::text[], %(variants)s::int[]) AS k (rule, key, variant)"

POSTS_SQL = f"""
SELECT {_GROUP}, COUNT(*)
FROM posts p LEFT JOIN {_KEYS} ON k.rule = p.rule AND k.key = {_KEY}
WHERE p.due_at >= %(start)s AND p.due_at < %(end)s
GROUP BY {_GROUP}
"""
# Per part, its latest reading with counts (DISTINCT ON keeps the first row of each part by time, newest first).
ENGAGEMENT_SQL = f"""
WITH parts AS (
    SELECT DISTINCT ON (post_id, part_index) post_id, likes, reposts, replies, quotes
    FROM engagement WHERE read_at <= %(as_of)s AND NOT gone
    ORDER BY post_id, part_index, read_at DESC
), per_post AS (
    SELECT post_id, SUM(likes) AS likes, SUM(reposts) AS reposts, SUM(replies) AS replies,
           SUM(quotes) AS quotes
    FROM parts GROUP BY post_id
)
SELECT {_GROUP}, COUNT(*), SUM(pp.likes), SUM(pp.reposts), SUM(pp.replies), SUM(pp.quotes)
FROM per_post pp JOIN posts p ON p.id = pp.post_id
LEFT JOIN {_KEYS} ON k.rule = p.rule AND k.key = {_KEY}
WHERE p.due_at >= %(start)s AND p.due_at < %(end)s
GROUP BY {_GROUP}
"""

# The ids of the posts of the window with the most engagement (the latest counts of each part, summed).
TOP_IDS_SQL = """
WITH parts AS (
    SELECT DISTINCT ON (post_id, part_index) post_id, likes, reposts, replies, quotes
    FROM engagement WHERE read_at <= %(as_of)s AND NOT gone
    ORDER BY post_id, part_index, read_at DESC
), per_post AS (
    SELECT post_id,
           SUM(COALESCE(likes, 0) + COALESCE(reposts, 0) + COALESCE(replies, 0) + COALESCE(quotes, 0)) AS total
    FROM parts GROUP BY post_id
)
SELECT p.id FROM per_post pp JOIN posts p ON p.id = pp.post_id
WHERE p.due_at >= %(start)s AND p.due_at < %(end)s
ORDER BY pp.total DESC, p.due_at, p.id
LIMIT {limit}
"""


class PostgresReport(SqlCore):
    """``reads_due``, ``report_rows`` and ``top_posts`` over the ledger's connection."""

    _lock: threading.RLock

    def _errors(self) -> AbstractContextManager[None]:  # pragma: no cover - the ledger's
        raise NotImplementedError

    def _connection(self) -> psycopg.Connection:  # pragma: no cover - the ledger's
        raise NotImplementedError

    def reads_due(self, now: datetime, ages: ReadAges, limit: int = 100) -> list[Row]:
        to_db_time(now)
        clauses: list[str] = []
        params: list[Any] = [ages.since]
        for age in ages.ages:
            clauses.append(_NO_READING_AFTER_AGE)
            params += [now - age, age]
        for rule, at in sorted(ages.after.items()):
            if at <= now:
                clauses.append(_NO_READING_AFTER)
                params += [rule, at]
        if not clauses:
            return []
        where = f"state = 'published' AND published_at >= ? AND ({' OR '.join(clauses)})"
        return self._select(where, params, f"ORDER BY published_at, id LIMIT {int(limit)}")

    def report_rows(
        self,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime | None = None,
        variants: Mapping[tuple[str, str], int] | None = None,
    ) -> list[ReportRow]:
        for value in (start, end, *(() if as_of is None else (as_of,))):
            to_db_time(value)
        items = list((variants or {}).items())
        params: dict[str, Any] = {
            "start": start,
            "end": end,
            "as_of": as_of or "infinity",
            "rules": [rule for (rule, _), _ in items],
            "keys": [key for (_, key), _ in items],
            "variants": [variant for _, variant in items],
        }
        with self._lock, self._errors():
            conn = self._connection()
            with conn.transaction():  # one snapshot for both
                posts = conn.execute(POSTS_SQL, params).fetchall()
                engaged = conn.execute(ENGAGEMENT_SQL, params).fetchall()
        return report_groups(posts, engaged, self.dialect.int_or_none)

    def top_posts(
        self, start: datetime, end: datetime, *, as_of: datetime | None = None, limit: int = 10
    ) -> list[EngagementTotal]:
        for value in (start, end, *(() if as_of is None else (as_of,))):
            to_db_time(value)
        params: dict[str, Any] = {"start": start, "end": end, "as_of": as_of or "infinity", "account": None}
        with self._lock, self._errors():
            conn = self._connection()
            with conn.transaction():
                ids = [post_id for (post_id,) in conn.execute(TOP_IDS_SQL.format(limit=int(limit)), params)]
                params["ids"] = ids
                sql = self.dialect.sql(totals_sql(self.dialect).format(account="AND p.id = ANY(:ids)"))
                rows = conn.execute(sql, params).fetchall()
        return top_first(engagement_totals_of(self.dialect, rows))
