"""What ``validate`` says beside problems: warnings (exit 0) and rules that have finished.

A campaign can be valid and still not do what its author meant. These are warnings, located like problems, shown by
``validate`` and carried in the :class:`~amplifier.plan.planner.Plan` for the HTML preview:

* a rule that plans no post at all (a cron that never fires between ``start`` and ``end``);
* a rule that posts more than ``MAX_POSTS_PER_DAY`` times in one day on each of its accounts (``* 18 * * 3,6`` fires
  every minute of 18:00-18:59: 60 posts a day, 1,281 in five months);
* a recurring rule tied to an event whose ``end`` is after the event: it stops at the event;
* a message set no rule uses, and texts in a language that none of the accounts of its rules posts in;
* ``pin: true`` on a rule without an event (nothing unpins), or more posts pinned at once than Mastodon allows.

A rule whose posts are all in the past has *finished*: not a problem (a running campaign stays valid), reported as
such.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from amplifier.campaign.load import Campaign, needs
from amplifier.campaign.models import CountdownRule, RecurringRule, rule_accounts
from amplifier.errors import Problem
from amplifier.plan.followups import pin_warnings
from amplifier.plan.schedule import event_day, occurrences

MAX_POSTS_PER_DAY = 24
"""More posts than this in one local day, on one account, by one rule, is a warning (once an hour is the most a
campaign plausibly means)."""


@dataclass
class Review:
    warnings: list[Problem] = field(default_factory=list)
    finished: list[Problem] = field(default_factory=list)
    last: dt.datetime | None = None  # the last post of any enabled rule (validate renders up to it)


def review(campaign: Campaign, now: dt.datetime) -> Review:
    """The warnings and the finished rules of ``campaign`` at ``now``."""
    result = Review()
    for rule_id in campaign.schedule.rules:
        _rule(campaign, rule_id, now, result)
    result.warnings.extend(_unused(campaign))
    result.warnings.sort()
    result.finished.sort()
    return result


def _rule(campaign: Campaign, rule_id: str, now: dt.datetime, result: Review) -> None:
    schedule = campaign.schedule
    rule = schedule.rules[rule_id]
    event_id = getattr(rule, "event", None)
    if not rule.enabled or (event_id is not None and event_id not in schedule.events):
        return
    base = ("rules", rule_id)
    if not rule_accounts(schedule, rule):
        result.warnings.append(
            campaign.schedule_problem((*base, "accounts"), f"rule {rule_id!r} has no account")
        )
        return
    items = occurrences(schedule, rule)
    if items and (result.last is None or items[-1].at > result.last):
        result.last = items[-1].at
    result.warnings.extend(pin_warnings(campaign, rule_id, len(items)))  # plan/followups.py
    if isinstance(rule, RecurringRule):
        if rule.event is not None and rule.end > event_day(schedule.events[rule.event]):
            day = event_day(schedule.events[rule.event])
            result.warnings.append(
                campaign.schedule_problem(
                    (*base, "end"),
                    f"rule {rule_id!r} runs until {rule.end}, past its event {rule.event!r} ({day}): it stops "
                    "at the event (a rule tied to an event never counts down to a day that has passed)",
                )
            )
        if not items:
            result.warnings.append(
                campaign.schedule_problem(
                    (*base, "cron"),
                    f"rule {rule_id!r} plans no post: its cron {rule.cron!r} never fires between "
                    f"{rule.start} and {rule.end}",
                )
            )
            return
        busiest = max(Counter(item.at.date() for item in items).values())
        if busiest > MAX_POSTS_PER_DAY:
            hint = ""
            if rule.cron.split()[0] == "*":
                hint = "; its minute field is * (every minute): write 0 for once in the hour"
            result.warnings.append(
                campaign.schedule_problem(
                    (*base, "cron"),
                    f"rule {rule_id!r} posts up to {busiest} times a day on each of its accounts "
                    f"({len(items):,} posts in all), more than {MAX_POSTS_PER_DAY} a day{hint}",
                )
            )
    if items and items[-1].at < now:
        if isinstance(rule, CountdownRule):
            event = schedule.events[rule.event]
            when = f"{event.date:%Y-%m-%d %H:%M}" if isinstance(event.date, dt.datetime) else str(event.date)
            message = f"countdown {rule_id!r} finished: its event {rule.event!r} ({when}) has passed"
            path: tuple[str | int, ...] = (*base, "event")
        else:
            message = f"rule {rule_id!r} finished: its last post was at {items[-1].at:%Y-%m-%d %H:%M}"
            path = base
        result.finished.append(campaign.schedule_problem(path, message))


def _unused(campaign: Campaign) -> Iterator[Problem]:
    used = {rule.messages for rule in campaign.schedule.rules.values()}
    required = needs(campaign)
    for set_id, message_set in campaign.message_sets.items():
        source = campaign.set_sources[set_id]
        if set_id not in used:
            yield source.problem(("sets", set_id), f"message set {set_id!r} is used by no rule", key=True)
            continue
        langs = set(required.get(set_id, {}))
        seen: set[str] = set()
        for index, variant in enumerate(message_set.variants):
            for field_name in ("text", "mastodon", "bluesky"):
                for lang in getattr(variant, field_name):
                    if lang in langs or lang == "*" or lang in seen:
                        continue
                    seen.add(lang)
                    written = ", ".join(sorted(langs)) or "none"
                    yield source.problem(
                        ("sets", set_id, "variants", index, field_name, lang),
                        f"the {lang!r} texts of message set {set_id!r} are never posted: no account of its rules "
                        f"posts in {lang!r} (they post in: {written})",
                        key=True,
                    )
