"""The ``notify:`` section of schedule.yaml: valid forms, and each mistake located at its file:line:col."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.errors import CampaignError
from tests.conftest import BASE_SCHEDULE

BASE_LINES = BASE_SCHEDULE.count("\n")  # the notify section starts on the line after these


def with_notify(section: str) -> str:
    return BASE_SCHEDULE + section


def test_a_full_notify_section_loads(campaign_dir: Callable[..., Path]) -> None:
    path = campaign_dir(
        with_notify(
            "notify:\n"
            "  repeat: PT2H\n"
            "  group: 10\n"
            "  destinations:\n"
            "    chat:\n"
            "      url_env: AMPLIFIER_NOTIFY_CHAT\n"
            "      events: [post_failed, account_paused]\n"
            "    mail:\n"
            "      url_env: AMPLIFIER_NOTIFY_MAIL\n"
            "      events: []\n"
            "      digest: '09:00'\n"
        )
    )
    notify = load_campaign(path).schedule.notify
    assert notify is not None
    assert notify.repeat == dt.timedelta(hours=2)
    assert notify.group == dt.timedelta(seconds=10)
    assert notify.destinations["chat"].events == ["post_failed", "account_paused"]
    assert notify.destinations["mail"].digest == dt.time(9, 0)


def test_defaults_all_events_every_hour(campaign_dir: Callable[..., Path]) -> None:
    path = campaign_dir(with_notify("notify:\n  destinations:\n    chat: {url_env: CHAT_URL}\n"))
    notify = load_campaign(path).schedule.notify
    assert notify is not None
    assert notify.repeat == dt.timedelta(hours=1)
    assert len(notify.destinations["chat"].events) == 8


@pytest.mark.parametrize(
    ("section", "line", "col", "fragment"),
    [
        (
            "notify:\n  destinations:\n    chat:\n      url_env: CHAT_URL\n      events: [post_faild]\n",
            5,
            16,
            "notify.destinations.chat.events.0: use one of post_failed, post_expired",
        ),
        (
            "notify:\n  destinations:\n    chat:\n      url_env: CHAT_URL\n      evnets: [post_failed]\n",
            5,
            7,
            "unknown key 'evnets' (did you mean 'events'?)",
        ),
        (
            "notify:\n  destinations:\n    chat:\n      url_env: json://hooks.example/T0KEN-abcdef123456\n",
            4,
            16,
            "url_env is the NAME of an environment variable that holds the URL",
        ),
        (
            "notify:\n  destinations:\n    chat:\n      url_env: CHAT_URL\n      events: []\n",
            4,
            7,
            "a destination with no `events` needs a `digest` time",
        ),
        (
            "notify:\n  destinations:\n    chat:\n      url_env: CHAT_URL\n      events: [post_failed, post_failed]\n",
            5,
            15,
            "event listed twice: post_failed",
        ),
        ("notify:\n  destinations: {}\n", 2, 17, "notify.destinations: needs at least 1 entry"),
        (
            "notify:\n  repeat: -PT1H\n  destinations:\n    chat: {url_env: CHAT_URL}\n",
            2,
            11,
            "must not be negative",
        ),
        (
            "notify:\n  destinations:\n    chat:\n      url_env: CHAT_URL\n      digest: '25:00'\n",
            5,
            15,
            "notify.destinations.chat.digest",
        ),
    ],
    ids=["unknown event", "typo", "url in yaml", "nothing to send", "twice", "none", "negative", "bad time"],
)
def test_mistakes_are_located(
    campaign_dir: Callable[..., Path], section: str, line: int, col: int, fragment: str
) -> None:
    path = campaign_dir(with_notify(section))
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    lines = info.value.lines()
    located = [re.match(r"^(.*?):(\d+):(\d+): (.*)$", text) for text in lines]
    assert all(located), lines
    assert any(
        m is not None
        and m[1].endswith("schedule.yaml")
        and (int(m[2]), int(m[3])) == (BASE_LINES + line, col)
        and fragment in m[4]
        for m in located
    ), lines


def test_a_url_written_in_yaml_is_never_echoed(campaign_dir: Callable[..., Path]) -> None:
    path = campaign_dir(
        with_notify(
            "notify:\n  destinations:\n    chat:\n      url_env: json://hooks.example/T0KEN-abcdef123456\n"
        )
    )
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    assert not any("T0KEN" in text for text in info.value.lines())
    assert all(re.match(r"^.*schedule\.yaml:\d+:\d+: ", text) for text in info.value.lines())


def test_the_skeletons_commented_example_is_valid(tmp_path: Path) -> None:
    from amplifier.campaign.scaffold import init_campaign

    folder = tmp_path / "campaign"
    init_campaign(folder, name="C", timezone="Europe/Berlin", today=dt.date(2027, 1, 4))
    schedule = folder / "schedule.yaml"
    text = schedule.read_text(encoding="utf-8")
    start = text.index("# notify:")
    example = "\n".join(line[2:] for line in text[start:].splitlines() if line.startswith("# "))
    schedule.write_text(text[:start] + example + "\n", encoding="utf-8")
    notify = load_campaign(schedule).schedule.notify
    assert notify is not None
    assert notify.destinations["team-chat"].url_env == "AMPLIFIER_NOTIFY_CHAT"
    assert notify.destinations["team-chat"].digest == dt.time(9, 0)
