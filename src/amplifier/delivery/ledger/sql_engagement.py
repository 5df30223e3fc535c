"""The SQL ledger's engagement operations (a mixin of :class:`~.sql.SqlLedger`): storing readings, reading them
back per post, as totals for a report window, and all of them to move a ledger. See :mod:`.engagement`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.dialect import Connection, Dialect
from amplifier.delivery.ledger.engagement import EngagementTotal, checked_readings
from amplifier.delivery.ledger.sql import SqlCore, pages
from amplifier.delivery.ledger.types import EXPORT_BATCH, UnknownPost
from amplifier.publish.engagement import Engagement

# Per post due in the window: for each part, its latest reading (``latest``) and its latest reading with
# counts (``counted``), both at or before as_of; summed over the parts. ``{gone}``: how the dialect counts the
# parts gone, ``{counted}``: a reading with counts; ``{account}``: a further condition on the posts.
_TOTALS_SQL = """
WITH latest AS (
    SELECT e.post_id, e.part_index, MAX(e.read_at) AS read_at
    FROM posts p JOIN engagement e ON e.post_id = p.id
    WHERE p.due_at >= :start AND p.due_at < :end AND e.read_at <= :as_of {{account}}
    GROUP BY e.post_id, e.part_index
), counted AS (
    SELECT e.post_id, e.part_index, MAX(e.read_at) AS read_at
    FROM posts p JOIN engagement e ON e.post_id = p.id
    WHERE p.due_at >= :start AND p.due_at < :end AND e.read_at <= :as_of AND {counted} {{account}}
    GROUP BY e.post_id, e.part_index
)
SELECT p.id, p.account, p.platform, p.due_at,
       COUNT(*), {gone},
       SUM(ce.likes), SUM(ce.reposts), SUM(ce.replies), SUM(ce.quotes),
       MAX(l.read_at)
FROM latest l
JOIN engagement le ON le.post_id = l.post_id AND le.part_index = l.part_index AND le.read_at = l.read_at
JOIN posts p ON p.id = l.post_id
LEFT JOIN counted c ON c.post_id = l.post_id AND c.part_index = l.part_index
LEFT JOIN engagement ce ON ce.post_id = c.post_id AND ce.part_index = c.part_index AND ce.read_at = c.read_at
GROUP BY p.id, p.account, p.platform, p.due_at
ORDER BY p.due_at, p.id
"""


def totals_sql(dialect: Dialect) -> str:
    """The totals query in ``dialect`` (``{account}`` left to fill), named placeholders (``:start``)."""
    return _TOTALS_SQL.format(counted=dialect.is_false("e.gone"), gone=dialect.count_true("le.gone"))


def engagement_totals_of(dialect: Dialect, rows: Iterable[Sequence[Any]]) -> Iterator[EngagementTotal]:
    """:class:`EngagementTotal` s from the totals query's rows."""
    for post_id, account, platform, due_at, read, gone, likes, reposts, replies, quotes, last in rows:
        yield EngagementTotal(
            post_id=post_id,
            account=account,
            platform=platform,
            due_at=dialect.read_time(due_at),
            parts_read=int(read),
            parts_gone=int(gone or 0),
            likes=dialect.int_or_none(likes),  # a SUM of integers is numeric in PostgreSQL
            reposts=dialect.int_or_none(reposts),
            replies=dialect.int_or_none(replies),
            quotes=dialect.int_or_none(quotes),
            last_read_at=dialect.read_time(last),
        )


class SqlEngagement(SqlCore):
    """``record_engagement``, ``engagement``, ``engagement_totals``, ``export_engagement``."""

    def record_engagement(self, readings: Iterable[Engagement]) -> int:
        checked = checked_readings(readings)
        if not checked:
            return 0
        with self._transaction() as conn:
            return self._insert_readings(conn, checked)

    def _insert_readings(self, conn: Connection, checked: Iterable[Engagement]) -> int:
        """Insert the readings ``checked`` (by :func:`checked_readings`); how many were new."""
        d = self.dialect
        added = 0
        parts: dict[str, int] = {}
        for reading in checked:
            if reading.post_id not in parts:
                found = conn.execute(
                    "SELECT part_count FROM posts WHERE id = ?", (reading.post_id,)
                ).fetchone()
                if found is None:
                    raise UnknownPost(reading.post_id)
                parts[reading.post_id] = int(found[0])
            if reading.index >= parts[reading.post_id]:
                raise ValueError(
                    f"{reading.post_id} has {parts[reading.post_id]} part(s), no part {reading.index}"
                )
            added += conn.execute(
                "INSERT INTO engagement (post_id, part_index, read_at, likes, reposts, replies, quotes, gone)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    reading.post_id,
                    reading.index,
                    d.time(reading.read_at),
                    reading.likes,
                    reading.reposts,
                    reading.replies,
                    reading.quotes,
                    d.flag(reading.gone),
                ),
            ).rowcount
        return added

    def _readings(self, where: str, params: Sequence[Any], tail: str = "") -> list[Engagement]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT post_id, part_index, read_at, likes, reposts, replies, quotes, gone FROM engagement"
                f" WHERE {where} ORDER BY post_id, part_index, read_at {tail}",
                params,
            ).fetchall()
        return [
            Engagement(post, int(index), self.dialect.read_time(at), lk, rp, rl, qt, bool(gone))
            for post, index, at, lk, rp, rl, qt, gone in rows
        ]

    def engagement(self, post_id: str) -> list[Engagement]:
        return self._readings("post_id = ?", (post_id,))

    def export_engagement(self) -> Iterator[Engagement]:
        """Every reading of every post, by post, part and time, read in batches (bounded memory)."""

        def fetch(after: tuple[Any, ...] | None) -> list[Engagement]:
            if after is None:
                return self._readings("1 = 1", (EXPORT_BATCH,), "LIMIT ?")
            return self._readings(
                "(post_id, part_index, read_at) > (?, ?, ?)", (*after, EXPORT_BATCH), "LIMIT ?"
            )

        return pages(fetch, lambda r: (r.post_id, r.index, self.dialect.time(r.read_at)), EXPORT_BATCH)

    def engagement_totals(
        self, start: datetime, end: datetime, *, as_of: datetime | None = None, account: str | None = None
    ) -> list[EngagementTotal]:
        d = self.dialect
        params: dict[str, Any] = {
            "start": d.time(start),
            "end": d.time(end),
            "as_of": d.max_time if as_of is None else d.time(as_of),
            "account": account,
        }
        sql = totals_sql(d).format(account="" if account is None else "AND p.account = :account")
        with self._reading() as conn:
            rows = conn.execute(sql, params).fetchall()
        return list(engagement_totals_of(d, rows))
