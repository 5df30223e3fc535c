"""``amplifier report``: the counts a daemon published and read back, by language, variant, platform...; the
JSON and CSV shapes are pinned (version 1)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from amplifier.campaign.load import load_campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.cli.main import cli
from amplifier.cli.report import CSV_COLUMNS
from amplifier.daemon.events import EventLog
from amplifier.daemon.loop import Daemon
from amplifier.daemon.settings import DaemonSettings
from amplifier.delivery.ledger import Ledger, open_ledger
from tests.unit.test_daemon import BERLIN, Clock, FakeServer
from tests.unit.test_readback import Reader

SCHEDULE = """\
campaign:
  name: Report tests
  timezone: Europe/Berlin
events:
  day:
    name: {en: The Day, ar: اليوم}
    date: 2027-11-01
accounts:
  masto:
    platform: mastodon
    instance: https://mastodon.example
    token_env: T_MASTO
  sky:
    platform: bluesky
    handle: campaign.bsky.social
    password_env: T_SKY
    language: ar
rules:
  countdown:
    kind: countdown
    event: day
    days_before: [3, 2, 1]
    at: "10:00"
    messages: hello
"""

MESSAGES = """\
sets:
  hello:
    variants:
      - text: {en: "First words, {{ days_left }} days left", ar: "الكلمات الأولى"}
      - text: {en: "Second words, {{ days_left }} days left", ar: "الكلمات الثانية"}
