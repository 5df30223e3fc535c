"""Quote posts: the YAML (``quote:`` naming a rule, an account, an occurrence), the located errors for a quote of a
post that does not exist, of another platform, or of a later post (a cycle), the payloads (Mastodon
``quoted_status_id``, Bluesky record / recordWithMedia embeds), the previews, and the resolution from the ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.errors import CampaignError
from amplifier.plan.planner import plan_window
from amplifier.plan.post import PlannedPost
from amplifier.plan.quotes import RECORD, RECORD_WITH_MEDIA, resolve_quote
from tests.conftest import BASE_SCHEDULE
from tests.unit.test_campaign_errors import located

START = datetime(2027, 10, 1, tzinfo=UTC)
END = datetime(2027, 11, 2, tzinfo=UTC)

SCHEDULE = (
    BASE_SCHEDULE
    + """\
  call:
    kind: once
    at: 2027-10-20T12:00
    messages: call
"""
)

CALL = """\
  call:
    variants:
      - text:
          en: "Join us on November 1."
"""


def messages(quote: str, images: str = "") -> dict[str, str]:
    countdown = f"""\
sets:
  countdown:
{quote}{images}    variants:
      - text:
          en: "{{{{ days_left }}}} days left."
"""
    return {"main.yaml": countdown + CALL}


def plan(campaign_dir: Callable[..., Path], quote: str, schedule: str = SCHEDULE, images: str = "") -> Any:
    campaign = load_campaign(campaign_dir(schedule=schedule, messages=messages(quote, images)))
    return plan_window(campaign, START, END)


def load_problems(campaign_dir: Callable[..., Path], quote: str, schedule: str = SCHEDULE) -> list[str]:
    with pytest.raises(CampaignError) as info:
        load_campaign(campaign_dir(schedule=schedule, messages=messages(quote)))
    return info.value.lines()


def by_id(result: Any) -> dict[str, Any]:
    return {post.id: post for post in result.posts}


def test_a_rule_id_quotes_that_rules_post_on_the_same_account(campaign_dir: Callable[..., Path]) -> None:
    result = plan(campaign_dir, "    quote: call\n")
    assert result.problems == []
    posts = by_id(result)
    masto = posts["countdown:masto:2027-10-29T10:00"]
    sky = posts["countdown:sky:2027-10-29T10:00"]
    assert masto.quote == "call:masto:2027-10-20T12:00"
    assert sky.quote == "call:sky:2027-10-20T12:00"
    assert masto.parts[0].payload["quoted_status_id"] == {"$quote": "post"}
    assert sky.parts[0].payload["embed"] == {"$type": RECORD, "record": {"$quote": "post"}}
    assert masto.to_json()["quote"] == "call:masto:2027-10-20T12:00"
    # The quoted post itself quotes nothing.
    assert posts["call:masto:2027-10-20T12:00"].quote is None
    assert "quote" not in posts["call:masto:2027-10-20T12:00"].to_json()
    assert "quoted_status_id" not in posts["call:masto:2027-10-20T12:00"].parts[0].payload


def test_the_latest_earlier_occurrence_is_quoted_unless_one_is_named(
    campaign_dir: Callable[..., Path],
) -> None:
    schedule = SCHEDULE.replace("    messages: call\n", "    messages: call\n") + (
        '  daily:\n    kind: recurring\n    cron: "0 18 * * *"\n    start: 2027-10-20\n    end: 2027-10-25\n'
        "    messages: call\n"
    )
    posts = by_id(plan(campaign_dir, "    quote: daily\n", schedule))
    assert posts["countdown:masto:2027-10-29T10:00"].quote == "daily:masto:2027-10-25T18:00"
    named = '    quote: {rule: daily, at: "2027-10-21T18:00", account: masto}\n'
    schedule_masto = schedule.replace(
        "    messages: countdown\n", "    messages: countdown\n    accounts: [masto]\n"
    )
    posts = by_id(plan(campaign_dir, named, schedule_masto))
    assert posts["countdown:masto:2027-10-31T10:00"].quote == "daily:masto:2027-10-21T18:00"


def test_bluesky_quote_with_images_is_a_record_with_media(campaign_dir: Callable[..., Path]) -> None:
    root = campaign_dir(schedule=SCHEDULE, messages=messages("")).parent
    from PIL import Image

    (root / "poster.png").parent.mkdir(exist_ok=True)
    Image.new("RGB", (40, 20), "red").save(root / "poster.png")
    images = "    images:\n      - {path: poster.png, alt: A poster}\n"
    posts = by_id(plan(campaign_dir, "    quote: call\n", images=images))
    embed = posts["countdown:sky:2027-10-29T10:00"].parts[0].payload["embed"]
    assert embed["$type"] == RECORD_WITH_MEDIA
    assert embed["record"] == {"$type": RECORD, "record": {"$quote": "post"}}
    assert embed["media"]["$type"] == "app.bsky.embed.images"
    assert embed["media"]["images"][0]["aspectRatio"] == {"width": 40, "height": 20}


@pytest.mark.parametrize(
    ("quote", "schedule", "fragment"),
    [
        (
            "    quote: cal\n",
            SCHEDULE,
            "'countdown' quotes a post of unknown rule 'cal' (did you mean 'call'?)",
        ),
        ("    quote: {rule: call, account: mastodon}\n", SCHEDULE, "unknown account 'mastodon'"),
        (
            "    quote: {rule: call, account: masto}\n",
            SCHEDULE,
            "rule 'countdown' posts 'countdown' to 'sky' on bluesky, which cannot quote 'masto''s post on mastodon: "
            "a quote stays on its platform",
        ),
        (
            "    quote: call\n",
            SCHEDULE.replace("    messages: call\n", "    messages: call\n    accounts: [masto]\n"),
            "rule 'countdown' posts 'countdown' to 'sky', but rule 'call' posts nothing to 'sky': there is no "
            "post to quote",
        ),
        (
            "    quote: call\n",
            SCHEDULE.replace("    messages: call\n", "    messages: call\n    enabled: false\n"),
            "quotes rule 'call', which is disabled",
        ),
        (
            "    quote: {rule: call, account: sky2}\n",
            SCHEDULE.replace(
                "  sky:\n",
                "  sky2:\n    platform: bluesky\n    handle: two.bsky.social\n"
                "    password_env: TEST_SKY2\n    quotes: followers\n  sky:\n",
            ).replace("    messages: countdown\n", "    messages: countdown\n    accounts: [sky]\n"),
            "which would quote 'sky2''s post of rule 'call', but that post lets nobody quote it",
        ),
    ],
)
def test_a_quote_of_a_post_that_cannot_exist_is_a_located_error(
    campaign_dir: Callable[..., Path], quote: str, schedule: str, fragment: str
) -> None:
    lines = load_problems(campaign_dir, quote, schedule)
    assert located(lines, "main.yaml", 3, None, fragment), lines


def test_a_quote_of_a_later_post_or_of_a_missing_occurrence_is_an_error(
    campaign_dir: Callable[..., Path],
) -> None:
    late = SCHEDULE.replace("at: 2027-10-20T12:00", "at: 2027-10-30T12:00")
    lines = [str(p) for p in plan(campaign_dir, "    quote: call\n", late).problems]
    assert any(
        "countdown:masto:2027-10-29T10:00 quotes rule 'call', which has no post before it" in x for x in lines
    )
    # The post of Oct 31 quotes the call of Oct 30: fine.
    lines = [str(p) for p in plan(campaign_dir, '    quote: {rule: call, at: "2027-10-21T12:00"}\n').problems]
    assert any("rule 'call' has no post at 2027-10-21T12:00 (local time) to quote" in x for x in lines), lines
    assert all(":3:" in line for line in lines), lines


def test_two_posts_quoting_each_other_are_a_cycle(campaign_dir: Callable[..., Path]) -> None:
    schedule = BASE_SCHEDULE.replace("    days_before: [3, 2, 1]\n", "    days_before: [1]\n") + (
        "  call:\n    kind: once\n    at: 2027-10-31T10:00\n    messages: call\n"
    )
    files = {
        "main.yaml": messages('    quote: {rule: call, at: "2027-10-31T10:00"}\n')["main.yaml"].replace(
            "  call:\n", '  call:\n    quote: {rule: countdown, at: "2027-10-31T10:00"}\n'
        )
    }
    campaign = load_campaign(campaign_dir(schedule=schedule, messages=files))
    lines = [str(p) for p in plan_window(campaign, START, END).problems]
    assert any("quotes call:masto:2027-10-31T10:00, which is not earlier" in x for x in lines), lines
    assert any("quotes countdown:masto:2027-10-31T10:00, which is not earlier" in x for x in lines), lines
    assert any("would wait forever" in x for x in lines)


def test_resolving_a_quote_fills_the_platforms_reference_or_leaves_it_out(
    campaign_dir: Callable[..., Path],
) -> None:
    posts = by_id(plan(campaign_dir, "    quote: call\n"))
    masto = posts["countdown:masto:2027-10-29T10:00"]
    sky = posts["countdown:sky:2027-10-29T10:00"]
    done = resolve_quote(masto, {"id": "1234", "uri": "https://m/1", "cid": None})
    assert done.parts[0].payload["quoted_status_id"] == "1234"
    sky_done = resolve_quote(sky, {"id": "3k", "uri": "at://did:plc:x/app.bsky.feed.post/3k", "cid": "bafy"})
    assert sky_done.parts[0].payload["embed"] == {
        "$type": RECORD,
        "record": {"uri": "at://did:plc:x/app.bsky.feed.post/3k", "cid": "bafy"},
    }
    assert "quoted_status_id" not in resolve_quote(masto, None).parts[0].payload
    assert "embed" not in resolve_quote(sky, None).parts[0].payload
    plain = posts["call:masto:2027-10-20T12:00"]
    assert resolve_quote(plain, {"id": "1"}) is plain


def test_previews_show_the_quoted_post(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    path = campaign_dir(schedule=SCHEDULE, messages=messages("    quote: call\n"))
    table = run_cli("preview", "--config", str(path), "--from", "2027-10-29", "--to", "2027-10-30")
    assert table.code == 0, table.err
    assert "quotes: call:masto:2027-10-20T12:00" in table.out
    html = run_cli(
        "preview", "--config", str(path), "--from", "2027-10-29", "--to", "2027-10-30", "--format", "html"
    )
    assert "quotes: call:sky:2027-10-20T12:00" in html.out


# -- the daemon: a quote waits for the post it quotes -------------------------------------------------------

DAEMON_SCHEDULE = """\
campaign:
  name: Quotes
  timezone: Europe/Berlin
