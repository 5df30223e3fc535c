"""Bluesky publisher logic that needs no server: the record's own checks before anything is sent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from amplifier.campaign.models import BlueskyAccount
from amplifier.plan.post import Image, Part
from amplifier.publish import PermanentError, PublishContext
from amplifier.publish.bluesky import BlueskyPublisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

SETTINGS = BlueskyAccount(platform="bluesky", handle="a.example.com", password_env="AMP_UNIT_PASSWORD")
FAMILY = "👩\u200d👩\u200d👧\u200d👦"  # one grapheme, 25 UTF-8 bytes


@pytest.fixture
def publisher(tmp_path: Path) -> BlueskyPublisher:
    ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"))
    return BlueskyPublisher("bsky", SETTINGS, ctx)


def part(text: str) -> Part:
    payload = {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2027-10-25T10:00:00.000Z"}
    return Part(text=text, length=0, limit=300, payload=payload)


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("x" * 300, None),
        ("x" * 301, "301 graphemes / 301 bytes"),
        (FAMILY * 120, None),  # 120 graphemes, exactly 3000 bytes
        (FAMILY * 121, "121 graphemes / 3025 bytes"),
        ("é" * 300, None),  # 600 bytes
    ],
)
def test_build_record_refuses_a_text_over_either_limit(
    publisher: BlueskyPublisher, text: str, refused: str | None
) -> None:
    if refused is None:
        assert publisher.build_record(part(text), {})["text"] == text
    else:
        with pytest.raises(PermanentError, match=refused):
            publisher.build_record(part(text), {})


def image_part(listed: str, uploaded: str) -> Part:
    payload = {
        "$type": "app.bsky.feed.post",
        "text": "look",
        "createdAt": "2027-10-25T10:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "a", "image": {"$upload": uploaded}}]},
    }
    return Part(
        text="look",
        length=4,
        limit=300,
        payload=payload,
        images=(Image(path=listed, alt="a", mime="image/png"),),
    )


def test_an_upload_of_an_image_the_part_does_not_list_is_refused(publisher: BlueskyPublisher) -> None:
    with pytest.raises(PermanentError, match=re.escape("uploads other.png but the part lists no such image")):
        publisher.build_record(image_part("cat.png", "other.png"), {})


def test_a_relative_image_path_is_read_from_the_campaign_folder(tmp_path: Path) -> None:
    ctx = PublishContext(
        secrets=SecretSources(), state=StateDir(tmp_path / "state"), base_dir=tmp_path / "camp"
    )
    assert ctx.image_file("images/cat.png") == tmp_path / "camp" / "images" / "cat.png"
    assert ctx.image_file("/abs/cat.png") == Path("/abs/cat.png")
    publisher = BlueskyPublisher("bsky", SETTINGS, ctx)
    with pytest.raises(PermanentError, match=re.escape(str(tmp_path / "camp" / "images" / "cat.png"))):
        publisher.build_record(image_part("images/cat.png", "images/cat.png"), {})  # no such file: no request
