"""Schedule expansion: rules -> slots (one post for one account at one instant).

Pure functions of the validated schedule and a window; the clock is a parameter, nothing here reads the time.

Countdowns are computed in the event's local calendar: a post "3 days before" a November 1 event goes out on October 29
at the rule's local time, whatever DST does in between, and ``days_left`` counts calendar days. ``hours_before`` posts
are a fixed number of real hours before the event's start.

A recurring rule tied to an event (``event:``) ends at the event: at its start time, or at the end of its day for an
all-day event, whatever its ``end`` says, so no post counts down to an event that has passed ("in -7 days").

Every slot has a stable id, ``rule:account:YYYY-MM-DDTHH:MM`` in the rule's local wall time (with ``~2`` for the
second of two identical wall times at a DST fall-back), so the same rule, account and occurrence always give the same
id, whatever window is asked for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from amplifier.campaign.models import (
    CountdownRule,
    Event,
    OnceRule,
    RecurringRule,
    Rule,
    ScheduleFile,
    rule_accounts,
)
from amplifier.clock import localize


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One instant at which a rule posts, before fanning out to accounts."""

    at: dt.datetime  # aware, in the rule's zone
    index: int  # position among all of the rule's occurrences (window-independent): rotates variants
    key: str  # local wall time, unique within the rule
    days_left: int | None = None
    hours_left: int | None = None


@dataclass(frozen=True, slots=True)
class Slot:
    id: str
    rule: str
    account: str
    at: dt.datetime
    index: int
    event: str | None
    days_left: int | None
    hours_left: int | None


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def event_zone(schedule: ScheduleFile, event: Event) -> ZoneInfo:
    return zone(event.timezone or schedule.campaign.timezone)


def rule_zone(schedule: ScheduleFile, rule: Rule) -> ZoneInfo:
    if rule.timezone:
        return zone(rule.timezone)
    event_id = getattr(rule, "event", None)
    if event_id and event_id in schedule.events:
        return event_zone(schedule, schedule.events[event_id])
    return zone(schedule.campaign.timezone)


def event_start(schedule: ScheduleFile, event: Event) -> dt.datetime:
    """The event's start as an aware datetime (midnight local time for an all-day event)."""
    tz = event_zone(schedule, event)
    if isinstance(event.date, dt.datetime):
        return localize(event.date, tz)
    return localize(dt.datetime.combine(event.date, dt.time()), tz)


def event_end(schedule: ScheduleFile, event: Event) -> dt.datetime:
    """Where a recurring rule tied to the event stops: its start time, or the end of its day for an all-day event."""
    if isinstance(event.date, dt.datetime):
        return event_start(schedule, event)
    return localize(
        dt.datetime.combine(event.date + dt.timedelta(days=1), dt.time()), event_zone(schedule, event)
    )


def event_day(event: Event) -> dt.date:
    return event.date.date() if isinstance(event.date, dt.datetime) else event.date


