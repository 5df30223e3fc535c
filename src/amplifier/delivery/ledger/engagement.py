"""What the ledger keeps of engagement: a time series of readings per post and part, and totals for a report.

Each :class:`~amplifier.publish.engagement.Engagement` a publisher reads is one row of the ``engagement``
table (migration ``m006_engagement`` in SQLite, ``m002_engagement`` in PostgreSQL): post id, part index,
``read_at``, likes (Mastodon favourites), reposts (reblogs), replies, quotes, and ``gone`` (deleted on the
server, no counts). Counts are cumulative on the platforms, so a reading replaces none before it: the series
shows how a post's reach grew. A reading of the same part at the same instant is stored once (recording it
again is a no-op), so a retried read job never duplicates a row.

:class:`EngagementTotal` is one post's engagement as a report shows it: for every part, its latest reading
with counts (at or before ``as_of``), summed over the parts; a part whose latest reading says ``gone`` still
counts with what it had before it was deleted, and is counted in ``parts_gone``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amplifier.publish.engagement import Counted, Engagement


@dataclass(frozen=True)
class EngagementTotal(Counted):
    """One post's engagement summed over its parts (see the module docstring); a count is ``None`` when no
    part's reading has it (Mastodon servers before 4.5 do not count quotes)."""

    post_id: str
    account: str
    platform: str
    due_at: datetime
    parts_read: int  # parts with at least one reading
    parts_gone: int  # parts whose latest reading says gone
    likes: int | None
    reposts: int | None
    replies: int | None
    quotes: int | None
    last_read_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "post_id": self.post_id,
            "account": self.account,
            "platform": self.platform,
            "due_at": self.due_at.isoformat(),
            "parts_read": self.parts_read,
            "parts_gone": self.parts_gone,
            **self.counts_json(),
            "last_read_at": self.last_read_at.isoformat(),
        }


def checked_readings(readings: Iterable[Engagement]) -> list[Engagement]:
    """``readings`` as a list, each checked: an aware ``read_at``, a part index >= 0, counts >= 0, and no
    counts on a reading that says ``gone``. ``ValueError`` otherwise (a caller's mistake, nothing stored)."""
    checked: list[Engagement] = []
    for reading in readings:
        if reading.read_at.tzinfo is None or reading.read_at.utcoffset() is None:
            raise ValueError(f"{reading.post_id}: read_at must be an aware datetime")
        if reading.index < 0:
            raise ValueError(f"{reading.post_id}: a part index is >= 0, not {reading.index}")
        values = (reading.likes, reading.reposts, reading.replies, reading.quotes)
        if any(value is not None and value < 0 for value in values):
            raise ValueError(f"{reading.post_id}: counts are >= 0")
        if reading.gone and any(value is not None for value in values):
            raise ValueError(f"{reading.post_id}: a reading of a deleted part has no counts")
        checked.append(reading)
    return checked


def top_first(totals: Iterable[EngagementTotal]) -> list[EngagementTotal]:
    """``totals`` with the most engagement first, then by due time and id (the order of ``top_posts``)."""
    return sorted(totals, key=lambda t: (-t.total, t.due_at, t.post_id))
