"""The planner: rendering in the post's language, variant rotation, hashtags, payloads for both platforms."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.errors import CampaignError, UsageError
from amplifier.plan.planner import find_posts, plan_window
from amplifier.plan.stream import stream_window, validate
from tests.conftest import BASE_MESSAGES, BASE_SCHEDULE

UTC = dt.UTC
WINDOW = (dt.datetime(2027, 1, 1, tzinfo=UTC), dt.datetime(2028, 1, 1, tzinfo=UTC))
ROOT = Path(__file__).resolve().parents[2]


def test_countdown_posts_render_and_rotate(campaign_dir: Callable[..., Path]) -> None:
    campaign = load_campaign(campaign_dir())
    plan = plan_window(campaign, *WINDOW)
    assert not plan.problems
    masto = [p for p in plan.posts if p.account == "masto"]
    assert [p.parts[0].text.splitlines()[0] for p in masto] == [
        "3 days until World Kobane Day.",
        "World Kobane Day is in 2 days. Join an action: https://riseup4rojava.org/take-action/",
        "1 day until World Kobane Day.",
    ]
    assert [p.variant for p in masto] == [0, 1, 0]
    assert all(p.parts[0].text.endswith("\n\n#Riseup4Rojava") for p in masto)


def test_mastodon_payload(campaign_dir: Callable[..., Path]) -> None:
    campaign = load_campaign(campaign_dir())
    post = next(p for p in plan_window(campaign, *WINDOW).posts if p.account == "masto")
    (part,) = post.parts
    assert part.payload == {"status": part.text, "visibility": "public", "language": "en"}
    assert part.limit == 500
    assert part.length == len(part.text)
    assert post.at.isoformat() == "2027-10-29T10:00:00+02:00"
    assert post.id == "countdown:masto:2027-10-29T10:00"


def test_bluesky_record_has_facets_langs_and_fixed_created_at(campaign_dir: Callable[..., Path]) -> None:
    campaign = load_campaign(campaign_dir())
    post = [p for p in plan_window(campaign, *WINDOW).posts if p.account == "sky"][1]
    (part,) = post.parts
    record = part.payload
    assert record["$type"] == "app.bsky.feed.post"
    assert record["langs"] == ["en"]
    assert record["createdAt"] == "2027-10-30T08:00:00.000Z"
    text = record["text"].encode()
    features = {
        text[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(): f["features"][0]
        for f in record["facets"]
    }
    assert (
        features["https://riseup4rojava.org/take-action/"]["uri"] == "https://riseup4rojava.org/take-action/"
    )
    assert features["#Riseup4Rojava"] == {"$type": "app.bsky.richtext.facet#tag", "tag": "Riseup4Rojava"}


def test_inline_hashtags_are_not_appended(campaign_dir: Callable[..., Path]) -> None:
    messages = BASE_MESSAGES.replace("until {{ event.name }}.", "until {{ event.name }} {{ hashtags }}")
    campaign = load_campaign(campaign_dir(messages={"main.yaml": messages}))
    first = plan_window(campaign, *WINDOW).posts[0]
    assert first.parts[0].text == "3 days until World Kobane Day #Riseup4Rojava"


def test_tag_already_in_text_is_not_repeated(campaign_dir: Callable[..., Path]) -> None:
    messages = BASE_MESSAGES.replace("until {{ event.name }}.", "until {{ event.name }} #riseup4rojava")
    campaign = load_campaign(campaign_dir(messages={"main.yaml": messages}))
    assert (
        plan_window(campaign, *WINDOW).posts[0].parts[0].text
        == "3 days until World Kobane Day #riseup4rojava"
    )


LANG_SCHEDULE = BASE_SCHEDULE.replace(
    "    token_env: TEST_MASTO_TOKEN\n", "    token_env: TEST_MASTO_TOKEN\n    language: ckb\n"
).replace("    password_env: TEST_SKY_PASSWORD\n", "    password_env: TEST_SKY_PASSWORD\n    language: ku\n")
LANG_MESSAGES = """\
sets:
  countdown:
    variants:
      - text:
          ku: "{{ days_left }} roj ma heta {{ event.name }} ({{ event.date | date }})."
          ckb: "{{ days_left }} ڕۆژ ماوە بۆ {{ event.name }} {{ event.date | date }}"
