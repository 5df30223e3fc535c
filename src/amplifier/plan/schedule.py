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
from typing import Any
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
    return list(occurrences_between(schedule, rule))


def occurrences_between(
    schedule: ScheduleFile, rule: Rule, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Occurrence]:
    """The occurrences with ``start <= at < end`` (``None``: unbounded), in time order.

    Each has the ``index`` and ``key`` it has in :func:`occurrences`, but the work is the window's: a recurring rule
    is expanded from the window's first day (the occurrences before it are counted, not expanded: see
    :func:`_count_before`), one chunk of days at a time, so a long window never holds all its occurrences either.
    """
    if isinstance(rule, RecurringRule):
        chunks = _recurring_chunks(schedule, rule, start, end)
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


CHUNK_DAYS = 31  # a long window is expanded this many local days at a time
_DAY = dt.timedelta(days=1)


def _midnight_offset(tz: ZoneInfo, day: dt.date) -> dt.timedelta | None:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).utcoffset()


def _steady(tz: ZoneInfo, day: dt.date, before: int = 1, after: int = 1) -> bool:
    """No change of UTC offset from the midnight ``before`` days before ``day`` to the one ``after`` days after.

    croniter started afresh at a midnight gives what it gives when it runs through that midnight, except near
    a change of offset (started in a skipped or repeated hour, it can skip a firing): expansions start only at
    steady midnights.
    """
    offset = _midnight_offset(tz, day - before * _DAY)
    return all(_midnight_offset(tz, day + step * _DAY) == offset for step in range(-before + 1, after + 1))


def _recurring_chunks(
    schedule: ScheduleFile, rule: RecurringRule, start: dt.datetime | None, end: dt.datetime | None
) -> Iterator[tuple[int, list[Item]]]:
    """``(index of the first, items)`` for whole local days from the window's first day to its last (with a day
    of margin), about ``CHUNK_DAYS`` days at a time, each chunk starting at a steady midnight."""
    tz = rule_zone(schedule, rule)
    first, last = rule.start, rule.end
    if start is not None:
        first = max(first, start.astimezone(tz).date() - _DAY)
        while first > rule.start and not _steady(tz, first):
            first -= _DAY
    if end is not None:
        last = min(last, end.astimezone(tz).date() + _DAY)
    if first > last:
        return  # the window misses the rule: nothing to count either
    base = _count_before(schedule, rule, first)
    day = first
    while day <= last:
        chunk_last = min(last, day + (CHUNK_DAYS - 1) * _DAY)
        while chunk_last < last and not _steady(tz, chunk_last + _DAY):
            chunk_last += _DAY
        items = list(_recurring(schedule, rule, day, chunk_last))
        yield base, items
        base += len(items)
        day = chunk_last + _DAY


