"""Expanding a recurring (cron) rule over a window of local days, without expanding the days before the window.

:func:`recurring_chunks` expands the window's days about ``CHUNK_DAYS`` at a time, each chunk starting at a midnight
with no change of UTC offset around it; :func:`_count_before` counts the occurrences before the window (for their
window-independent ``index``) without expanding them. :func:`firings` is one croniter run over a run of days.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from amplifier.campaign.models import RecurringRule, ScheduleFile
from amplifier.clock import localize
from amplifier.plan.localtime import days_between, event_end, event_start, hours_between, rule_zone

Item = tuple[dt.datetime, int | None, int | None]
"""One firing: the aware instant, and the calendar days and real hours left to the rule's event (None: no event)."""

CHUNK_DAYS = 31  # a long window is expanded this many local days at a time
DAY = dt.timedelta(days=1)


def _midnight_offset(tz: ZoneInfo, day: dt.date) -> dt.timedelta | None:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).utcoffset()


def _steady(tz: ZoneInfo, day: dt.date, before: int = 1, after: int = 1) -> bool:
    """No change of UTC offset from the midnight ``before`` days before ``day`` to the one ``after`` days after.

    croniter started afresh at a midnight gives what it gives when it runs through that midnight, except near
    a change of offset (started in a skipped or repeated hour, it can skip a firing): expansions start only at
    steady midnights.
    """
    offset = _midnight_offset(tz, day - before * DAY)
    return all(_midnight_offset(tz, day + step * DAY) == offset for step in range(-before + 1, after + 1))


def recurring_chunks(
    schedule: ScheduleFile, rule: RecurringRule, start: dt.datetime | None, end: dt.datetime | None
) -> Iterator[tuple[int, list[Item]]]:
    """``(index of the first, items)`` for whole local days from the window's first day to its last (with a day
    of margin), about ``CHUNK_DAYS`` days at a time, each chunk starting at a steady midnight."""
    tz = rule_zone(schedule, rule)
    first, last = rule.start, rule.end
    if start is not None:
        first = max(first, start.astimezone(tz).date() - DAY)
        while first > rule.start and not _steady(tz, first):
            first -= DAY
    if end is not None:
        last = min(last, end.astimezone(tz).date() + DAY)
    if first > last:
        return  # the window misses the rule: nothing to count either
    base = _count_before(schedule, rule, first)
    day = first
    while day <= last:
        chunk_last = min(last, day + (CHUNK_DAYS - 1) * DAY)
        while chunk_last < last and not _steady(tz, chunk_last + DAY):
            chunk_last += DAY
        items = list(firings(schedule, rule, day, chunk_last))
        yield base, items
        base += len(items)
        day = chunk_last + DAY


