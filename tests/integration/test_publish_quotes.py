"""Quote posts over HTTP, through the one delivery path and a ledger: a quote waits (nothing claimed, nothing
sent) until the quoted post is published, then carries its reference; the records are read back from the
reference PDS (``app.bsky.embed.record``, ``recordWithMedia``) and the statuses from mastodon-mock (``quote``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from amplifier.delivery.deliver import Delivery, Outcome, Retries
from amplifier.delivery.ledger import PlanEntry, SqliteLedger, State
from amplifier.plan.adapt import Content, Target, adapt
from amplifier.plan.post import Image, PlannedPost, Platform
from amplifier.plan.quotes import RECORD, RECORD_WITH_MEDIA
from amplifier.publish import Publisher
from amplifier.publish.bluesky import COLLECTION, record_key

from .test_publish_gates import Masto, Sky, masto, sky  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

CALL_AT = datetime(2027, 10, 20, 10, 0, tzinfo=UTC)
AT = datetime(2027, 10, 31, 10, 0, tzinfo=UTC)


def planned(
    post_id: str, platform: Platform, account: str, at: datetime, content: Content, quote: str | None = None
) -> PlannedPost:
    adapted = adapt(content, Target(platform, created_at=at if platform == "bluesky" else None))
    assert not adapted.problems
    return PlannedPost(
        id=post_id,
        at=at,
        rule=post_id.split(":")[0],
        account=account,
        platform=platform,
        lang="en",
        parts=adapted.parts,
        message_set="m",
        variant=0,
        quote=quote,
    )


class Run:
    """A ledger and the delivery path for one account's publisher."""

    def __init__(self, tmp_path: Path, publisher: Publisher, posts: list[PlannedPost]) -> None:
        self.ledger = SqliteLedger.open(tmp_path / "ledger.db", CALL_AT)
        self.ledger.sync_plan([PlanEntry.from_post(post) for post in posts], CALL_AT)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.delivery = Delivery(
            self.ledger,
            lambda account: publisher,
            token="test",
            retries=Retries(),
            clock=lambda: AT,
            emit=lambda event, **fields: self.events.append((event, fields)),
        )

    def deliver(self, post: PlannedPost) -> Any:
        return self.delivery.deliver(self.ledger.get(post.id), post)


def test_a_bluesky_quote_waits_for_the_quoted_post_then_embeds_it(sky: Sky, tmp_path: Path) -> None:  # noqa: F811
    call = planned(
        "call:sky:2027-10-20T12:00", "bluesky", "sky", CALL_AT, Content(texts=("Join us",), lang="en")
    )
    later = planned(
        "countdown:sky:2027-10-31T11:00",
        "bluesky",
        "sky",
        AT,
        Content(texts=("1 day left",), lang="en", quote=True),
        quote=call.id,
    )
    run = Run(tmp_path, sky.publisher, [call, later])
    sky.pds.reset_request_counts()
    waiting = run.deliver(later)
    assert waiting.outcome is Outcome.WAITING
    assert "quotes call:sky:2027-10-20T12:00, which is not published yet" in str(waiting.error)
    assert run.ledger.get(later.id).state == State.PLANNED  # not claimed, no attempt counted
    assert run.ledger.get(later.id).attempts == 0
    assert sky.pds.request_count("com.atproto.repo.putRecord") == 0

    quoted = run.deliver(call).result.parts[0]
    assert run.deliver(later).outcome is Outcome.PUBLISHED
    stored = sky.get(COLLECTION, record_key(later.id, 0, AT))
    assert stored is not None
    assert stored["value"]["embed"] == {"$type": RECORD, "record": {"uri": quoted.uri, "cid": quoted.cid}}
    assert quoted.uri == f"at://{sky.account.did}/{COLLECTION}/{record_key(call.id, 0, CALL_AT)}"
    run.ledger.close()


def test_a_bluesky_quote_with_an_image_is_a_record_with_media(sky: Sky, tmp_path: Path) -> None:  # noqa: F811
    picture = tmp_path / "poster.png"
    PILImage.new("RGB", (60, 30), "blue").save(picture)
    image = Image(str(picture), "A blue poster", "image/png", 60, 30)
    call = planned(
        "call:sky:2027-10-20T12:00", "bluesky", "sky", CALL_AT, Content(texts=("Join",), lang="en")
    )
    later = planned(
        "pic:sky:2027-10-31T11:00",
        "bluesky",
        "sky",
        AT,
        Content(texts=("See you there",), lang="en", images=(image,), quote=True),
        quote=call.id,
    )
    run = Run(tmp_path, sky.publisher, [call, later])
    quoted = run.deliver(call).result.parts[0]
    assert run.deliver(later).outcome is Outcome.PUBLISHED
    stored = sky.get(COLLECTION, record_key(later.id, 0, AT))
    assert stored is not None
    embed = stored["value"]["embed"]
    assert embed["$type"] == RECORD_WITH_MEDIA
    assert embed["record"] == {"$type": RECORD, "record": {"uri": quoted.uri, "cid": quoted.cid}}
    assert embed["media"]["$type"] == "app.bsky.embed.images"
    assert embed["media"]["images"][0]["alt"] == "A blue poster"
    assert embed["media"]["images"][0]["image"]["mimeType"] == "image/png"
    run.ledger.close()


