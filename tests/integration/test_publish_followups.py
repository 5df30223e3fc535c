"""Follow-up writes over HTTP: reposts, pins and deletions read back from the reference PDS, reblogs, pins and
deletions from mastodon-mock; every write repeated is a no-op, and ``is_done`` reads the truth from the server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.plan.adapt import Content, adapt
from amplifier.plan.adapt import Target as AdaptTarget
from amplifier.plan.gates import POSTGATE, THREADGATE
from amplifier.plan.post import Part, PlannedPost
from amplifier.publish import PublishContext, create_publisher
from amplifier.publish.bluesky import COLLECTION, BlueskyPublisher
from amplifier.publish.bluesky_controls import PROFILE
from amplifier.publish.bluesky_followups import REPOST
from amplifier.publish.followups import Target, WritesFollowups, repost_key
from amplifier.publish.mastodon import MastodonPublisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

from .servers import MastodonServer, PdsServer

pytestmark = pytest.mark.integration

AT = datetime(2027, 11, 1, 9, 0, tzinfo=UTC)
WHEN = AT + timedelta(minutes=10)


def ctx(tmp_path: Path, name: str) -> PublishContext:
    return PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / name), timeout=10.0)


# ------------------------------------------------------------------------------------------------- Bluesky


def sky_post(post_id: str, *texts: str, quotes: str | None = None) -> PlannedPost:
    adapted = adapt(
        Content(texts=texts, lang="en", replies=("followers",), quotes=quotes),
        AdaptTarget("bluesky", created_at=AT),
    )
    return PlannedPost(post_id, AT, "r", "author", "bluesky", "en", adapted.parts, "m", 0)


@pytest.fixture
def skies(
    pds: PdsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], tuple[BlueskyPublisher, str]]]:
    made: list[BlueskyPublisher] = []

    def make(name: str) -> tuple[BlueskyPublisher, str]:
        account = pds.create_account(name)
        env = f"AMP_IT_FOLLOWUPS_{name.upper()}"
        monkeypatch.setenv(env, account.password)
        settings = BlueskyAccount(
            platform="bluesky", handle=account.handle, service=pds.url, password_env=env
        )  # type: ignore[arg-type]
        publisher = create_publisher(name, settings, ctx(tmp_path, name))
        assert isinstance(publisher, BlueskyPublisher)
        made.append(publisher)
        return publisher, account.did

    yield make
    for publisher in made:
        publisher.close()


def test_bluesky_repost_pin_unpin_and_delete_read_back(
    pds: PdsServer, skies: Callable[[str], tuple[BlueskyPublisher, str]]
) -> None:
    author, author_did = skies("author")
    booster, booster_did = skies("booster")
    post = sky_post("fu-sky-thread", "The call", "Second part", quotes="nobody")
    result = author.publish(post)
    target = Target.from_result(post.id, "author", [part.to_json() for part in result.parts])
    assert isinstance(booster, WritesFollowups)
    writer = booster.followups()

    assert not writer.is_done("boost", target, WHEN)
    first = writer.write("boost", target, WHEN)
    rkey = repost_key(post.id, "booster", result.parts[0].id)
    stored = pds.get_record(booster_did, REPOST, rkey)
    assert stored is not None
    assert stored["value"]["subject"] == {"uri": result.parts[0].uri, "cid": result.parts[0].cid}
    # A repeat (a crash before the ledger recorded it) writes the same record at the same key: one repost.
    again = writer.write("boost", target, WHEN)
    assert again.record == first.record
    assert len(pds.list_records(booster_did, REPOST)) == 1
    assert writer.is_done("boost", target, WHEN)

    own = author.followups()
    own.write("pin", target, WHEN)
    profile = pds.get_record(author_did, PROFILE, "self")
    assert profile is not None
    assert profile["value"]["pinnedPost"] == {"uri": result.parts[0].uri, "cid": result.parts[0].cid}
    assert own.write("pin", target, WHEN).detail == "already pinned"
    assert own.is_done("pin", target, WHEN)

    # Unpin leaves another post pinned meanwhile alone.
    other = author.publish(sky_post("fu-sky-other", "Another"))
    other_target = Target.from_result("fu-sky-other", "author", [p.to_json() for p in other.parts])
    own.write("pin", other_target, WHEN)
    assert "not the pinned post" in own.write("unpin", target, WHEN).detail
    profile = pds.get_record(author_did, PROFILE, "self")
    assert profile is not None
    assert profile["value"]["pinnedPost"]["uri"] == other.parts[0].uri
    own.write("unpin", other_target, WHEN)
    profile = pds.get_record(author_did, PROFILE, "self")
    assert profile is not None
    assert "pinnedPost" not in profile["value"]

    later = WHEN + timedelta(hours=5)  # a retraction comes later than the boost: the same key
    writer.write("unboost", target, later)
    assert pds.get_record(booster_did, REPOST, rkey) is None
    assert writer.is_done("unboost", target, later)

    assert not own.is_done("delete", target, WHEN)
    own.write("delete", target, WHEN)
    for part in result.parts:
        for collection in (COLLECTION, THREADGATE, POSTGATE):
            assert pds.get_record(author_did, collection, part.id) is None
    own.write("delete", target, WHEN)  # a repeat: already gone, no error
    assert own.is_done("delete", target, WHEN)


def test_bluesky_pin_keeps_the_other_fields_of_the_profile(
    pds: PdsServer, skies: Callable[[str], tuple[BlueskyPublisher, str]]
) -> None:
    author, did = skies("profiled")
    assert author.disclose_automation()  # a profile with a label, written by someone else
    result = author.publish(sky_post("fu-sky-profile", "Pin me"))
    target = Target.from_result("fu-sky-profile", "profiled", [p.to_json() for p in result.parts])
    author.followups().write("pin", target, WHEN)
    profile = pds.get_record(did, PROFILE, "self")
    assert profile is not None
    assert profile["value"]["labels"]["values"] == [{"val": "bot"}]
    assert profile["value"]["pinnedPost"]["uri"] == result.parts[0].uri


# ------------------------------------------------------------------------------------------------ Mastodon


def masto_post(post_id: str, *texts: str) -> PlannedPost:
    parts = tuple(
        Part(
            text=text,
            length=len(text),
            limit=500,
            payload={
                "status": text,
                "visibility": "public",
                "language": "en",
                **({"in_reply_to_id": {"$ref": f"part:{i - 1}"}} if i else {}),
            },
        )
        for i, text in enumerate(texts)
    )
    return PlannedPost(post_id, AT, "r", "author", "mastodon", "en", parts, "m", 0)


@pytest.fixture
def mastos(
    mastodon_server: MastodonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], tuple[MastodonPublisher, str]]]:
    made: list[MastodonPublisher] = []

    def make(name: str) -> tuple[MastodonPublisher, str]:
        account = mastodon_server.create_account()
        env = f"AMP_IT_FOLLOWUPS_M_{name.upper()}"
        monkeypatch.setenv(env, account.access_token)
        settings = MastodonAccount(platform="mastodon", instance=mastodon_server.url, token_env=env)  # type: ignore[arg-type]
        publisher = create_publisher(name, settings, ctx(tmp_path, name))
        assert isinstance(publisher, MastodonPublisher)
        made.append(publisher)
        return publisher, account.access_token

    yield make
    for publisher in made:
        publisher.close()


def test_mastodon_reblog_pin_unpin_and_delete_read_back(
    mastodon_server: MastodonServer, mastos: Callable[[str], tuple[MastodonPublisher, str]]
) -> None:
    author, author_token = mastos("author")
    booster, booster_token = mastos("booster")
    post = masto_post("fu-masto-thread", "The call", "Second part")
    result = author.publish(post)
    root = result.parts[0].id
    target = Target.from_result(
        post.id, "author", [p.to_json() for p in result.parts], server=author.base_url
    )
    writer = booster.followups()

    assert not writer.is_done("boost", target, WHEN)
    first = writer.write("boost", target, WHEN)
    second = writer.write("boost", target, WHEN)  # Mastodon answers the same reblog
    assert first.record == second.record
    status = mastodon_server.get_status(root, booster_token)
    assert status is not None
    assert status["reblogged"]
    assert status["reblogs_count"] == 1
    assert writer.is_done("boost", target, WHEN)

    own = author.followups()
    own.write("pin", target, WHEN)
    assert own.write("pin", target, WHEN).detail.endswith("already pinned")
    status = mastodon_server.get_status(root, author_token)
    assert status is not None
    assert status["pinned"]
    own.write("unpin", target, WHEN)
    status = mastodon_server.get_status(root, author_token)
    assert status is not None
    assert not status["pinned"]
    assert own.is_done("unpin", target, WHEN)

    writer.write("unboost", target, WHEN)
    status = mastodon_server.get_status(root, booster_token)
    assert status is not None
    assert not status["reblogged"]

    own.write("delete", target, WHEN)
    assert all(mastodon_server.get_status(p.id) is None for p in result.parts)
    assert "2 already gone" in own.write("delete", target, WHEN).detail
    assert own.is_done("delete", target, WHEN)
