"""Engagement read back through the real Bluesky AppView: other accounts like, repost, reply to and quote a
post amplifier published on the PDS; ``read_engagement`` (``app.bsky.feed.getPosts`` through the PDS's
AppView proxy) returns those counts. Also what readers see of the post: its facets as the AppView serves them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amplifier.campaign.models import BlueskyAccount
from amplifier.plan.adapt import Content, Target, adapt
from amplifier.plan.post import Part, PlannedPost
from amplifier.publish import (
    PublishContext,
    PublishError,
    PublishResult,
    RateLimitedError,
    TransientError,
    create_publisher,
)
from amplifier.publish.bluesky import COLLECTION, BlueskyPublisher
from amplifier.publish.engagement import Engagement, PublishedPart
from amplifier.publish.followups import Target as FollowupTarget
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

from .servers import Account
from .servers.appview import AppViewNetwork
from .servers.fault_proxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.appview]

PASSWORD_ENV = "AMP_IT_APPVIEW_PASSWORD"
AT = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def planned(post_id: str, parts: tuple[Part, ...], lang: str = "en") -> PlannedPost:
    return PlannedPost(
        id=post_id,
        at=AT,
        rule="r",
        account="bsky",
        platform="bluesky",
        lang=lang,
        parts=parts,
        message_set="m",
        variant=0,
    )


def bluesky_parts(*texts: str, lang: str = "en", hashtags: tuple[str, ...] = ()) -> tuple[Part, ...]:
    """The parts amplifier's own pipeline makes of ``texts`` (facets detected, a thread if several)."""
    adapted = adapt(
        Content(texts=texts, lang=lang, hashtags=hashtags, split=False),
        Target(platform="bluesky", created_at=AT),
    )
    assert not adapted.problems
    return adapted.parts


class Campaign:
    """The campaign's account on the network, with its publisher."""

    def __init__(
        self, network: AppViewNetwork, account: Account, tmp_path: Path, service: str | None = None
    ) -> None:
        self.network = network
        self.account = account
        settings = BlueskyAccount(
            platform="bluesky",
            handle=account.handle,
            service=service or network.url,  # type: ignore[arg-type]
            password_env=PASSWORD_ENV,
            video_service=None,  # no video service here: the blob goes to the PDS
        )
        ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"), timeout=20.0)
        publisher = create_publisher("bsky", settings, ctx)
        assert isinstance(publisher, BlueskyPublisher)
        self.publisher = publisher

    def publish(self, post: PlannedPost) -> PublishResult:
        result = self.publisher.publish(post)
        self.network.sync()
        return result

    def read(self, result: PublishResult) -> list[Engagement]:
        parts = [PublishedPart(result.post_id, p.index, p.id, p.uri) for p in result.parts]
        return self.publisher.read_engagement(parts)


@pytest.fixture
def campaign(appview: AppViewNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Campaign]:
    account = appview.create_account("campaign")
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    campaign = Campaign(appview, account, tmp_path)
    yield campaign
    campaign.publisher.close()


def ref(result: PublishResult, index: int = 0) -> dict[str, str]:
    part = result.parts[index]
    assert part.uri
    assert part.cid
    return {"uri": part.uri, "cid": part.cid}


def counts(reading: Engagement) -> tuple[int | None, ...]:
    return (reading.likes, reading.reposts, reading.replies, reading.quotes, reading.gone)


def test_likes_reposts_replies_and_quotes_of_other_accounts_are_read_back(
    appview: AppViewNetwork, campaign: Campaign
) -> None:
    result = campaign.publish(planned("av-counts", bluesky_parts("Join the day of action on 1 November.")))
    (fresh,) = campaign.read(result)
    assert counts(fresh) == (0, 0, 0, 0, False)
    assert (fresh.post_id, fresh.index) == ("av-counts", 0)

    readers = [appview.create_account(f"reader{i}") for i in range(3)]
    post = ref(result)
    for reader in readers:
        appview.like(reader, post["uri"], post["cid"])
    appview.repost(readers[0], post["uri"], post["cid"])
    appview.repost(readers[1], post["uri"], post["cid"])
    reply = appview.reply(readers[2], post, "I will be there.")
    appview.reply(readers[0], reply, "Me too.", root=post)  # a reply to the reply: not a direct reply
    appview.quote(readers[1], post["uri"], post["cid"], "Spread the word!")
    appview.sync()

    (reading,) = campaign.read(result)
    # replyCount counts direct replies only (the reply to the reply is not one)
    assert counts(reading) == (3, 2, 1, 1, False)
    assert reading.read_at.tzinfo is not None


