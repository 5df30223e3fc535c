"""The campaign report: what went out, what reached people, by language, message, platform and account.

:func:`build_report` reads only the ledger and the campaign files and returns a :class:`Report`; the CLI
(``amplifier report``) renders it as a table, versioned JSON, CSV or a self-contained HTML page.

The ledger knows each post's rule, account, platform, state and due time, and the engagement read back
(:mod:`amplifier.daemon.readback`); the campaign adds what follows from them: the language (the
account's), the event and the message set (the rule's), and the variant (the rule's occurrence: its index
among the rule's occurrences, as the planner rotates variants; the occurrence's key is the post id's last
part). A post of a rule no longer in the campaign is reported under :data:`GONE_FROM_CAMPAIGN`.

Engagement of a post is, per part, its latest reading with counts at or before ``as_of`` (default: the
report's ``now``), summed; a group sums its posts. Counts only: the report compares variants side by side and
invents no significance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.delivery.ledger import Ledger
from amplifier.delivery.ledger.report import ReportRow
from amplifier.plan.schedule import event_end, event_start, occurrences_between
from amplifier.publish.engagement import Counted

REPORT_VERSION = 1
DIMENSIONS = ("event", "rule", "message-set", "variant", "lang", "account", "platform")
GONE_FROM_CAMPAIGN = "(not in the campaign)"
NO_EVENT = "(no event)"
COUNTS = ("likes", "reposts", "replies", "quotes")


@dataclass
class Tally:
    """Posts by outcome and their engagement (``read``: posts with a reading)."""

    posts: int = 0
    published: int = 0
    failed: int = 0
    expired: int = 0
    skipped: int = 0
    pending: int = 0  # planned or claimed
    read: int = 0
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    quotes: int = 0

    @property
    def engagement(self) -> int:
        return self.likes + self.reposts + self.replies + self.quotes

    def add(self, row: ReportRow) -> None:
        if row.state == "cancelled":
            return
        self.posts += row.posts
        state = "pending" if row.state in ("planned", "claimed") else row.state
        setattr(self, state, getattr(self, state) + row.posts)
        self.read += row.read
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + (getattr(row, name) or 0))

    def to_json(self) -> dict[str, int]:
        return {
            "posts": self.posts,
            "published": self.published,
            "failed": self.failed,
            "expired": self.expired,
            "skipped": self.skipped,
            "pending": self.pending,
            "read": self.read,
            "likes": self.likes,
            "reposts": self.reposts,
            "replies": self.replies,
            "quotes": self.quotes,
            "engagement": self.engagement,
        }


@dataclass(frozen=True)
class TopPost(Counted):
    """One of the most engaged posts, with what a card shows."""

    post_id: str
    account: str
    platform: str
    lang: str
    due_at: dt.datetime
    url: str | None
    text: str | None
    likes: int | None
    reposts: int | None
    replies: int | None
    quotes: int | None
    gone: bool

    @property
    def engagement(self) -> int:
        return self.total

    def to_json(self) -> dict[str, Any]:
        return {
            "post_id": self.post_id,
            "account": self.account,
            "platform": self.platform,
            "lang": self.lang,
            "due_at": self.due_at.isoformat(),
            "url": self.url,
            "text": self.text,
            **self.counts_json(),
            "engagement": self.engagement,
            "gone": self.gone,
        }


@dataclass(frozen=True)
class EventMark:
    id: str
    name: str
    start: dt.datetime
    end: dt.datetime


@dataclass
class Report:
    """What ``amplifier report`` shows (see the module docstring); ``groups`` by the ``by`` dimension."""

    campaign: str
    zone: str
    start: dt.datetime
    end: dt.datetime
    as_of: dt.datetime
    by: str
    totals: Tally = field(default_factory=Tally)
    groups: dict[str, Tally] = field(default_factory=dict)
    by_lang: dict[str, Tally] = field(default_factory=dict)
    by_platform: dict[str, Tally] = field(default_factory=dict)
    days: dict[dt.date, Tally] = field(default_factory=dict)  # by the rule's local day
    variants: dict[tuple[str, str], dict[int, Tally]] = field(default_factory=dict)  # (set, lang) -> variant
    top: list[TopPost] = field(default_factory=list)
    events: list[EventMark] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def listed(tallies: Mapping[str, Tally]) -> list[dict[str, Any]]:
            return [{"key": key, **tally.to_json()} for key, tally in sorted(tallies.items())]

        return {
            "version": REPORT_VERSION,
            "campaign": self.campaign,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "as_of": self.as_of.isoformat(),
            "by": self.by,
            "totals": self.totals.to_json(),
            "groups": listed(self.groups),
            "by_lang": listed(self.by_lang),
            "by_platform": listed(self.by_platform),
            "days": [{"day": day.isoformat(), **tally.to_json()} for day, tally in sorted(self.days.items())],
            "variants": [
                {
                    "message_set": message_set,
                    "lang": lang,
                    "variants": [
                        {"variant": index + 1, **tally.to_json()} for index, tally in sorted(variants.items())
                    ],
                }
                for (message_set, lang), variants in sorted(self.variants.items())
            ],
            "top": [post.to_json() for post in self.top],
            "events": [
                {"id": e.id, "name": e.name, "start": e.start.isoformat(), "end": e.end.isoformat()}
                for e in self.events
            ],
        }


class _Campaign:
    """What the report needs of the campaign, looked up once per rule, account and occurrence."""

    def __init__(self, campaign: Campaign, start: dt.datetime, end: dt.datetime) -> None:
        self.campaign = campaign
        self.schedule = campaign.schedule
        self.window = (start - dt.timedelta(days=2), end + dt.timedelta(days=2))

    def lang(self, account: str) -> str:
        if account not in self.schedule.accounts:
            return GONE_FROM_CAMPAIGN
        return self.campaign.account_lang(account)

    def event(self, rule_id: str) -> str:
        rule = self.schedule.rules.get(rule_id)
        if rule is None:
            return GONE_FROM_CAMPAIGN
        return getattr(rule, "event", None) or NO_EVENT

    def message_set(self, rule_id: str) -> str:
        rule = self.schedule.rules.get(rule_id)
        return GONE_FROM_CAMPAIGN if rule is None else rule.messages

    def variants(self) -> dict[tuple[str, str], int]:
        """(rule, occurrence key) -> the 0-based variant the planner gives it, for every rule's occurrences
        in the window (with two days of margin: an occurrence's key is local, the window is not)."""
        found: dict[tuple[str, str], int] = {}
        for rule_id, rule in self.schedule.rules.items():
            message_set = self.campaign.message_sets.get(rule.messages)
            if message_set is None or not message_set.variants:
                continue
            count = len(message_set.variants)
            for occ in occurrences_between(self.schedule, rule, self.window[0], self.window[1]):
                found[(rule_id, occ.key)] = occ.index % count
        return found

    def dimension(self, by: str, row: ReportRow) -> str:
        if by == "event":
            return self.event(row.rule)
        if by == "rule":
            return row.rule
        if by == "message-set":
            return self.message_set(row.rule)
        if by == "variant":
            variant = row.variant
            set_name = self.message_set(row.rule)
            return set_name if variant is None else f"{set_name} #{variant + 1}"
        if by == "lang":
            return self.lang(row.account)
        if by == "account":
            return row.account
        return row.platform


def build_report(
    ledger: Ledger,
    campaign: Campaign,
    start: dt.datetime,
    end: dt.datetime,
    *,
    as_of: dt.datetime,
    by: str = "lang",
    top: int = 10,
) -> Report:
    """The report of the posts due in [``start``, ``end``) with their engagement as of ``as_of``."""
    if by not in DIMENSIONS:
        raise ValueError(f"--by takes one of {', '.join(DIMENSIONS)}, not {by!r}")
    zone = campaign.schedule.campaign.timezone
    report = Report(campaign.schedule.campaign.name, zone, start, end, as_of, by)
    lookup = _Campaign(campaign, start, end)
    langs: dict[str, str] = {}
    for row in ledger.report_rows(start, end, as_of=as_of, variants=lookup.variants()):
        lang = langs.get(row.account) or langs.setdefault(row.account, lookup.lang(row.account))
        report.totals.add(row)
        _tally(report.groups, lookup.dimension(by, row)).add(row)
        _tally(report.by_lang, lang).add(row)
        _tally(report.by_platform, row.platform).add(row)
        day = dt.date.fromisoformat(row.day)
        report.days.setdefault(day, Tally()).add(row)
        if row.variant is not None:
            per_set = report.variants.setdefault((lookup.message_set(row.rule), lang), {})
            per_set.setdefault(row.variant, Tally()).add(row)
    report.top = _top_posts(ledger, campaign, start, end, as_of, top, lookup)
    report.events = _events(campaign, start, end)
    return report


def _tally(tallies: dict[str, Tally], key: str) -> Tally:
    found = tallies.get(key)
    if found is None:
        found = tallies[key] = Tally()
    return found


def _top_posts(
    ledger: Ledger,
    campaign: Campaign,
    start: dt.datetime,
    end: dt.datetime,
    as_of: dt.datetime,
    limit: int,
    lookup: _Campaign,
) -> list[TopPost]:
    if limit <= 0:
        return []
    totals = [t for t in ledger.top_posts(start, end, as_of=as_of, limit=limit) if t.total > 0]
    texts = _texts(campaign, [t.post_id for t in totals])
    found: list[TopPost] = []
    for total in totals:
        row = ledger.get(total.post_id)
        first = row.parts.get(0) or {}
        found.append(
            TopPost(
                post_id=total.post_id,
                account=total.account,
                platform=total.platform,
                lang=lookup.lang(total.account),
                due_at=total.due_at,
                url=first.get("url"),
                text=texts.get(total.post_id),
                likes=total.likes,
                reposts=total.reposts,
                replies=total.replies,
                quotes=total.quotes,
                gone=total.parts_gone == row.part_count,
            )
        )
    return found


def _texts(campaign: Campaign, post_ids: Iterable[str]) -> dict[str, str]:
    """The first part's text of each post the campaign can still render (a card shows what went out)."""
    from amplifier.errors import AmplifierError
    from amplifier.plan.planner import find_posts

    texts: dict[str, str] = {}
    for post_id in post_ids:
        try:
            posts = find_posts(campaign, [post_id])
        except AmplifierError:
            continue
        if posts:
            texts[post_id] = posts[0].parts[0].text
    return texts


def _events(campaign: Campaign, start: dt.datetime, end: dt.datetime) -> list[EventMark]:
    schedule = campaign.schedule
    marks: list[EventMark] = []
    for event_id, event in schedule.events.items():
        begins, ends = event_start(schedule, event), event_end(schedule, event)
        if ends >= start and begins < end:
            marks.append(EventMark(event_id, _first(event.name, campaign), begins, ends))
    return sorted(marks, key=lambda mark: (mark.start, mark.id))


def _first(names: Mapping[str, str], campaign: Campaign) -> str:
    return names.get(campaign.schedule.campaign.language) or next(iter(names.values()), "")
