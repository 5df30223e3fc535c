"""Engagement read-back logic that needs no server: the counts taken from answers, the batching of
``getPosts``, what a URI missing from the AppView's answer means, and the dry run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.publish import PermanentError, PublishContext, create_publisher
from amplifier.publish.bluesky import BlueskyPublisher
from amplifier.publish.bluesky_engagement import split_uri
from amplifier.publish.engagement import GET_POSTS_MAX, Engagement, PublishedPart, batches, count
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

NOW = datetime(2027, 11, 1, 12, 0, tzinfo=UTC)
BSKY = BlueskyAccount(platform="bluesky", handle="campaign.example.com", password_env="AMP_UNIT_ENG_PASSWORD")
MASTO = MastodonAccount(platform="mastodon", instance="https://masto.example", token_env="AMP_UNIT_ENG_TOKEN")  # type: ignore[arg-type]


@pytest.fixture
def ctx(tmp_path: Path) -> PublishContext:
    return PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"), clock=lambda: NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (7, 7), (None, None), (-1, None), (True, None), ("3", None), (2.0, None), ([], None)],
)
def test_a_count_is_a_non_negative_int_or_unknown(value: object, expected: int | None) -> None:
    assert count(value) == expected


def test_batches_cut_in_order() -> None:
    items = list(range(2 * GET_POSTS_MAX + 1))
    cut = list(batches(items, GET_POSTS_MAX))
    assert [len(b) for b in cut] == [25, 25, 1]
    assert [x for b in cut for x in b] == items
    assert list(batches([], 25)) == []


@pytest.mark.parametrize(
    "uri",
    ["", "https://bsky.app/x", "at://did:plc:x/app.bsky.feed.post", "at://did:plc:x//3abc", "at://a/b/c/d"],
)
def test_split_uri_refuses_what_is_not_repo_collection_rkey(uri: str) -> None:
    with pytest.raises(ValueError, match="URI"):
        split_uri(uri)


def test_split_uri() -> None:
    assert split_uri("at://did:plc:abc/app.bsky.feed.post/3k2") == (
        "did:plc:abc",
        "app.bsky.feed.post",
        "3k2",
    )


def test_engagement_total_and_json() -> None:
    reading = Engagement("p", 1, NOW, likes=3, reposts=2, replies=1, quotes=None)
    assert reading.total == 6
    assert reading.to_json() == {
        "post_id": "p",
        "index": 1,
        "read_at": "2027-11-01T12:00:00+00:00",
        "likes": 3,
        "reposts": 2,
        "replies": 1,
        "quotes": None,
        "gone": False,
    }
    assert Engagement("p", 0, NOW, gone=True).total == 0


def uri(n: int) -> str:
    return f"at://did:plc:campaign/app.bsky.feed.post/3kaaaaaaaa{n:03d}"


class FakeAppView:
    """Stands in for getPosts (views by URI) and getRecord (records still in the repository)."""

    def __init__(self, views: dict[str, dict[str, Any]], records: set[str]) -> None:
        self.views = views
        self.records = records
        self.get_posts_calls: list[list[str]] = []

    def get_posts(self, uris: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.get_posts_calls.append(list(uris))
        return {u: self.views[u] for u in uris if u in self.views}

    def record_gone(self, at_uri: str) -> bool:
        return at_uri not in self.records


def bluesky_with(ctx: PublishContext, fake: FakeAppView, monkeypatch: pytest.MonkeyPatch) -> BlueskyPublisher:
    publisher = create_publisher("bsky", BSKY, ctx)
    assert isinstance(publisher, BlueskyPublisher)
    monkeypatch.setattr(publisher, "_get_posts", fake.get_posts)
    monkeypatch.setattr(publisher, "_record_gone", fake.record_gone)
    return publisher


def test_bluesky_reads_25_uris_a_call_and_tells_gone_from_not_indexed(
    ctx: PublishContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = {
        uri(n): {"uri": uri(n), "likeCount": n, "repostCount": 1, "replyCount": 0, "quoteCount": 2}
        for n in range(30)
    }
    unindexed = uri(31)  # uri(30) is in neither: deleted
    del views[uri(3)]  # deleted as well
    fake = FakeAppView(views, records={unindexed})
    publisher = bluesky_with(ctx, fake, monkeypatch)
    parts = [PublishedPart(f"p{n}", 0, f"rk{n}", uri(n)) for n in range(32)]

    readings = publisher.read_engagement(parts)

    assert [len(call) for call in fake.get_posts_calls] == [25, 7]
    by_post = {r.post_id: r for r in readings}
    assert "p31" not in by_post  # still in the repository, not in the AppView yet: read it again later
    assert by_post["p30"] == Engagement("p30", 0, NOW, gone=True)
    assert by_post["p3"].gone
    assert by_post["p7"] == Engagement("p7", 0, NOW, likes=7, reposts=1, replies=0, quotes=2)
    assert len(readings) == 31


def test_bluesky_counts_missing_from_a_view_are_unknown(
    ctx: PublishContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeAppView({uri(0): {"uri": uri(0), "likeCount": 4}}, records=set())
    publisher = bluesky_with(ctx, fake, monkeypatch)
    (reading,) = publisher.read_engagement([PublishedPart("p", 0, "rk", uri(0))])
    assert (reading.likes, reading.reposts, reading.replies, reading.quotes, reading.gone) == (
        4,
        None,
        None,
        None,
        False,
    )


@pytest.mark.parametrize("bad", [None, "", "https://bsky.app/profile/x/post/y"])
def test_bluesky_refuses_a_part_without_a_usable_uri_before_any_request(
    ctx: PublishContext, monkeypatch: pytest.MonkeyPatch, bad: str | None
) -> None:
    fake = FakeAppView({}, records=set())
    publisher = bluesky_with(ctx, fake, monkeypatch)
    with pytest.raises(PermanentError, match="part 0 of p"):
        publisher.read_engagement([PublishedPart("ok", 0, "rk", uri(1)), PublishedPart("p", 0, "rk", bad)])
    assert fake.get_posts_calls == []


def test_mastodon_refuses_a_part_without_a_status_id(ctx: PublishContext) -> None:
    publisher = create_publisher("masto", MASTO, ctx)
    with pytest.raises(PermanentError, match="no status id"):
        publisher.read_engagement([PublishedPart("p", 0, "")])


@pytest.mark.parametrize("settings", [MASTO, BSKY])
def test_the_dry_run_reads_nothing(ctx: PublishContext, settings: MastodonAccount | BlueskyAccount) -> None:
    publisher = create_publisher("acct", settings, ctx, dry_run=True)
    assert publisher.read_engagement([PublishedPart("p", 0, "1", uri(0))]) == []
