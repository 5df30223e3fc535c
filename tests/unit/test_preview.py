"""``amplifier preview`` for people: every text whole at 80 columns, one zone, the ids, the filters, the markers."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.cells import cell_len
from rich.console import Console

from amplifier.cli.preview import Selection
from amplifier.cli.terminal import GUTTER, print_posts, printable
from amplifier.plan.post import Part, PlannedPost
from tests.conftest import BASE_MESSAGES, BASE_SCHEDULE, ROOT, Result

RunCli = Callable[..., Result]
EXAMPLE = str(ROOT / "schedule.yaml")
WINDOW = ("--from", "2027-10-31", "--to", "2027-11-02")
LONG_URL = "https://example.org/" + "/".join(f"segment{n}" for n in range(20)) + "?q=1#end"
RTL_SCHEDULE = BASE_SCHEDULE.replace(
    "    password_env: TEST_SKY_PASSWORD\n",
    "    password_env: TEST_SKY_PASSWORD\n    language: ckb\n    timezone: Asia/Baghdad\n",
)
RTL_MESSAGES = f"""\
sets:
  countdown:
    hashtags: [Riseup4Rojava]
    variants:
      - text:
          en: "{{{{ days_left }}}} days until {{{{ event.name }}}}. Read {LONG_URL} and act."
          ckb: "{{{{ days_left }}}} ڕۆژ ماوە بۆ {{{{ event.name }}}}. {LONG_URL} بژی بەرخۆدانی کۆبانێ! ئەمە دەقێکی درێژە بۆ تاقیکردنەوەی پێچانەوەی دێڕەکان."