def _count_before(schedule: ScheduleFile, rule: RecurringRule, day: dt.date) -> int:
    """How many occurrences fall on local days from the rule's start to ``day`` (excluded), without expanding them.

    On a day with no change of UTC offset from the midnight before it to the one after it, a cron fires once per
    (hour, minute) of its expression if the day matches its day fields, and not at all otherwise: the matching days
    are counted with croniter on the day fields alone (in naive calendar time, one step per matching day, not per
    occurrence). The other days are expanded, each run of them from its first day, as :func:`occurrences` expands
    them. ``tests/unit/test_schedule.py`` checks the result against one croniter run over the whole rule.
    """
    if day <= rule.start:
        return 0
    from croniter import croniter

    tz = rule_zone(schedule, rule)
    _minute, _hour, dom, month, dow = rule.cron.split()
    minutes, hours = croniter(rule.cron).expanded[:2]
    per_day = (60 if minutes == ["*"] else len(minutes)) * (24 if hours == ["*"] else len(hours))

    count = 0
    odd_run: list[dt.date] = []  # consecutive days near an offset change, expanded together
    offsets = [_midnight_offset(tz, rule.start + step * _DAY) for step in (-1, 0, 1)]
    probe = rule.start
    weekdays = _weekdays_only(rule.cron)
    matches: Any = None
    if (
        weekdays is not None
    ):  # no croniter at all: a day matches by its weekday (a rule of years: ~1 ms a year)
        matched = probe if probe.isoweekday() % 7 in weekdays else dt.date.min
    else:
        matches = croniter(f"0 0 {dom} {month} {dow}", dt.datetime.combine(rule.start, dt.time()) - _DAY / 2)
        matched = _next_day(matches)
    while probe < day:
        offsets.append(_midnight_offset(tz, probe + 2 * _DAY))
        if len(set(offsets)) == 1:  # midnights of the day before to the day after next: no change on this day
            if odd_run:
                count += sum(1 for _ in _recurring(schedule, rule, odd_run[0], odd_run[-1]))
                odd_run = []
            if matched == probe:
                count += per_day
        else:
            odd_run.append(probe)
        if weekdays is not None:
            following = probe + _DAY
            matched = following if following.isoweekday() % 7 in weekdays else dt.date.min
        else:
            while matched <= probe:
                matched = _next_day(matches)
        offsets.pop(0)
        probe += _DAY
    if odd_run:
        count += sum(1 for _ in _recurring(schedule, rule, odd_run[0], odd_run[-1]))
    return count


def _weekdays_only(cron: str) -> frozenset[int] | None:
    """The weekdays (0 = Sunday) on which ``cron`` fires when its day of month and month are ``*`` (the day fields
    then depend on the weekday alone), else None."""
    from croniter import croniter

    _minute, _hour, dom, month, dow = cron.split()
    if dom != "*" or month != "*" or "#" in dow or "l" in dow.lower():
        return None  # croniter's "5#2" (the second Friday) and "L" forms are left to croniter
    days = croniter(cron).expanded[4]
    if days == ["*"]:
        return frozenset(range(7))
    if not all(isinstance(day, int) for day in days):
        return None
    return frozenset(day % 7 for day in days)


def _next_day(matches: Any) -> dt.date:
    """The next day croniter's ``matches`` gives; ``date.max`` when it finds none any more."""
    from croniter import CroniterBadDateError

    try:
        return matches.get_next(dt.datetime).date()  # type: ignore[no-any-return]
    except CroniterBadDateError:
        return dt.date.max


def _recurring(
    schedule: ScheduleFile, rule: RecurringRule, first_day: dt.date, last_day: dt.date
) -> Iterator[Item]:
    """The rule's firings on the local days ``first_day`` to ``last_day`` (included); a rule tied to an event
    stops at the event (:func:`event_end`)."""
    from croniter import CroniterBadDateError, croniter

    tz = rule_zone(schedule, rule)
    first = localize(dt.datetime.combine(first_day, dt.time()), tz)
    last = localize(dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time()), tz)
    event = schedule.events.get(rule.event) if rule.event else None
    start = event_start(schedule, event) if event else None
    if event is not None:
        last = min(last, event_end(schedule, event))  # a rule tied to an event ends at the event
    iterator = croniter(rule.cron, first - dt.timedelta(microseconds=1))
    while True:
        try:
            at: dt.datetime = iterator.get_next(dt.datetime)
        except CroniterBadDateError:
            return  # a cron that fires no more (0 18 30 2 *): validate warns of a rule that plans nothing
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
            last = max(last, localize(dt.datetime.combine(rule.end + 2 * _DAY, dt.time()), tz))
        else:
            last = max([last, *(occ.at + dt.timedelta(seconds=1) for occ in occurrences(schedule, rule))])
    return last


def parse_slot_id(slot: str) -> tuple[str, str, str]:
    """``rule:account:key`` -> its parts. Raises ValueError on a malformed id."""
    rule, account, key = slot.split(":", 2)
    if not rule or not account or not key:
        raise ValueError(slot)
    return rule, account, key