def _count_before(schedule: ScheduleFile, rule: RecurringRule, day: dt.date) -> int:
    """How many occurrences fall on local days from the rule's start to ``day`` (excluded), without expanding them.

    On a day with no change of UTC offset from the midnight before it to the one after it, a cron fires once per
    (hour, minute) of its expression if the day matches its day fields, and not at all otherwise: the matching days
    are counted with croniter on the day fields alone (in naive calendar time, one step per matching day, not per
    occurrence). The other days are expanded, each run of them from its first day, as :func:`amplifier.plan.schedule.occurrences` expands
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
    offsets = [_midnight_offset(tz, rule.start + step * DAY) for step in (-1, 0, 1)]
    probe = rule.start
    weekdays = _weekdays_only(rule.cron)
    matches: Any = None
    if (
        weekdays is not None
    ):  # no croniter at all: a day matches by its weekday (a rule of years: ~1 ms a year)
        matched = probe if probe.isoweekday() % 7 in weekdays else dt.date.min
    else:
        matches = croniter(f"0 0 {dom} {month} {dow}", dt.datetime.combine(rule.start, dt.time()) - DAY / 2)
        matched = _next_day(matches)
    while probe < day:
        offsets.append(_midnight_offset(tz, probe + 2 * DAY))
        if len(set(offsets)) == 1:  # midnights of the day before to the day after next: no change on this day
            if odd_run:
                count += sum(1 for _ in firings(schedule, rule, odd_run[0], odd_run[-1]))
                odd_run = []
            if matched == probe:
                count += per_day
        else:
            odd_run.append(probe)
        if weekdays is not None:
            following = probe + DAY
            matched = following if following.isoweekday() % 7 in weekdays else dt.date.min
        else:
            while matched <= probe:
                matched = _next_day(matches)
        offsets.pop(0)
        probe += DAY
    if odd_run:
        count += sum(1 for _ in firings(schedule, rule, odd_run[0], odd_run[-1]))
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


def firings(
    schedule: ScheduleFile, rule: RecurringRule, first_day: dt.date, last_day: dt.date
) -> Iterator[Item]:
    """The rule's firings on the local days ``first_day`` to ``last_day`` (included); a rule tied to an event
    stops at the event (:func:`event_end`).

    A cron whose day fields depend on the weekday alone (:func:`_day_times`) fires, on a day with no change of UTC
    offset around it, at each of its times of day if the weekday matches: those days are listed without croniter
    (a twentieth of its cost); the days near a change of offset are expanded by croniter, each run of them from its
    first midnight, as :func:`_count_before` counts them.
    """
    tz = rule_zone(schedule, rule)
    last = localize(dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time()), tz)
    event = schedule.events.get(rule.event) if rule.event else None
    start = event_start(schedule, event) if event else None
    if event is not None:
        last = min(last, event_end(schedule, event))  # a rule tied to an event ends at the event
    day_times = _day_times(rule.cron)
    if day_times is None:
        instants = _cron_firings(rule.cron, tz, first_day, last_day)
    else:
        instants = _steady_firings(rule.cron, tz, first_day, last_day, *day_times)
    for at in instants:
        if at >= last:
            return
        if event is not None and start is not None:
            yield at, days_between(at, event, schedule), hours_between(at, start)
        else:
            yield at, None, None


def _cron_firings(cron: str, tz: ZoneInfo, first_day: dt.date, last_day: dt.date) -> Iterator[dt.datetime]:
    """croniter's firings from the midnight of ``first_day`` to that after ``last_day`` (excluded)."""
    from croniter import CroniterBadDateError, croniter

    first = localize(dt.datetime.combine(first_day, dt.time()), tz)
    last = localize(dt.datetime.combine(last_day + DAY, dt.time()), tz)
    iterator = croniter(cron, first - dt.timedelta(microseconds=1))
    while True:
        try:
            at: dt.datetime = iterator.get_next(dt.datetime)
        except CroniterBadDateError:
            return  # a cron that fires no more (0 18 30 2 *): validate warns of a rule that plans nothing
        at = at.astimezone(tz)
        if at >= last:
            return
        yield at


def _steady_firings(
    cron: str,
    tz: ZoneInfo,
    first_day: dt.date,
    last_day: dt.date,
    weekdays: frozenset[int],
    times: tuple[dt.time, ...],
) -> Iterator[dt.datetime]:
    """The firings of a cron of :func:`_day_times` from ``first_day`` to ``last_day``: listed directly on a day whose
    midnights, from the one before it to the one after the next, have one UTC offset (as :func:`_count_before` tells
    the days apart); by croniter on each run of the other days."""
    offsets = [_midnight_offset(tz, first_day + step * DAY) for step in (-1, 0, 1)]
    odd_run: list[dt.date] = []
    day = first_day
    while day <= last_day:
        offsets.append(_midnight_offset(tz, day + 2 * DAY))
        if len(set(offsets)) == 1:
            if odd_run:
                yield from _cron_firings(cron, tz, odd_run[0], odd_run[-1])
                odd_run = []
            if day.isoweekday() % 7 in weekdays:
                combine = dt.datetime.combine
                for time in times:
                    yield combine(day, time, tzinfo=tz)
        else:
            odd_run.append(day)
        offsets.pop(0)
        day += DAY
    if odd_run:
        yield from _cron_firings(cron, tz, odd_run[0], odd_run[-1])


@functools.lru_cache(maxsize=256)
def _day_times(cron: str) -> tuple[frozenset[int], tuple[dt.time, ...]] | None:
    """The weekdays (0 = Sunday) and the local times of day at which ``cron`` fires, when its day fields depend on
    the weekday alone (:func:`_weekdays_only`) and its minutes and hours are plain numbers; else None."""
    weekdays = _weekdays_only(cron)
    if weekdays is None:
        return None
    from croniter import croniter

    minutes, hours = croniter(cron).expanded[:2]
    minutes = list(range(60)) if minutes == ["*"] else minutes
    hours = list(range(24)) if hours == ["*"] else hours
    if not all(isinstance(value, int) for value in (*minutes, *hours)):
        return None
    return weekdays, tuple(
        dt.time(hour, minute) for hour in sorted(set(hours)) for minute in sorted(set(minutes))
    )
