"""Reply and quote controls and self-labels over HTTP: the records read back from the reference PDS, the statuses
from mastodon-mock; a post and its gates land together, and a gate missing after a crash is written once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.plan.adapt import Content, Target, adapt
from amplifier.plan.gates import POSTGATE, THREADGATE
from amplifier.plan.post import PlannedPost
from amplifier.publish import PermanentError, PublishContext, create_publisher
from amplifier.publish.bluesky import COLLECTION, BlueskyPublisher, record_key
from amplifier.publish.mastodon import MastodonPublisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

from .servers import Account, MastodonServer, PdsServer
from .servers.mastodon import MastodonAccount as ServerAccount

pytestmark = pytest.mark.integration

PASSWORD_ENV = "AMP_IT_GATES_PASSWORD"
AT = datetime(2027, 11, 1, 9, 0, tzinfo=UTC)
LIST = "at://did:plc:abcdefghijklmnopqrstuvwx/app.bsky.graph.list/3kabcdefghijk"


def planned(post_id: str, content: Content) -> PlannedPost:
    adapted = adapt(content, Target("bluesky", created_at=AT))
    assert not adapted.problems
    return PlannedPost(
        id=post_id,
        at=AT,
        rule="r",
        account="sky",
        platform="bluesky",
        lang="en",
        parts=adapted.parts,
        message_set="m",
        variant=0,
    )


class Sky:
    def __init__(
        self, pds: PdsServer, account: Account, tmp_path: Path, video_service: str | None = None
    ) -> None:
        self.pds, self.account = pds, account
        settings = BlueskyAccount(
            platform="bluesky",
            handle=account.handle,
            service=pds.url,  # type: ignore[arg-type]
            password_env=PASSWORD_ENV,
            video_service=video_service,  # type: ignore[arg-type]
        )
        ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"), timeout=10.0)
        publisher = create_publisher("sky", settings, ctx)
        assert isinstance(publisher, BlueskyPublisher)
        self.publisher = publisher

    def get(self, collection: str, rkey: str) -> dict[str, Any] | None:
        return self.pds.get_record(self.account.did, collection, rkey)


@pytest.fixture
def sky(pds: PdsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sky]:
    account = pds.create_account("gate")
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    sky = Sky(pds, account, tmp_path)
    yield sky
    sky.publisher.close()


def test_thread_with_reply_rules_quotes_off_and_labels_reads_back(sky: Sky) -> None:
    content = Content(
        texts=("First part of the call", "Second part"),
        lang="en",
        replies=("mentioned", "followers", LIST),
        quotes="nobody",
        labels=("graphic-media",),
    )
    post = planned("gates-thread", content)
    sky.pds.reset_request_counts()
    result = sky.publisher.publish(post)

    root, second = (record_key(post.id, index, AT) for index in (0, 1))
    assert [part.id for part in result.parts] == [root, second]
    # One commit per part: the post and its gates together.
    assert sky.pds.request_count("com.atproto.repo.applyWrites") == 2
    assert sky.pds.request_count("com.atproto.repo.putRecord") == 0
    uri = f"at://{sky.account.did}/{COLLECTION}/{root}"
    gate = sky.get(THREADGATE, root)
    assert gate is not None
    assert gate["value"]["post"] == uri
    assert gate["value"]["allow"] == [
        {"$type": "app.bsky.feed.threadgate#mentionRule"},
        {"$type": "app.bsky.feed.threadgate#followerRule"},
        {"$type": "app.bsky.feed.threadgate#listRule", "list": LIST},
    ]
    assert sky.get(THREADGATE, second) is None  # a thread's replies are gated at its root
    for rkey in (root, second):
        quote_gate = sky.get(POSTGATE, rkey)
        assert quote_gate is not None
        assert quote_gate["value"]["post"] == f"at://{sky.account.did}/{COLLECTION}/{rkey}"
        assert quote_gate["value"]["embeddingRules"] == [{"$type": "app.bsky.feed.postgate#disableRule"}]
        stored = sky.get(COLLECTION, rkey)
        assert stored is not None
        assert stored["value"]["labels"] == {
            "$type": "com.atproto.label.defs#selfLabels",
            "values": [{"val": "graphic-media"}],
        }


def test_nobody_may_reply_is_an_empty_allow_list(sky: Sky) -> None:
    post = planned("gates-nobody", Content(texts=("Closed to replies",), lang="en", replies=("nobody",)))
    sky.publisher.publish(post)
    gate = sky.get(THREADGATE, record_key(post.id, 0, AT))
    assert gate is not None
    assert gate["value"]["allow"] == []
    assert sky.get(POSTGATE, record_key(post.id, 0, AT)) is None


def test_publishing_again_or_resuming_writes_nothing_twice(sky: Sky) -> None:
    post = planned(
        "gates-again", Content(texts=("Once",), lang="en", replies=("following",), quotes="nobody")
    )
    first = sky.publisher.publish(post)
    sky.pds.reset_request_counts()
    found = sky.publisher.lookup(post)
    assert [part.cid for part in found.values()] == [first.parts[0].cid]
    again = sky.publisher.publish(post, resume={})
    assert again.parts[0].existed
    assert sky.pds.request_count("com.atproto.repo.applyWrites") == 0
    assert sky.pds.request_count("com.atproto.repo.putRecord") == 0
    assert len(sky.pds.list_records(sky.account.did, THREADGATE)) == 1


def test_a_post_found_without_its_gate_gets_the_gate_once(sky: Sky) -> None:
    """A crash left the post but not its gate (a post written before the gate was configured, or by hand):
    the lookup does not count it as done, and resuming writes the missing gate, once."""
    bare = planned("gates-missing", Content(texts=("Gate me",), lang="en"))
    sky.publisher.publish(bare)
    gated = planned("gates-missing", Content(texts=("Gate me",), lang="en", replies=("followers",)))
    assert sky.publisher.lookup(gated) == {}
    sky.pds.reset_request_counts()
    result = sky.publisher.publish(gated, resume={})
    assert result.parts[0].existed
    assert sky.pds.request_count("com.atproto.repo.putRecord") == 1
    rkey = record_key(gated.id, 0, AT)
    assert sky.get(THREADGATE, rkey) is not None
    assert list(sky.publisher.lookup(gated)) == [0]
    sky.pds.reset_request_counts()
    sky.publisher.publish(gated, resume={})
    assert sky.pds.request_count("com.atproto.repo.putRecord") == 0


def test_set_gates_changes_and_removes_the_controls_of_a_published_post(sky: Sky) -> None:
    post = planned("gates-change", Content(texts=("Open", "thread"), lang="en"))
    result = sky.publisher.publish(post)
    rkeys = [part.id for part in result.parts]
    done = sky.publisher.set_gates(
        rkeys, replies=[], everyone_replies=False, quotes_off=True, created_at="2027-11-01T12:00:00.000Z"
    )
    assert len(done) == 3
    gate = sky.get(THREADGATE, rkeys[0])
    assert gate is not None
    assert gate["value"]["allow"] == []
    assert all(sky.get(POSTGATE, rkey) is not None for rkey in rkeys)
    sky.publisher.set_gates(
        rkeys, replies=None, everyone_replies=True, quotes_off=False, created_at="2027-11-01T13:00:00.000Z"
    )
    assert sky.get(THREADGATE, rkeys[0]) is None
    assert all(sky.get(POSTGATE, rkey) is None for rkey in rkeys)


def test_automation_label_on_the_profile_keeps_the_other_fields(sky: Sky) -> None:
    did = sky.account.did
    assert sky.publisher.automation() is False
    sky.publisher._put_record(
        "self",
        {"$type": "app.bsky.actor.profile", "displayName": "Rise Up", "description": "A campaign"},
        "app.bsky.actor.profile",
    )
    assert sky.publisher.automation() is False
    assert sky.publisher.disclose_automation() is True
    profile = sky.pds.get_record(did, "app.bsky.actor.profile", "self")
    assert profile is not None
    assert profile["value"]["displayName"] == "Rise Up"
    assert profile["value"]["description"] == "A campaign"
    assert profile["value"]["labels"]["values"] == [{"val": "bot"}]
    assert sky.publisher.automation() is True
    assert sky.publisher.disclose_automation() is False  # already there: nothing written


# --------------------------------------------------------------------------------------------- Mastodon

TOKEN_ENV = "AMP_IT_GATES_TOKEN"


class Masto:
    def __init__(self, server: MastodonServer, account: ServerAccount, tmp_path: Path) -> None:
        self.server, self.account = server, account
        settings = MastodonAccount(platform="mastodon", instance=server.url, token_env=TOKEN_ENV)  # type: ignore[arg-type]
        self.ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"), timeout=5.0)
        publisher = create_publisher("masto", settings, self.ctx)
        assert isinstance(publisher, MastodonPublisher)
        self.publisher = publisher

    def status(self, status_id: str) -> dict[str, Any]:
        found = self.server.get_status(status_id, self.account.access_token)
        assert found is not None
        return found


@pytest.fixture
def masto(
    mastodon_server: MastodonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Masto]:
    account = mastodon_server.create_account(mastodon_server.unique_username("gate"))
    monkeypatch.setenv(TOKEN_ENV, account.access_token)
    masto = Masto(mastodon_server, account, tmp_path)
    yield masto
    masto.publisher.close()


def masto_post(post_id: str, content: Content) -> PlannedPost:
    adapted = adapt(content, Target("mastodon"))
    return PlannedPost(
        id=post_id,
        at=AT,
        rule="r",
        account="masto",
        platform="mastodon",
        lang="en",
        parts=adapted.parts,
        message_set="m",
        variant=0,
    )


def test_mastodon_quote_policy_on_every_part_reads_back(masto: Masto) -> None:
    post = masto_post("mq-thread", Content(texts=("Call", "More"), lang="en", quotes="followers"))
    result = masto.publisher.publish(post)
    assert [masto.status(part.id)["quote_approval_policy"] for part in result.parts] == ["followers"] * 2


def test_mastodon_gate_changes_the_policy_of_a_published_status(masto: Masto) -> None:
    result = masto.publisher.publish(masto_post("mq-change", Content(texts=("Open to quotes",), lang="en")))
    status_id = result.parts[0].id
    assert masto.status(status_id)["quote_approval_policy"] == "public"
    masto.publisher.set_quote_policy([status_id], "nobody")
    assert masto.status(status_id)["quote_approval_policy"] == "nobody"


def test_an_instance_older_than_4_5_gets_no_policy_and_the_post_goes_out(masto: Masto) -> None:
    limits = masto.publisher.limits()
    masto.publisher.limits_cache.put(
        f"mastodon-{masto.publisher.base_url}", {**limits, "version": "4.3.2", "api_version": 2}
    )
    masto.publisher.close()
    post = masto_post("mq-old", Content(texts=("Old instance",), lang="en", quotes="nobody"))
    result = masto.publisher.publish(post)
    assert masto.status(result.parts[0].id)["quote_approval_policy"] == "public"  # the server's default
    with pytest.raises(PermanentError, match=r"older than 4\.5"):
        masto.publisher.set_quote_policy([result.parts[0].id], "nobody")


def test_mastodon_bot_flag_is_reported_and_set(masto: Masto) -> None:
    info = masto.publisher.check()
    assert info.bot is False
    assert info.warnings == ()  # the mock runs a Mastodon with quote controls
    assert masto.publisher.disclose_automation() is True
    assert masto.publisher.check().bot is True
    assert masto.publisher.disclose_automation() is False


def test_publishing_a_gated_post_again_from_scratch_makes_no_copy(sky: Sky) -> None:
    """A second ``publish`` without ``resume`` (the ledger lost the first): the create of the existing post is
    refused by the PDS, the post is found and nothing is written twice."""
    post = planned("gates-twice", Content(texts=("Twice",), lang="en", replies=("nobody",), quotes="nobody"))
    first = sky.publisher.publish(post)
    sky.pds.reset_request_counts()
    again = sky.publisher.publish(post)
    print("COUNTS", sky.pds.request_counts(), again)
    assert again.parts[0].cid == first.parts[0].cid
    assert again.parts[0].existed
    assert len(sky.pds.list_records(sky.account.did, COLLECTION)) == 1
    assert len(sky.pds.list_records(sky.account.did, THREADGATE)) == 1
    assert len(sky.pds.list_records(sky.account.did, POSTGATE)) == 1
