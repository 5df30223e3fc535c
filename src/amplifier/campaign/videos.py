"""Videos of message sets, checked when the campaign is loaded: the file, its format, size, duration and frame
size against each platform's limits, the alt text, the caption files.

The container and the video track are read with pymediainfo (MediaInfo's library, bundled in its wheels), never
by hand. The limits:

* **Bluesky** (``app.bsky.embed.video``): MP4 only (the lexicon's blob accepts ``video/mp4``), at most 3 minutes
  and 100 MB (bsky.app's documented limits; the lexicon allows 300 MB, the video service's limits are per day),
  alt text up to 1,000 graphemes (an alt of 2,000 characters is refused here), up to 20 caption files (WebVTT,
  ``text/vtt``, at most 20,000 bytes each).
* **Mastodon**: MP4, MOV or WebM, at most 99 MiB, at most 8,294,400 pixels a frame (3840x2160) and 120 frames a
  second: Mastodon's defaults. An instance says its own in ``configuration.media_attachments``
  (``video_size_limit``, ``video_matrix_limit``, ``video_frame_rate_limit``); the publisher checks those before it
  uploads, and ``validate`` warns with those of an instance seen lately. Mastodon has no captions.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from amplifier.errors import Problem

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign

MB = 1_000_000
MIB = 1024 * 1024
BLUESKY_VIDEO_BYTES = 100 * MB
BLUESKY_VIDEO_SECONDS = 180.0
BLUESKY_VIDEO_ALT = 1000
CAPTION_BYTES = 20_000
MAX_CAPTIONS = 20
MASTODON_VIDEO_BYTES = 99 * MIB
MASTODON_MATRIX = 8_294_400
MASTODON_FRAME_RATE = 120.0
MASTODON_ALT = 1500  # the usual description_limit (an instance says its own; the publisher checks it)

# MediaInfo's container names -> the file's media type.
FORMATS = {"MPEG-4": "video/mp4", "QuickTime": "video/quicktime", "WebM": "video/webm"}
PLATFORM_TYPES = {
    "bluesky": frozenset({"video/mp4"}),
    "mastodon": frozenset({"video/mp4", "video/quicktime", "video/webm"}),
}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file is: its type, size, duration and frame."""

    mime: str
    size: int  # bytes
    seconds: float
    width: int
    height: int
    frame_rate: float | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def describe(self) -> str:
        """``0:42, 1280x720`` for people."""
        minutes, seconds = divmod(round(self.seconds), 60)
        return f"{minutes}:{seconds:02d}, {self.width}x{self.height}"


class VideoError(ValueError):
    """A video file amplifier cannot post (the message is for people)."""


def campaign_file(root: Path, relative: str, what: str) -> Path:
    """The file at ``relative`` inside the campaign folder ``root``; :class:`VideoError` when it is outside it or
    missing (its bytes would be uploaded to a server: nothing outside the folder is)."""
    if Path(relative).is_absolute() or relative.startswith("~"):
        raise VideoError(f"{relative}: write the {what}'s path relative to the campaign folder")
    try:
        inside = root.resolve()
        file = (root / relative).resolve()
    except (OSError, RuntimeError):
        raise VideoError(f"{relative}: a link that loops back on itself") from None
    if not file.is_relative_to(inside):
        raise VideoError(f"{relative} is outside the campaign folder: a {what} must be inside it")
    if not file.is_file():
        raise VideoError(f"{what} file not found: {relative}")
    return file


def read_video(file: Path, shown: str | None = None) -> VideoInfo:
    """The video's facts, read by MediaInfo; :class:`VideoError` when it is not a video amplifier can post."""
    from pymediainfo import MediaInfo

    shown = shown or file.name
    try:
        info = MediaInfo.parse(file)
    except (OSError, RuntimeError, ValueError) as exc:
        raise VideoError(f"{shown}: cannot read the video ({exc})") from None
    general = next((track for track in info.tracks if track.track_type == "General"), None)
    video = next((track for track in info.tracks if track.track_type == "Video"), None)
    container = str(getattr(general, "format", None) or "")
    profile = str(getattr(general, "format_profile", None) or "")
    if video is None or general is None:
        raise VideoError(f"{shown} is not a video amplifier can read: use MP4 (H.264), MOV or WebM")
    mime = FORMATS.get("QuickTime" if profile == "QuickTime" else container)
    if mime is None:
        raise VideoError(
            f"not a supported video type: {shown} ({container or 'unknown'}); use MP4, MOV or WebM"
        )
    named = mimetypes.guess_type(file.name)[0] or ""
    if named != mime:
        extension = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm"}[mime]
        raise VideoError(
            f"{shown} is a {mime} video but its name says otherwise: rename it to end in {extension}"
        )
    width, height = int(video.width or 0), int(video.height or 0)
    duration = general.duration or video.duration
    if not width or not height or not duration:
        raise VideoError(f"{shown}: the video says no frame size or duration; re-encode it (e.g. MP4, H.264)")
    rate = video.frame_rate or general.frame_rate
    return VideoInfo(
        mime=mime,
        size=file.stat().st_size,
        seconds=float(duration) / 1000.0,
        width=width,
        height=height,
        frame_rate=float(rate) if rate else None,
    )