"""


def test_languages_render_with_babel_and_tag_posts(campaign_dir: Callable[..., Path]) -> None:
    campaign = load_campaign(campaign_dir(schedule=LANG_SCHEDULE, messages={"main.yaml": LANG_MESSAGES}))
    posts = plan_window(campaign, *WINDOW).posts
    ku = next(p for p in posts if p.lang == "ku")
    ckb = next(p for p in posts if p.lang == "ckb")
    assert ku.parts[0].text == "3 roj ma heta Roja Cîhanî ya Kobanê (1ê mijdara 2027an)."
    assert ku.parts[0].payload["langs"] == ["ku"]
    assert ckb.parts[0].text == "3 ڕۆژ ماوە بۆ ڕۆژی جیهانیی کۆبانێ 1ی تشرینی دووەمی 2027"
    assert ckb.parts[0].payload["language"] == "ckb"


def test_long_text_is_split_into_a_numbered_thread(campaign_dir: Callable[..., Path]) -> None:
    sentence = "Kobanê resisted and became the symbol of a resistance in the name of humanity. "
    messages = f"""\
sets:
  countdown:
    variants:
      - text:
          en: "{sentence * 6}{{{{ event.url }}}}"
"""
    campaign = load_campaign(campaign_dir(messages={"main.yaml": messages}))
    plan = plan_window(campaign, *WINDOW)
    assert not plan.problems
    sky = next(p for p in plan.posts if p.platform == "bluesky")
    masto = next(p for p in plan.posts if p.platform == "mastodon")
    assert len(sky.parts) == 2
    assert len(masto.parts) == 1
    assert [p.text[-4:] for p in sky.parts] == [" 1/2", " 2/2"]
    assert all(part.length <= 300 for part in sky.parts)
    assert "reply" not in sky.parts[0].payload
    assert sky.parts[1].payload["reply"] == {"root": {"$ref": "part:0"}, "parent": {"$ref": "part:0"}}
    assert sky.parts[1].payload["createdAt"] == "2027-10-29T08:00:00.001Z"


def test_over_limit_without_splitting_is_a_located_problem(campaign_dir: Callable[..., Path]) -> None:
    messages = f"""\
sets:
  countdown:
    split: {{enabled: false}}
    variants:
      - text:
          en: "{"x" * 301} {{{{ days_left }}}}"
"""
    campaign = load_campaign(campaign_dir(messages={"main.yaml": messages}))
    plan = plan_window(campaign, *WINDOW)
    bluesky = [str(p) for p in plan.problems if "Bluesky" in str(p)]
    assert bluesky
    assert (
        "main.yaml:6:15: countdown:sky:2027-10-29T10:00: 303 graphemes, over Bluesky's limit of 300"
        in bluesky[0]
    )
    assert not any("Mastodon" in str(p) for p in plan.problems)


def test_thread_with_image_content_warning(campaign_dir: Callable[..., Path], tmp_path: Path) -> None:
    from PIL import Image

    root = campaign_dir().parent
    (root / "images").mkdir()
    Image.new("RGB", (40, 20), "red").save(root / "images" / "poster.png")
    messages = """\
sets:
  countdown:
    content_warning: {en: "War, {{ days_left }} days"}
    sensitive: true
    images:
      - path: images/poster.png
        alt: {en: "A red poster"}
    variants:
      - text:
          en: ["Part one {{ days_left }}", "Part two"]
