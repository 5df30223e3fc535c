"""The calendar export: one event per post, stable UIDs, zoned start times, full texts, determinism."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplifier.cli.ics import posts_calendar, summary
from amplifier.plan.post import PlannedPost
from tests.conftest import ROOT, Result
from tests.unit.test_html_preview import make_post

RunCli = Callable[..., Result]
STAMP = dt.datetime(2027, 10, 1, 12, 0, tzinfo=dt.UTC)
BERLIN = ZoneInfo("Europe/Berlin")
DAMASCUS = ZoneInfo("Asia/Damascus")


def events(data: bytes) -> list[icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(data)
    return list(calendar.walk("VEVENT"))


def sample() -> list[PlannedPost]:
    return [
        make_post(
            ("Today is World Kobane Day. #Kobane", "Join the actions https://riseup4rojava.org/"),
            "mastodon",
            at=dt.datetime(2027, 11, 1, 9, 0, tzinfo=BERLIN),
        ),
        make_post(
            "ڕۆژی جیهانیی کۆبانێ #Riseup4Rojava",
            "bluesky",
            account="sky-ckb",
            lang="ckb",
            at=dt.datetime(2027, 10, 29, 10, 0, tzinfo=DAMASCUS),
        ),
    ]


def test_one_event_per_post_with_stable_uid_zone_and_texts() -> None:
    posts = sample()
    found = events(posts_calendar(posts, campaign_name="Kobanê 2027", stamp=STAMP))
    assert len(found) == 2
    by_uid = {str(event["UID"]): event for event in found}
    assert set(by_uid) == {post.id for post in posts}
    for post in posts:
        event = by_uid[post.id]
        start = event.decoded("DTSTART")
        assert start == post.at
        assert str(start.tzinfo) == str(post.at.tzinfo)
        assert event["DTSTART"].params["TZID"] == str(post.at.tzinfo)
        assert event.decoded("DTEND") - start == dt.timedelta(minutes=15)
        assert event.decoded("DTSTAMP") == STAMP
        assert str(event["SUMMARY"]).startswith(post.account + ": ")
        description = str(event["DESCRIPTION"])
        for part in post.parts:
            assert part.text in description
        assert post.id in description
        assert [str(c) for c in event["CATEGORIES"].cats] == [post.platform, post.lang]


def test_thread_parts_are_numbered_in_the_description() -> None:
    post = sample()[0]
    description = str(events(posts_calendar([post], campaign_name="C", stamp=STAMP))[0]["DESCRIPTION"])
    assert description.index("[1/2]\nToday is") < description.index("[2/2]\nJoin the actions")


def test_each_zone_has_a_vtimezone_and_the_file_is_rfc5545() -> None:
    data = posts_calendar(sample(), campaign_name="Kobanê 2027", stamp=STAMP)
    calendar = icalendar.Calendar.from_ical(data)
    assert {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")} == {"Europe/Berlin", "Asia/Damascus"}
    assert str(calendar["X-WR-CALNAME"]) == "Kobanê 2027"
    assert data.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")  # every line ends with CRLF
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))  # folded at 75 octets


def test_output_is_deterministic() -> None:
    posts = sample()
    first = posts_calendar(posts, campaign_name="C", stamp=STAMP)
    assert posts_calendar(list(reversed(posts)), campaign_name="C", stamp=STAMP) == first


def test_stamp_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        posts_calendar([], campaign_name="C", stamp=dt.datetime(2027, 1, 1))


def test_empty_calendar() -> None:
    calendar = icalendar.Calendar.from_ical(posts_calendar([], campaign_name="C", stamp=STAMP))
    assert list(calendar.walk("VEVENT")) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Short text", "masto: Short text"),
        (
            "one two three four five six seven eight nine ten",
            "masto: one two three four five six seven eight…",
        ),
        ("x" * 80, "masto: " + "x" * 60 + "…"),
        (
            "ڕۆژی جیهانیی کۆبانێ: 4 ڕۆژ ماوە. https://riseup4rojava.org/take-action/",
            "masto: ڕۆژی جیهانیی کۆبانێ: 4 ڕۆژ ماوە.…",
        ),
    ],
)
def test_summary(text: str, expected: str) -> None:
    assert summary(make_post(text, "mastodon")) == expected


def test_cli_writes_a_calendar_of_the_window(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "campaign.ics"
    result = run_cli(
        "preview",
        "-c",
        str(ROOT / "schedule.yaml"),
        "--from",
        "2027-10-28",
        "--to",
        "2027-11-02",
        "--now",
        "2027-10-01T12:00",
        "--format",
        "ics",
        "-o",
        str(out),
    )
    assert result.code == 0, result.err
    found = events(out.read_bytes())
    assert len(found) == 31
    assert len({str(event["UID"]) for event in found}) == 31
    assert {event.decoded("DTSTAMP") for event in found} == {dt.datetime(2027, 10, 1, 10, 0, tzinfo=dt.UTC)}
    kobane_day = [event for event in found if str(event["UID"]).startswith("kobane-day-thread:mastodon-en:")]
    assert len(kobane_day) == 1
    assert "[3/3]" in str(kobane_day[0]["DESCRIPTION"])


def icalendar_calendar(posts: list[PlannedPost], name: str) -> bytes:
    """The reference: every event built and written by icalendar (as the export was written before)."""
    from amplifier.cli.ics import EVENT_DURATION, PRODID, _event

    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    for post in sorted(posts, key=lambda p: (p.at, p.id)):
        calendar.add_component(_event(post, STAMP, EVENT_DURATION))
    if posts:
        first = min(post.at for post in posts).date() - dt.timedelta(days=366)
        last = max(post.at for post in posts).date() + dt.timedelta(days=366)
        calendar.add_missing_timezones(first_date=first, last_date=last)
    data: bytes = calendar.to_ical()
    return data


TRICKY = [
    "a, b; c \\ d ^ e \\N f\r\ng\nh",
    "x" * 73 + "\\" + "y" * 200,
    "é" * 100 + "^" + "ڕۆژ" * 60,
    "🏳️‍🌈" * 40 + ",;" * 50,
    "",
]


def test_events_are_byte_for_byte_what_icalendar_writes() -> None:
    posts = sample()
    for index, text in enumerate(TRICKY):
        posts.append(
            make_post(
                (text, text[::-1] or "z"),
                "bluesky" if index % 2 else "mastodon",
                account=f"acc,{index};x",
                at=dt.datetime(2027, 10, 30 + index % 2, 2, 30, tzinfo=BERLIN if index % 2 else dt.UTC),
            )
        )
    posts.append(
        make_post("fall back", "mastodon", at=dt.datetime(2027, 10, 31, 2, 30, fold=1, tzinfo=BERLIN))
    )
    data = posts_calendar(posts, campaign_name="Kobanê, 2027; \\ all", stamp=STAMP)
    assert data == icalendar_calendar(posts, "Kobanê, 2027; \\ all")
    assert len(events(data)) == len(posts)


@given(st.text(max_size=400))
def test_fold_and_escape_are_icalendars(text: str) -> None:
    from icalendar.parser.string import _foldline

    from amplifier.cli.ics import escape, fold

    assert escape(text) == icalendar.vText(text).to_ical().decode()
    line = "DESCRIPTION:" + escape(text)
    assert fold(line) == _foldline(line).encode() + b"\r\n"
