"""The read-back and report queries of the SQLite ledger (a mixin of :class:`~.sqlite.SqliteLedger`); see
:mod:`.report` for what they answer."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.dialect import SQLITE
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

# A reading at or after an instant computed from the post's publishing time (strftime gives UTC with
# milliseconds; a stored time with the same prefix sorts at or after it).
_NO_READING_AFTER_AGE = (
    "(posts.published_at <= ? AND NOT EXISTS (SELECT 1 FROM engagement e WHERE e.post_id = posts.id"
    " AND e.read_at >= strftime('%Y-%m-%dT%H:%M:%f', posts.published_at, ?)))"
)
_NO_READING_AFTER = "(posts.rule = ? AND NOT EXISTS (SELECT 1 FROM engagement e WHERE e.post_id = posts.id AND e.read_at >= ?))"

# The variants the caller numbered, by rule and occurrence key (a temporary table of this connection).
_KEYS_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS report_keys (rule TEXT NOT NULL, key TEXT NOT NULL, variant INTEGER,"
    " PRIMARY KEY (rule, key)) WITHOUT ROWID"
)
_KEY = "substr(p.id, length(p.rule) + length(p.account) + 3)"  # the id is rule:account:key
_COUNTS = ("likes", "reposts", "replies", "quotes")
_GROUP = "rule, account, platform, state, variant, day"

# The groups of the posts due in [:lo, :hi) on the index ``{index}`` (``{extra}``: a further condition), each
# post's engagement computed from its readings: per part, its latest reading with counts at or before :as_of
# (SQLite returns the bare columns of the row holding the MAX), then per group the summary's shape (each count
# summed, and how many part readings knew it).
POSTS_SQL = f"""
WITH win AS (
    SELECT p.id, p.rule, p.account, p.platform, p.state, COALESCE(p.variant, k.variant) AS variant,
           substr({_KEY}, 1, 10) AS day
    FROM posts p INDEXED BY {{index}} LEFT JOIN temp.report_keys k ON k.rule = p.rule AND k.key = {_KEY}
    WHERE p.due_at >= :lo AND p.due_at < :hi {{extra}}
), parts AS (
    SELECT e.post_id, MAX(e.read_at) AS read_at, e.likes, e.reposts, e.replies, e.quotes
    FROM win CROSS JOIN engagement e ON e.post_id = win.id
    WHERE e.read_at <= :as_of AND e.gone = 0
    GROUP BY e.post_id, e.part_index
), per_post AS (
    SELECT post_id, {", ".join(f"SUM({c}) AS {c}, COUNT({c}) AS {c}_known" for c in _COUNTS)}
    FROM parts GROUP BY post_id
)
SELECT w.rule, w.account, w.platform, w.state, w.variant, w.day, COUNT(*), COUNT(pp.post_id),
       {", ".join(f"COALESCE(SUM(pp.{c}), 0), COALESCE(SUM(pp.{c}_known), 0)" for c in _COUNTS)}