accounts:
  main:
    platform: mastodon
    instance: https://mastodon.example
    token_env: T_MAIN
  local:
    platform: mastodon
    instance: https://mastodon.example
    token_env: T_LOCAL
rules:
  call:
    kind: once
    at: 2027-10-20T09:00
    messages: call
    accounts: [main]
    missed: {action: post, grace: PT6H}
  again:
    kind: once
    at: 2027-10-20T10:00
    messages: again
    accounts: [local]
    missed: {action: post, grace: PT6H}
"""

DAEMON_MESSAGES = """\
sets:
  call:
    variants:
      - text: {en: "Join us on November 1."}
  again:
    quote: {rule: call, account: main}
    variants:
      - text: {en: "Still time to join."}
"""


def test_the_daemon_holds_a_quote_until_the_quoted_post_is_out(
    campaign_dir: Callable[..., Path], tmp_path: Path
) -> None:
    import datetime as dt
    import random
    from zoneinfo import ZoneInfo

    from amplifier.daemon.events import EventLog
    from amplifier.daemon.loop import Daemon
    from amplifier.daemon.settings import DaemonSettings
    from amplifier.delivery.ledger import State, open_ledger
    from amplifier.publish.base import TransientError
    from tests.unit.test_daemon import Clock, FakePublisher, FakeServer

    berlin = ZoneInfo("Europe/Berlin")
    start = dt.datetime(2027, 10, 20, 8, 0, tzinfo=berlin)
    campaign = load_campaign(campaign_dir(schedule=DAEMON_SCHEDULE, messages={"m.yaml": DAEMON_MESSAGES}))
    server = FakeServer()
    seen: list[PlannedPost] = []

    class Recording(FakePublisher):
        def publish(self, post: PlannedPost, *, resume: Any = None) -> Any:
            seen.append(post)
            return super().publish(post, resume=resume)

    clock = Clock(start)
    ledger = open_ledger(tmp_path / "state", start)
    daemon = Daemon(
        campaign,
        ledger,
        lambda account, settings: Recording(account, settings.platform, server),
        clock=clock,
        log=EventLog(None, clock=clock, keep=True),
        settings=DaemonSettings(),
        state_dir=tmp_path / "state",
        rng=random.Random(7),
        environ={},
    )
    try:
        daemon.start(start)
        server.fail("main", TransientError("server error (HTTP 502)"))  # the call is late
        clock.now = dt.datetime(2027, 10, 20, 10, 0, tzinfo=berlin)
        report = daemon.tick(clock.now)
        quote_id, call_id = "again:local:2027-10-20T10:00", "call:main:2027-10-20T09:00"
        assert quote_id in report.deferred
        assert ledger.get(quote_id).state == State.PLANNED
        assert ledger.get(quote_id).attempts == 0
        assert [post.id for post in seen] == [call_id]
        # The account waits a minute before it looks again, not in a busy loop.
        wake = daemon.next_wake(clock.now)
        assert wake is not None
        assert wake > clock.now
        clock.now += dt.timedelta(minutes=10)  # the call's retry is due, then the quote's look
        daemon.tick(clock.now)
        clock.now += dt.timedelta(minutes=2)
        daemon.tick(clock.now)
        assert ledger.get(call_id).state == State.PUBLISHED
        assert ledger.get(quote_id).state == State.PUBLISHED
        sent = [post for post in seen if post.id == quote_id]
        assert len(sent) == 1
        assert sent[0].parts[0].payload["quoted_status_id"] == f"{call_id}#0"
    finally:
        daemon.close()
        ledger.close()


def test_validate_warns_that_an_old_instance_gets_no_quote(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    from amplifier.publish.sessions import LimitsCache, StateDir

    path = campaign_dir(schedule=SCHEDULE, messages=messages("    quote: call\n"))
    state = tmp_path / "state"
    args = ("--config", str(path), "--state", str(state), "validate", "--now", "2027-10-01T09:00")
    LimitsCache(StateDir(state)).put(
        "mastodon-https://mastodon.example", {"version": "4.3.2", "api_version": 2}
    )
    result = run_cli(*args)
    assert result.code == 0, result.err
    assert (
        "which has no quote controls and no quote posts: `quotes` and `quote` settings are left out"
        in result.err
    )


@pytest.mark.parametrize(
    "content",
    [
        '<p>1 day left.</p><p class="quote-inline">RE: <a href="https://m.example/@c/1">m.example/@c/1</a></p>',
        '<p class="quote-inline">RE: <a href="https://m.example/@c/1"><span>m.example</span></a><br/></p><p>1 day left.</p>',
    ],
)
def test_a_quote_posts_fallback_link_is_not_part_of_its_text(content: str) -> None:
    """Mastodon 4.5 adds "RE: <link>" to a quote post's content for older clients: the search after an unknown
    outcome must still recognise the status as the post (else it would send it a second time)."""
    from amplifier.publish.mastodon_match import html_to_text

    assert html_to_text(content) == "1 day left."


def test_a_dry_runs_published_quoted_post_leaves_the_placeholder(
    campaign_dir: Callable[..., Path], tmp_path: Path
) -> None:
    from amplifier.delivery.ledger import PlanEntry, SqliteLedger
    from amplifier.delivery.quoting import quote_ready

    posts = by_id(plan(campaign_dir, "    quote: call\n"))
    call, later = posts["call:masto:2027-10-20T12:00"], posts["countdown:masto:2027-10-29T10:00"]
    with SqliteLedger.open(tmp_path / "ledger.db", START) as ledger:
        ledger.sync_plan([PlanEntry.from_post(call), PlanEntry.from_post(later)], START)
        assert quote_ready(ledger, later).waiting_for == call.id
        assert ledger.claim(call.id, START, "dry")
        ledger.mark_published(
            call.id, [{"index": 0, "id": "", "url": None, "uri": None, "cid": None}], START, token="dry"
        )
        ready = quote_ready(ledger, later)
    assert (ready.waiting_for, ready.dropped) == (None, None)
    assert ready.post.parts[0].payload["quoted_status_id"] == {"$quote": "post"}


def test_a_quote_of_a_retracted_post_goes_out_without_the_quote(
    campaign_dir: Callable[..., Path], tmp_path: Path
) -> None:
    """A retracted call (a rally cancelled) is still ``published`` in the ledger while its deletion runs and
    after: a countdown quoting it must not embed a post that is gone or going."""
    from amplifier.delivery.ledger import PlanEntry, SqliteLedger
    from amplifier.delivery.quoting import quote_ready

    posts = by_id(plan(campaign_dir, "    quote: call\n"))
    call, later = posts["call:masto:2027-10-20T12:00"], posts["countdown:masto:2027-10-29T10:00"]
    with SqliteLedger.open(tmp_path / "ledger.db", START) as ledger:
        ledger.sync_plan([PlanEntry.from_post(call), PlanEntry.from_post(later)], START)
        assert ledger.claim(call.id, START, "t")
        ledger.mark_published(
            call.id, [{"index": 0, "id": "1093", "url": None, "uri": None, "cid": None}], START, token="t"
        )
        assert quote_ready(ledger, later).post.parts[0].payload["quoted_status_id"] == "1093"
        ledger.retract(call.id, by="operator", reason="rally moved", now=START)
        ready = quote_ready(ledger, later)
    assert ready.waiting_for is None
    assert ready.dropped == f"{call.id} is retracted"
    assert "quoted_status_id" not in ready.post.parts[0].payload
