"""Mastodon publisher logic that needs no server: lengths, instance limits, part checks, media polling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from amplifier.models import MastodonAccount
from amplifier.post import Image, Part
from amplifier.publish import PermanentError, PublishContext, TransientError
from amplifier.publish.mastodon import DEFAULT_LIMITS, MastodonPublisher, parse_instance, status_length
from amplifier.secrets import SecretSources
from amplifier.sessions import StateDir

SETTINGS = MastodonAccount(platform="mastodon", instance="https://masto.example", token_env="AMP_UNIT_TOKEN")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "spoiler", "per_url", "expected"),
    [
        ("hello", "", 23, 5),
        ("hello", "cw", 23, 7),  # the content warning counts too
        ("https://example.org/a/very/long/path/indeed/more/than/twenty/three", "", 23, 23),
        ("see https://example.org/x", "", 23, 4 + 23),
        ("see https://example.org/x", "", 30, 4 + 30),  # the instance's own URL weight
        ("hi @bob@example.social", "", 23, 7),  # a remote mention counts as @bob
        ("👩‍👩‍👧‍👦", "", 23, 1),  # one grapheme cluster
        ("Bijî berxwedana Kobanê!", "", 23, 23),
    ],
)
def test_status_length(text: str, spoiler: str, per_url: int, expected: int) -> None:
    assert status_length(text, spoiler, per_url=per_url) == expected


def test_parse_instance_reads_limits_and_keeps_defaults() -> None:
    data = {
        "version": "4.3.2",
        "domain": "masto.example",
        "configuration": {
            "statuses": {
                "max_characters": 1000,
                "characters_reserved_per_url": 23,
                "max_media_attachments": 6,
            },
            "media_attachments": {"description_limit": 3000, "image_size_limit": 16777216},
        },
    }
    limits = parse_instance(data)
    assert limits["max_characters"] == 1000
    assert limits["max_media_attachments"] == 6
    assert limits["description_limit"] == 3000
    assert limits["version"] == "4.3.2"
    assert parse_instance({}) == {**DEFAULT_LIMITS, "version": "", "domain": ""}
    assert (
        parse_instance({"configuration": {"statuses": {"max_characters": "lots"}}})["max_characters"] == 500
    )


@pytest.fixture
def publisher(tmp_path: Path) -> MastodonPublisher:
    ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"), media_wait=2.0)
    return MastodonPublisher("masto", SETTINGS, ctx)


def part(status: str, images: tuple[Image, ...] = (), **extra: Any) -> Part:
    payload = {"status": status, "visibility": "public", "language": "en", **extra}
    return Part(text=status, length=0, limit=500, payload=payload, images=images)


@pytest.mark.parametrize(
    ("the_part", "words"),
    [
        (part("x" * 501), "501 characters"),
        (part("x" * 490, spoiler_text="x" * 11), "with the content warning"),
        (part("x", media_ids=[{"$upload": f"/{n}.png"} for n in range(5)]), "5 images"),
        (part("x", images=(Image(path="/a.png", alt="a" * 1501, mime="image/png"),)), "alt text of a.png"),
        (part("x", poll={"options": ["a"]}), "unknown status parameter"),
    ],
)
def test_check_part_refuses_what_the_instance_would(
    publisher: MastodonPublisher, the_part: Part, words: str
) -> None:
    with pytest.raises(PermanentError, match=words):
        publisher.check_part(the_part, dict(DEFAULT_LIMITS))


def test_check_part_accepts_a_part_at_the_limit(publisher: MastodonPublisher) -> None:
    publisher.check_part(part("x" * 500), dict(DEFAULT_LIMITS))


class FakeApi:
    """Stands in for Mastodon.py: an upload answered 202 (url null) that is processed after two polls."""

    def __init__(self, polls_needed: int) -> None:
        self.polls_needed = polls_needed
        self.polls = 0
        self.uploaded: list[tuple[str, str | None, str | None]] = []

    def media_post(
        self, path: str, mime_type: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        self.uploaded.append((path, mime_type, description))
        return {"id": "77", "url": None}

    def media(self, media_id: str) -> dict[str, Any]:
        self.polls += 1
        done = self.polls >= self.polls_needed
        return {"id": media_id, "url": "https://masto.example/m/77.png" if done else None}


def test_upload_waits_for_processing(
    publisher: MastodonPublisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "a.png"
    PILImage.new("RGB", (4, 4)).save(image)
    fake = FakeApi(polls_needed=2)
    monkeypatch.setattr(publisher, "api", lambda: fake)
    monkeypatch.setattr("amplifier.publish.mastodon.time.sleep", lambda _s: None)
    the_part = part(
        "x",
        images=(Image(path=str(image), alt="Alt", mime="image/png"),),
        media_ids=[{"$upload": str(image)}],
    )
    params = publisher.build_params(the_part, {})
    assert params["media_ids"] == ["77"]
    assert fake.uploaded == [(str(image), "image/png", "Alt")]
    assert fake.polls == 2


def test_upload_that_never_finishes_is_transient(
    publisher: MastodonPublisher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "a.png"
    PILImage.new("RGB", (4, 4)).save(image)
    monkeypatch.setattr(publisher, "api", lambda: FakeApi(polls_needed=10**9))
    clock = iter(float(n) for n in range(10**6))
    monkeypatch.setattr("amplifier.publish.mastodon.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("amplifier.publish.mastodon.time.sleep", lambda _s: None)
    the_part = part(
        "x", images=(Image(path=str(image), alt="A", mime="image/png"),), media_ids=[{"$upload": str(image)}]
    )
    with pytest.raises(TransientError, match="did not finish processing"):
        publisher.build_params(the_part, {})


def test_missing_image_is_permanent(publisher: MastodonPublisher) -> None:
    the_part = part(
        "x",
        images=(Image(path="/nope.png", alt="A", mime="image/png"),),
        media_ids=[{"$upload": "/nope.png"}],
    )
    with pytest.raises(PermanentError, match="does not exist"):
        publisher.build_params(the_part, {})


def test_reply_needs_the_previous_part(publisher: MastodonPublisher) -> None:
    with pytest.raises(PermanentError, match="part 0 must be published"):
        publisher.build_params(part("x", in_reply_to_id={"$ref": "part:0"}), {})