"""


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=BERLIN)


@pytest.fixture
def campaign_dir(tmp_path: Path) -> Path:
    """The countdown published on both accounts (3 days), read back at 1 h and 24 h; one post deleted."""
    (tmp_path / "messages").mkdir()
    (tmp_path / "schedule.yaml").write_text(SCHEDULE)
    (tmp_path / "messages" / "hello.yaml").write_text(MESSAGES)
    Reader.likes, Reader.deleted, Reader.reads, Reader.read_faults = {}, set(), [], []
    campaign = load_campaign(tmp_path / "schedule.yaml")
    clock = Clock(at("2027-10-29T10:00"))
    ledger: Ledger = open_ledger(tmp_path / "state", clock.now)
    server = FakeServer()

    def publisher(account: str, settings: MastodonAccount | BlueskyAccount) -> Reader:
        made = Reader(account, settings.platform, server)
        made.clock = clock  # type: ignore[attr-defined]
        return made

    daemon = Daemon(
        campaign,
        ledger,
        publisher,
        clock=clock,
        log=EventLog(None, clock=clock),
        settings=DaemonSettings(),
        state_dir=tmp_path / "state",
        rng=random.Random(1),
        environ={},
    )
    daemon.start(clock.now)
    Reader.likes.update(
        {
            "countdown:masto:2027-10-29T10:00": 5,
            "countdown:sky:2027-10-29T10:00": 7,
            "countdown:masto:2027-10-30T10:00": 2,
            "countdown:sky:2027-10-31T10:00": 1,
        }
    )
    Reader.deleted.add("countdown:masto:2027-10-31T10:00")
    for text in ("2027-10-29T10:00", "2027-10-30T10:00", "2027-10-31T10:00", "2027-11-01T11:00"):
        clock.now = at(text)
        daemon.plan(clock.now)
        daemon.tick(clock.now)
    daemon.close()
    ledger.close()
    return tmp_path


def run(folder: Path, *args: str) -> str:
    result = CliRunner().invoke(
        cli,
        ["--config", str(folder / "schedule.yaml"), "--state", str(folder / "state"), "report", *args],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output


NOW = ("--now", "2027-11-01T12:00", "--from", "2027-10-28T00:00")


def test_json_is_versioned_and_pinned(campaign_dir: Path) -> None:
    data = json.loads(run(campaign_dir, *NOW, "--format", "json"))
    assert list(data) == [
        "version", "campaign", "from", "to", "as_of", "by", "totals", "groups", "by_lang", "by_platform",
        "days", "variants", "top", "events",
    ]  # fmt: skip
    assert data["version"] == 1
    tally_keys = [
        "posts", "published", "failed", "expired", "skipped", "pending", "read",
        "likes", "reposts", "replies", "quotes", "engagement",
    ]  # fmt: skip
    assert list(data["totals"]) == tally_keys
    assert data["totals"]["published"] == 6
    assert data["totals"]["likes"] == 5 + 7 + 2 + 1
    assert data["totals"]["read"] == 5  # the deleted post has no reading with counts
    assert [(g["key"], g["published"], g["likes"]) for g in data["groups"]] == [("ar", 3, 8), ("en", 3, 7)]
    assert list(data["groups"][0]) == ["key", *tally_keys]
    assert [d["day"] for d in data["days"]] == ["2027-10-29", "2027-10-30", "2027-10-31"]
    assert data["events"] == [
        {
            "id": "day",
            "name": "The Day",
            "start": "2027-11-01T00:00:00+01:00",
            "end": "2027-11-02T00:00:00+01:00",
        }
    ]
    # variants rotate by occurrence: 10-29 and 10-31 are variant 1, 10-30 variant 2
    en = next(v for v in data["variants"] if v["lang"] == "en")
    assert [(v["variant"], v["published"], v["likes"]) for v in en["variants"]] == [(1, 2, 5), (2, 1, 2)]
    top = data["top"]
    assert [t["post_id"] for t in top] == [
        "countdown:sky:2027-10-29T10:00",
        "countdown:masto:2027-10-29T10:00",
        "countdown:masto:2027-10-30T10:00",
        "countdown:sky:2027-10-31T10:00",
    ]
    assert list(top[0]) == [
        "post_id", "account", "platform", "lang", "due_at", "url", "text",
        "likes", "reposts", "replies", "quotes", "engagement", "gone",
    ]  # fmt: skip
    assert top[0]["text"] == "الكلمات الأولى"
    assert top[0]["url"] == "https://example.test/0"


@pytest.mark.parametrize(
    ("by", "keys"),
    [
        ("platform", ["bluesky", "mastodon"]),
        ("account", ["masto", "sky"]),
        ("variant", ["hello #1", "hello #2"]),
        ("event", ["day"]),
        ("message-set", ["hello"]),
        ("rule", ["countdown"]),
    ],
)
def test_by(campaign_dir: Path, by: str, keys: list[str]) -> None:
    data = json.loads(run(campaign_dir, *NOW, "--format", "json", "--by", by))
    assert [g["key"] for g in data["groups"]] == keys
    assert sum(g["published"] for g in data["groups"]) == 6


def test_as_of_an_earlier_instant_shows_the_earlier_readings(campaign_dir: Path) -> None:
    data = json.loads(
        run(campaign_dir, "--now", "2027-10-29T11:30", "--from", "2027-10-28T00:00", "--format", "json")
    )
    assert data["totals"]["published"] == 2  # the later posts are not due yet
    assert data["totals"]["likes"] == 0  # nothing read before 11:00 + 1 h


def test_csv_opens_in_a_spreadsheet_as_is(campaign_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    CliRunner().invoke(
        cli,
        ["--config", str(campaign_dir / "schedule.yaml"), "--state", str(campaign_dir / "state"), "report",
         *NOW, "--format", "csv", "-o", str(target)],
        catch_exceptions=False,
    )  # fmt: skip
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0] == [
        "report_version", "by", "key", "posts", "published", "failed", "expired", "skipped", "pending", "read",
        "likes", "reposts", "replies", "quotes", "engagement",
    ]  # fmt: skip
    assert [row[:5] for row in rows[1:]] == [
        ["1", "lang", "ar", "3", "3"],
        ["1", "lang", "en", "3", "3"],
        ["1", "lang", "(total)", "6", "6"],
    ]


def test_table_and_html(campaign_dir: Path) -> None:
    table = run(campaign_dir, *NOW)
    assert "2027-10-27 22:00 .. 2027-11-01 11:00 UTC" in table  # Berlin times (summer, then winter), in UTC
    assert "variants of hello (en)" in table
    assert "countdown:sky:2027-10-29T10:00" in table
    page = run(campaign_dir, *NOW, "--format", "html")
    assert "<svg" in page
    assert "http" not in page.replace("https://example.test/", "")  # nothing fetched: only the posts' links
    assert 'dir="auto" lang="ar">الكلمات الأولى' in page


def test_an_empty_window_is_a_report_of_zeros(campaign_dir: Path) -> None:
    data = json.loads(run(campaign_dir, "--now", "2027-10-01T00:00", "--format", "json"))
    assert data["totals"]["posts"] == 0
    assert data["top"] == []
    assert "No posts in this window" in run(campaign_dir, "--now", "2027-10-01T00:00", "--format", "html")


POST_KEYS_PINNED = [
    "post_id", "account", "platform", "lang", "rule", "message_set", "variant", "state", "due_at", "url",
    "parts_read", "parts_gone", "likes", "reposts", "replies", "quotes", "engagement", "last_read_at",
]  # fmt: skip


def test_posts_lists_every_post_with_its_engagement_in_json(campaign_dir: Path) -> None:
    data = json.loads(run(campaign_dir, *NOW, "--format", "json", "--posts"))
    assert list(data)[-2:] == ["posts_version", "posts"]
    assert data["posts_version"] == 1
    assert data["totals"] == json.loads(run(campaign_dir, *NOW, "--format", "json"))["totals"]
    posts = data["posts"]
    assert [list(post) for post in posts] == [POST_KEYS_PINNED] * 6  # every post, not only the top ones
    assert [(p["post_id"], p["variant"], p["likes"], p["engagement"]) for p in posts] == [
        ("countdown:masto:2027-10-29T10:00", 1, 5, 5),
        ("countdown:sky:2027-10-29T10:00", 1, 7, 7),
        ("countdown:masto:2027-10-30T10:00", 2, 2, 2),
        ("countdown:sky:2027-10-30T10:00", 2, 0, 0),
        ("countdown:masto:2027-10-31T10:00", 1, None, 0),  # deleted before its first reading
        ("countdown:sky:2027-10-31T10:00", 1, 1, 1),
    ]
    deleted = posts[4]
    assert (deleted["parts_gone"], deleted["parts_read"], deleted["lang"], deleted["state"]) == (
        1, 1, "en", "published",
    )  # fmt: skip
    assert posts[1]["url"] == "https://example.test/0"
    assert posts[1]["lang"] == "ar"
    assert posts[1]["message_set"] == "hello"


def test_posts_csv_is_one_row_per_post(campaign_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "posts.csv"
    run(campaign_dir, *NOW, "--format", "csv", "--posts", "-o", str(target))
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["posts_version", *POST_KEYS_PINNED]
    assert len(rows) == 1 + 6
    deleted = dict(zip(rows[0], rows[5], strict=True))
    assert (deleted["posts_version"], deleted["likes"], deleted["engagement"]) == ("1", "", "0")


def test_posts_are_for_json_and_csv(campaign_dir: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["--config", str(campaign_dir / "schedule.yaml"), "--state", str(campaign_dir / "state"), "report",
         *NOW, "--posts"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "--posts goes with --format json or csv" in str(result.exception) + result.output


def test_the_table_at_80_columns_keeps_every_header_and_link_whole(
    campaign_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 80 columns the 13 columns were cut to ``po…``, ``pu…``, ``fa…`` and the top posts' ids and links
    folded over five lines: a group's outcomes and its reach are two tables, the top posts a list."""
    monkeypatch.setenv("COLUMNS", "80")
    table = run(campaign_dir, *NOW)
    lines = table.splitlines()
    assert all(len(line) <= 80 for line in lines), table
    assert "…" not in table
    header = next(line for line in lines if "published" in line)
    assert all(name in header for name in ("lang", "posts", "published", "failed", "expired", "pending"))
    assert any(all(name in line for name in ("read", "likes", "reposts", "engagement")) for line in lines)
    assert " 1. countdown:sky:2027-10-29T10:00 (sky, ar)" in lines
    assert "    engagement 7: 7 likes, 0 reposts, 0 replies, 0 quotes" in lines
    assert "    https://example.test/0" in lines
    monkeypatch.setenv("COLUMNS", "160")
    wide = run(campaign_dir, *NOW)
    assert any("published" in line and "engagement" in line for line in wide.splitlines())  # one table


def test_a_report_before_anything_was_published_creates_nothing(tmp_path: Path) -> None:
    """It created the state folder and an empty ledger, to report zeros."""
    (tmp_path / "messages").mkdir()
    (tmp_path / "schedule.yaml").write_text(SCHEDULE)
    (tmp_path / "messages" / "m.yaml").write_text(MESSAGES)
    data = json.loads(run(tmp_path, "--now", "2027-10-29T12:00", "--format", "json"))
    assert data["totals"]["posts"] == 0
    assert not (tmp_path / "state").exists()
