"""Schedule expansion: countdown math in the event's calendar, DST, recurring rules, stable ids."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from amplifier.campaign.models import ScheduleFile
from amplifier.clock import localize
from amplifier.plan.schedule import expand, occurrences

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def schedule(
    rules: dict[str, Any], events: dict[str, Any] | None = None, tz: str = "Europe/Berlin"
) -> ScheduleFile:
    return ScheduleFile.model_validate(
        {
            "campaign": {"name": "t", "timezone": tz},
            "events": events
            if events is not None
            else {"kobane-day": {"name": "World Kobane Day", "date": dt.date(2027, 11, 1)}},
            "accounts": {
                "a": {"platform": "mastodon", "instance": "https://m.example", "token_env": "T"},
                "b": {"platform": "bluesky", "handle": "b.example.com", "password_env": "P"},
            },
            "rules": rules,
        }
    )


WIDE = (dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2030, 1, 1, tzinfo=UTC))


def test_countdown_keeps_local_time_across_dst_end() -> None:
    # Central European Summer Time ends on 2027-10-31 at 03:00: the posts before it are at +02:00, after at +01:00.
    plan = schedule(
        {
            "c": {
                "kind": "countdown",
                "event": "kobane-day",
                "days_before": [3, 2, 1, 0],
                "at": "10:00",
                "messages": "m",
                "accounts": ["a"],
            }
        }
    )
    slots = expand(plan, *WIDE)
    assert [(s.at.astimezone(BERLIN).strftime("%m-%d %H:%M"), s.days_left) for s in slots] == [
        ("10-29 10:00", 3),
        ("10-30 10:00", 2),
        ("10-31 10:00", 1),
        ("11-01 10:00", 0),
    ]
    assert [s.at.utcoffset() for s in slots] == [dt.timedelta(hours=h) for h in (2, 2, 1, 1)]
    assert slots[0].id == "c:a:2027-10-29T10:00"


def test_countdown_in_event_calendar_when_rule_zone_differs() -> None:
    events = {"kobane-day": {"name": "K", "date": dt.date(2027, 11, 1), "timezone": "Asia/Damascus"}}
    plan = schedule(
        {
            "c": {
                "kind": "countdown",
                "event": "kobane-day",
                "days_before": [1],
                "at": "23:30",
                "messages": "m",
                "accounts": ["a"],
                "timezone": "America/New_York",
            }
        },
        events,
    )
    (slot,) = expand(plan, *WIDE)
    # October 31 in the event's calendar, at 23:30 New York time.
    assert slot.at.replace(tzinfo=None) == dt.datetime(2027, 10, 31, 23, 30)
    assert str(slot.at.tzinfo) == "America/New_York"
    assert slot.days_left == 1


def test_hours_before_on_the_day() -> None:
    events = {"efrin": {"name": "E", "date": dt.datetime(2027, 1, 20, 14, 0)}}
    plan = schedule(
        {
            "c": {
                "kind": "countdown",
                "event": "efrin",
                "days_before": [1],
                "hours_before": [3, 1],
                "messages": "m",
                "accounts": ["a"],
            }
        },
        events,
    )
    slots = expand(plan, *WIDE)
    assert [(s.at.strftime("%m-%d %H:%M"), s.days_left, s.hours_left) for s in slots] == [
        ("01-19 10:00", 1, 28),
        ("01-20 11:00", 0, 3),
        ("01-20 13:00", 0, 1),
    ]


def test_hours_before_across_dst_counts_real_hours() -> None:
    # DST starts 2027-03-28 at 02:00 in Berlin: 3 real hours before 04:00 is 00:00 local.
    events = {"e": {"name": "E", "date": dt.datetime(2027, 3, 28, 4, 0)}}
    plan = schedule(
        {"c": {"kind": "countdown", "event": "e", "hours_before": [3], "messages": "m", "accounts": ["a"]}},
        events,
    )
    (slot,) = expand(plan, *WIDE)
    assert slot.at.astimezone(BERLIN).strftime("%H:%M") == "00:00"
    assert dt.datetime(2027, 3, 28, 4, tzinfo=BERLIN).astimezone(UTC) - slot.at.astimezone(
        UTC
    ) == dt.timedelta(hours=3)


def test_nonexistent_local_time_moves_forward() -> None:
    at = localize(dt.datetime(2027, 3, 28, 2, 30), BERLIN)
    assert at.strftime("%H:%M %z") == "03:30 +0200"


def test_recurring_daily_window_inclusive_and_dst_stable() -> None:
    plan = schedule(
        {
            "r": {
                "kind": "recurring",
                "cron": "0 18 * * *",
                "start": "2027-10-29",
                "end": "2027-11-01",
                "messages": "m",
                "accounts": ["a"],
                "event": "kobane-day",
            }
        }
    )
    slots = expand(plan, *WIDE)
    assert [s.at.astimezone(BERLIN).strftime("%m-%d %H:%M") for s in slots] == [
        "10-29 18:00",
        "10-30 18:00",
        "10-31 18:00",
        "11-01 18:00",
    ]
    assert [s.days_left for s in slots] == [3, 2, 1, 0]
    assert [s.index for s in slots] == [0, 1, 2, 3]


def test_once_rule() -> None:
    plan = schedule({"o": {"kind": "once", "at": "2027-11-01T09:00", "messages": "m", "event": "kobane-day"}})
    slots = expand(plan, *WIDE)
    assert [s.id for s in slots] == ["o:a:2027-11-01T09:00", "o:b:2027-11-01T09:00"]
    assert all(s.days_left == 0 and s.hours_left == 0 for s in slots)


def test_ids_and_rotation_index_do_not_depend_on_the_window() -> None:
    plan = schedule(
        {
            "r": {
                "kind": "recurring",
                "cron": "0 * * * *",
                "start": "2027-10-01",
                "end": "2027-10-31",
                "messages": "m",
            }
        }
    )
    everything = {s.id: s.index for s in expand(plan, *WIDE)}
    start = dt.datetime(2027, 10, 20, 5, tzinfo=UTC)
    part = expand(plan, start, start + dt.timedelta(hours=7))
    assert len(part) == 14
    assert all(everything[s.id] == s.index for s in part)
    assert all(start <= s.at < start + dt.timedelta(hours=7) for s in part)


def test_fall_back_hour_gives_distinct_ids() -> None:
    # 02:00-03:00 happens twice on 2027-10-31 in Berlin; an hourly rule posts in both and needs two ids.
    plan = schedule(
        {
            "r": {
                "kind": "recurring",
                "cron": "30 * * * *",
                "start": "2027-10-31",
                "end": "2027-10-31",
                "messages": "m",
                "accounts": ["a"],
            }
        }
    )
    slots = expand(plan, *WIDE)
    ids = [s.id for s in slots]
    assert len(ids) == len(set(ids))
    assert len({s.at.astimezone(UTC) for s in slots}) == len(slots) == 25


def test_machine_timezone_never_matters(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = schedule(
        {
            "c": {
                "kind": "countdown",
                "event": "kobane-day",
                "days_before": [2, 1],
                "at": "10:00",
                "messages": "m",
            }
        }
    )
    results = []
    for tz in ("UTC", "Pacific/Kiritimati", "America/Los_Angeles"):
        monkeypatch.setenv("TZ", tz)
        time.tzset()
        results.append([(s.id, s.at.isoformat()) for s in expand(plan, *WIDE)])
    monkeypatch.delenv("TZ")
    time.tzset()
    assert results[0] == results[1] == results[2]
    assert os.environ.get("TZ") is None


@settings(max_examples=60, deadline=None)
@given(
    cron=st.sampled_from(["*/20 * * * *", "0 * * * *", "30 1,2,3 * * *", "0 18 * * 1-5", "15 2 * * *"]),
    tz=st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Damascus", "Australia/Lord_Howe", "UTC"]),
    start=st.dates(dt.date(2027, 3, 1), dt.date(2027, 11, 30)),
    days=st.integers(0, 6),
)
def test_plan_never_has_two_slots_with_one_id(cron: str, tz: str, start: dt.date, days: int) -> None:
    plan = schedule(
        {
            "r": {
                "kind": "recurring",
                "cron": cron,
                "start": start.isoformat(),
                "end": (start + dt.timedelta(days=days)).isoformat(),
                "messages": "m",
                "timezone": tz,
            }
        },
    )
    slots = expand(plan, *WIDE)
    assert len({s.id for s in slots}) == len(slots)
    instants = [s.at.astimezone(UTC) for s in slots]
    assert instants == sorted(instants)
    assert all(occ.at.tzinfo is not None for occ in occurrences(plan, plan.rules["r"]))


def full_expansion(
    plan: ScheduleFile, rule_id: str
) -> list[tuple[dt.datetime, int, str, int | None, int | None]]:
    """The reference: one croniter run from the rule's first day to its last (or to its event's end, where a rule
    tied to an event stops), indexes and keys assigned in order (the expansion as it was before windows were
    expanded on their own)."""
    from croniter import croniter

    from amplifier.plan.localtime import days_between, event_end, event_start, hours_between, rule_zone

    rule = plan.rules[rule_id]
    tz = rule_zone(plan, rule)
    first = localize(dt.datetime.combine(rule.start, dt.time()), tz)
    last = localize(dt.datetime.combine(rule.end + dt.timedelta(days=1), dt.time()), tz)
    event = plan.events.get(rule.event) if rule.event else None
    if event is not None:
        last = min(last, event_end(plan, event))
    items = []
    iterator = croniter(rule.cron, first - dt.timedelta(microseconds=1))
    while (at := iterator.get_next(dt.datetime).astimezone(tz)) < last:
        if event is not None:
            items.append((at, days_between(at, event, plan), hours_between(at, event_start(plan, event))))
        else:
            items.append((at, None, None))
    items.sort(key=lambda item: item[0].astimezone(UTC))
    seen: dict[str, int] = {}
    out = []
    for index, (at, days_left, hours_left) in enumerate(items):
        key = at.strftime("%Y-%m-%dT%H:%M")
        seen[key] = seen.get(key, 0) + 1
        out.append((at, index, key if seen[key] == 1 else f"{key}~{seen[key]}", days_left, hours_left))
    return out


@settings(max_examples=100, deadline=None)
@example(  # croniter started afresh on the midnight Havana skips misses the 01:00 firing
    cron="*/20 * * * *",
    tz="America/Havana",
    start=dt.date(2026, 1, 1),
    days=500,
    window_day=400,
    window_hours=1,
    window_minute=0,
)
@given(
    cron=st.sampled_from(
        [
            "*/30 * * * *",
            "0 * * * *",
            "30 1,2,3 * * *",
            "0 18 * * 1-5",
            "30 8 * * sat,sun",
            "0 12 * * 0,7",
            "15 2 * * *",
            "0 0 * * *",
            "30 23 * * *",
            "0 9 1,15 * *",
            "0 9 L * *",
            "0 12 * * 5#2",
            "0 12 13 * 5",
            "45 0-3 */3 2-11 *",
        ]
    ),
    tz=st.sampled_from(
        [
            "Europe/Berlin",
            "America/New_York",
            "America/Havana",  # changes at midnight
            "America/Santiago",  # changes at midnight
            "Asia/Beirut",
            "Australia/Lord_Howe",  # half-hour DST
            "UTC",
        ]
    ),
    start=st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31)),
    days=st.integers(0, 400),
    window_day=st.integers(0, 420),
    window_hours=st.integers(1, 24 * 40),
    window_minute=st.integers(0, 59),
)
def test_windowed_occurrences_equal_the_full_expansion(
    cron: str, tz: str, start: dt.date, days: int, window_day: int, window_hours: int, window_minute: int
) -> None:
    from amplifier.plan.schedule import occurrences_between

    plan = schedule(
        {
            "r": {
                "kind": "recurring",
                "cron": cron,
                "start": start.isoformat(),
                "end": (start + dt.timedelta(days=days)).isoformat(),
                "messages": "m",
                "timezone": tz,
                "event": "kobane-day",
            }
        },
    )
    rule = plan.rules["r"]
    reference = full_expansion(plan, "r")
    got = [(o.at, o.index, o.key, o.days_left, o.hours_left) for o in occurrences(plan, rule)]
    assert got == reference
    window_start = localize(dt.datetime.combine(start, dt.time()), BERLIN) + dt.timedelta(
        days=window_day - 10, minutes=window_minute
    )
    window_end = window_start + dt.timedelta(hours=window_hours)
    expected = [item for item in reference if window_start <= item[0] < window_end]
    windowed = [
        (o.at, o.index, o.key, o.days_left, o.hours_left)
        for o in occurrences_between(plan, rule, window_start, window_end)
    ]
    assert windowed == expected


def test_a_one_day_window_of_a_long_rule_expands_days_not_years(monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty years of an hourly rule (175k occurrences): a one-day window expands its days and the DST days before
    it (counted, not listed), a few thousand firings, and gets the indexes the full expansion gives."""
    from amplifier.plan import recurring as module
    from amplifier.plan.schedule import occurrences_between

    plan = schedule(
        {
            "r": {
                "kind": "recurring",
                "cron": "0 * * * *",
                "start": "2020-01-01",
                "end": "2039-12-31",
                "messages": "m",
            }
        },
    )
    expanded = 0
    recurring = module.firings

    def counting(*args: Any) -> Any:
        nonlocal expanded
        for item in recurring(*args):
            expanded += 1
            yield item

    monkeypatch.setattr(module, "firings", counting)
    start = dt.datetime(2035, 6, 1, tzinfo=BERLIN)
    window = list(occurrences_between(plan, plan.rules["r"], start, start + dt.timedelta(days=1)))
    assert [o.key[11:] for o in window] == [f"{hour:02d}:00" for hour in range(24)]
    assert 0 < expanded < 20 * 2 * 3 * 24 + 5 * 24  # three days around each DST change, and the window's days
    hours = (dt.date(2035, 6, 1) - dt.date(2020, 1, 1)).days * 24
    assert window[0].index == hours - 16 + 15  # 16 springs forward without 02:00, 15 falls back with it twice


