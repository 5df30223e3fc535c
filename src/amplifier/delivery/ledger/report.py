"""What the ledger answers for read-back jobs and for the campaign report (both backends share these shapes).

* :class:`ReadAges` says which posts a read-back job is due for (:meth:`Ledger.reads_due`): a published post
  whose age ``a`` (one of :attr:`ReadAges.ages`) has passed and that has no reading taken at or after
  ``published_at + a``, or whose rule's event read instant (:attr:`ReadAges.after`) has passed with no reading
  at or after it. A reading satisfies every age it is past, so a daemon that was down reads once, not once per
  missed age. Posts published before :attr:`ReadAges.since` are read no more (the query stays on an index of
  recent published posts, so it is cheap when nothing is due).
* :class:`ReportRow` is one group of the report (:meth:`Ledger.report_rows`): the posts of one rule, account,
  platform, state and occurrence key (the id's last part: the rule's local wall time, which gives the
  variant) due in the window, with their engagement: per part, its latest reading with counts at or before
  ``as_of``, summed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta


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
    key: str
    due_at: datetime
    posts: int
    read: int  # posts with at least one reading with counts
    likes: int | None
    reposts: int | None
    replies: int | None
    quotes: int | None
