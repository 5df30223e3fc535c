"""Engagement read back from mastodon-mock through the real Mastodon API: other accounts favourite, boost
and reply to a published status; ``read_engagement`` returns the counts. Deleted statuses read as gone;
faults are classified like every request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mastodon import Mastodon

from amplifier.campaign.models import MastodonAccount
from amplifier.plan.post import Part, PlannedPost
from amplifier.publish import (
    PublishContext,
    PublishResult,
    RateLimitedError,
    TransientError,
    create_publisher,
)
from amplifier.publish.engagement import PublishedPart
from amplifier.publish.mastodon import MastodonPublisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

from .servers import MastodonServer

pytestmark = pytest.mark.integration

TOKEN_ENV = "AMP_IT_MASTODON_ENGAGEMENT_TOKEN"
AT = datetime(2027, 10, 1, 10, 0, tzinfo=UTC)


def planned(post_id: str, *texts: str) -> PlannedPost:
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
    return PlannedPost(
        id=post_id,
        at=AT,
        rule="r",
        account="masto",
        platform="mastodon",
        lang="en",
        parts=parts,
        message_set="m",
        variant=0,
    )


def published(result: PublishResult) -> list[PublishedPart]:
    return [PublishedPart(result.post_id, p.index, p.id, p.uri) for p in result.parts]


class Reader:
    """Another account on the server, acting through the real API with Mastodon.py."""

    def __init__(self, server: MastodonServer) -> None:
        account = server.create_account()
        self.api = Mastodon(
            api_base_url=server.url, access_token=account.access_token, version_check_mode="none"
        )


@pytest.fixture
def publisher(
    mastodon_faults: MastodonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MastodonPublisher]:
    account = mastodon_faults.create_account()
    monkeypatch.setenv(TOKEN_ENV, account.access_token)
    settings = MastodonAccount(platform="mastodon", instance=mastodon_faults.url, token_env=TOKEN_ENV)  # type: ignore[arg-type]
    ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"), timeout=5.0)
    made = create_publisher("masto", settings, ctx)
    assert isinstance(made, MastodonPublisher)
    yield made
    made.close()


def test_favourites_boosts_and_replies_of_other_accounts_are_read_back(
    mastodon_faults: MastodonServer, publisher: MastodonPublisher
) -> None:
    result = publisher.publish(planned("m-counts", "Join the day of action."))
    (fresh,) = publisher.read_engagement(published(result))
    assert (fresh.post_id, fresh.index, fresh.likes, fresh.reposts, fresh.replies, fresh.gone) == (
        "m-counts",
        0,
        0,
        0,
        0,
        False,
    )
    status_id = result.parts[0].id
    readers = [Reader(mastodon_faults) for _ in range(3)]
    for reader in readers:
        reader.api.status_favourite(status_id)
    readers[0].api.status_reblog(status_id)
    readers[1].api.status_reblog(status_id)
    readers[2].api.status_post("I will be there.", in_reply_to_id=status_id)

    (reading,) = publisher.read_engagement(published(result))
    assert (reading.likes, reading.reposts, reading.replies, reading.gone) == (3, 2, 1, False)
    # mastodon-mock has no quotes_count (Mastodon 4.5 has): unknown, not zero
    assert reading.quotes is None
    assert reading.read_at.tzinfo is not None


def test_a_deleted_status_reads_as_gone_and_the_rest_of_the_thread_is_read(
    mastodon_faults: MastodonServer, publisher: MastodonPublisher
) -> None:
    result = publisher.publish(planned("m-thread", "First.", "Second.", "Third."))
    Reader(mastodon_faults).api.status_favourite(result.parts[2].id)
    publisher.api().status_delete(result.parts[1].id)

    readings = publisher.read_engagement(published(result))
    assert [(r.index, r.likes, r.gone) for r in readings] == [(0, 0, False), (1, None, True), (2, 1, False)]


def test_a_rate_limit_is_a_rate_limited_error_with_the_servers_reset(
    mastodon_faults: MastodonServer, publisher: MastodonPublisher
) -> None:
    result = publisher.publish(planned("m-429", "Rate limited."))
    mastodon_faults.inject(status=429, path=f"/api/v1/statuses/{result.parts[0].id}", method="GET")
    before = datetime.now(UTC)
    with pytest.raises(RateLimitedError) as caught:
        publisher.read_engagement(published(result))
    assert caught.value.reset_at is not None
    assert before + timedelta(minutes=4) < caught.value.reset_at < before + timedelta(minutes=6)
    (reading,) = publisher.read_engagement(published(result))  # the rule fired once
    assert reading.likes == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_transient(
    mastodon_faults: MastodonServer, publisher: MastodonPublisher, status: int
) -> None:
    result = publisher.publish(planned(f"m-{status}", "Server error."))
    mastodon_faults.inject(status=status, path=f"/api/v1/statuses/{result.parts[0].id}", method="GET")
    with pytest.raises(TransientError) as caught:
        publisher.read_engagement(published(result))
    assert not isinstance(caught.value, RateLimitedError)
    assert caught.value.status == status


def test_a_garbled_answer_is_transient_not_gone(
    mastodon_faults: MastodonServer, publisher: MastodonPublisher
) -> None:
    result = publisher.publish(planned("m-garbled", "Garbled."))
    mastodon_faults.inject(
        status=200, path=f"/api/v1/statuses/{result.parts[0].id}", method="GET", body={"unexpected": True}
    )
    with pytest.raises(TransientError):
        publisher.read_engagement(published(result))
