"""Bad input gets a clear ``file:line:col: message``, all problems at once, never a traceback."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.errors import CampaignError
from tests.conftest import BASE_MESSAGES, BASE_SCHEDULE


def problems(path: Path) -> list[str]:
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    return info.value.lines()


def located(lines: list[str], file: str, line: int, col: int | None, fragment: str) -> bool:
    for text in lines:
        match = re.match(r"^(.*?):(\d+):(\d+): (.*)$", text)
        assert match, f"not file:line:col: {text}"
        name, at_line, at_col, message = match.groups()
        if (
            name.endswith(file)
            and int(at_line) == line
            and (col is None or int(at_col) == col)
            and fragment in message
        ):
            return True
    return False


SCHEDULE_CASES = [
    # (description, replace-this, with-this, line, col, message fragment)
    (
        "unknown key",
        "  language: en\n",
        "  langauge: en\n",
        4,
        3,
        "unknown key 'langauge' (did you mean 'language'?)",
    ),
    (
        "unknown timezone",
        "timezone: Europe/Berlin",
        "timezone: Europe/Berln",
        3,
        13,
        "unknown timezone 'Europe/Berln'",
    ),
    (
        "bad platform",
        "platform: bluesky",
        "platform: blusky",
        16,
        15,
        "platform: 'blusky' is not one of mastodon or bluesky (did you mean 'bluesky'?)",
    ),
    (
        "unknown account in rule",
        "    messages: countdown\n",
        "    messages: countdown\n    accounts: [masto, skye]\n",
        26,
        23,
        "rule 'countdown' names unknown account 'skye' (did you mean 'sky'?)",
    ),
    (
        "unknown message set",
        "messages: countdown",
        "messages: countdwn",
        25,
        15,
        "unknown message set 'countdwn' (did you mean 'countdown'?)",
    ),
    (
        "unknown event",
        "    event: kobane-day\n    days",
        "    event: kobane\n    days",
        22,
        12,
        "unknown event 'kobane'",
    ),
    ("bad days", "days_before: [3, 2, 1]", "days_before: [3, two, 1]", 23, 22, "days_before.1"),
    (
        "hours without a time",
        '    at: "10:00"\n',
        '    at: "10:00"\n    hours_before: [2]\n',
        25,
        19,
        "hours_before needs a start time",
    ),
    ("secret in yaml", "token_env: TEST_MASTO_TOKEN", "token_env: abc123secretvalue", 14, 16, "token_env"),
    ("bad url", "url: https://riseup4rojava.org/take-action/", "url: not a url", 9, 10, "url"),
    (
        "bad cron",
        "    kind: countdown\n",
        "    kind: recurring\n    cron: 61 * * * *\n    start: 2027-01-01\n    end: 2027-01-02\n",
        22,
        11,
        "cron '61 * * * *': the minute field '61' is out of range; use 0-59",
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "line", "col", "fragment"), SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES]
)
def test_schedule_problem_is_located(
    campaign_dir: Callable[..., Path], name: str, old: str, new: str, line: int, col: int, fragment: str
) -> None:
    assert old in BASE_SCHEDULE, name
    lines = problems(campaign_dir(schedule=BASE_SCHEDULE.replace(old, new, 1)))
    assert located(lines, "schedule.yaml", line, col, fragment), lines


def test_secret_value_is_not_echoed(campaign_dir: Callable[..., Path]) -> None:
    lines = problems(campaign_dir(schedule=BASE_SCHEDULE.replace("TEST_MASTO_TOKEN", "abc123secretvalue")))
    assert not any("abc123secretvalue" in line for line in lines)


MESSAGE_CASES = [
    (
        "unknown variable",
        '{{ event.name }}."',
        '{{ evnt.name }}."',
        6,
        None,
        "unknown template variable 'evnt'",
    ),
    ("syntax error", '{{ event.name }}."', '{{ event.name }."', 6, None, "template syntax error"),
    (
        "unknown filter",
        "{{ days_left }} days",
        "{{ days_left | dayz }} days",
        8,
        None,
        "unknown filter 'dayz'",
    ),
    ("unknown key", "    hashtags:", "    hashtgs:", 3, 5, "unknown key 'hashtgs'"),
    (
        "missing language",
        '          en: "{{ event.name }} is in',
        '          de: "{{ event.name }} is in',
        8,
        11,
        "variant 2 of 'countdown' has no 'en' text",
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "line", "col", "fragment"), MESSAGE_CASES, ids=[c[0] for c in MESSAGE_CASES]
)
def test_message_problem_is_located(
    campaign_dir: Callable[..., Path],
    name: str,
    old: str,
    new: str,
    line: int,
    col: int | None,
    fragment: str,
) -> None:
    assert old in BASE_MESSAGES, name
    lines = problems(campaign_dir(messages={"main.yaml": BASE_MESSAGES.replace(old, new, 1)}))
    assert located(lines, "main.yaml", line, col, fragment), lines


def test_template_error_in_block_scalar_points_at_the_template_line(
    campaign_dir: Callable[..., Path],
) -> None:
    messages = """\
