"""The Mastodon publisher against mastodon-mock over HTTP on loopback, driven by the real Mastodon.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from amplifier.campaign.models import MastodonAccount
from amplifier.plan.post import Image, Part, PlannedPost
from amplifier.publish import (
    AuthError,
    PermanentError,
    PublishContext,
    RateLimitedError,
    TransientError,
    create_publisher,
)
from amplifier.publish.mastodon import MastodonPublisher, StatusOutcomeUnknown, idempotency_key
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir, secret_changed

from .servers import MastodonServer
from .servers.mastodon import MastodonAccount as ServerAccount

pytestmark = pytest.mark.integration

TOKEN_ENV = "AMP_IT_MASTODON_TOKEN"
AT = datetime(2027, 10, 1, 10, 0, tzinfo=UTC)


def part(status: str, **extra: Any) -> Part:
    images = extra.pop("images", ())
    payload: dict[str, Any] = {"status": status, "visibility": "public", "language": "en", **extra}
    return Part(text=status, length=len(status), limit=500, payload=payload, images=tuple(images))


def thread(*texts: str) -> tuple[Part, ...]:
    return tuple(
        part(text, **({"in_reply_to_id": {"$ref": f"part:{i - 1}"}} if i else {}))
        for i, text in enumerate(texts)
    )


def planned(post_id: str, *parts: Part) -> PlannedPost:
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


def png(path: Path, size: tuple[int, int] = (40, 30), color: str = "red") -> Path:
    PILImage.new("RGB", size, color).save(path, "PNG")
    return path


class Setup:
    def __init__(self, server: MastodonServer, account: ServerAccount, tmp_path: Path) -> None:
        self.server = server
        self.account = account
        self.tmp_path = tmp_path
        self.settings = MastodonAccount(platform="mastodon", instance=server.url, token_env=TOKEN_ENV)  # type: ignore[arg-type]
        self.ctx = PublishContext(
            secrets=SecretSources(), state=StateDir(tmp_path / "state"), timeout=2.0, media_wait=10.0
        )

        self.opened: list[MastodonPublisher] = []

    def publisher(self) -> MastodonPublisher:
        publisher = create_publisher("masto", self.settings, self.ctx)
        assert isinstance(publisher, MastodonPublisher)
        self.opened.append(publisher)
        return publisher

    def close(self) -> None:
        for publisher in self.opened:
            publisher.close()

    def statuses(self) -> list[dict[str, Any]]:
        return self.server.statuses(self.account)


@pytest.fixture
def setup(
    mastodon_faults: MastodonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    account = mastodon_faults.create_account(mastodon_faults.unique_username("camp"))
    monkeypatch.setenv(TOKEN_ENV, account.access_token)
    setup = Setup(mastodon_faults, account, tmp_path)
    yield setup
    setup.close()


def test_text_with_language_visibility_and_content_warning(setup: Setup) -> None:
    post = planned(
        "p-text",
        part(
            "Noch 3 Tage! #Rojava",
            visibility="unlisted",
            language="de",
            spoiler_text="Wahlen",
            sensitive=True,
        ),
    )
    result = setup.publisher().publish(post)

    (status,) = setup.statuses()
    assert result.parts[0].id == str(status["id"])
    assert result.url == status["url"]
    assert "Noch 3 Tage!" in status["content"]
    assert status["language"] == "de"
    assert status["visibility"] == "unlisted"
    assert status["spoiler_text"] == "Wahlen"
    assert status["sensitive"] is True


def test_images_are_uploaded_with_their_alt_text(setup: Setup) -> None:
    first = png(setup.tmp_path / "a.png")
    second = png(setup.tmp_path / "b.png", color="blue")
    images = (
        Image(path=str(first), alt="A red square", mime="image/png", width=40, height=30),
        Image(path=str(second), alt="A blue square", mime="image/png", width=40, height=30),
    )
    post = planned(
        "p-img",
        part("With pictures", media_ids=[{"$upload": str(first)}, {"$upload": str(second)}], images=images),
    )
    setup.publisher().publish(post)

    (status,) = setup.statuses()
    assert [m["description"] for m in status["media_attachments"]] == ["A red square", "A blue square"]
    assert all(m["type"] == "image" for m in status["media_attachments"])


def test_thread_parts_reply_to_the_previous_part(setup: Setup) -> None:
    result = setup.publisher().publish(planned("p-thread", *thread("one 1/3", "two 2/3", "three 3/3")))

    by_id = {str(s["id"]): s for s in setup.statuses()}
    ids = [p.id for p in result.parts]
    assert len(by_id) == 3
    assert by_id[ids[0]]["in_reply_to_id"] is None
    assert str(by_id[ids[1]]["in_reply_to_id"]) == ids[0]
    assert str(by_id[ids[2]]["in_reply_to_id"]) == ids[1]


def test_same_post_twice_creates_one_status(setup: Setup) -> None:
    post = planned("p-twice", part("Only once"))
    first = setup.publisher().publish(post)
    second = setup.publisher().publish(post)

    assert len(setup.statuses()) == 1
    assert second.parts[0].id == first.parts[0].id
    assert second.url == first.url


def test_repeat_after_a_while_is_reported_as_already_published(setup: Setup) -> None:
    post = planned("p-later", part("Once, even later"))
    first = setup.publisher().publish(post)
    assert not first.already_published
    time.sleep(4.5)  # beyond the 2 s margin, and the Date header: whole seconds, refreshed once a second
    again = setup.publisher().publish(post)
    assert again.already_published
    assert again.url == first.url
    assert len(setup.statuses()) == 1


def test_steady_state_is_one_request_per_text_post(setup: Setup) -> None:
    publisher = setup.publisher()
    publisher.publish(planned("warm-up", part("warm up")))  # reads and caches the instance's limits
    setup.server.reset_request_counts()
    for n in range(3):
        publisher.publish(planned(f"steady-{n}", part(f"post {n}")))
    assert setup.server.request_count() == 3
    assert setup.server.request_count("/api/v1/statuses") == 3

    # A new process (a new publisher) reads the limits from the state folder, not from the server.
    setup.server.reset_request_counts()
    setup.publisher().publish(planned("fresh-process", part("again")))
    assert setup.server.request_count() == 1


def test_part_over_the_instance_limit_is_refused_before_sending(setup: Setup) -> None:
    publisher = setup.publisher()
    publisher.limits()
    setup.server.reset_request_counts()
    with pytest.raises(PermanentError, match=r"501 characters.*allows 500"):
        publisher.publish(planned("too-long", part("x" * 501)))
    assert setup.server.request_count() == 0


def test_content_warning_counts_against_the_limit(setup: Setup) -> None:
    with pytest.raises(PermanentError, match="with the content warning"):
        setup.publisher().publish(planned("cw-long", part("x" * 495, spoiler_text="123456")))


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (500, TransientError, "HTTP 500"),
        (502, TransientError, "HTTP 502"),
        (503, TransientError, "HTTP 503"),
        (422, PermanentError, "HTTP 422"),
        (401, AuthError, "rejected the access token in AMP_IT_MASTODON_TOKEN"),
        (403, AuthError, "HTTP 403"),
    ],
)
def test_errors_are_classified(setup: Setup, status: int, error: type[Exception], words: str) -> None:
    publisher = setup.publisher()
    publisher.limits()
    setup.server.inject(status=status, path="/api/v1/statuses", method="POST")
    with pytest.raises(error, match=words) as caught:
        publisher.publish(planned(f"fault-{status}", part("hello")))
    if status == 502:
        assert not isinstance(caught.value, AuthError)
    assert setup.account.access_token not in str(caught.value)


def test_rate_limit_carries_the_reset_time(setup: Setup) -> None:
    publisher = setup.publisher()
    publisher.limits()
    setup.server.inject(status=429, path="/api/v1/statuses", method="POST", ratelimit_reset_in=600)
    before = datetime.now(UTC)
    with pytest.raises(RateLimitedError) as caught:
        publisher.publish(planned("fault-429", part("hello")))
    reset_at = caught.value.reset_at
    assert reset_at is not None
    assert before + timedelta(seconds=590) <= reset_at <= before + timedelta(seconds=610)


def test_timeout_is_transient(setup: Setup) -> None:
    publisher = setup.publisher()
    publisher.limits()
    setup.server.inject(hang=True, path="/api/v1/statuses", method="POST", delay=3)
    with pytest.raises(StatusOutcomeUnknown, match=r"timed out"):  # the status may have been created
        publisher.publish(planned("fault-timeout", part("hello")))


def test_thread_failing_midway_resumes_without_duplicates(setup: Setup) -> None:
    image = png(setup.tmp_path / "c.png")
    parts = list(thread("first", "second", "third"))
    parts[1] = part(
        "second",
        in_reply_to_id={"$ref": "part:0"},
        media_ids=[{"$upload": str(image)}],
        images=(Image(path=str(image), alt="red", mime="image/png"),),
    )
    post = planned("p-resume", *parts)
    publisher = setup.publisher()
    publisher.limits()
    setup.server.inject(status=503, path="/api/v2/media", method="POST")
    with pytest.raises(TransientError) as caught:
        publisher.publish(post)
    assert sorted(caught.value.done) == [0]

    result = publisher.publish(post, resume=caught.value.done)
    statuses = {str(s["id"]): s for s in setup.statuses()}
    assert len(statuses) == 3
    assert result.parts[0] == caught.value.done[0]
    assert str(statuses[result.parts[2].id]["in_reply_to_id"]) == result.parts[1].id


def test_check_reports_who_and_the_instance_limits(setup: Setup) -> None:
    info = setup.publisher().check()
    assert info.ok
    assert info.id == setup.account.account_id
    assert info.limits["max_characters"] == 500
    assert info.limits["max_media_attachments"] == 4
    assert info.limits["characters_reserved_per_url"] == 23


def test_check_with_a_bad_token_is_an_auth_error(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "not-a-token")
    with pytest.raises(AuthError, match=TOKEN_ENV) as caught:
        setup.publisher().check()
    assert "not-a-token" not in str(caught.value)
    # defect 6: the pause can tell a replaced token from the rejected one (a fingerprint, not the token)
    fingerprint = caught.value.fingerprint
    assert fingerprint is not None
    assert "not-a-token" not in fingerprint
    assert not secret_changed(setup.ctx.state, fingerprint, "not-a-token")
    assert secret_changed(setup.ctx.state, fingerprint, "a-new-token-value")


def test_idempotency_key_is_stable_and_bounded() -> None:
    assert idempotency_key("a", 0) == idempotency_key("a", 0) != idempotency_key("a", 1)
    assert len(idempotency_key("x" * 500, 2)) <= 100