"""


def squeeze(text: str) -> str:
    return "".join(text.split())


def preview(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, *args: str, columns: int = 80) -> Result:
    monkeypatch.setenv("COLUMNS", str(columns))
    result = run_cli("preview", *args)
    assert result.code == 0, result.err
    return result


def planned(run_cli: RunCli, *args: str) -> list[dict[str, object]]:
    result = run_cli("preview", *args, "--format", "json")
    assert result.code == 0, result.err
    posts: list[dict[str, object]] = json.loads(result.out)["posts"]
    return posts


@pytest.mark.parametrize("columns", [80, 60, 160])
def test_every_text_is_shown_whole_within_the_width(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, campaign_dir: Callable[..., Path], columns: int
) -> None:
    for args in (
        (EXAMPLE, *WINDOW),
        (str(campaign_dir(RTL_SCHEDULE, {"main.yaml": RTL_MESSAGES})), "--from", "2027-10-29", "--to", "+3d"),
    ):
        out = preview(run_cli, monkeypatch, "-c", *args, columns=columns).out
        lines = out.splitlines()
        assert max(cell_len(line) for line in lines) <= columns
        shown = squeeze(
            "".join(line[len(GUTTER.strip()) :] for line in lines if line.startswith(GUTTER.strip()))
        )
        posts = planned(run_cli, "-c", *args)
        assert posts
        for post in posts:
            assert f"id {post['id']}" in lines
            for part in post["parts"]:  # type: ignore[attr-defined]
                assert squeeze(part["text"]) in shown
    assert squeeze(LONG_URL) in shown


def test_times_are_in_one_zone_said_once(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    out = preview(run_cli, monkeypatch, "-c", EXAMPLE, *WINDOW).out
    assert "times in Europe/Berlin" in out.splitlines()[:3]
    # mastodon-ar and mastodon-tr live in +03, but the table shows the campaign's time, without a zone per row
    assert "Sun 2027-10-31 10:00  mastodon-ar  mastodon  ar  67/500" in out
    assert "+03" not in out
    assert "CET" not in out


def test_tz_shows_and_reads_times_in_another_zone(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    out = preview(
        run_cli,
        monkeypatch,
        "-c",
        EXAMPLE,
        "--from",
        "2027-10-30T20:00",
        "--to",
        "+1d",
        "--tz",
        "America/New_York",
    ).out
    head = out.splitlines()[:3]
    assert "times in America/New_York" in head
    assert "from Sat 2027-10-30 20:00 to Sun 2027-10-31 20:00" in head[1]
    assert "Sun 2027-10-31 05:00  mastodon-en" in out  # 10:00 in Berlin (CET), 05:00 in New York (EDT)


def test_unknown_tz_is_a_usage_error(run_cli: RunCli) -> None:
    result = run_cli("preview", "-c", EXAMPLE, "--tz", "Europe/Berln")
    assert result.code == 2
    assert "--tz: unknown timezone 'Europe/Berln' (did you mean Europe/Berlin" in result.err


@pytest.mark.parametrize(
    ("args", "accounts"),
    [
        (("--platform", "bluesky"), {"bluesky-en", "bluesky-ku", "bluesky-ckb"}),
        (("--lang", "ckb"), {"bluesky-ckb"}),
        (("--lang", "en", "--lang", "de"), {"bluesky-en", "mastodon-en", "mastodon-de"}),
        (("--platform", "mastodon", "--lang", "en"), {"mastodon-en"}),
        (("--platform", "bluesky", "--account", "mastodon-en"), set()),
        (("--account", "mastodon-tr", "--account", "bluesky-ku"), {"mastodon-tr", "bluesky-ku"}),
    ],
)
def test_filters_select_the_accounts(run_cli: RunCli, args: tuple[str, ...], accounts: set[str]) -> None:
    posts = planned(run_cli, "-c", EXAMPLE, *WINDOW, *args)
    assert {post["account"] for post in posts} == accounts


def test_rule_filter(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    posts = planned(run_cli, "-c", EXAMPLE, *WINDOW, "--rule", "kobane-day-thread")
    assert posts
    assert {post["rule"] for post in posts} == {"kobane-day-thread"}
    out = preview(
        run_cli, monkeypatch, "-c", EXAMPLE, *WINDOW, "--rule", "kobane-day-thread", "--lang", "en"
    ).out
    assert "only lang en; rule kobane-day-thread" in out
    assert "kobane-countdown:" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--lang", "fr"), "--lang: unknown lang 'fr' (the accounts post in: ar, ckb, de, en, ku, tr)"),
        (("--rule", "nope"), "--rule: unknown rule 'nope' (the campaign has: "),
        (("--account", "nope"), "--account: unknown account 'nope' (the campaign has: "),
        (("--platform", "twitter"), "'twitter' is not one of 'mastodon', 'bluesky'"),
    ],
)
def test_unknown_filter_values_are_usage_errors(run_cli: RunCli, args: tuple[str, ...], message: str) -> None:
    result = run_cli("preview", "-c", EXAMPLE, *args)
    assert result.code == 2
    assert message in result.err


def test_the_thread_marker_shown_is_the_one_posted(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, campaign_dir: Callable[..., Path]
) -> None:
    long = " ".join(f"Kobanê{n}" for n in range(60))
    for numbering, markers in (("true", ["1/2", "2/2"]), ("false", [])):
        messages = BASE_MESSAGES.replace(
            "    hashtags: [Riseup4Rojava]\n",
            f"    hashtags: [Riseup4Rojava]\n    split: {{numbering: {numbering}}}\n",
        ).replace("until {{ event.name }}.", "until {{ event.name }}. " + long)
        config = str(campaign_dir(messages={"main.yaml": messages}))
        out = preview(
            run_cli, monkeypatch, "-c", config, "--from", "2027-10-29", "--to", "+1d", "--account", "sky"
        ).out
        texts = [line for line in out.splitlines() if line.startswith("│")]
        assert "part 1/2  " in out
        assert "[1/2]" not in out
        assert [
            marker for marker in ("1/2", "2/2") if any(line.endswith(" " + marker) for line in texts)
        ] == markers


def test_control_characters_never_reach_the_terminal() -> None:
    text = "Clear\x1b[2J the screen\x07, keep\ttabs\nand lines \x9b31m"
    part = Part(text, len(text), 500, {"status": text, "visibility": "public"})
    post = PlannedPost(
        "r:a\x1b[31m:2027-01-01T10:00",
        dt.datetime(2027, 1, 1, 10, tzinfo=dt.UTC),
        "r",
        "a",
        "mastodon",
        "en",
        (part,),
        "s",
        0,
    )
    zone = ZoneInfo("UTC")
    selection = Selection(post.at, post.at + dt.timedelta(days=1), zone)
    out = io.StringIO()
    print_posts(Console(file=out, width=80, color_system=None), [post], "name\x1b]0;title\x07", selection)
    shown = out.getvalue()
    assert not {"\x1b", "\x07", "\x9b"} & set(shown)
    assert "Clear\\x1b[2J the screen\\x07, keep" in shown
    assert "│ and lines \\x9b31m" in shown
    assert printable("a\tb\nc\x00") == "a\tb\nc\\x00"


def test_tz_and_filters_apply_to_the_html_page(run_cli: RunCli) -> None:
    result = run_cli(
        "preview", "-c", EXAMPLE, *WINDOW, "--tz", "Asia/Baghdad", "--lang", "ckb", "--format", "html"
    )
    assert result.code == 0, result.err
    assert "times in Asia/Baghdad" in result.out
    assert 'data-lang="ckb"' in result.out
    assert 'data-lang="en"' not in result.out
    assert ">12:00 +03 (10:00 Europe/Berlin)</time>" in result.out  # the account lives in Berlin
