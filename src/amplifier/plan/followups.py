"""The follow-up writes a planned post asks for once it is published (pure functions of the campaign).

* ``boost``: each account of the rule's (else the message set's) ``boost`` list that is on the post's platform
  and is not its author boosts / reposts it, ``delay`` after it is published.
* ``pin``: the author pins it once published; ``unpin`` when its event ends (no event: it stays pinned).
* ``delete``: ``delete_after`` after its event ends (no event: after the post's own time) the author retracts it.

:class:`FollowupPlan` is what does not change between a rule's occurrences for one account (the planner caches it);
:meth:`FollowupPlan.for_slot` gives one post's :class:`~amplifier.plan.post.Followup` tuple.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import rule_accounts
from amplifier.errors import Problem
from amplifier.plan.post import Followup
from amplifier.plan.schedule import event_end


@dataclass(frozen=True)
class FollowupPlan:
    account: str
    boosts: tuple[str, ...] = ()
    boost_delay: dt.timedelta = dt.timedelta(0)
    pin: bool = False
    delete_after: dt.timedelta | None = None
    event_ends: tuple[tuple[str, dt.datetime], ...] = ()  # event id -> its end

    def __bool__(self) -> bool:
        return bool(self.boosts or self.pin or self.delete_after is not None)

    def for_slot(self, at: dt.datetime, event: str | None) -> tuple[Followup, ...]:
        if not self:
            return ()
        end = dict(self.event_ends).get(event) if event is not None else None
        out = [Followup("boost", account, delay=self.boost_delay) for account in self.boosts]
        if self.pin:
            out.append(Followup("pin", self.account))
            if end is not None:
                out.append(Followup("unpin", self.account, at=max(end, at)))
        if self.delete_after is not None:
            out.append(Followup("delete", self.account, at=(end or at) + self.delete_after))
        return tuple(out)


def followup_plan(campaign: Campaign, rule_id: str, account_id: str) -> FollowupPlan:
    """What ``rule_id``'s posts from ``account_id`` ask for once published."""
    schedule = campaign.schedule
    rule = schedule.rules[rule_id]
    message_set = campaign.message_sets[rule.messages]
    boost = rule.boost if rule.boost is not None else message_set.boost
    platform = schedule.accounts[account_id].platform
    boosts: tuple[str, ...] = ()
    if boost is not None:
        boosts = tuple(
            account
            for account in boost.accounts
            if account != account_id
            and account in schedule.accounts
            and schedule.accounts[account].platform == platform
        )
    ends: tuple[tuple[str, dt.datetime], ...] = ()
    event_id = getattr(rule, "event", None)
    if event_id is not None and event_id in schedule.events:
        ends = ((event_id, event_end(schedule, schedule.events[event_id])),)
    return FollowupPlan(
        account=account_id,
        boosts=boosts,
        boost_delay=boost.delay if boost is not None else dt.timedelta(0),
        pin=message_set.pin,
        delete_after=message_set.delete_after,
        event_ends=ends,
    )


def adhoc_followups(
    campaign: Campaign,
    account_id: str,
    at: dt.datetime,
    event_id: str | None,
    *,
    boosts: tuple[str, ...] = (),
    pin: bool = False,
    delete_after: dt.timedelta | None = None,
) -> tuple[Followup, ...]:
    """``compose``'s follow-ups for a text of ``account_id`` at ``at``, checked as ``validate`` checks a
    ``boost`` list (a :class:`UsageError` naming the option)."""
    from amplifier.errors import UsageError

    schedule = campaign.schedule
    platform = schedule.accounts[account_id].platform
    for booster in boosts:
        if booster not in schedule.accounts:
            raise UsageError(f"--boost: {booster!r} is not one of the campaign's accounts")
        if booster == account_id:
            raise UsageError(f"--boost: {booster} would boost its own post")
        if schedule.accounts[booster].platform != platform:
            raise UsageError(
                f"--boost: {booster} is a {schedule.accounts[booster].platform} account; it cannot boost a "
                f"{platform} post"
            )
    ends: tuple[tuple[str, dt.datetime], ...] = ()
    if event_id is not None:
        ends = ((event_id, event_end(schedule, schedule.events[event_id])),)
    plan = FollowupPlan(account_id, boosts=boosts, pin=pin, delete_after=delete_after, event_ends=ends)
    return plan.for_slot(at, event_id)


MASTODON_PINS = 5
"""Pinned posts a Mastodon account may have (the server's default, ``StatusPinValidator``)."""


def pin_warnings(campaign: Campaign, rule_id: str, posts: int) -> Iterator[Problem]:
    """``validate``'s warnings about a rule whose message set says ``pin: true`` and that plans ``posts`` posts per
    account: without an event nothing unpins them; more than Mastodon's 5 pinned at once before the event ends."""
    schedule = campaign.schedule
    rule = schedule.rules[rule_id]
    message_set = campaign.message_sets.get(rule.messages)
    if message_set is None or not message_set.pin:
        return
    if getattr(rule, "event", None) is None:
        yield campaign.set_problem(
            rule.messages,
            ("pin",),
            f"rule {rule_id!r} has no event: its posts stay pinned (nothing unpins them; unpin them on the platform)",
        )
        return
    mastodon = [a for a in rule_accounts(schedule, rule) if schedule.accounts[a].platform == "mastodon"]
    if mastodon and posts > MASTODON_PINS:
        yield campaign.set_problem(
            rule.messages,
            ("pin",),
            f"rule {rule_id!r} pins {posts} posts on each of {', '.join(mastodon)}, all pinned until its event "
            f"ends; Mastodon allows {MASTODON_PINS} pinned posts per account: the pins beyond fail",
        )


def describe(followups: tuple[Followup, ...], zone: dt.tzinfo | None = None) -> str:
    """One line for people: ``boost: mastodon-de, mastodon-tr (+10 min) · pin until 2027-11-02 00:00 ·
    delete 2027-11-03 00:00`` ("" for none)."""
    bits = []
    boosts = [f.account for f in followups if f.kind == "boost"]
    if boosts:
        delay = next(f.delay for f in followups if f.kind == "boost")
        bits.append("boost: " + ", ".join(boosts) + (f" (+{_span(delay)})" if delay else ""))

    def when(at: dt.datetime | None) -> str:
        assert at is not None
        return (at.astimezone(zone) if zone is not None else at).strftime("%Y-%m-%d %H:%M")

    if any(f.kind == "pin" for f in followups):
        unpin = next((f for f in followups if f.kind == "unpin"), None)
        bits.append("pin" + (f" until {when(unpin.at)}" if unpin is not None else ""))
    delete = next((f for f in followups if f.kind == "delete"), None)
    if delete is not None:
        bits.append(f"delete {when(delete.at)}")
    return " · ".join(bits)


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