"""
    (root / "messages" / "main.yaml").write_text(messages)
    campaign = load_campaign(root / "schedule.yaml")
    posts = plan_window(campaign, *WINDOW).posts
    masto = next(p for p in posts if p.platform == "mastodon")
    first, second = masto.parts
    image_path = str((root / "images" / "poster.png").resolve())
    assert first.payload["media_ids"] == [{"$upload": image_path}]
    assert first.payload["spoiler_text"] == "War, 3 days"
    assert first.payload["sensitive"] is True
    assert first.length == len("Part one 3") + len("War, 3 days")
    assert second.payload["in_reply_to_id"] == {"$ref": "part:0"}
    assert "media_ids" not in second.payload
    sky = next(p for p in posts if p.platform == "bluesky")
    assert sky.parts[0].payload["embed"] == {
        "$type": "app.bsky.embed.images",
        "images": [
            {
                "alt": "A red poster",
                "image": {"$upload": image_path},
                "aspectRatio": {"width": 40, "height": 20},
            }
        ],
    }
    assert "spoiler_text" not in str(sky.parts[0].payload)


def test_render_error_is_located(campaign_dir: Callable[..., Path]) -> None:
    messages = BASE_MESSAGES.replace("{{ event.name }}.", "{{ event.nam }}.")
    campaign = load_campaign(campaign_dir(messages={"main.yaml": messages}))
    plan = plan_window(campaign, *WINDOW)
    assert [str(p).split(": ", 1)[1] for p in plan.problems] == [
        "template error: the value has no attribute 'nam'"
    ]
    assert plan.problems[0].file.endswith("main.yaml")
    assert (plan.problems[0].line, plan.problems[0].col) == (6, 15)


def test_validate_reports_a_finished_countdown_not_a_problem(campaign_dir: Callable[..., Path]) -> None:
    campaign = load_campaign(campaign_dir())
    plan = validate(campaign, dt.datetime(2027, 11, 2, tzinfo=UTC))
    assert plan.problems == []
    assert [p.message for p in plan.finished] == [
        "countdown 'countdown' finished: its event 'kobane-day' (2027-11-01) has passed"
    ]
    assert (plan.finished[0].line, plan.finished[0].col) == (22, 12)
    # Before its last post, it is not finished.
    assert validate(campaign, dt.datetime(2027, 10, 31, tzinfo=UTC)).finished == []


def test_find_posts_by_id(campaign_dir: Callable[..., Path]) -> None:
    campaign = load_campaign(campaign_dir())
    everything = {p.id: p for p in plan_window(campaign, *WINDOW).posts}
    ids = ["countdown:sky:2027-10-31T10:00", "countdown:masto:2027-10-29T10:00"]
    found = find_posts(campaign, ids)
    assert [p.id for p in found] == ids
    assert all(p == everything[p.id] for p in found)
    with pytest.raises(UsageError, match="no planned post with id 'countdown:sky:2027-10-31T11:00'"):
        find_posts(campaign, ["countdown:sky:2027-10-31T11:00"])
    with pytest.raises(UsageError, match="not a post id"):
        find_posts(campaign, ["garbage"])


def test_example_campaign_plans_in_every_language() -> None:
    campaign = load_campaign(ROOT / "schedule.yaml")
    plan = stream_window(campaign, dt.datetime(2026, 11, 21, tzinfo=UTC), None)
    posts = list(plan.posts)
    assert plan.problems == []
    found = validate(campaign, dt.datetime(2026, 11, 21, tzinfo=UTC))
    assert (found.posts, found.parts, found.problems) == (len(posts), sum(len(p.parts) for p in posts), [])
    assert {p.lang for p in posts} == {"en", "de", "tr", "ar", "ku", "ckb"}
    thread = [p for p in posts if p.rule == "kobane-day-thread"]
    assert {len(p.parts) for p in thread} == {3}
    for post in posts:
        for part in post.parts:
            assert part.length <= part.limit, (post.id, part.text)


def test_campaign_error_lists_render_problems_at_find(campaign_dir: Callable[..., Path]) -> None:
    messages = BASE_MESSAGES.replace("{{ event.name }}.", "{{ event.nam }}.")
    campaign = load_campaign(campaign_dir(messages={"main.yaml": messages}))
    with pytest.raises(CampaignError):
        find_posts(campaign, ["countdown:masto:2027-10-29T10:00"])


def test_content_warning_naming_the_account_is_not_shared(campaign_dir: Callable[..., Path]) -> None:
    schedule = BASE_SCHEDULE.replace(
        "  sky:\n    platform: bluesky\n    handle: campaign.bsky.social\n    password_env: TEST_SKY_PASSWORD\n",
        "  masto2:\n    platform: mastodon\n    instance: https://mastodon.example\n    token_env: TEST_MASTO2_TOKEN\n",
    )
    messages = BASE_MESSAGES.replace(
        "    hashtags: [Riseup4Rojava]\n",
        "    hashtags: [Riseup4Rojava]\n    content_warning: {en: 'from {{ account.id }}'}\n",
    )
    campaign = load_campaign(campaign_dir(schedule=schedule, messages={"main.yaml": messages}))
    posts = plan_window(campaign, *WINDOW).posts
    first = [p for p in posts if p.at == posts[0].at]
    assert {p.account: p.parts[0].payload["spoiler_text"] for p in first} == {
        "masto": "from masto",
        "masto2": "from masto2",
    }


def test_content_warning_longer_than_the_limit_is_a_problem_not_a_crash(
    campaign_dir: Callable[..., Path],
) -> None:
    messages = BASE_MESSAGES.replace(
        "    hashtags: [Riseup4Rojava]\n",
        f"    hashtags: [Riseup4Rojava]\n    content_warning: {{en: '{'w' * 520}'}}\n",
    )
    campaign = load_campaign(campaign_dir(messages={"main.yaml": messages}))
    plan = plan_window(campaign, *WINDOW)
    masto = [str(p) for p in plan.problems if ":masto:" in str(p)]
    assert masto
    assert "over Mastodon's limit of 500" in masto[0]


def test_the_stream_plans_what_the_window_plans(campaign_dir: Callable[..., Path]) -> None:
    """The same posts in the same order, and the same problems, whether planned whole or one at a time."""
    messages = BASE_MESSAGES.replace(
        "until {{ event.name }}.", "until {{ event.name }}." + " Kobanê" * 60
    ).replace("    hashtags: [Riseup4Rojava]\n", "    split: {enabled: false}\n")
    campaign = load_campaign(campaign_dir(messages={"main.yaml": messages}))
    whole = plan_window(campaign, *WINDOW)
    stream = stream_window(campaign, *WINDOW)
    assert whole.posts
    assert whole.problems
    assert list(stream.posts) == whole.posts
    assert stream.problems == whole.problems


def test_find_posts_finds_a_post_of_a_long_rule_from_its_day(campaign_dir: Callable[..., Path]) -> None:
    schedule = BASE_SCHEDULE.replace(
        "rules:\n",
        'rules:\n  hourly:\n    kind: recurring\n    cron: "0 * * * *"\n'
        "    start: 2026-01-01\n    end: 2028-12-31\n    messages: countdown\n    event: kobane-day\n",
        1,
    )
    campaign = load_campaign(campaign_dir(schedule=schedule))
    window = (dt.datetime(2027, 10, 31, 22, tzinfo=UTC), dt.datetime(2027, 11, 1, 2, tzinfo=UTC))
    wanted = [p for p in plan_window(campaign, *window).posts if p.rule == "hourly"]
    assert wanted
    assert find_posts(campaign, [p.id for p in wanted]) == wanted


def test_a_thread_of_more_than_99_parts_keeps_every_part_within_the_limit(
    campaign_dir: Callable[..., Path],
) -> None:
    """Markers of three digits (" 100/121") need more room than the reserve for " 12/12": the text is split again."""
    messages = BASE_MESSAGES.replace(
        "{{ event.name }} is in {{ days_left }} days. Join an action: {{ event.url }}", "{{ 'x' * 60000 }}"
    )
    plan = plan_window(load_campaign(campaign_dir(messages={"main.yaml": messages})), *WINDOW)
    assert plan.problems == []
    thread = next(p for p in plan.posts if p.variant == 1 and p.account == "masto")
    total = len(thread.parts)
    assert total > 99
    assert all(part.length <= part.limit for post in plan.posts for part in post.parts)
    assert [part.text.rsplit(" ", 1)[1] for part in thread.parts] == [
        f"{i}/{total}" for i in range(1, total + 1)
    ]


@pytest.mark.parametrize("platform", ["mastodon", "bluesky"])
@pytest.mark.parametrize(
    ("text", "empty"), [("", True), (" \n\t\u3000", True), (" x ", False), ("\u200b", False)]
)
def test_a_blank_text_is_a_problem(platform: str, text: str, empty: bool) -> None:
    from amplifier.plan.adapt import adapt_text

    adapted = adapt_text(text, platform, created_at=dt.datetime(2027, 10, 1, tzinfo=dt.UTC))  # type: ignore[arg-type]
    assert ("the text is empty" in adapted.problems) is empty
