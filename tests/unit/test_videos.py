"""Videos in message sets: the YAML, the located errors (file, format, size, duration, frame, alt text, caption
files) against each platform's limits, the payloads (Mastodon media, Bluesky ``app.bsky.embed.video`` with
captions), the previews (table, JSON, HTML), and the Mastodon caption warning."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.campaign.videos import VideoInfo, platform_problems, read_video
from amplifier.errors import CampaignError
from amplifier.plan.planner import plan_window
from amplifier.publish.mastodon import parse_instance
from amplifier.publish.mastodon_video import video_problems
from tests.conftest import BASE_SCHEDULE
from tests.unit.test_campaign_errors import located

MEDIA = Path(__file__).parent.parent / "media"
START = datetime(2027, 10, 29, tzinfo=UTC)
END = datetime(2027, 10, 30, tzinfo=UTC)


def messages(video: str) -> dict[str, str]:
    return {
        "main.yaml": f"""\
sets:
  countdown:
    videos:
{video}    variants:
      - text:
          en: "{{{{ days_left }}}} days left."
"""
    }


CLIP = "      - path: clip.mp4\n        alt: Marchers with banners\n"
CAPTIONS = "        captions: {en: clip.en.vtt, de: clip.de.vtt}\n"
VTT = "WEBVTT\n\n00:00.000 --> 00:01.000\nRise up\n"


def campaign(campaign_dir: Callable[..., Path], video: str, schedule: str = BASE_SCHEDULE) -> Path:
    path = campaign_dir(schedule=schedule, messages=messages(video))
    for name in ("clip.mp4", "clip.mov", "clip.webm", "long.mp4"):
        shutil.copy(MEDIA / name, path.parent / name)
    (path.parent / "clip.en.vtt").write_text(VTT, encoding="utf-8")
    (path.parent / "clip.de.vtt").write_text(VTT.replace("Rise up", "Steht auf"), encoding="utf-8")
    return path


def problems(campaign_dir: Callable[..., Path], video: str, schedule: str = BASE_SCHEDULE) -> list[str]:
    with pytest.raises(CampaignError) as info:
        load_campaign(campaign(campaign_dir, video, schedule))
    return info.value.lines()


def test_the_library_reads_type_duration_and_frame() -> None:
    assert read_video(MEDIA / "clip.mp4") == VideoInfo("video/mp4", 3783, 2.0, 64, 36, 10.0)
    assert read_video(MEDIA / "clip.mov").mime == "video/quicktime"
    assert read_video(MEDIA / "clip.webm").mime == "video/webm"
    assert read_video(MEDIA / "long.mp4").seconds == 200.0


SKY_ONLY = BASE_SCHEDULE.replace(
    "    messages: countdown\n", "    messages: countdown\n    accounts: [sky]\n"
)
MASTO_ONLY = BASE_SCHEDULE.replace(
    "    messages: countdown\n", "    messages: countdown\n    accounts: [masto]\n"
)


@pytest.mark.parametrize(
    ("video", "schedule", "line", "fragment"),
    [
        (
            "      - path: missing.mp4\n        alt: x\n",
            BASE_SCHEDULE,
            4,
            "video file not found: missing.mp4",
        ),
        ("      - path: ../clip.mp4\n        alt: x\n", BASE_SCHEDULE, 4, "is outside the campaign folder"),
        (
            "      - path: clip.en.vtt\n        alt: x\n",
            BASE_SCHEDULE,
            4,
            "is not a video amplifier can read",
        ),
        ("      - path: clip.mov\n        alt: x\n", SKY_ONLY, 4, "Bluesky takes MP4 videos only, not MOV"),
        (
            "      - path: long.mp4\n        alt: x\n",
            SKY_ONLY,
            4,
            "long.mp4: 3:20 long, over Bluesky's 3 minutes",
        ),
        (
            "      - path: clip.mp4\n        alt: ''\n",
            BASE_SCHEDULE,
            5,
            "video clip.mp4 has no alt text in 'en'",
        ),
        (
            "      - path: clip.mp4\n        alt: " + "a" * 1001 + "\n",
            SKY_ONLY,
            5,
            "1001 characters, over Bluesky's 1000",
        ),
        (
            "      - path: clip.mp4\n        alt: " + "a" * 1501 + "\n",
            MASTO_ONLY,
            5,
            "1501 characters, over Mastodon's 1500",
        ),
        (CLIP + "        captions: {en: nope.vtt}\n", BASE_SCHEDULE, 6, "caption file not found: nope.vtt"),
        (CLIP + "        captions: {en: clip.mp4}\n", BASE_SCHEDULE, 6, "clip.mp4 is not a WebVTT file"),
        (
            "      - {path: clip.mp4, alt: a}\n      - {path: clip.mp4, alt: b}\n",
            BASE_SCHEDULE,
            4,
            "takes at most 1 entry",
        ),
    ],
)
def test_a_video_that_cannot_go_out_is_a_located_error(
    campaign_dir: Callable[..., Path], video: str, schedule: str, line: int, fragment: str
) -> None:
    lines = problems(campaign_dir, video, schedule)
    assert located(lines, "main.yaml", line, None, fragment), lines


def test_long_mov_and_webm_are_fine_on_mastodon(campaign_dir: Callable[..., Path]) -> None:
    for name in ("clip.mov", "clip.webm", "long.mp4"):
        load_campaign(campaign(campaign_dir, f"      - path: {name}\n        alt: x\n", MASTO_ONLY))


def test_images_and_a_video_together_are_refused(campaign_dir: Callable[..., Path]) -> None:
    lines = problems(campaign_dir, CLIP + "    images:\n      - {path: clip.mp4, alt: x}\n")
    assert any("a post carries images or one video, not both" in line for line in lines), lines


def test_a_caption_too_big_or_not_webvtt(campaign_dir: Callable[..., Path]) -> None:
    path = campaign(campaign_dir, CLIP + CAPTIONS)
    (path.parent / "clip.en.vtt").write_text("WEBVTT\n\n" + "x" * 20_001, encoding="utf-8")
    (path.parent / "clip.de.vtt").write_text("1\n00:00:00,000 --> 00:00:01,000\nSRT\n", encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    lines = info.value.lines()
    assert located(lines, "main.yaml", 6, None, "clip.en.vtt: 20,009 bytes, over Bluesky's 20,000"), lines
    assert located(
        lines, "main.yaml", 6, None, "clip.de.vtt is not a WebVTT file (it must start with WEBVTT)"
    )


def test_mastodon_limits_come_from_the_instance() -> None:
    limits = parse_instance(
        {"configuration": {"media_attachments": {"video_size_limit": 3000, "video_matrix_limit": 2000}}}
    )
    assert limits["video_size_limit"] == 3000
    info = read_video(MEDIA / "clip.mp4")
    assert video_problems(info, limits, "clip.mp4") == [
        "clip.mp4: 0.0 MiB, over the Mastodon instance's 0 MiB",
        "clip.mp4: 64x36 is 2,304 pixels a frame, over the Mastodon instance's 2,000",
    ]
    assert video_problems(info, parse_instance({}), "clip.mp4") == []  # Mastodon's defaults
    fast = VideoInfo("video/mp4", 10, 1.0, 10, 10, 240.0)
    assert platform_problems(fast, "mastodon", "f.mp4") == [
        "f.mp4: 240 frames a second, over the Mastodon instance's 120"
    ]


def posts(path: Path) -> dict[str, Any]:
    return {post.account: post for post in plan_window(load_campaign(path), START, END).posts}


def test_payloads_carry_the_video_its_alt_text_and_captions(campaign_dir: Callable[..., Path]) -> None:
    path = campaign(campaign_dir, CLIP + CAPTIONS + "    content_warning: Police violence\n")
    planned = posts(path)
    masto, sky = planned["masto"].parts[0], planned["sky"].parts[0]
    clip = str((path.parent / "clip.mp4").resolve())
    assert masto.payload["media_ids"] == [{"$upload": clip}]
    assert masto.payload["sensitive"] is True  # a content warning with a video
    assert sky.payload["embed"] == {
        "$type": "app.bsky.embed.video",
        "video": {"$upload": clip},
        "alt": "Marchers with banners",
        "aspectRatio": {"width": 64, "height": 36},
        "captions": [
            {"lang": "de", "file": {"$upload": str((path.parent / "clip.de.vtt").resolve())}},
            {"lang": "en", "file": {"$upload": str((path.parent / "clip.en.vtt").resolve())}},
        ],
    }
    assert sky.payload["labels"]["values"] == [{"val": "graphic-media"}]
    assert sky.to_json()["video"] == {
        "path": clip,
        "alt": "Marchers with banners",
        "mime": "video/mp4",
        "aspect_ratio": {"width": 64, "height": 36},
        "seconds": 2.0,
        "size": 3783,
        "captions": [
            {"lang": "de", "path": str((path.parent / "clip.de.vtt").resolve())},
            {"lang": "en", "path": str((path.parent / "clip.en.vtt").resolve())},
        ],
    }


def test_previews_show_the_video(campaign_dir: Callable[..., Path], run_cli: Callable[..., Any]) -> None:
    path = campaign(campaign_dir, CLIP)
    window = ("--from", "2027-10-29", "--to", "2027-10-30")
    table = run_cli("preview", "--config", str(path), *window)
    assert table.code == 0, table.err
    assert "video: clip.mp4 (0:02, 64x36) alt: Marchers with banners" in table.out
    data = json.loads(run_cli("preview", "--config", str(path), *window, "--format", "json").out)
    assert data["posts"][0]["parts"][0]["video"]["alt"] == "Marchers with banners"
    html = run_cli("preview", "--config", str(path), *window, "--format", "html").out
    assert '<video controls preload="metadata"' in html
    assert 'aria-label="Marchers with banners"' in html


def test_validate_warns_that_mastodon_has_no_captions(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Any]
) -> None:
    path = campaign(campaign_dir, CLIP + CAPTIONS)
    result = run_cli("validate", "--config", str(path), "--now", "2027-10-01T00:00")
    assert result.code == 0, result.err
    assert (
        "warning: Mastodon has no captions: the video of 'countdown' goes to masto without them" in result.err
    )


def test_compose_takes_a_video_and_checks_it(run_cli: Callable[..., Any]) -> None:
    clip = str(MEDIA / "clip.mp4")
    result = run_cli(
        "compose", "Watch", "--platform", "bluesky", "--video", clip, "--alt", "A test", "--format", "json"
    )
    assert result.code == 0, result.err
    part = json.loads(result.out)["parts"][0]
    assert part["payload"]["embed"]["$type"] == "app.bsky.embed.video"
    assert part["video"]["alt"] == "A test"
    table = run_cli(
        "compose", "Watch", "--platform", "mastodon", "--video", str(MEDIA / "clip.webm"), "--alt", "A"
    )
    assert table.code == 0, table.err
    assert "video: clip.webm (0:01, 64x36) alt: A" in table.out
    refused = run_cli(
        "compose", "Watch", "--platform", "bluesky", "--video", str(MEDIA / "clip.webm"), "--alt", "A"
    )
    assert refused.code == 2
    assert "compose: clip.webm: Bluesky takes MP4 videos only, not WebM" in refused.err
    no_alt = run_cli("compose", "Watch", "--platform", "bluesky", "--video", clip)
    assert no_alt.code == 2
    assert "--video: give its alt text with --alt" in no_alt.err


def test_a_mastodon_video_may_take_longer_to_process_than_an_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amplifier.campaign.models import MastodonAccount
    from amplifier.plan.post import Part, Video
    from amplifier.publish.base import PublishContext, TransientError
    from amplifier.publish.mastodon import MastodonPublisher
    from amplifier.publish.secrets import SecretSources
    from amplifier.publish.sessions import StateDir
    from tests.unit.test_publish_mastodon import FakeApi

    settings = MastodonAccount(platform="mastodon", instance="https://masto.example", token_env="T")  # type: ignore[arg-type]
    ctx = PublishContext(
        secrets=SecretSources(), state=StateDir(tmp_path / "s"), media_wait=2.0, video_wait=50.0
    )
    publisher = MastodonPublisher("masto", settings, ctx)
    clock = iter(float(n) for n in range(10**6))
    monkeypatch.setattr("amplifier.publish.mastodon.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("amplifier.publish.mastodon.time.sleep", lambda _s: None)
    clip = str(MEDIA / "clip.mp4")
    video = Video(clip, "Marchers", "video/mp4", 64, 36, 2.0, 3783)
    fake = FakeApi(polls_needed=10)
    monkeypatch.setattr(publisher, "api", lambda: fake)
    the_part = Part("x", 1, 500, {"status": "x", "media_ids": [{"$upload": clip}]}, video=video)
    assert publisher.build_params(the_part, {})["media_ids"] == ["77"]
    assert fake.uploaded == [(clip, "video/mp4", "Marchers")]
    monkeypatch.setattr(publisher, "api", lambda: FakeApi(polls_needed=10**9))
    with pytest.raises(TransientError, match="did not finish processing"):
        publisher.build_params(the_part, {})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, "https://video.bsky.app/"),
        ({"video_service": "https://video.example.org"}, "https://video.example.org/"),
        ({"video_service": "none"}, None),
        ({"video_service": "Off"}, None),
        ({"video_service": None}, None),
        ({"video_service": False}, None),
    ],
)
def test_a_bluesky_accounts_video_service_defaults_to_bluesky_and_can_be_switched_off(
    given: dict[str, Any], expected: str | None
) -> None:
    from amplifier.campaign.models import BlueskyAccount

    account = BlueskyAccount.model_validate(
        {"platform": "bluesky", "handle": "a.example.org", "password_env": "P", **given}
    )
    assert (None if account.video_service is None else str(account.video_service)) == expected


def test_the_video_services_did_is_its_did_web_with_the_port_encoded() -> None:
    from amplifier.publish.bluesky_videosvc import service_did

    assert service_did("https://video.bsky.app") == "did:web:video.bsky.app"
    assert service_did("http://localhost:8080/") == "did:web:localhost%3A8080"


def test_a_video_job_that_never_finishes_is_transient_and_a_failed_one_permanent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    from amplifier.publish.base import PermanentError, TransientError
    from amplifier.publish.bluesky_videosvc import VideoService

    state = ["JOB_STATE_ENCODING"]

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/xrpc/app.bsky.video.getJobStatus"
        assert request.url.params["jobId"] == "j1"
        job = {"jobId": "j1", "did": "d", "state": state[0], "error": "x", "message": "bad codec"}
        return httpx.Response(200, json={"jobStatus": job})

    class Pub:
        class ctx:  # a stand-in for the PublishContext
            video_wait = 3.0

    clock = iter(float(n) for n in range(10**6))
    monkeypatch.setattr("amplifier.publish.bluesky_videosvc.time.monotonic", lambda: next(clock))
    service = VideoService(Pub(), "https://video.example.org")  # type: ignore[arg-type]
    service.sleep = lambda _s: None  # type: ignore[method-assign]
    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(TransientError, match="did not finish the video within 3 s"):
            service._wait(http, {"jobId": "j1", "state": "JOB_STATE_CREATED"})
        state[0] = "JOB_STATE_FAILED"
        with pytest.raises(PermanentError, match="could not process the video: bad codec"):
            service._wait(http, {"jobId": "j1", "state": "JOB_STATE_CREATED"})


def test_a_job_status_is_read_wrapped_as_the_lexicon_says_or_bare() -> None:
    from amplifier.publish.base import TransientError
    from amplifier.publish.bluesky_videosvc import _has_job, _job

    job = {"jobId": "j1", "did": "d", "state": "JOB_STATE_CREATED"}
    assert _job({"jobStatus": job}, "u") == job
    assert _job(job, "u") == job
    assert _has_job({"error": "already_exists", **job})
    assert not _has_job({"error": "InvalidRequest", "message": "no"})
    with pytest.raises(TransientError, match="without a job status"):
        _job({"message": "no"}, "u")
