"""The engagement operations of the SQLite ledger (a mixin of :class:`~.sqlite.SqliteLedger`): storing
readings and reading them back per post and as totals for a report window. See :mod:`.engagement`."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.base import UnknownPost, from_db_time, to_db_time
from amplifier.delivery.ledger.engagement import EngagementTotal, checked_readings
from amplifier.publish.engagement import Engagement

# Per post due in the window: for each part, its latest reading (``latest``) and its latest reading with
# counts (``counted``), both at or before as_of; summed over the parts.
TOTALS_SQL = """
WITH latest AS (
    SELECT e.post_id, e.part_index, MAX(e.read_at) AS read_at
    FROM posts p JOIN engagement e ON e.post_id = p.id
    WHERE p.due_at >= :start AND p.due_at < :end AND e.read_at <= :as_of {account}
    GROUP BY e.post_id, e.part_index
), counted AS (
    SELECT e.post_id, e.part_index, MAX(e.read_at) AS read_at
    FROM posts p JOIN engagement e ON e.post_id = p.id
    WHERE p.due_at >= :start AND p.due_at < :end AND e.read_at <= :as_of AND e.gone = 0 {account}
    GROUP BY e.post_id, e.part_index
)
SELECT p.id, p.account, p.platform, p.due_at,
       COUNT(*), SUM(le.gone),
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


def _reading(post_id: str, values: tuple[Any, ...]) -> Engagement:
    index, read_at, likes, reposts, replies, quotes, gone = values
    return Engagement(post_id, int(index), from_db_time(read_at), likes, reposts, replies, quotes, bool(gone))


class SqliteEngagement:
    """``record_engagement``, ``engagement``, ``engagement_totals`` over the ledger's connection."""

    _conn: sqlite3.Connection
    _lock: threading.RLock

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:  # pragma: no cover - the ledger's
        raise NotImplementedError

    def record_engagement(self, readings: Iterable[Engagement]) -> int:
        checked = checked_readings(readings)
        if not checked:
            return 0
        added = 0
        with self._transaction() as conn:
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
                        to_db_time(reading.read_at),
                        reading.likes,
                        reading.reposts,
                        reading.replies,
                        reading.quotes,
                        int(reading.gone),
                    ),
                ).rowcount
        return added

    def engagement(self, post_id: str) -> list[Engagement]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT part_index, read_at, likes, reposts, replies, quotes, gone FROM engagement"
                " WHERE post_id = ? ORDER BY part_index, read_at",
                (post_id,),
            ).fetchall()
        return [_reading(post_id, tuple(values)) for values in rows]

    def engagement_totals(
        self, start: datetime, end: datetime, *, as_of: datetime | None = None, account: str | None = None
    ) -> list[EngagementTotal]:
        params: dict[str, Any] = {
            "start": to_db_time(start),
            "end": to_db_time(end),
            "as_of": "9999" if as_of is None else to_db_time(as_of),  # every stored time sorts before "9999"
            "account": account,
        }
        sql = TOTALS_SQL.format(account="" if account is None else "AND p.account = :account")
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return list(_totals(rows))


def _totals(rows: Iterable[tuple[Any, ...]]) -> Iterator[EngagementTotal]:
    for post_id, account, platform, due_at, read, gone, likes, reposts, replies, quotes, last in rows:
        yield EngagementTotal(
            post_id=post_id,
            account=account,
            platform=platform,
            due_at=from_db_time(due_at),
            parts_read=int(read),
            parts_gone=int(gone or 0),
            likes=likes,
            reposts=reposts,
            replies=replies,
            quotes=quotes,
            last_read_at=from_db_time(last),
        )