def test_steady_days_of_a_weekday_cron_are_listed_without_croniter(monkeypatch: pytest.MonkeyPatch) -> None:
    """An hourly rule from March to May in Berlin: croniter expands only the days around the change to summer
    time; the other days are listed directly, and the whole is what one croniter run gives."""
    import croniter as croniter_module

    plan = schedule(
        {
            "r": {
                "kind": "recurring",
                "cron": "15 * * * 1-5",
                "start": "2027-03-01",
                "end": "2027-05-31",
                "messages": "m",
            }
        },
    )
    reference = full_expansion(plan, "r")
    started: list[dt.datetime] = []
    real = croniter_module.croniter

    def counting(expression: str, start: Any = None, *args: Any, **kwargs: Any) -> Any:
        if start is not None:
            started.append(start + dt.timedelta(microseconds=1))  # croniter starts just before a midnight
        return real(expression, start, *args, **kwargs)

    monkeypatch.setattr(croniter_module, "croniter", counting)
    got = [(o.at, o.index, o.key, o.days_left, o.hours_left) for o in occurrences(plan, plan.rules["r"])]
    assert got == reference
    assert len(got) == 66 * 24  # the 66 weekdays of March to May, 24 firings each
    assert started == [dt.datetime(2027, 3, 27, tzinfo=BERLIN)]  # one run, over 27-29 March (DST on the 28th)
