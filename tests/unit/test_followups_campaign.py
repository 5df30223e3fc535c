"""Follow-up settings (``boost``, ``delete_after``, ``pin``): the YAML with located plain-words errors, the
follow-ups the planner attaches to each post, and what the previews show."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.errors import CampaignError
from amplifier.plan.followups import describe
from amplifier.plan.planner import plan_window
from amplifier.plan.post import Followup
from tests.conftest import BASE_SCHEDULE
from tests.unit.test_campaign_errors import located

BERLIN = ZoneInfo("Europe/Berlin")

ACCOUNTS = """\
  masto-de:
    platform: mastodon
    instance: https://mastodon.example
    language: en
    token_env: TEST_MASTO_DE_TOKEN
  sky-ku:
    platform: bluesky
    handle: ku.bsky.social
    password_env: TEST_SKY_KU_PASSWORD
"""
SCHEDULE = BASE_SCHEDULE.replace("rules:\n", ACCOUNTS + "rules:\n").replace(
    "    messages: countdown\n", "    messages: countdown\n    accounts: [masto, sky]\n{rule}"
)

SET = """\
sets:
  countdown:
{extra}    variants:
      - text:
          en: "{{{{ days_left }}}} days until {{{{ event.name }}}}."
"""


def indent(text: str, by: str) -> str:
    return "".join(f"{by}{line}\n" for line in text.splitlines())


def write(campaign_dir: Callable[..., Path], extra: str = "", rule: str = "") -> Path:
    return campaign_dir(
        schedule=SCHEDULE.replace("{rule}", indent(rule, "    ")),
        messages={"main.yaml": SET.format(extra=indent(extra, "    "))},
    )


def problems(campaign_dir: Callable[..., Path], extra: str = "", rule: str = "") -> list[str]:
    with pytest.raises(CampaignError) as info:
        load_campaign(write(campaign_dir, extra, rule))
    return info.value.lines()


# -- the YAML ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "line", "col", "fragment"),
    [
        (
            "boost: [masto-de, nobody-here]",
            3,
            23,
            "'nobody-here', which is not one of the campaign's accounts",
        ),
        (
            "boost: [masto-de, masto]",
            3,
            23,
            "masto would boost its own post (rule 'countdown' posts from it)",
        ),
        ("boost:\n  accounts: [masto-dee]", 4, 14, "(did you mean 'masto-de'?)"),
        ("boost: [masto-de, masto-de]", 3, 5, "account listed twice: masto-de"),
        ("boost: {accounts: []}", 3, 5, "at least 1"),
        ("boost: {accounts: [sky-ku], delay: -5m}", 3, 5, "boost"),
        ("delete_after: soon", 3, 5, "delete_after"),
        ("pin: maybe", 3, 5, "pin"),
    ],
)
def test_set_settings_are_checked_where_they_stand(
    campaign_dir: Callable[..., Path], extra: str, line: int, col: int, fragment: str
) -> None:
    lines = problems(campaign_dir, extra)
    assert located(lines, "main.yaml", line, None, fragment), lines
    if "which is not" in fragment or "own post" in fragment:
        assert located(lines, "main.yaml", line, col, fragment), lines


def test_a_boost_on_a_platform_the_rule_does_not_post_to_is_refused(
    campaign_dir: Callable[..., Path],
) -> None:
    schedule = SCHEDULE.replace("accounts: [masto, sky]", "accounts: [masto]")
    path = campaign_dir(
        schedule=schedule.replace("{rule}", indent("boost: [masto-de, sky-ku]", "    ")),
        messages={"main.yaml": SET.format(extra="")},
    )
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    lines = info.value.lines()
    assert located(
        lines,
        "schedule.yaml",
        36,
        23,
        "sky-ku is a bluesky account, but rule 'countdown' posts only to mastodon",
    ), lines
    assert len(lines) == 1


def test_a_rule_boost_wins_and_is_checked_in_schedule_yaml(campaign_dir: Callable[..., Path]) -> None:
    lines = problems(campaign_dir, "boost: [masto-de]", rule="boost: [sky]")
    assert located(lines, "schedule.yaml", 36, 13, "sky would boost its own post"), lines
    assert len(lines) == 1  # the set's list is not the one used


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d", dt.timedelta(days=1)),
        ("12h", dt.timedelta(hours=12)),
        ("1d12h", dt.timedelta(days=1, hours=12)),
        ("30m", dt.timedelta(minutes=30)),
        ("PT30M", dt.timedelta(minutes=30)),
        ("3600", dt.timedelta(hours=1)),
    ],
)
def test_durations(campaign_dir: Callable[..., Path], text: str, expected: dt.timedelta) -> None:
    campaign = load_campaign(
        write(campaign_dir, f"delete_after: {text}\nboost: {{accounts: [sky-ku], delay: {text}}}")
    )
    message_set = campaign.message_sets["countdown"]
    assert message_set.delete_after == expected
    assert message_set.boost is not None
    assert message_set.boost.delay == expected


# -- the plan ------------------------------------------------------------------------------------------------


def test_posts_carry_their_followups(campaign_dir: Callable[..., Path]) -> None:
    campaign = load_campaign(
        write(campaign_dir, "boost: {accounts: [masto-de, sky-ku], delay: 10m}\ndelete_after: 1d\npin: true")
    )
    start = dt.datetime(2027, 10, 31, 0, 0, tzinfo=BERLIN)
    posts = {p.account: p for p in plan_window(campaign, start, start + dt.timedelta(days=1)).posts}
    day_after = dt.datetime(2027, 11, 2, 0, 0, tzinfo=BERLIN)  # the all-day event ends at midnight
    assert posts["masto"].followups == (
        Followup("boost", "masto-de", delay=dt.timedelta(minutes=10)),
        Followup("pin", "masto"),
        Followup("unpin", "masto", at=day_after),
        Followup("delete", "masto", at=day_after + dt.timedelta(days=1)),
    )
    # Each booster boosts the posts of its own platform only.
    assert [f.account for f in posts["sky"].followups if f.kind == "boost"] == ["sky-ku"]
    assert posts["sky"].to_json()["followups"][0] == {
        "kind": "boost",
        "account": "sky-ku",
        "after_published": 600,
    }
    assert (
        "followups"
        not in plan_window(load_campaign(write(campaign_dir)), start, start + dt.timedelta(days=1))
        .posts[0]
        .to_json()
    )


def test_delete_after_without_an_event_counts_from_the_post() -> None:
    from amplifier.plan.followups import FollowupPlan

    at = dt.datetime(2027, 1, 20, 9, 0, tzinfo=dt.UTC)
    plan = FollowupPlan(account="masto", delete_after=dt.timedelta(hours=12), pin=True)
    assert plan.for_slot(at, None) == (
        Followup("pin", "masto"),
        Followup("delete", "masto", at=at + dt.timedelta(hours=12)),
    )
    assert FollowupPlan(account="masto").for_slot(at, None) == ()


def test_describe() -> None:
    at = dt.datetime(2027, 11, 2, 0, 0, tzinfo=BERLIN)
    line = describe(
        (
            Followup("boost", "a", delay=dt.timedelta(minutes=10)),
            Followup("boost", "b", delay=dt.timedelta(minutes=10)),
            Followup("pin", "x"),
            Followup("unpin", "x", at=at),
            Followup("delete", "x", at=at + dt.timedelta(days=1)),
        ),
        BERLIN,
    )
    assert line == "boost: a, b (+10 min) · pin until 2027-11-02 00:00 · delete 2027-11-03 00:00"
    assert describe(()) == ""


def test_preview_shows_followups_in_the_table_and_the_html(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., object], tmp_path: Path
) -> None:
    path = write(campaign_dir, "boost: [masto-de]\ndelete_after: 1d")
    result = run_cli("preview", "--config", str(path), "--from", "2027-10-31", "--to", "2027-11-01")
    assert "boost: masto-de · delete 2027-11-03 00:00" in result.out  # type: ignore[attr-defined]
    html = tmp_path / "preview.html"
    run_cli(
        "preview",
        "--config",
        str(path),
        "--from",
        "2027-10-31",
        "--to",
        "2027-11-01",
        "--format",
        "html",
        "-o",
        str(html),
    )
    assert '<div class="followups">boost: masto-de · delete 2027-11-03 00:00</div>' in html.read_text()


def test_compose_shows_and_checks_followups(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    path = write(campaign_dir)
    common = ("compose", "Join us", "--config", str(path), "--account", "masto", "--now", "2027-10-30T10:00")
    result = run_cli(*common, "--event", "kobane-day", "--boost", "masto-de", "--pin", "--delete-after", "1d")
    assert result.code == 0, result.err
    assert "boost: masto-de · pin until 2027-11-02 00:00 · delete 2027-11-03 00:00" in result.out
    data = json.loads(run_cli(*common, "--boost", "masto-de", "--format", "json").out)
    assert data["followups"] == [{"kind": "boost", "account": "masto-de", "after_published": 0}]
    refused = run_cli(*common, "--boost", "sky-ku")
    assert refused.code == 2
    assert "--boost: sky-ku is a bluesky account; it cannot boost a mastodon post" in refused.err
    assert "not a duration" in run_cli(*common, "--delete-after", "soon").err
    assert "only with --account" in run_cli("compose", "x", "--platform", "bluesky", "--pin").err


def test_a_dry_run_says_which_followups_would_go_out(
    campaign_dir: Callable[..., Path],
    run_cli: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMPLIFIER_SECRETS_DIR", str(tmp_path / "no-secrets"))
    path = write(campaign_dir, "boost: [masto-de, sky-ku]\npin: true")
    args = ("--config", str(path), "--state", str(tmp_path / "state"))
    result = run_cli(*args, "run", "--once", "--dry-run", "--now", "2027-10-29T10:00", "--log-format", "json")
    assert result.code == 0, result.err
    events = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    done = sorted((e["kind"], e["account"], e["reason"]) for e in events if e["event"] == "followup-done")
    assert [(kind, account) for kind, account, _ in done] == [
        ("boost", "masto-de"),
        ("boost", "sky-ku"),
        ("pin", "masto"),
        ("pin", "sky"),
    ]
    assert all(reason.startswith("dry run: would ") for _, _, reason in done)
    status = json.loads(run_cli(*args, "status", "--now", "2027-10-29T10:05", "--format", "json").out)
    assert status["counts"]["published"] == 0  # the real ledger is left alone


def test_validate_warns_about_pins_nothing_unpins_and_over_mastodons_limit(
    campaign_dir: Callable[..., Path],
) -> None:
    from amplifier.plan.review import review

    path = write(campaign_dir, "pin: true")
    schedule = path.read_text().replace("days_before: [3, 2, 1]", "days_before: [7, 6, 5, 4, 3, 2, 1]")
    path.write_text(schedule)
    now = dt.datetime(2027, 10, 1, tzinfo=dt.UTC)
    warnings = [str(w) for w in review(load_campaign(path), now).warnings]
    assert any(
        "rule 'countdown' pins 7 posts on each of masto, all pinned until its event ends; Mastodon allows 5"
        in w
        for w in warnings
    ), warnings
    once = schedule.replace(
        'kind: countdown\n    event: kobane-day\n    days_before: [7, 6, 5, 4, 3, 2, 1]\n    at: "10:00"',
        "kind: once\n    at: 2027-10-30T10:00",
    )
    path.write_text(once)
    warnings = [str(w) for w in review(load_campaign(path), now).warnings]
    assert any("rule 'countdown' has no event: its posts stay pinned" in w for w in warnings), warnings
    path.write_text(schedule.replace("days_before: [7, 6, 5, 4, 3, 2, 1]", "days_before: [2, 1]"))
    assert not any("pin" in str(w) for w in review(load_campaign(path), now).warnings)
