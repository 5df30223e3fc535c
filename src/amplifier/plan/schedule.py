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
import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from amplifier.campaign.models import (
    CountdownRule,
    OnceRule,
    RecurringRule,
    Rule,
    ScheduleFile,
    rule_accounts,
)
from amplifier.clock import localize
from amplifier.plan.localtime import (
    days_between,
    event_day,
    event_end,
    event_start,
    event_zone,
    hours_between,
    rule_zone,
    zone,
)
from amplifier.plan.recurring import DAY, Item, recurring_chunks

__all__ = [
    "Occurrence",
    "Slot",
    "event_day",
    "event_end",
    "event_start",
    "event_zone",
    "expand",
    "iter_slots",
    "last_instant",
    "make_slot",
    "occurrences",
    "occurrences_between",
    "parse_slot_id",
    "rule_zone",
    "slot_id",
    "zone",
]


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


def _wall_key(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M")


def occurrences(schedule: ScheduleFile, rule: Rule) -> list[Occurrence]:
    """All occurrences of a rule, in time order, whatever the window."""
    return list(occurrences_between(schedule, rule))


def occurrences_between(
    schedule: ScheduleFile, rule: Rule, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Occurrence]:
    """The occurrences with ``start <= at < end`` (``None``: unbounded), in time order.

    Each has the ``index`` and ``key`` it has in :func:`occurrences`, but the work is the window's: a recurring rule
    is expanded from the window's first day (the occurrences before it are counted, not expanded: see
    :mod:`amplifier.plan.recurring`), one chunk of days at a time, so a long window never holds all its occurrences
    either.
    """
    if isinstance(rule, RecurringRule):
        chunks = recurring_chunks(schedule, rule, start, end)
    elif isinstance(rule, CountdownRule):
        chunks = iter([(0, list(_countdown(schedule, rule)))])
    else:
        chunks = iter([(0, list(_once(schedule, rule)))])
    for base, items in chunks:
        items.sort(key=lambda item: item[0].astimezone(dt.UTC))  # same-zone comparisons ignore fold
        seen: dict[str, int] = {}  # two equal wall times fall on one local day, so within one chunk
        for offset, (at, days_left, hours_left) in enumerate(items):
            key = _wall_key(at)
            count = seen.get(key, 0) + 1
            seen[key] = count
            if count > 1:
                key = f"{key}~{count}"
            if (start is None or start <= at) and (end is None or at < end):
                yield Occurrence(at, base + offset, key, days_left, hours_left)


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
            yield at, days, hours_between(at, start)
    for hours in sorted(set(rule.hours_before), reverse=True):
        at = (start.astimezone(dt.UTC) - dt.timedelta(hours=hours)).astimezone(
            tz
        )  # real hours, not wall time
        if at in seen:
            continue
        seen.add(at)
        yield at, days_between(at, event, schedule), hours


def _once(schedule: ScheduleFile, rule: OnceRule) -> Iterator[Item]:
    tz = rule_zone(schedule, rule)
    at = localize(rule.at, tz)
    event = schedule.events.get(rule.event) if rule.event else None
    if event is not None:
        yield at, days_between(at, event, schedule), hours_between(at, event_start(schedule, event))
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
    return list(iter_slots(schedule, start, end, accounts=accounts, rules=rules))


def iter_slots(
    schedule: ScheduleFile,
    start: dt.datetime,
    end: dt.datetime | None,
    *,
    accounts: set[str] | None = None,
    rules: set[str] | None = None,
) -> Iterator[Slot]:
    """:func:`expand` one slot at a time (``end`` ``None``: to each rule's last occurrence): a merge of one stream
    per rule, each already in (instant, id) order, so a window of any length is never held whole."""
    streams = []
    for rule_id, rule in schedule.rules.items():
        if not rule.enabled or (rules is not None and rule_id not in rules):
            continue
        targets = [a for a in rule_accounts(schedule, rule) if accounts is None or a in accounts]
        if targets:
            streams.append(_rule_slots(schedule, rule_id, rule, targets, start, end))
    for _at, _id, slot in heapq.merge(*streams):
        yield slot


def _rule_slots(
    schedule: ScheduleFile,
    rule_id: str,
    rule: Rule,
    targets: list[str],
    start: dt.datetime,
    end: dt.datetime | None,
) -> Iterator[tuple[dt.datetime, str, Slot]]:
    event = getattr(rule, "event", None)
    # Ids of one occurrence differ only in the account: "rule:a:key" < "rule:b:key" whatever the key.
    targets = sorted(targets, key=lambda account: account + ":")
    for occ in occurrences_between(schedule, rule, start, end):
        at = occ.at.astimezone(dt.UTC)
        for account in targets:
            slot = make_slot(rule_id, account, occ, event)
            yield at, slot.id, slot


def last_instant(schedule: ScheduleFile, rules: set[str] | None = None) -> dt.datetime:
    """An instant after every occurrence of every rule, or of these ``rules`` (for a progress bar over a whole
    campaign). A rule whose event is missing (a campaign loaded with problems) has no occurrence."""
    last = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for rule_id, rule in schedule.rules.items():
        event = getattr(rule, "event", None)
        if (rules is not None and rule_id not in rules) or (
            event is not None and event not in schedule.events
        ):
            continue
        if isinstance(rule, RecurringRule):
            tz = rule_zone(schedule, rule)
            last = max(last, localize(dt.datetime.combine(rule.end + 2 * DAY, dt.time()), tz))
        else:
            last = max([last, *(occ.at + dt.timedelta(seconds=1) for occ in occurrences(schedule, rule))])
    return last


def parse_slot_id(slot: str) -> tuple[str, str, str]:
    """``rule:account:key`` -> its parts. Raises ValueError on a malformed id."""
    rule, account, key = slot.split(":", 2)
    if not rule or not account or not key:
        raise ValueError(slot)
    return rule, account, key
