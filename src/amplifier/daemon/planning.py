"""Planning for the daemon: the rolling window into the ledger, and the window in which a post may still go out.

Missed windows (a post whose time passed while amplifier was down), per rule:

* ``missed: {action: post, grace: D}``: post late while ``now <= due + D``, then expire.
* ``missed: {action: expire}``: expire unless sent within :attr:`DaemonSettings.on_time` of its time.
* no ``missed`` on a countdown rule: post late only on the same day in the rule's calendar (the event's zone),
  and never after the event started; a "3 days left" post is wrong the next day.
* no ``missed`` on a recurring or once rule: post late within :attr:`DaemonSettings.default_grace` (1 hour).

The same deadline applies to retries: a post still not out by its deadline expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import CountdownRule
from amplifier.clock import localize
from amplifier.daemon.events import EventLog
from amplifier.daemon.followups import catch_up_followups
from amplifier.daemon.settings import DaemonSettings
from amplifier.delivery.ledger import Ledger, PlanEntry, Row, SyncReport
from amplifier.errors import AmplifierError, CampaignError
from amplifier.plan.post import PlannedPost
from amplifier.plan.schedule import event_start, rule_zone


@dataclass(frozen=True)
class PreparedPlan:
    """A window of a campaign, rendered (:meth:`PlanningMixin.prepare`), not yet in the ledger."""

    campaign: Campaign
    start: datetime
    end: datetime
    posts: dict[str, PlannedPost]
    entries: list[PlanEntry]


def sync_counts(report: SyncReport) -> dict[str, int]:
    """What a sync of the plan did, as the log says it: posts new, changed, revived and cancelled."""
    return {
        "new": len(report.inserted),
        "changed": len(report.updated),
        "revived": len(report.revived),
        "cancelled": len(report.cancelled),
    }


def lookback(campaign: Campaign, settings: DaemonSettings) -> timedelta:
    """How far back the window of ``campaign`` starts: the longest a missed post may still go out."""
    longest = max(settings.on_time, settings.default_grace)
    for rule in campaign.schedule.rules.values():
        if rule.missed is not None:
            longest = max(longest, rule.missed.grace if rule.missed.action == "post" else settings.on_time)
        elif isinstance(rule, CountdownRule):
            longest = max(longest, timedelta(hours=25))  # the rest of a local day, DST included
    return longest


def post_window(campaign: Campaign, settings: DaemonSettings, row: Row) -> tuple[datetime, str]:
    """The post's deadline (the last instant it may still go out), and in words the rule behind it; an operator's
    ``retry --late`` (``Row.late_until``) extends it."""
    deadline, why = _rule_window(campaign, settings, row)
    if row.late_until is not None and row.late_until > deadline:
        return (
            row.late_until,
            f"an operator's retry --late allows it until {row.late_until:%Y-%m-%d %H:%M} UTC",
        )
    return deadline, why


def _rule_window(campaign: Campaign, settings: DaemonSettings, row: Row) -> tuple[datetime, str]:
    schedule = campaign.schedule
    rule = schedule.rules.get(row.rule)
    due = row.due_at
    if rule is None:
        return due + settings.on_time, f"posted late within {settings.on_time} at most"
    if rule.missed is not None:
        if rule.missed.action == "post":
            return due + rule.missed.grace, f"the rule posts late within {rule.missed.grace}"
        return due + settings.on_time, "the rule expires missed posts"
    if isinstance(rule, CountdownRule):
        zone = rule_zone(schedule, rule)
        local_day = due.astimezone(zone).date()
        deadline = localize(datetime.combine(local_day + timedelta(days=1), datetime.min.time()), zone)
        event = schedule.events.get(rule.event)
        if event is not None:
            start = event_start(schedule, event)
            if due < start:
                deadline = min(deadline, start)
        why = "a countdown post is only posted late on its own day"
        return max(deadline, due + settings.on_time), why
    return due + settings.default_grace, f"posted late within {settings.default_grace} at most"


class PlanningMixin:
    """The daemon's plan: the current campaign, its planned posts by id, kept in sync with the ledger."""

    campaign: Campaign
    ledger: Ledger
    settings: DaemonSettings
    log: EventLog
    posts: dict[str, PlannedPost]

    def lookback(self, campaign: Campaign | None = None) -> timedelta:
        """How far back the window of ``campaign`` (default: the current one) starts."""
        return lookback(campaign or self.campaign, self.settings)

    def prepare(self, now: datetime, campaign: Campaign | None = None) -> PreparedPlan:
        """Render the window [now - lookback, now + lookahead) of ``campaign`` (default: the current one),
        streamed (:func:`amplifier.plan.stream.stream_window`: the windowed expansion, only the window's
        slots). Touches neither the ledger nor the daemon's state, so it may run while a pass posts. Raises
        :class:`CampaignError` when a post cannot be rendered."""
        from amplifier.plan.stream import stream_window

        campaign = campaign or self.campaign
        start = now - self.lookback(campaign)
        end = now + self.settings.lookahead
        stream = stream_window(campaign, start, end)
        posts: dict[str, PlannedPost] = {}
        entries: list[PlanEntry] = []
        for post in stream.posts:
            posts[post.id] = post
            entries.append(PlanEntry.from_post(post))
        if stream.problems:
            raise CampaignError(stream.problems)
        return PreparedPlan(campaign, start, end, posts, entries)

    def apply_plan(self, prepared: PreparedPlan, now: datetime) -> SyncReport:
        """Sync a prepared window into the ledger, and make its campaign and posts the daemon's."""
        report = self.write_plan(prepared.entries, now, prepared.start, prepared.end, prepared.campaign)
        self.campaign = prepared.campaign
        self.posts = prepared.posts
        catch_up_followups(self.ledger, self.log, prepared.posts.values(), now)
        counts = sync_counts(report)
        if any(counts.values()):
            self.log.emit(
                "planned",
                posts=len(prepared.posts),
                **counts,
                window_from=prepared.start,
                window_to=prepared.end,
            )
        for post_id in report.cancelled:
            self.log.emit("cancelled", id=post_id, reason="removed from the plan")
        return report

    def plan(self, now: datetime, campaign: Campaign | None = None) -> SyncReport:
        """Plan the window [now - lookback, now + lookahead) of ``campaign`` (default: the current one) into
        the ledger: :meth:`prepare`, then :meth:`apply_plan`. Raises :class:`CampaignError` when a post
        cannot be rendered."""
        return self.apply_plan(self.prepare(now, campaign), now)

    def write_plan(
        self, entries: Sequence[PlanEntry], now: datetime, start: datetime, end: datetime, campaign: Campaign
    ) -> SyncReport:
        """Write the plan into the ledger (a node of several: see :mod:`amplifier.daemon.nodes`)."""
        return self.ledger.sync_plan(entries, now, start=start, end=end)

    def post_for(self, row: Row) -> PlannedPost | None:
        """The planned post of a ledger row: from the current plan, else rendered from the campaign."""
        post = self.posts.get(row.id)
        if post is not None:
            return post
        from amplifier.plan.planner import find_posts

        try:
            found = find_posts(self.campaign, [row.id])
        except AmplifierError:
            return None
        return found[0] if found else None

    def deadline(self, row: Row) -> datetime:
        """The last instant at which the post may still go out (see the module docstring)."""
        return post_window(self.campaign, self.settings, row)[0]