def test_a_thread_is_read_part_by_part_and_a_deleted_part_is_gone(
    appview: AppViewNetwork, campaign: Campaign
) -> None:
    result = campaign.publish(
        planned("av-thread", bluesky_parts("First part of the thread.", "Second part.", "Third part."))
    )
    reader = appview.create_account("reader")
    second = ref(result, 1)
    appview.like(reader, second["uri"], second["cid"])
    appview.delete_record(campaign.account, COLLECTION, result.parts[2].id)
    appview.sync()

    readings = campaign.read(result)
    assert [(r.index, r.likes, r.gone) for r in readings] == [(0, 0, False), (1, 1, False), (2, None, True)]
    # part 0's direct reply is part 1, its own thread
    assert readings[0].replies == 1


def test_more_than_25_posts_take_one_getposts_request_per_25(
    appview: AppViewNetwork, campaign: Campaign
) -> None:
    results = [
        campaign.publish(planned(f"av-many-{i}", bluesky_parts(f"Post number {i}."))) for i in range(27)
    ]
    reader = appview.create_account("reader")
    last = ref(results[-1])
    appview.like(reader, last["uri"], last["cid"])
    appview.sync()

    parts = [PublishedPart(r.post_id, 0, r.parts[0].id, r.parts[0].uri) for r in results]
    calls: list[int] = []
    original = campaign.publisher._get_posts

    def counting(uris: Any) -> dict[str, dict[str, Any]]:
        calls.append(len(uris))
        return original(uris)

    campaign.publisher._get_posts = counting  # type: ignore[method-assign]
    readings = campaign.publisher.read_engagement(parts)
    assert calls == [25, 2]
    assert [r.post_id for r in readings] == [f"av-many-{i}" for i in range(27)]
    assert [r.likes for r in readings] == [0] * 26 + [1]


def test_a_post_not_indexed_yet_is_left_out_not_gone(appview: AppViewNetwork, campaign: Campaign) -> None:
    """A record still in the repository that the AppView does not show is read again later, not 'gone'."""
    result = campaign.publish(planned("av-later", bluesky_parts("Indexed soon.")))
    part = result.parts[0]
    assert part.uri
    # An rkey the AppView never saw, in the campaign's own repo, written without waiting for the indexer.
    other = campaign.publisher.publish(planned("av-later-2", bluesky_parts("Not indexed yet.")))
    parts = [
        PublishedPart("av-later", 0, part.id, part.uri),
        PublishedPart("av-later-2", 0, other.parts[0].id, other.parts[0].uri),
    ]
    readings = campaign.publisher.read_engagement(parts)
    read = {r.post_id: r for r in readings}
    assert read["av-later"].gone is False
    assert "av-later-2" not in read or read["av-later-2"].gone is False


def test_a_part_without_an_at_uri_is_refused(campaign: Campaign) -> None:
    with pytest.raises(PublishError, match="no at:// URI"):
        campaign.publisher.read_engagement([PublishedPart("p", 0, "3abc")])


