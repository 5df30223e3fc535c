"""The read-back and report queries of the PostgreSQL ledger (a mixin of :class:`~.postgres.PostgresLedger`),
the same as the SQLite ledger's (:mod:`.sqlite_report`); see :mod:`.report` for what they answer."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import psycopg

from amplifier.delivery.ledger.engagement import EngagementTotal, top_first
from amplifier.delivery.ledger.report import (
    NO_VARIANT_SQL,
    ReadAges,
    ReportRow,
    Variants,
    merged_rows,
    resolve_variants,
    summary_days,
    summary_span,
)
from amplifier.delivery.ledger.sql import SqlCore
from amplifier.delivery.ledger.sql_engagement import engagement_totals_of, totals_sql
from amplifier.delivery.ledger.types import Row, to_db_time

_NO_READING_AFTER_AGE = (
    "(posts.published_at <= ? AND NOT EXISTS (SELECT 1 FROM engagement e WHERE e.post_id = posts.id"
    " AND e.read_at >= posts.published_at + ?::interval))"
)
_NO_READING_AFTER = "(posts.rule = ? AND NOT EXISTS (SELECT 1 FROM engagement e WHERE e.post_id = posts.id AND e.read_at >= ?))"

_KEY = "substr(p.id, length(p.rule) + length(p.account) + 3)"  # the id is rule:account:key
_COUNTS = ("likes", "reposts", "replies", "quotes")
_GROUP = "rule, account, platform, state, variant, day"
# The variants the caller numbered, by rule and occurrence key.
_KEYS = "unnest(%(rules)s::text[], %(keys)s::text[], %(variants)s::int[]) AS k (rule, key, variant)"

# As SQLite's (:data:`.sqlite_report.POSTS_SQL`): the groups of the posts due in [lo, hi) (``{extra}``: a
# further condition) with each post's engagement from its readings (DISTINCT ON keeps the first row of each
# part by time, newest first), in the summary's shape.
POSTS_SQL = f"""
WITH win AS (
    SELECT p.id, p.rule, p.account, p.platform, p.state, COALESCE(p.variant, k.variant) AS variant,
           substr({_KEY}, 1, 10) AS day
    FROM posts p LEFT JOIN {_KEYS} ON k.rule = p.rule AND k.key = {_KEY}
    WHERE p.due_at >= %(lo)s AND p.due_at < %(hi)s {{extra}}
), parts AS (
    SELECT DISTINCT ON (e.post_id, e.part_index) e.post_id, e.likes, e.reposts, e.replies, e.quotes
    FROM win JOIN engagement e ON e.post_id = win.id
    WHERE e.read_at <= %(as_of)s AND NOT e.gone
    ORDER BY e.post_id, e.part_index, e.read_at DESC
), per_post AS (
    SELECT post_id, {", ".join(f"SUM({c}) AS {c}, COUNT({c}) AS {c}_known" for c in _COUNTS)}
    FROM parts GROUP BY post_id
)
SELECT w.rule, w.account, w.platform, w.state, w.variant, w.day, COUNT(*), COUNT(pp.post_id),
       {", ".join(f"COALESCE(SUM(pp.{c}), 0), COALESCE(SUM(pp.{c}_known), 0)" for c in _COUNTS)}
FROM win w LEFT JOIN per_post pp ON pp.post_id = w.id
GROUP BY w.rule, w.account, w.platform, w.state, w.variant, w.day
"""
SUMMARY_SQL = f"""
SELECT {_GROUP}, posts, read, {", ".join(f"{c}, {c}_known" for c in _COUNTS)}
FROM report_summary
WHERE day >= %(l0)s AND day < %(l1)s AND due_day >= %(d0)s AND due_day < %(d1)s AND variant >= 0
ORDER BY day COLLATE "C", rule COLLATE "C", account COLLATE "C", platform COLLATE "C", state COLLATE "C",
         variant, due_day
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


# The same from the index of the posts' totals (kept by the readings' trigger; see .summary).
TOP_FAST_SQL = """
SELECT id FROM posts
WHERE engagement_total IS NOT NULL AND due_at >= %(start)s AND due_at < %(end)s
ORDER BY engagement_total DESC, due_at, id
LIMIT {limit}
"""


def _latest_reading(conn: psycopg.Connection) -> datetime | None:
    found = conn.execute("SELECT MAX(read_at) FROM engagement").fetchone()
    return None if found is None else found[0]


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
        variants: Variants = None,
        exact: bool = False,
    ) -> list[ReportRow]:
        for value in (start, end, *(() if as_of is None else (as_of,))):
            to_db_time(value)
        summary: list[Any] = []
        found: list[list[Any]] = []
        with self._lock, self._errors():
            conn = self._connection()
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one snapshot
                sql = self.dialect.sql(NO_VARIANT_SQL.format(index=""))
                items = resolve_variants(
                    variants, lambda: conn.execute(sql, (start, end)).fetchone() is not None
                )
                keys: dict[str, Any] = {
                    "as_of": as_of or "infinity",
                    "rules": [rule for rule, _, _ in items],
                    "keys": [key for _, key, _ in items],
                    "variants": [variant for _, _, variant in items],
                }
                latest = _latest_reading(conn)
                span = summary_span(start, end)
                if exact or span is None or (latest is not None and as_of is not None and latest > as_of):
                    found.append(
                        conn.execute(POSTS_SQL.format(extra=""), {**keys, "lo": start, "hi": end}).fetchall()
                    )
                else:
                    d0, d1 = span
                    summary = conn.execute(
                        SUMMARY_SQL, {**summary_days(span), "d0": d0.date(), "d1": d1.date()}
                    ).fetchall()
                    for lo, hi, extra in ((start, d0, ""), (d1, end, ""), (d0, d1, "AND p.variant IS NULL")):
                        if lo < hi:
                            sql = POSTS_SQL.format(extra=extra)
                            found.append(conn.execute(sql, {**keys, "lo": lo, "hi": hi}).fetchall())
        return merged_rows(summary, found)

    def top_posts(
        self,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime | None = None,
        limit: int = 10,
        exact: bool = False,
    ) -> list[EngagementTotal]:
        for value in (start, end, *(() if as_of is None else (as_of,))):
            to_db_time(value)
        params: dict[str, Any] = {"start": start, "end": end, "as_of": as_of or "infinity", "account": None}
        with self._lock, self._errors():
            conn = self._connection()
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one snapshot
                latest = _latest_reading(conn)
                fast = not exact and (latest is None or as_of is None or latest <= as_of)
                sql = (TOP_FAST_SQL if fast else TOP_IDS_SQL).format(limit=int(limit))
                ids = [post_id for (post_id,) in conn.execute(sql, params)]
                params["ids"] = ids
                sql = self.dialect.sql(totals_sql(self.dialect).format(account="AND p.id = ANY(:ids)"))
                rows = conn.execute(sql, params).fetchall()
        return top_first(engagement_totals_of(self.dialect, rows))