def test_a_mastodon_quote_reads_back_with_its_quoted_status(masto: Masto, tmp_path: Path) -> None:  # noqa: F811
    call = planned(
        "call:masto:2027-10-20T12:00", "mastodon", "masto", CALL_AT, Content(texts=("Join",), lang="en")
    )
    later = planned(
        "countdown:masto:2027-10-31T11:00",
        "mastodon",
        "masto",
        AT,
        Content(texts=("1 day left",), lang="en", quote=True),
        quote=call.id,
    )
    run = Run(tmp_path, masto.publisher, [call, later])
    assert run.deliver(later).outcome is Outcome.WAITING
    quoted_id = run.deliver(call).result.parts[0].id
    status_id = run.deliver(later).result.parts[0].id
    status = masto.status(status_id)
    assert status["quote"]["quoted_status"]["id"] == quoted_id
    run.ledger.close()


def test_a_quote_of_a_failed_post_goes_out_without_it(masto: Masto, tmp_path: Path) -> None:  # noqa: F811
    call = planned(
        "call:masto:2027-10-20T12:00", "mastodon", "masto", CALL_AT, Content(texts=("Join",), lang="en")
    )
    later = planned(
        "late:masto:2027-10-31T11:00",
        "mastodon",
        "masto",
        AT,
        Content(texts=("Still on",), lang="en", quote=True),
        quote=call.id,
    )
    run = Run(tmp_path, masto.publisher, [call, later])
    assert run.ledger.claim(call.id, AT, "test")
    run.ledger.mark_failed(call.id, "refused", AT, token="test")
    status_id = run.deliver(later).result.parts[0].id
    assert masto.status(status_id).get("quote") is None
    assert (
        "quote-dropped",
        {"id": later.id, "account": "masto", "reason": f"{call.id} is failed (refused)"},
    ) in (run.events)
    run.ledger.close()


def test_an_instance_older_than_4_5_posts_the_quote_without_it(masto: Masto, tmp_path: Path) -> None:  # noqa: F811
    call = planned(
        "call:masto:2027-10-20T12:00", "mastodon", "masto", CALL_AT, Content(texts=("Join",), lang="en")
    )
    later = planned(
        "old:masto:2027-10-31T11:00",
        "mastodon",
        "masto",
        AT,
        Content(texts=("Old server",), lang="en", quote=True),
        quote=call.id,
    )
    run = Run(tmp_path, masto.publisher, [call, later])
    run.deliver(call)
    limits = masto.publisher.limits()
    masto.publisher.limits_cache.put(
        f"mastodon-{masto.publisher.base_url}", {**limits, "version": "4.3.2", "api_version": 2}
    )
    masto.publisher.close()
    status_id = run.deliver(later).result.parts[0].id
    assert masto.status(status_id).get("quote") is None
    assert masto.status(status_id)["content"]
    run.ledger.close()


def test_send_of_a_quote_before_its_quoted_post_is_refused_until_it_is_out(
    masto: Masto,  # noqa: F811
    tmp_path: Path,
) -> None:
    from amplifier.delivery.send import LedgerSend

    call = planned(
        "call:masto:2027-10-20T12:00", "mastodon", "masto", CALL_AT, Content(texts=("Join",), lang="en")
    )
    later = planned(
        "again:masto:2027-10-31T11:00",
        "mastodon",
        "masto",
        AT,
        Content(texts=("Again",), lang="en", quote=True),
        quote=call.id,
    )
    ledger = SqliteLedger.open(tmp_path / "ledger.db", CALL_AT)

    class Send(LedgerSend):
        def publisher(self, account: str) -> Publisher:
            return masto.publisher

    sender = Send(None, masto.ctx, ledger, clock=lambda: AT)  # type: ignore[arg-type]
    waiting = sender.send(later)
    assert waiting.status == "waiting"
    message = waiting.to_json()["error"]["message"]
    assert "quotes call:masto:2027-10-20T12:00, which is not published yet" in message
    assert "`amplifier send call:masto:2027-10-20T12:00` first" in message
    assert ledger.get(later.id).state == State.PLANNED
    sender.send(call)
    sent = sender.send(later)
    assert sent.status == "published"
    assert sent.result is not None
    status = masto.status(sent.result.parts[0].id)
    assert status["quote"]["quoted_status"]["id"] == ledger.get(call.id).result[0]["id"]  # type: ignore[index]
    ledger.close()