def test_readers_see_the_facets_amplifier_computed(appview: AppViewNetwork, campaign: Campaign) -> None:
    text = "Roja Cîhanî ya Kobanê — tevlî bibin: https://riseup4rojava.org/take-action/"
    parts = bluesky_parts(text, lang="ku", hashtags=("Riseup4Rojava", "Kobanê"))
    result = campaign.publish(planned("av-facets", parts, lang="ku"))
    reader = appview.create_account("reader")

    (view,) = appview.get_posts([ref(result)["uri"]], viewer=reader)
    record = view["record"]
    assert record["text"] == parts[0].text
    assert record["langs"] == ["ku"]
    assert view["author"]["did"] == campaign.account.did
    assert view["author"]["handle"] == campaign.account.handle
    encoded = record["text"].encode("utf-8")
    rendered = {
        encoded[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode("utf-8"): f["features"][0]
        for f in record["facets"]
    }
    assert rendered == {
        "https://riseup4rojava.org/take-action/": {
            "$type": "app.bsky.richtext.facet#link",
            "uri": "https://riseup4rojava.org/take-action/",
        },
        "#Riseup4Rojava": {"$type": "app.bsky.richtext.facet#tag", "tag": "Riseup4Rojava"},
        "#Kobanê": {"$type": "app.bsky.richtext.facet#tag", "tag": "Kobanê"},
    }
    # the link card amplifier attached is in the view too (the page is not reachable: no card, no error)
    assert view.get("embed") is None or view["embed"]["$type"].startswith("app.bsky.embed.external")


def test_getprofile_through_the_appview_shows_the_campaign_account_and_its_bot_label(
    appview: AppViewNetwork, campaign: Campaign
) -> None:
    """The account's self-labels (a ``bot`` label marks automated accounts) reach readers via getProfile."""
    profile = {
        "$type": "app.bsky.actor.profile",
        "displayName": "Riseup4Rojava",
        "labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "bot"}]},
    }
    appview.put_record(campaign.account, "app.bsky.actor.profile", "self", profile)
    campaign.publish(planned("av-profile", bluesky_parts("An automated campaign post.")))
    reader = appview.create_account("reader")

    seen = appview.get_profile(campaign.account.did, viewer=reader)
    assert seen["handle"] == campaign.account.handle
    assert seen["displayName"] == "Riseup4Rojava"
    assert seen["postsCount"] == 1
    assert [label["val"] for label in seen.get("labels", [])] == ["bot"]


def test_a_post_amplifier_pinned_is_the_pinned_post_readers_see_in_getprofile(
    appview: AppViewNetwork, campaign: Campaign
) -> None:
    """``pin: true`` (a follow-up write: the profile record's ``pinnedPost``, swapped in) reaches readers: the
    AppView's getProfile shows the post amplifier pinned, the profile's other fields kept; unpinned, none."""
    profile = {"$type": "app.bsky.actor.profile", "displayName": "Riseup4Rojava"}
    appview.put_record(campaign.account, "app.bsky.actor.profile", "self", profile)
    campaign.publish(planned("av-pin-earlier", bluesky_parts("An earlier post.")))
    result = campaign.publish(
        planned("av-pin", bluesky_parts("The day of action: join us.", "Where and when."))
    )
    target = FollowupTarget.from_result("av-pin", "bsky", [part.to_json() for part in result.parts])
    writer = campaign.publisher.followups()
    reader = appview.create_account("reader")
    assert "pinnedPost" not in appview.get_profile(campaign.account.did, viewer=reader)

    writer.write("pin", target, AT)
    appview.sync()
    seen = appview.get_profile(campaign.account.did, viewer=reader)
    assert seen["pinnedPost"] == ref(result)  # the thread's first post, not the earlier one or a reply
    assert seen["displayName"] == "Riseup4Rojava"

    writer.write("unpin", target, AT)
    appview.sync()
    seen = appview.get_profile(campaign.account.did, viewer=reader)
    assert "pinnedPost" not in seen
    assert seen["displayName"] == "Riseup4Rojava"


GET_POSTS = "app.bsky.feed.getPosts"


@pytest.fixture
def faulty(
    appview: AppViewNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Campaign, FaultProxy]]:
    """The campaign's publisher talking to the PDS through a fault-injecting proxy."""
    proxy = FaultProxy.start(appview.url)
    account = appview.create_account("faulty")
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    campaign = Campaign(appview, account, tmp_path, service=proxy.url)
    try:
        yield campaign, proxy
    finally:
        campaign.publisher.close()
        proxy.stop()


