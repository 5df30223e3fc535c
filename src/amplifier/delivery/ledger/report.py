"""What the ledger answers for read-back jobs and for the campaign report (both backends share these shapes).

* :class:`ReadAges` says which posts a read-back job is due for (:meth:`Ledger.reads_due`): a published post
  whose age ``a`` (one of :attr:`ReadAges.ages`) has passed and that has no reading taken at or after
  ``published_at + a``, or whose rule's event read instant (:attr:`ReadAges.after`) has passed with no reading
  at or after it. A reading satisfies every age it is past, so a daemon that was down reads once, not once per
  missed age. Posts published before :attr:`ReadAges.since` are read no more (the query stays on an index of
  recent published posts, so it is cheap when nothing is due).
* :class:`ReportRow` is one group of the report (:meth:`Ledger.report_rows`): the posts of one rule, account,
  platform, state, variant and day due in the window, with their engagement: per part, its latest reading
  with counts at or before ``as_of``, summed. The ledger does not know variants: the caller passes them by
  rule and occurrence key (the post id's last part, the rule's local wall time ``YYYY-MM-DDTHH:MM``); the day
  is the key's (the rule's local day). Grouping happens in the database, so a report of a million posts
  moves a few thousand rows, not a million.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class ReadAges:
    """When published posts are read back (see the module docstring)."""

    ages: tuple[timedelta, ...]
    since: datetime
    after: Mapping[str, datetime] = field(default_factory=dict)  # rule -> the read instant after its event

    def __post_init__(self) -> None:
        if any(age < timedelta(0) for age in self.ages):
            raise ValueError("a read age is >= 0")


@dataclass(frozen=True)
class ReportRow:
    """One group of posts of the report window (see the module docstring); counts are ``None`` when no
    reading of the group has them."""

    rule: str
    account: str
    platform: str
    state: str
    variant: int | None  # as the caller numbered it; None: not in its map
    day: str  # YYYY-MM-DD, the rule's local day
    posts: int
    read: int  # posts with at least one reading with counts
    likes: int | None
    reposts: int | None
    replies: int | None
    quotes: int | None


def report_groups(
    posts: Iterable[Sequence[Any]],
    engaged: Iterable[Sequence[Any]],
    to_int: Callable[[Any], Any] = lambda v: v,
) -> list[ReportRow]:
    """:class:`ReportRow` s from the two queries' rows (group columns first), by day, rule, account."""
    found: dict[tuple[Any, ...], ReportRow] = {}
    for rule, account, platform, state, variant, day, count in posts:
        group = (rule, account, platform, state, variant, day)
        found[group] = ReportRow(
            rule, account, platform, state, variant, day, int(count), 0, None, None, None, None
        )
    for *keys, read, likes, reposts, replies, quotes in engaged:
        row = found.get(tuple(keys))
        if row is not None:
            found[tuple(keys)] = replace(
                row, read=int(read), likes=to_int(likes), reposts=to_int(reposts), replies=to_int(replies),
                quotes=to_int(quotes),
            )  # fmt: skip
    return sorted(
        found.values(), key=lambda r: (r.day, r.rule, r.account, r.platform, r.state, r.variant or -1)
    )
