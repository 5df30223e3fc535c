"""The local time of rules and events: the zone a rule or an event is in, an event's start, end and day, and the
calendar days and real hours from an instant to an event. Pure functions of the validated schedule."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from amplifier.campaign.models import Event, Rule, ScheduleFile
from amplifier.clock import localize


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


def hours_between(at: dt.datetime, start: dt.datetime) -> int:
    # Subtract in UTC: within one zone, Python subtracts wall times and a DST change would be lost.
    return max(0, int((start.astimezone(dt.UTC) - at.astimezone(dt.UTC)).total_seconds() // 3600))


def days_between(at: dt.datetime, event: Event, schedule: ScheduleFile) -> int:
    """Calendar days from ``at`` to the event, in the event's local calendar."""
    local = at.astimezone(event_zone(schedule, event)).date()
    return (event_day(event) - local).days