def test_a_rate_limited_getposts_carries_the_reset(faulty: tuple[Campaign, FaultProxy]) -> None:
    campaign, proxy = faulty
    result = campaign.publish(planned("av-429", bluesky_parts("Rate limited read.")))
    proxy.inject(
        GET_POSTS,
        "status",
        status=429,
        headers={"RateLimit-Limit": "3000", "RateLimit-Remaining": "0", "RateLimit-Reset": "1900000000"},
        body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
    )
    with pytest.raises(RateLimitedError) as caught:
        campaign.read(result)
    assert caught.value.reset_at == datetime.fromtimestamp(1_900_000_000, tz=UTC)
    (reading,) = campaign.read(result)  # the rule fired once; the read goes through the proxy to the AppView
    assert reading.likes == 0
    assert proxy.count(GET_POSTS) == 2


@pytest.mark.parametrize(("action", "status"), [("status", 502), ("truncate", None), ("drop_after", None)])
def test_a_failed_getposts_is_transient_never_gone(
    faulty: tuple[Campaign, FaultProxy], action: str, status: int | None
) -> None:
    campaign, proxy = faulty
    result = campaign.publish(planned(f"av-{action}", bluesky_parts("A read that fails.")))
    proxy.inject(GET_POSTS, action, **({"status": status, "body": {"error": "BadGateway"}} if status else {}))
    with pytest.raises(TransientError) as caught:
        campaign.read(result)
    assert not isinstance(caught.value, RateLimitedError)


# -- what readers see of the controls amplifier set ------------------------------------------------------------


def test_a_threadgate_amplifier_wrote_is_enforced_by_the_appview(
    appview: AppViewNetwork, campaign: Campaign
) -> None:
    """``replies: [followers]`` on a call to action: the AppView tells other readers they cannot reply and keeps
    a reply written anyway (the PDS accepts any record) out of the thread and out of the reply count, while a
    follower's reply is shown."""
    ally = appview.create_account("ally")
    stranger = appview.create_account("stranger")
    appview.create_record(ally, "app.bsky.graph.follow", {"subject": campaign.account.did})
    content = Content(texts=("Join us on 1 November.",), lang="en", replies=("followers",), split=False)
    adapted = adapt(content, Target(platform="bluesky", created_at=AT))
    assert not adapted.problems
    result = campaign.publish(planned("av-gate", adapted.parts))
    post = ref(result)

    (seen_by_stranger,) = appview.get_posts([post["uri"]], viewer=stranger)
    assert seen_by_stranger["viewer"].get("replyDisabled") is True
    assert seen_by_stranger["threadgate"]["record"]["allow"] == [
        {"$type": "app.bsky.feed.threadgate#followerRule"}
    ]
    (seen_by_ally,) = appview.get_posts([post["uri"]], viewer=ally)
    assert not seen_by_ally["viewer"].get("replyDisabled")

    appview.reply(stranger, post, "A pile-on reply the gate does not allow.")
    allowed = appview.reply(ally, post, "I will be there.")
    appview.sync()

    thread = appview.get_post_thread(post["uri"], viewer=campaign.account)
    shown = [reply["post"]["uri"] for reply in thread.get("replies", [])]
    assert shown == [allowed["uri"]]
    (reading,) = campaign.read(result)
    assert reading.replies == 1


def test_the_bot_label_set_by_accounts_fix_reaches_readers_and_keeps_the_profile(
    appview: AppViewNetwork, campaign: Campaign
) -> None:
    """``amplifier accounts --fix`` (``disclose_automation``) adds the ``bot`` self-label to the profile record
    without losing what the profile says; readers see both through getProfile."""
    appview.put_record(
        campaign.account,
        "app.bsky.actor.profile",
        "self",
        {
            "$type": "app.bsky.actor.profile",
            "displayName": "Riseup4Rojava",
            "description": "Campaign account",
        },
    )
    assert campaign.publisher.disclose_automation() is True
    assert campaign.publisher.disclose_automation() is False  # already disclosed: nothing written twice
    appview.sync()
    reader = appview.create_account("reader")

    seen = appview.get_profile(campaign.account.did, viewer=reader)
    assert seen["displayName"] == "Riseup4Rojava"
    assert seen["description"] == "Campaign account"
    assert [label["val"] for label in seen.get("labels", [])] == ["bot"]
