"""Reply / quote controls and self-labels: the YAML (located plain-words errors), the payloads and gate records the
planner makes, what previews show, and ``amplifier gate``'s command line and ledger record."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.campaign.models import MessageSet
from amplifier.cli.gate import parse_request
from amplifier.delivery.gate import GateRefused, GateRequest, change_gates
from amplifier.delivery.ledger import PlanEntry, SqliteLedger, State
from amplifier.errors import CampaignError, ExitCode, UsageError
from amplifier.plan.adapt import Content, Target, adapt, adapt_text
from amplifier.plan.gates import controls_line
from amplifier.plan.planner import plan_window
from amplifier.publish.base import RateLimitedError
from tests.conftest import BASE_SCHEDULE
from tests.unit.test_campaign_errors import located

T0 = datetime(2027, 10, 29, 9, 0, tzinfo=UTC)
LIST = "at://did:plc:abcdefghijklmnopqrstuvwx/app.bsky.graph.list/3kabcdefghijk"

SET = """\
sets:
  countdown:
{extra}    variants:
      - text:
          en: "{{{{ days_left }}}} days until {{{{ event.name }}}}."
"""


def messages(extra: str) -> dict[str, str]:
    return {"main.yaml": SET.format(extra="".join(f"    {line}\n" for line in extra.splitlines()))}


def problems(campaign_dir: Callable[..., Path], extra: str, schedule: str = BASE_SCHEDULE) -> list[str]:
    path = campaign_dir(schedule=schedule, messages=messages(extra))
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    return info.value.lines()


# -- the YAML ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "line", "fragment"),
    [
        ("replies: [nobody, followers]", 3, "`nobody` cannot be combined with other reply rules"),
        ("replies: [followers, followers]", 3, "reply rule listed twice: followers"),
        (
            f"replies: [mentioned, followers, following, {LIST}, {LIST[:-1]}x, {LIST[:-1]}y]",
            3,
            "6 reply rules; Bluesky allows at most 5",
        ),
        ("replies: everybody", 3, "'everybody' is not a reply rule: use nobody, mentioned"),
        ("replies: [at://did:plc:x/app.bsky.feed.post/3k]", 3, "the at:// URI of a Bluesky list"),
        ("quotes: sometimes", 3, "use one of everyone, followers or nobody"),
        ("labels: [gore]", 3, "graphic-media, nudity, sexual, porn or !no-unauthenticated"),
        ("labels: [porn, porn]", 3, "label listed twice: porn"),
    ],
)
def test_bad_controls_are_located_plain_errors(
    campaign_dir: Callable[..., Path], extra: str, line: int, fragment: str
) -> None:
    lines = problems(campaign_dir, extra)
    assert located(lines, "main.yaml", line, None, fragment), lines


def load_set(campaign_dir: Callable[..., Path], extra: str, schedule: str = BASE_SCHEDULE) -> Any:
    campaign = load_campaign(campaign_dir(schedule=schedule, messages=messages(extra)))
    return campaign, campaign.message_sets["countdown"]


def test_a_single_rule_may_be_written_alone(campaign_dir: Callable[..., Path]) -> None:
    _, message_set = load_set(campaign_dir, "replies: followers\nquotes: false")
    assert message_set.replies == ["followers"]
    assert message_set.quotes is False


def test_a_content_warning_with_images_is_graphic_media_and_sensitive_unless_said_otherwise() -> None:
    base: dict[str, Any] = {"variants": [{"text": {"en": "x"}}]}
    image = {"path": "a.png", "alt": "an image"}
    plain = MessageSet.model_validate(base)
    assert (plain.self_labels(), plain.media_sensitive()) == ((), False)
    warned = MessageSet.model_validate({**base, "content_warning": "war", "images": [image]})
    assert (warned.self_labels(), warned.media_sensitive()) == (("graphic-media",), True)
    text_only = MessageSet.model_validate({**base, "content_warning": "war"})
    assert (text_only.self_labels(), text_only.media_sensitive()) == ((), False)
    chosen = MessageSet.model_validate(
        {**base, "content_warning": "war", "images": [image], "labels": ["nudity"]}
    )
    assert chosen.self_labels() == ("nudity",)
    unlabelled = MessageSet.model_validate(
        {**base, "content_warning": "war", "images": [image], "labels": [], "sensitive": False}
    )
    assert (unlabelled.self_labels(), unlabelled.media_sensitive()) == ((), False)


ACCOUNT_DEFAULTS = BASE_SCHEDULE.replace(
    "    token_env: TEST_MASTO_TOKEN\n", "    token_env: TEST_MASTO_TOKEN\n    quotes: followers\n"
).replace(
    "    password_env: TEST_SKY_PASSWORD\n", "    password_env: TEST_SKY_PASSWORD\n    replies: [following]\n"
)


def posts_of(campaign: Any) -> dict[str, Any]:
    plan = plan_window(campaign, datetime(2027, 10, 1, tzinfo=UTC), datetime(2027, 11, 2, tzinfo=UTC))
    return {post.platform: post for post in plan.posts}


def test_account_defaults_apply_and_a_sets_own_setting_wins(campaign_dir: Callable[..., Path]) -> None:
    campaign, _ = load_set(campaign_dir, "", ACCOUNT_DEFAULTS)
    posts = posts_of(campaign)
    assert posts["mastodon"].parts[0].payload["quote_approval_policy"] == "followers"
    (gate,) = posts["bluesky"].parts[0].gates
    assert gate["allow"] == [{"$type": "app.bsky.feed.threadgate#followingRule"}]

    campaign, _ = load_set(campaign_dir, "replies: nobody\nquotes: true", ACCOUNT_DEFAULTS)
    posts = posts_of(campaign)
    assert posts["mastodon"].parts[0].payload["quote_approval_policy"] == "public"
    (gate,) = posts["bluesky"].parts[0].gates
    assert gate["allow"] == []


# -- payloads ------------------------------------------------------------------------------------------------


def test_bluesky_thread_gates_the_root_and_turns_quotes_off_on_every_part() -> None:
    content = Content(
        texts=("one", "two"), lang="en", replies=("mentioned", LIST), quotes="followers", labels=("porn",)
    )
    first, second = adapt(content, Target("bluesky", created_at=T0)).parts
    threadgate, postgate = first.gates
    assert threadgate == {
        "$type": "app.bsky.feed.threadgate",
        "post": {"$ref": "part:0"},
        "allow": [
            {"$type": "app.bsky.feed.threadgate#mentionRule"},
            {"$type": "app.bsky.feed.threadgate#listRule", "list": LIST},
        ],
        "createdAt": "2027-10-29T09:00:00.000Z",
    }
    assert postgate["embeddingRules"] == [{"$type": "app.bsky.feed.postgate#disableRule"}]
    assert [gate["$type"] for gate in second.gates] == ["app.bsky.feed.postgate"]
    assert second.gates[0]["post"] == {"$ref": "part:1"}
    for part in (first, second):
        assert part.payload["labels"] == {
            "$type": "com.atproto.label.defs#selfLabels",
            "values": [{"val": "porn"}],
        }
    assert first.to_json()["gates"] == list(first.gates)


def test_no_controls_no_gates_and_the_payload_stays_as_before() -> None:
    (part,) = adapt(Content(texts=("hi",), lang="en"), Target("bluesky", created_at=T0)).parts
    assert part.gates == ()
    assert "labels" not in part.payload
    assert "gates" not in part.to_json()
    (status,) = adapt(Content(texts=("hi",), lang="en"), Target("mastodon")).parts
    assert "quote_approval_policy" not in status.payload


def test_mastodon_quote_policy_on_each_part_and_no_reply_control() -> None:
    parts = adapt(
        Content(texts=("one", "two"), lang="en", quotes="nobody", replies=("nobody",)), Target("mastodon")
    ).parts
    assert [part.payload["quote_approval_policy"] for part in parts] == ["nobody", "nobody"]
    assert all(part.gates == () for part in parts)


@pytest.mark.parametrize(
    ("content", "platform", "line"),
    [
        (
            Content(texts=("x",), lang="en", replies=("nobody",), quotes="nobody"),
            "bluesky",
            "replies: nobody · quotes: off",
        ),
        (
            Content(texts=("x",), lang="en", replies=("followers", "mentioned"), labels=("graphic-media",)),
            "bluesky",
            "replies: followers, mentioned · labels: graphic-media",
        ),
        (Content(texts=("x",), lang="en", quotes="followers"), "mastodon", "quotes: followers"),
        (Content(texts=("x",), lang="en"), "mastodon", ""),
    ],
)
def test_previews_say_the_controls(content: Content, platform: Any, line: str) -> None:
    assert controls_line(adapt(content, Target(platform, created_at=T0)).parts) == line


def test_compose_shows_the_gates_in_its_json_and_text(run_cli: Callable[..., Any]) -> None:
    result = run_cli(
        "compose",
        "Hello",
        "--platform",
        "bluesky",
        "--replies",
        "nobody",
        "--quotes",
        "nobody",
        "--format",
        "json",
    )
    assert result.code == 0, result.err
    (part,) = json.loads(result.out)["parts"]
    assert [gate["$type"] for gate in part["gates"]] == ["app.bsky.feed.threadgate", "app.bsky.feed.postgate"]
    result = run_cli("compose", "Hello", "--platform", "mastodon", "--quotes", "followers")
    assert "quotes: followers" in result.out
    result = run_cli(
        "compose", "Hello", "--platform", "bluesky", "--replies", "nobody", "--replies", "followers"
    )
    assert result.code == ExitCode.INVALID
    assert "`nobody` cannot be combined" in result.err


# -- amplifier gate ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replies", "quotes", "expected"),
    [
        (("nobody",), None, GateRequest(replies=())),
        (("followers", "mentioned"), "off", GateRequest(replies=("followers", "mentioned"), quotes="nobody")),
        (("everyone",), "on", GateRequest(everyone_replies=True, quotes="public")),
        ((), "followers", GateRequest(quotes="followers")),
    ],
)
def test_gate_command_line(replies: tuple[str, ...], quotes: str | None, expected: GateRequest) -> None:
    assert parse_request(replies, quotes) == expected


@pytest.mark.parametrize(
    ("replies", "quotes", "fragment"),
    [
        ((), None, "nothing to change"),
        (("everyone", "followers"), None, "everyone cannot be combined"),
        (("nobody", "followers"), None, "`nobody` cannot be combined"),
    ],
)
def test_gate_command_line_errors(replies: tuple[str, ...], quotes: str | None, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_request(replies, quotes)


class FakeSky:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[Sequence[str], dict[str, Any]]] = []
        self.fail = fail

    def set_gates(self, rkeys: Sequence[str], **change: Any) -> list[str]:
        self.calls.append((rkeys, change))
        if self.fail is not None:
            raise self.fail
        return [f"threadgate on {rkeys[0]}"]


class FakeMasto:
    def set_quote_policy(self, status_ids: Sequence[str], policy: str) -> list[str]:
        return [f"status {status_id}: quotes {policy}" for status_id in status_ids]


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with SqliteLedger.open(tmp_path / "ledger.db", T0) as ledger:
        ledger.sync_plan(
            [
                PlanEntry(post_id, account, platform, "r", T0, "h", 2)
                for post_id, account, platform in (("s", "sky", "bluesky"), ("m", "masto", "mastodon"))
            ],
            T0,
        )
        yield ledger


def publish(ledger: Any, post_id: str) -> None:
    assert ledger.claim(post_id, T0, "tok")
    ledger.mark_published(post_id, [{"id": f"{post_id}1"}, {"id": f"{post_id}2"}], T0, token="tok")


def test_change_gates_writes_through_the_publisher_and_records_who_and_what(ledger: Any) -> None:
    with pytest.raises(GateRefused, match="it is planned, not published"):
        change_gates(ledger, FakeSky(), "s", GateRequest(replies=()), by="ana", now=T0)
    publish(ledger, "s")
    sky = FakeSky()
    outcome = change_gates(ledger, sky, "s", GateRequest(replies=(), quotes="followers"), by="ana", now=T0)
    assert outcome.done == ("threadgate on s1",)
    assert sky.calls == [
        (
            ["s1", "s2"],
            {
                "replies": (),
                "everyone_replies": False,
                "quotes_off": True,
                "created_at": "2027-10-29T09:00:00.000Z",
            },
        )
    ]
    (change,) = ledger.gate_changes("s")
    assert (change.by, change.at, change.replies, change.quotes, change.outcome) == (
        "ana",
        T0,
        "nobody",
        "followers",
        "done",
    )


def test_a_rate_limited_change_is_recorded_failed_with_the_reset_and_raised(ledger: Any) -> None:
    publish(ledger, "s")
    reset = datetime(2027, 10, 29, 9, 5, tzinfo=UTC)
    error = RateLimitedError("rate limited (HTTP 429)", reset_at=reset, status=429)
    with pytest.raises(RateLimitedError):
        change_gates(ledger, FakeSky(error), "s", GateRequest(replies=()), by="ana", now=T0)
    (change,) = ledger.gate_changes("s")
    assert change.outcome == "failed"
    assert "no more before 2027-10-29 09:05:00 UTC" in change.detail


def test_mastodon_replies_cannot_be_limited_and_it_is_said(ledger: Any) -> None:
    publish(ledger, "m")
    with pytest.raises(GateRefused, match="Mastodon has no control over who may reply"):
        change_gates(ledger, FakeMasto(), "m", GateRequest(replies=()), by="bo", now=T0)
    outcome = change_gates(
        ledger, FakeMasto(), "m", GateRequest(replies=(), quotes="nobody"), by="bo", now=T0
    )
    assert outcome.done == ("status m1: quotes nobody", "status m2: quotes nobody")
    assert "Mastodon has no control over who may reply" in outcome.notes[0]
    assert [change.outcome for change in ledger.gate_changes("m")] == ["failed", "done"]


def test_a_paused_account_is_not_touched(ledger: Any) -> None:
    publish(ledger, "s")
    ledger.pause_account("sky", "401", T0)
    sky = FakeSky()
    with pytest.raises(GateRefused, match="paused"):
        change_gates(ledger, sky, "s", GateRequest(replies=()), by="ana", now=T0)
    assert sky.calls == []
    assert ledger.get("s").state is State.PUBLISHED


def test_validate_warns_when_the_instance_last_seen_has_no_quote_controls(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    from amplifier.publish.sessions import LimitsCache, StateDir

    path = campaign_dir(messages=messages("quotes: false"))
    state = tmp_path / "state"
    args = ("--config", str(path), "--state", str(state), "validate", "--now", "2027-10-01T09:00")
    result = run_cli(*args)
    assert result.code == 0, result.err
    assert "warning" not in result.err  # never seen: no request is sent to find out

    cache = LimitsCache(StateDir(state))
    cache.put("mastodon-https://mastodon.example", {"version": "4.3.2", "api_version": 2})
    result = run_cli(*args)
    assert result.code == 0, result.err
    assert "schedule.yaml:" in result.err
    assert (
        "masto: its instance runs Mastodon 4.3.2, older than 4.5, which has no quote controls" in result.err
    )

    cache.put("mastodon-https://mastodon.example", {"version": "4.5.0", "api_version": 7})
    assert "warning" not in run_cli(*args).err


def test_the_example_campaigns_thread_shows_its_controls_in_every_preview(
    run_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bs4 import BeautifulSoup

    from tests.conftest import ROOT

    window = ("-c", str(ROOT / "schedule.yaml"), "--from", "2027-11-01", "--to", "2027-11-02")
    monkeypatch.setenv("COLUMNS", "160")
    text = run_cli("preview", *window, "--rule", "kobane-day-thread")
    assert text.code == 0, text.err
    assert "replies: followers, mentioned · quotes: off" in text.out  # Bluesky
    assert "quotes: followers" in text.out  # Mastodon

    data = json.loads(run_cli("preview", *window, "--rule", "kobane-day-thread", "--format", "json").out)
    sky = next(post for post in data["posts"] if post["account"] == "bluesky-en")
    assert [gate["$type"] for gate in sky["parts"][0]["gates"]] == [
        "app.bsky.feed.threadgate",
        "app.bsky.feed.postgate",
    ]
    assert "labels" not in sky["parts"][0]["payload"]  # the poster is not graphic: `labels: []`
    masto = next(post for post in data["posts"] if post["account"] == "mastodon-en")
    assert {part["payload"]["quote_approval_policy"] for part in masto["parts"]} == {"followers"}

    out = tmp_path / "preview.html"
    html = run_cli("preview", *window, "--format", "html", "-o", str(out))
    assert html.code == 0, html.err
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    shown = {tag.get_text() for tag in soup.select("div.controls")}
    assert "replies: followers, mentioned · quotes: off" in shown
    assert "quotes: followers" in shown


# -- ad-hoc controls (compose, gate) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("nobody",), ("nobody",)),
        (("followers", "mentioned"), ("followers", "mentioned")),
        (("nobody", "followers"), "`nobody` cannot be combined"),
        (("followers", "followers"), "reply rule listed twice: followers"),
        (("bogus",), "'bogus' is not a reply rule"),
    ],
)
def test_reply_rules_from_a_command_line_are_checked_as_in_a_message_set(
    values: tuple[str, ...], expected: tuple[str, ...] | str
) -> None:
    from amplifier.campaign.controls import parse_replies

    if isinstance(expected, tuple):
        assert parse_replies(values) == expected
    else:
        with pytest.raises(ValueError, match=expected.replace("`", ".")):
            parse_replies(values)


def test_an_ad_hoc_text_for_mastodon_keeps_only_the_quote_control() -> None:
    controls = {"replies": ("nobody",), "quotes": "followers", "labels": ("porn",)}
    masto = adapt_text("Hello", "mastodon", max_characters=3, controls=controls, created_at=T0)
    assert masto.parts[0].limit == 3
    assert masto.parts[0].payload["quote_approval_policy"] == "followers"
    assert "gates" not in masto.parts[0].to_json()
    sky = adapt_text("Hello", "bluesky", controls=controls, created_at=T0)
    assert [gate["$type"] for gate in sky.parts[0].gates] == [
        "app.bsky.feed.threadgate",
        "app.bsky.feed.postgate",
    ]
    assert sky.parts[0].payload["labels"]["values"] == [{"val": "porn"}]
