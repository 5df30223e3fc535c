"""Videos over HTTP: the Bluesky record read back from the reference PDS (``app.bsky.embed.video``: the video
blob, its alt text, aspect ratio and caption blobs), the Mastodon status from mastodon-mock (the video
attachment with its description). The local PDS stores the blobs and validates the record; it does not transcode
(see publish/bluesky_video.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amplifier.plan.adapt import Content, Target, adapt
from amplifier.plan.post import PlannedPost, Platform, Video
from amplifier.publish import PermanentError
from amplifier.publish.base import RateLimitedError
from amplifier.publish.bluesky import COLLECTION, record_key
from amplifier.publish.bluesky_videosvc import VideoService as VideoUpload

from .servers import PdsServer
from .servers.videoservice import VideoService
from .test_publish_gates import PASSWORD_ENV, Masto, Sky, masto, sky  # noqa: F401 (fixtures)

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


@pytest.fixture
def video_service(pds: PdsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[VideoService]:
    monkeypatch.setattr(VideoUpload, "sleep", staticmethod(lambda seconds: None))
    with VideoService(pds.url) as service:
        yield service


@pytest.fixture
def tube(
    pds: PdsServer, video_service: VideoService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sky]:
    """A Bluesky account whose videos go through the stand-in video service."""
    account = pds.create_account("tube")
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    through = Sky(pds, account, tmp_path, video_service=video_service.url)
    yield through
    through.publisher.close()


def test_a_video_through_the_video_service_reads_back_with_the_blob_the_pds_stored(
    tube: Sky, video_service: VideoService, tmp_path: Path
) -> None:
    post = planned("svc:sky:2027-11-01T10:00", "bluesky", "sky", clip(tmp_path))
    tube.publisher.publish(post)
    stored = tube.get(COLLECTION, record_key(post.id, 0, AT))
    assert stored is not None
    embed = stored["value"]["embed"]
    assert embed["$type"] == "app.bsky.embed.video"
    assert embed["aspectRatio"] == {"width": 64, "height": 36}
    [(_, job)] = video_service.jobs.items()
    assert job["state"] == "JOB_STATE_COMPLETED"
    assert embed["video"] == job["blob"]  # the blob the service's upload (with our token) got from the PDS
    assert (
        tube.pds.get_blob(tube.account.did, embed["video"]["ref"]["$link"])
        == (MEDIA / "clip.mp4").read_bytes()
    )
    # The tokens: one for the service's limits, one the PDS accepted for uploadBlob on our behalf.
    [limits, upload] = [claims for nsid, claims in video_service.calls if claims is not None]
    assert limits is not None
    assert (limits["aud"], limits["lxm"]) == (
        video_service.did,
        "app.bsky.video.getUploadLimits",
    )
    assert upload is not None
    assert (upload["aud"], upload["lxm"]) == (
        "did:web:localhost",
        "com.atproto.repo.uploadBlob",
    )
    assert upload["iss"] == tube.account.did


def test_a_token_the_pds_does_not_accept_fails_the_job_permanently(
    tube: Sky, video_service: VideoService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PDS really checks the token: one for another audience is refused, and the job fails with its words."""
    monkeypatch.setattr(VideoUpload, "_pds_did", lambda self: "did:web:pds.example.org")
    post = planned("aud:sky:2027-11-01T10:00", "bluesky", "sky", clip(tmp_path))
    with pytest.raises(PermanentError, match=r"could not process the video: .*audience"):
        tube.publisher.publish(post)
    assert tube.get(COLLECTION, record_key(post.id, 0, AT)) is None


def test_a_failed_job_is_a_permanent_error_with_the_services_words(
    tube: Sky, video_service: VideoService, tmp_path: Path
) -> None:
    video_service.fail_with = "Video is too long"
    post = planned("fail:sky:2027-11-01T10:00", "bluesky", "sky", clip(tmp_path))
    with pytest.raises(PermanentError, match="could not process the video: Video is too long"):
        tube.publisher.publish(post)
    assert tube.get(COLLECTION, record_key(post.id, 0, AT)) is None


def test_spent_daily_limits_are_a_rate_limit_before_any_byte_is_sent(
    tube: Sky, video_service: VideoService, tmp_path: Path
) -> None:
    video_service.limits = {"canUpload": False, "message": "You have reached your daily upload limit"}
    post = planned("limit:sky:2027-11-01T10:00", "bluesky", "sky", clip(tmp_path))
    with pytest.raises(RateLimitedError, match="daily upload limit"):
        tube.publisher.publish(post)
    video_service.limits = {"canUpload": True, "remainingDailyBytes": 100}
    with pytest.raises(RateLimitedError, match="takes only 100 more bytes"):
        tube.publisher.publish(post)
    assert [nsid for nsid, _ in video_service.calls] == ["app.bsky.video.getUploadLimits"] * 2
    assert tube.get(COLLECTION, record_key(post.id, 0, AT)) is None


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
