"""The engagement operations of the PostgreSQL ledger (a mixin of :class:`~.postgres.PostgresLedger`), the
same as the SQLite ledger's (:mod:`.sqlite_engagement`). See :mod:`.engagement`."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import psycopg

from amplifier.delivery.ledger.base import UnknownPost, to_db_time
from amplifier.delivery.ledger.engagement import EngagementTotal, checked_readings
from amplifier.publish.engagement import Engagement

TOTALS_SQL = """
WITH latest AS (
    SELECT e.post_id, e.part_index, MAX(e.read_at) AS read_at
    FROM posts p JOIN engagement e ON e.post_id = p.id
    WHERE p.due_at >= %(start)s AND p.due_at < %(end)s AND e.read_at <= %(as_of)s {account}
    GROUP BY e.post_id, e.part_index
), counted AS (
    SELECT e.post_id, e.part_index, MAX(e.read_at) AS read_at
    FROM posts p JOIN engagement e ON e.post_id = p.id
    WHERE p.due_at >= %(start)s AND p.due_at < %(end)s AND e.read_at <= %(as_of)s AND NOT e.gone {account}
    GROUP BY e.post_id, e.part_index
)
SELECT p.id, p.account, p.platform, p.due_at,
       COUNT(*), COUNT(*) FILTER (WHERE le.gone),
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


def _int(value: Any) -> int | None:
    return None if value is None else int(value)  # SUM of integers is numeric in PostgreSQL


class PostgresEngagement:
    """``record_engagement``, ``engagement``, ``engagement_totals`` over the ledger's connection."""

    _lock: threading.RLock

    def _transaction(self) -> AbstractContextManager[psycopg.Connection]:  # pragma: no cover - the ledger's
        raise NotImplementedError

    def _errors(self) -> AbstractContextManager[None]:  # pragma: no cover - the ledger's
        raise NotImplementedError

    def _connection(self) -> psycopg.Connection:  # pragma: no cover - the ledger's
        raise NotImplementedError

    def record_engagement(self, readings: Iterable[Engagement]) -> int:
        checked = checked_readings(readings)
        if not checked:
            return 0
        for reading in checked:
            to_db_time(reading.read_at)
        added = 0
        with self._transaction() as conn:
            parts: dict[str, int] = {}
            for reading in checked:
                if reading.post_id not in parts:
                    found = conn.execute(
                        "SELECT part_count FROM posts WHERE id = %s", (reading.post_id,)
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
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (
                        reading.post_id,
                        reading.index,
                        reading.read_at,
                        reading.likes,
                        reading.reposts,
                        reading.replies,
                        reading.quotes,
                        reading.gone,
                    ),
                ).rowcount
        return added

    def engagement(self, post_id: str) -> list[Engagement]:
        with self._lock, self._errors():
            rows = (
                self._connection()
                .execute(
                    "SELECT part_index, read_at, likes, reposts, replies, quotes, gone FROM engagement"
                    " WHERE post_id = %s ORDER BY part_index, read_at",
                    (post_id,),
                )
                .fetchall()
            )
        return [
            Engagement(post_id, int(i), at, lk, rp, rl, qt, bool(gone))
            for i, at, lk, rp, rl, qt, gone in rows
        ]

    def engagement_totals(
        self, start: datetime, end: datetime, *, as_of: datetime | None = None, account: str | None = None
    ) -> list[EngagementTotal]:
        for value in (start, end, *(() if as_of is None else (as_of,))):
            to_db_time(value)  # refuses a naive time, as the SQLite ledger does
        # 'infinity' is a timestamptz later than every other
        params: dict[str, Any] = {
            "start": start,
            "end": end,
            "as_of": as_of or "infinity",
            "account": account,
        }
        sql = TOTALS_SQL.format(account="" if account is None else "AND p.account = %(account)s")
        with self._lock, self._errors():
            rows = self._connection().execute(sql, params).fetchall()
        return [
            EngagementTotal(
                post_id=post_id,
                account=acct,
                platform=platform,
                due_at=due_at,
                parts_read=int(read),
                parts_gone=int(gone),
                likes=_int(likes),
                reposts=_int(reposts),
                replies=_int(replies),
                quotes=_int(quotes),
                last_read_at=last,
            )
            for post_id, acct, platform, due_at, read, gone, likes, reposts, replies, quotes, last in rows
        ]