def _wall_key(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M")


def occurrences(schedule: ScheduleFile, rule: Rule) -> list[Occurrence]:
    """All occurrences of a rule, in time order, whatever the window."""
    if isinstance(rule, CountdownRule):
        items = list(_countdown(schedule, rule))
    elif isinstance(rule, RecurringRule):
        items = list(_recurring(schedule, rule))
    else:
        items = list(_once(schedule, rule))
    items.sort(key=lambda item: item[0].astimezone(dt.UTC))  # same-zone comparisons ignore fold
    seen: dict[str, int] = {}
    out = []
    for index, (at, days_left, hours_left) in enumerate(items):
        key = _wall_key(at)
        count = seen.get(key, 0) + 1
        seen[key] = count
        if count > 1:
            key = f"{key}~{count}"
        out.append(Occurrence(at, index, key, days_left, hours_left))
    return out


Item = tuple[dt.datetime, int | None, int | None]


def _countdown(schedule: ScheduleFile, rule: CountdownRule) -> Iterator[Item]:
    event = schedule.events[rule.event]
    tz = rule_zone(schedule, rule)
    start = event_start(schedule, event)
    day = event_day(event)
    times = rule.at if isinstance(rule.at, list) else [rule.at]
    seen: set[dt.datetime] = set()
    for days in sorted(set(rule.days_before), reverse=True):
        local_day = day - dt.timedelta(days=days)
        for time in times:
            at = localize(dt.datetime.combine(local_day, time), tz)
            if at in seen:
                continue
            seen.add(at)
            yield at, days, _hours_between(at, start)
    for hours in sorted(set(rule.hours_before), reverse=True):
        at = (start.astimezone(dt.UTC) - dt.timedelta(hours=hours)).astimezone(
            tz
        )  # real hours, not wall time
        if at in seen:
            continue
        seen.add(at)
        yield at, _days_between(at, event, schedule), hours


def _hours_between(at: dt.datetime, start: dt.datetime) -> int:
    # Subtract in UTC: within one zone, Python subtracts wall times and a DST change would be lost.
    return max(0, int((start.astimezone(dt.UTC) - at.astimezone(dt.UTC)).total_seconds() // 3600))


def _days_between(at: dt.datetime, event: Event, schedule: ScheduleFile) -> int:
    """Calendar days from ``at`` to the event, in the event's local calendar."""
    local = at.astimezone(event_zone(schedule, event)).date()
    return (event_day(event) - local).days


def _recurring(schedule: ScheduleFile, rule: RecurringRule) -> Iterator[Item]:
    from croniter import CroniterBadDateError, croniter

    tz = rule_zone(schedule, rule)
    first = localize(dt.datetime.combine(rule.start, dt.time()), tz)
    last = localize(dt.datetime.combine(rule.end + dt.timedelta(days=1), dt.time()), tz)
    event = schedule.events.get(rule.event) if rule.event else None
    start = event_start(schedule, event) if event else None
    if event is not None and start is not None:
        last = min(last, event_end(schedule, event))  # a rule tied to an event ends at the event
    iterator = croniter(rule.cron, first - dt.timedelta(microseconds=1))
    while True:
        try:
            at: dt.datetime = iterator.get_next(dt.datetime)
        except CroniterBadDateError:
            return  # a cron that never fires (0 18 30 2 *): validate warns of a rule that plans nothing
        at = at.astimezone(tz)
        if at >= last:
            return
        if event is not None and start is not None:
            yield at, _days_between(at, event, schedule), _hours_between(at, start)
        else:
            yield at, None, None


def _once(schedule: ScheduleFile, rule: OnceRule) -> Iterator[Item]:
    tz = rule_zone(schedule, rule)
    at = localize(rule.at, tz)
    event = schedule.events.get(rule.event) if rule.event else None
    if event is not None:
        yield at, _days_between(at, event, schedule), _hours_between(at, event_start(schedule, event))
    else:
        yield at, None, None


def slot_id(rule_id: str, account: str, key: str) -> str:
    return f"{rule_id}:{account}:{key}"


def make_slot(rule_id: str, account: str, occ: Occurrence, event: str | None) -> Slot:
    """The slot of one occurrence of a rule for one account."""
    return Slot(
        slot_id(rule_id, account, occ.key),
        rule_id,
        account,
        occ.at,
        occ.index,
        event,
        occ.days_left,
        occ.hours_left,
    )


def expand(
    schedule: ScheduleFile,
    start: dt.datetime,
    end: dt.datetime,
    *,
    accounts: set[str] | None = None,
    rules: set[str] | None = None,
) -> list[Slot]:
    """The slots with ``start <= at < end``, in time order (then by id)."""
    slots = []
    for rule_id, rule in schedule.rules.items():
        if not rule.enabled or (rules is not None and rule_id not in rules):
            continue
        targets = [a for a in rule_accounts(schedule, rule) if accounts is None or a in accounts]
        if not targets:
            continue
        event = getattr(rule, "event", None)
        for occ in occurrences(schedule, rule):
            if not start <= occ.at < end:
                continue
            for account in targets:
                slots.append(make_slot(rule_id, account, occ, event))
    slots.sort(key=lambda slot: (slot.at.astimezone(dt.UTC), slot.id))
    return slots


def parse_slot_id(slot: str) -> tuple[str, str, str]:
    """``rule:account:key`` -> its parts. Raises ValueError on a malformed id."""
    rule, account, key = slot.split(":", 2)
    if not rule or not account or not key:
        raise ValueError(slot)
    return rule, account, key
