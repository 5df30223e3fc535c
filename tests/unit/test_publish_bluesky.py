"""Bluesky publisher logic that needs no server: the record's own checks before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from amplifier.models import BlueskyAccount
from amplifier.post import Part
from amplifier.publish import PermanentError, PublishContext
from amplifier.publish.bluesky import BlueskyPublisher
from amplifier.secrets import SecretSources
from amplifier.sessions import StateDir

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