FROM win w LEFT JOIN per_post pp ON pp.post_id = w.id
GROUP BY w.rule, w.account, w.platform, w.state, w.variant, w.day
"""
# The whole days [:d0, :d1) from the summary, but the posts without a stored variant (variant -1 there).
SUMMARY_SQL = f"""
SELECT {_GROUP}, posts, read, {", ".join(f"{c}, {c}_known" for c in _COUNTS)}
FROM report_summary
WHERE day >= :l0 AND day < :l1 AND due_day >= :d0 AND due_day < :d1 AND variant >= 0
ORDER BY day, rule, account, platform, state, variant, due_day
"""
_BY_DUE = ("posts_due_at", "")
_NO_VARIANT = ("posts_variant_unknown", "AND p.variant IS NULL")


# The ids of the posts of the window with the most engagement (the latest counts of each part, summed).
TOP_IDS_SQL = """
WITH parts AS (
    SELECT post_id, MAX(read_at) AS read_at, likes, reposts, replies, quotes
    FROM engagement WHERE read_at <= :as_of AND gone = 0
    GROUP BY post_id, part_index
), per_post AS (
    SELECT post_id,
           SUM(COALESCE(likes, 0) + COALESCE(reposts, 0) + COALESCE(replies, 0) + COALESCE(quotes, 0)) AS total
    FROM parts GROUP BY post_id
)
SELECT p.id FROM per_post pp CROSS JOIN posts p ON p.id = pp.post_id
WHERE p.due_at >= :start AND p.due_at < :end
ORDER BY pp.total DESC, p.due_at, p.id
LIMIT {limit}
"""


# The same from the index of the posts' totals (kept by the readings' trigger; see .summary).
TOP_FAST_SQL = """
SELECT id FROM posts INDEXED BY posts_engagement
WHERE engagement_total IS NOT NULL AND due_at >= :start AND due_at < :end
ORDER BY engagement_total DESC, due_at, id
LIMIT {limit}
"""


class SqliteReport(SqlCore):
    """``reads_due``, ``report_rows`` and ``top_posts`` over the ledger's connection."""

    _conn: sqlite3.Connection
    _lock: threading.RLock

    def reads_due(self, now: datetime, ages: ReadAges, limit: int = 100) -> list[Row]:
        clauses: list[str] = []
        params: list[Any] = [to_db_time(ages.since)]
        for age in ages.ages:
            clauses.append(_NO_READING_AFTER_AGE)
            params += [to_db_time(now - age), f"+{age.total_seconds():.6f} seconds"]
        for rule, at in sorted(ages.after.items()):
            if at <= now:
                clauses.append(_NO_READING_AFTER)
                params += [rule, to_db_time(at)]
        if not clauses:
            return []
        # On the index of published posts by publishing time, whatever the planner would guess.
        where = (
            "id IN (SELECT id FROM posts INDEXED BY posts_published WHERE state = 'published'"
            f" AND published_at >= ? AND ({' OR '.join(clauses)}) ORDER BY published_at, id LIMIT {int(limit)})"
        )
        return self._select(where, params, "ORDER BY published_at, id")

    def report_rows(
        self,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime | None = None,
        variants: Variants = None,
        exact: bool = False,
    ) -> list[ReportRow]:
        with self._lock:
            self._conn.execute(_KEYS_TABLE)
            self._conn.execute("BEGIN")  # one snapshot for every part
            try:
                window = (to_db_time(start), to_db_time(end))
                sql = NO_VARIANT_SQL.format(index=SQLITE.indexed("posts_variant_unknown"))
                keys = resolve_variants(
                    variants, lambda: self._conn.execute(sql, window).fetchone() is not None
                )
                self._conn.execute("DELETE FROM temp.report_keys")
                self._conn.executemany("INSERT INTO temp.report_keys VALUES (?, ?, ?)", keys)
                summary, found = self._report_parts(start, end, as_of, exact)
                self._conn.execute("DELETE FROM temp.report_keys")
            finally:
                self._conn.execute("COMMIT")
        return merged_rows(summary, found)

    def _report_parts(
        self, start: datetime, end: datetime, as_of: datetime | None, exact: bool
    ) -> tuple[list[Any], list[list[Any]]]:
        """The summary's rows (whole days; none on the exact path) and the rows from the posts."""
        at = "9999" if as_of is None else to_db_time(as_of)
        span = summary_span(start, end)
        latest = self._conn.execute("SELECT MAX(read_at) FROM engagement").fetchone()[0]
        if exact or span is None or (latest is not None and latest > at):  # the exact path
            return [], [self._raw(_BY_DUE, to_db_time(start), to_db_time(end), at)]
        d0, d1 = (to_db_time(instant) for instant in span)
        return self._conn.execute(SUMMARY_SQL, summary_days(span)).fetchall(), [
            self._raw(_BY_DUE, to_db_time(start), d0, at),
            self._raw(_BY_DUE, d1, to_db_time(end), at),
            self._raw(_NO_VARIANT, d0, d1, at),
        ]

    def _raw(self, where: tuple[str, str], lo: str, hi: str, as_of: str) -> list[Any]:
        if lo >= hi:
            return []
        sql = POSTS_SQL.format(index=where[0], extra=where[1])
        return self._conn.execute(sql, {"lo": lo, "hi": hi, "as_of": as_of}).fetchall()

    def top_posts(
        self,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime | None = None,
        limit: int = 10,
        exact: bool = False,
    ) -> list[EngagementTotal]:
        params: dict[str, Any] = {
            "start": to_db_time(start),
            "end": to_db_time(end),
            "as_of": "9999" if as_of is None else to_db_time(as_of),
        }
        with self._lock:
            latest = self._conn.execute("SELECT MAX(read_at) FROM engagement").fetchone()[0]
            fast = not exact and (latest is None or latest <= params["as_of"])
            sql = (TOP_FAST_SQL if fast else TOP_IDS_SQL).format(limit=int(limit))
            ids = [post_id for (post_id,) in self._conn.execute(sql, params)]
            params["ids"] = json.dumps(ids)
            sql = totals_sql(SQLITE).format(account="AND p.id IN (SELECT value FROM json_each(:ids))")
            rows = self._conn.execute(sql, params).fetchall()
        return top_first(engagement_totals_of(SQLITE, rows))
