"""Videos over HTTP: the Bluesky record read back from the reference PDS (``app.bsky.embed.video``: the video
blob, its alt text, aspect ratio and caption blobs), the Mastodon status from mastodon-mock (the video
attachment with its description). The local PDS stores the blobs and validates the record; it does not transcode
(see publish/bluesky_video.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from amplifier.plan.adapt import Content, Target, adapt
from amplifier.plan.post import PlannedPost, Platform, Video
from amplifier.publish import PermanentError
from amplifier.publish.bluesky import COLLECTION, record_key

from .test_publish_gates import Masto, Sky, masto, sky  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

MEDIA = Path(__file__).parent.parent / "media"
AT = datetime(2027, 11, 1, 9, 0, tzinfo=UTC)


def planned(post_id: str, platform: Platform, account: str, video: Video) -> PlannedPost:
    content = Content(texts=("Watch: the march in 2 seconds",), lang="en", video=video)
    adapted = adapt(content, Target(platform, created_at=AT if platform == "bluesky" else None))
    return PlannedPost(
        id=post_id,
        at=AT,
        rule="r",
        account=account,
        platform=platform,
        lang="en",
        parts=adapted.parts,
        message_set="m",
        variant=0,
    )


def clip(tmp_path: Path, name: str = "clip.mp4", mime: str = "video/mp4") -> Video:
    en = tmp_path / "clip.en.vtt"
    en.write_text("WEBVTT\n\n00:00.000 --> 00:02.000\nRise up\n", encoding="utf-8")
    de = tmp_path / "clip.de.vtt"
    de.write_text("WEBVTT\n\n00:00.000 --> 00:02.000\nSteht auf\n", encoding="utf-8")
    return Video(
        str(MEDIA / name),
        "Marchers with banners",
        mime,
        64,
        36,
        2.0,
        3783,
        (("de", str(de)), ("en", str(en))),
    )


def test_a_bluesky_video_with_captions_reads_back(sky: Sky, tmp_path: Path) -> None:  # noqa: F811
    post = planned("video:sky:2027-11-01T10:00", "bluesky", "sky", clip(tmp_path))
    sky.publisher.publish(post)
    stored = sky.get(COLLECTION, record_key(post.id, 0, AT))
    assert stored is not None
    embed = stored["value"]["embed"]
    assert embed["$type"] == "app.bsky.embed.video"
    assert embed["alt"] == "Marchers with banners"
    assert embed["aspectRatio"] == {"width": 64, "height": 36}
    assert embed["video"]["mimeType"] == "video/mp4"
    assert embed["video"]["size"] == (MEDIA / "clip.mp4").stat().st_size
    assert [(caption["lang"], caption["file"]["mimeType"]) for caption in embed["captions"]] == [
        ("de", "text/vtt"),
        ("en", "text/vtt"),
    ]
    # The blobs are the files' bytes, stored by the PDS.
    blob = sky.pds.get_blob(sky.account.did, embed["video"]["ref"]["$link"])
    assert blob == (MEDIA / "clip.mp4").read_bytes()
    caption = sky.pds.get_blob(sky.account.did, embed["captions"][1]["file"]["ref"]["$link"])
    assert caption.startswith(b"WEBVTT")


def test_a_mov_is_refused_for_bluesky_before_anything_is_written(sky: Sky, tmp_path: Path) -> None:  # noqa: F811
    post = planned(
        "mov:sky:2027-11-01T10:00", "bluesky", "sky", clip(tmp_path, "clip.mov", "video/quicktime")
    )
    sky.pds.reset_request_counts()
    with pytest.raises(PermanentError, match="Bluesky takes MP4 videos only"):
        sky.publisher.publish(post)
    assert sky.pds.request_count("com.atproto.repo.uploadBlob") == 0
    assert sky.get(COLLECTION, record_key(post.id, 0, AT)) is None


def test_a_mastodon_video_reads_back_with_its_description(masto: Masto, tmp_path: Path) -> None:  # noqa: F811
    post = planned("video:masto:2027-11-01T10:00", "mastodon", "masto", clip(tmp_path))
    result = masto.publisher.publish(post)
    status = masto.status(result.parts[0].id)
    [attachment] = status["media_attachments"]
    assert attachment["type"] == "video"
    assert attachment["description"] == "Marchers with banners"


def test_a_video_over_the_instances_limit_is_refused_before_the_upload(masto: Masto, tmp_path: Path) -> None:  # noqa: F811
    limits = masto.publisher.limits()
    masto.publisher.limits_cache.put(
        f"mastodon-{masto.publisher.base_url}", {**limits, "video_size_limit": 1000}
    )
    masto.publisher.close()
    masto.server.reset_request_counts()
    post = planned("big:masto:2027-11-01T10:00", "mastodon", "masto", clip(tmp_path))
    with pytest.raises(PermanentError, match="over the Mastodon instance's"):
        masto.publisher.publish(post)
    assert masto.server.request_count("/api/v2/media") == 0