sets:
  countdown:
    variants:
      - text:
          en: |
            {{ days_left }} days to go.
            See you on {{ event.dat | date }} and {{ unknown_thing }}.
"""
    lines = problems(campaign_dir(messages={"main.yaml": messages}))
    assert located(lines, "main.yaml", 7, 13, "unknown template variable 'unknown_thing'"), lines


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: [1,\n", "invalid YAML"),
        ("campaign: {name: x}\ncampaign: {name: y}\n", "duplicate key"),
        ("- just\n- a list\n", "expected a mapping"),
        ("campaign:\n\tname: x\n", "invalid YAML"),
    ],
)
def test_invalid_yaml(campaign_dir: Callable[..., Path], text: str, fragment: str) -> None:
    lines = problems(campaign_dir(schedule=text))
    assert any(
        (fragment in line and line.startswith(str(Path("schedule.yaml")))) or fragment in line
        for line in lines
    )
    assert all(re.match(r"^.+:\d+:\d+: ", line) for line in lines)


def test_images_need_a_file_and_alt_text(campaign_dir: Callable[..., Path]) -> None:
    messages = BASE_MESSAGES.replace(
        "    hashtags: [Riseup4Rojava]\n",
        "    hashtags: [Riseup4Rojava]\n    images:\n      - path: images/missing.png\n        alt: {de: Ein Bild}\n",
    )
    lines = problems(campaign_dir(messages={"main.yaml": messages}))
    assert located(lines, "main.yaml", 5, 15, "image file not found: images/missing.png"), lines
    assert located(lines, "main.yaml", 6, 14, "has no alt text in 'en'"), lines


def test_image_without_alt_key(campaign_dir: Callable[..., Path]) -> None:
    messages = BASE_MESSAGES.replace(
        "    hashtags: [Riseup4Rojava]\n", "    hashtags: [Riseup4Rojava]\n    images:\n      - path: a.png\n"
    )
    lines = problems(campaign_dir(messages={"main.yaml": messages}))
    assert located(lines, "main.yaml", 5, 9, "missing required key 'alt'"), lines


def test_all_problems_at_once(campaign_dir: Callable[..., Path]) -> None:
    schedule = BASE_SCHEDULE.replace("messages: countdown", "messages: nope").replace(
        "Europe/Berlin", "Mars/Olympus"
    )
    messages = BASE_MESSAGES.replace("{{ event.name }}.", "{{ evnt }}.")
    path = campaign_dir(schedule=schedule, messages={"main.yaml": messages})
    lines = problems(path)
    # The schedule's shape problem stops the cross-file checks, but the message file is still checked.
    assert any("unknown timezone 'Mars/Olympus'" in line for line in lines)
    assert any("unknown template variable 'evnt'" in line for line in lines)
    fixed = schedule.replace("Mars/Olympus", "Europe/Berlin")
    lines = problems(campaign_dir(schedule=fixed, messages={"main.yaml": messages}))
    assert any("unknown message set 'nope'" in line for line in lines)
    assert any("unknown template variable 'evnt'" in line for line in lines)


def test_duplicate_message_set_across_files(campaign_dir: Callable[..., Path]) -> None:
    lines = problems(campaign_dir(messages={"a.yaml": BASE_MESSAGES, "b.yaml": BASE_MESSAGES}))
    assert located(lines, "b.yaml", 2, 3, "message set 'countdown' is also defined in"), lines


def test_no_message_files(campaign_dir: Callable[..., Path]) -> None:
    lines = problems(campaign_dir(messages={}))
    assert any("no message file matches 'messages/*.yaml'" in line for line in lines), lines


def test_missing_schedule(tmp_path: Path) -> None:
    lines = problems(tmp_path / "nope.yaml")
    assert lines == [f"{tmp_path / 'nope.yaml'}:1:1: file not found"]


def test_example_campaign_is_valid() -> None:
    campaign = load_campaign(Path(__file__).resolve().parents[2] / "schedule.yaml")
    assert {"ku", "ckb", "ar", "tr", "de", "en"} <= set(campaign.languages)
    assert "kobane-day" in campaign.schedule.events