def platform_problems(
    info: VideoInfo,
    platform: str,
    shown: str,
    *,
    size_limit: int | None = None,
    matrix_limit: int | None = None,
    frame_rate_limit: float | None = None,
) -> list[str]:
    """What ``platform`` would refuse of the video (Mastodon: the instance's limits where given, else its
    defaults)."""
    problems: list[str] = []
    if info.mime not in PLATFORM_TYPES[platform]:
        kind = {"video/quicktime": "MOV", "video/webm": "WebM"}.get(info.mime, info.mime)
        problems.append(
            f"{shown}: Bluesky takes MP4 videos only, not {kind}: convert it (e.g. to MP4, H.264)"
        )
        return problems
    if platform == "bluesky":
        if info.size > BLUESKY_VIDEO_BYTES:
            problems.append(
                f"{shown}: {info.size / MB:.1f} MB, over Bluesky's {BLUESKY_VIDEO_BYTES // MB} MB"
            )
        if info.seconds > BLUESKY_VIDEO_SECONDS:
            problems.append(f"{shown}: {info.describe().split(',')[0]} long, over Bluesky's 3 minutes")
        return problems
    size = size_limit or MASTODON_VIDEO_BYTES
    if info.size > size:
        problems.append(
            f"{shown}: {info.size / MIB:.1f} MiB, over the Mastodon instance's {size / MIB:.0f} MiB"
        )
    matrix = matrix_limit or MASTODON_MATRIX
    if info.pixels > matrix:
        problems.append(
            f"{shown}: {info.width}x{info.height} is {info.pixels:,} pixels a frame, over the Mastodon instance's "
            f"{matrix:,}"
        )
    rate = frame_rate_limit or MASTODON_FRAME_RATE
    if info.frame_rate is not None and info.frame_rate > rate:
        problems.append(
            f"{shown}: {info.frame_rate:g} frames a second, over the Mastodon instance's {rate:g}"
        )
    return problems


def caption_problem(file: Path, shown: str) -> str | None:
    """What is wrong with a WebVTT caption file, or None."""
    size = file.stat().st_size
    if size > CAPTION_BYTES:
        return f"{shown}: {size:,} bytes, over Bluesky's {CAPTION_BYTES:,} for a caption file"
    try:
        head = file.read_bytes()[:16].decode("utf-8-sig")
    except UnicodeDecodeError:
        return f"{shown} is not UTF-8 text: captions are WebVTT files"
    if not head.startswith("WEBVTT"):
        return f"{shown} is not a WebVTT file (it must start with WEBVTT): convert the captions to .vtt"
    return None


def video_problems(campaign: Campaign, required: Mapping[str, Mapping[str, set[str]]]) -> Iterator[Problem]:
    """Each message set's video: the file, its limits on the platforms it goes to (``required``: per set, each
    language -> its platforms), the alt text in each language, the caption files."""
    for set_id, message_set in campaign.message_sets.items():
        source = campaign.set_sources[set_id]
        langs = required.get(set_id, {})
        platforms = sorted({platform for found in langs.values() for platform in found})
        for index, video in enumerate(message_set.videos):
            path = ("sets", set_id, "videos", index)
            try:
                info = read_video(campaign_file(campaign.root, video.path, "video"), video.path)
            except VideoError as exc:
                yield source.problem((*path, "path"), str(exc))
            else:
                for platform in platforms:
                    for problem in platform_problems(info, platform, video.path):
                        yield source.problem((*path, "path"), problem)
            for lang, used in sorted(langs.items()):
                alt = video.alt.get(lang) or video.alt.get("*")
                if alt is None or not alt.strip():
                    yield source.problem((*path, "alt"), f"video {video.path} has no alt text in {lang!r}")
                elif "bluesky" in used and len(alt) > BLUESKY_VIDEO_ALT:
                    yield source.problem(
                        (*path, "alt"),
                        f"alt text is {len(alt)} characters, over Bluesky's {BLUESKY_VIDEO_ALT} for a video",
                    )
                elif "mastodon" in used and len(alt) > MASTODON_ALT:
                    yield source.problem(
                        (*path, "alt"), f"alt text is {len(alt)} characters, over Mastodon's {MASTODON_ALT}"
                    )
            if len(video.captions) > MAX_CAPTIONS:
                yield source.problem(
                    (*path, "captions"),
                    f"{len(video.captions)} caption files; Bluesky takes at most {MAX_CAPTIONS}",
                )
            for lang, caption in video.captions.items():
                try:
                    file = campaign_file(campaign.root, caption, "caption")
                except VideoError as exc:
                    yield source.problem((*path, "captions", lang), str(exc))
                    continue
                wrong = caption_problem(file, caption)
                if wrong is not None:
                    yield source.problem((*path, "captions", lang), wrong)


def caption_warnings(campaign: Campaign) -> list[Problem]:
    """``validate``'s warning: captions of a video posted to Mastodon, which has no captions (the video goes out
    without them there)."""
    from amplifier.campaign.models import rule_accounts

    schedule = campaign.schedule
    warned: list[Problem] = []
    for set_id, message_set in campaign.message_sets.items():
        if not any(video.captions for video in message_set.videos):
            continue
        mastodon = sorted(
            {
                account
                for rule in schedule.rules.values()
                if rule.messages == set_id
                for account in rule_accounts(schedule, rule)
                if schedule.accounts[account].platform == "mastodon"
            }
        )
        if mastodon:
            warned.append(
                campaign.set_problem(
                    set_id,
                    ("videos", 0, "captions"),
                    f"Mastodon has no captions: the video of {set_id!r} goes to {', '.join(mastodon)} without them "
                    "(put the words in the alt text, or burn them into the video)",
                )
            )
    return warned
