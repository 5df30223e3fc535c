"""The read-back and report queries of the SQLite ledger (a mixin of :class:`~.sqlite.SqliteLedger`); see
:mod:`.report` for what they answer."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.base import Row, to_db_time
from amplifier.delivery.ledger.dialect import SQLITE
from amplifier.delivery.ledger.engagement import EngagementTotal, top_first
from amplifier.delivery.ledger.report import ReadAges, ReportRow, report_groups
from amplifier.delivery.ledger.sql import SqlCore
from amplifier.delivery.ledger.sql_engagement import engagement_totals_of, totals_sql

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
_GROUP = f"p.rule, p.account, p.platform, p.state, k.variant, substr({_KEY}, 1, 10)"

# Posts per group, then engagement per group: per part, its latest reading with counts (SQLite returns the
# bare columns of the row holding the MAX), summed per post, joined to the posts of the window.
POSTS_SQL = f"""
SELECT {_GROUP}, COUNT(*)
FROM posts p LEFT JOIN temp.report_keys k ON k.rule = p.rule AND k.key = {_KEY}
WHERE p.due_at >= :start AND p.due_at < :end
GROUP BY {_GROUP}
"""
ENGAGEMENT_SQL = f"""
WITH parts AS (
    SELECT post_id, MAX(read_at) AS read_at, likes, reposts, replies, quotes
    FROM engagement WHERE read_at <= :as_of AND gone = 0
    GROUP BY post_id, part_index
), per_post AS (
    SELECT post_id, SUM(likes) AS likes, SUM(reposts) AS reposts, SUM(replies) AS replies,
           SUM(quotes) AS quotes
    FROM parts GROUP BY post_id
)
SELECT {_GROUP}, COUNT(*), SUM(pp.likes), SUM(pp.reposts), SUM(pp.replies), SUM(pp.quotes)
FROM per_post pp CROSS JOIN posts p ON p.id = pp.post_id
LEFT JOIN temp.report_keys k ON k.rule = p.rule AND k.key = {_KEY}
WHERE p.due_at >= :start AND p.due_at < :end
GROUP BY {_GROUP}
"""


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
        variants: Mapping[tuple[str, str], int] | None = None,
    ) -> list[ReportRow]:
        params = {
            "start": to_db_time(start),
            "end": to_db_time(end),
            "as_of": "9999" if as_of is None else to_db_time(as_of),
        }
        keys = [(rule, key, variant) for (rule, key), variant in (variants or {}).items()]
        with self._lock:
            self._conn.execute(_KEYS_TABLE)
            self._conn.execute("BEGIN")
            try:
                self._conn.execute("DELETE FROM temp.report_keys")
                self._conn.executemany("INSERT INTO temp.report_keys VALUES (?, ?, ?)", keys)
                posts = self._conn.execute(POSTS_SQL, params).fetchall()
                engaged = self._conn.execute(ENGAGEMENT_SQL, params).fetchall()
                self._conn.execute("DELETE FROM temp.report_keys")
            finally:
                self._conn.execute("COMMIT")
        return report_groups(posts, engaged)

    def top_posts(
        self, start: datetime, end: datetime, *, as_of: datetime | None = None, limit: int = 10
    ) -> list[EngagementTotal]:
        params: dict[str, Any] = {
            "start": to_db_time(start),
            "end": to_db_time(end),
            "as_of": "9999" if as_of is None else to_db_time(as_of),
        }
        with self._lock:
            ids = [post_id for (post_id,) in self._conn.execute(TOP_IDS_SQL.format(limit=int(limit)), params)]
            params["ids"] = json.dumps(ids)
            sql = totals_sql(SQLITE).format(account="AND p.id IN (SELECT value FROM json_each(:ids))")
            rows = self._conn.execute(sql, params).fetchall()
        return top_first(engagement_totals_of(SQLITE, rows))
