"""Videos on Bluesky: ``app.bsky.embed.video`` with the video blob, its alt text, aspect ratio and captions.

The video goes through the account's video service (``video_service:``, default ``https://video.bsky.app``;
:mod:`~amplifier.publish.bluesky_videosvc`), which transcodes it and writes its blob to the account's PDS; with
``video_service: none`` it is uploaded to the PDS directly (``com.atproto.repo.uploadBlob``). Each caption file
(WebVTT, ``text/vtt``) is uploaded as a blob to the PDS, and the post's embed names them all. That is what the
lexicon asks and what any PDS stores; the reference PDS in the tests proves the record, the blobs and their types, and the reference AppView
builds the reader's ``app.bsky.embed.video#view`` from them.

What the tests prove and what not: the reference PDS validates the service token the video service uses
(a stand-in service on loopback forwards the bytes with it) and stores the blob the record names; nothing local
transcodes to HLS or plays the video as bsky.app does. See docs/messages.md ("Video").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from amplifier.plan.post import UPLOAD, Part
from amplifier.publish.base import PermanentError, placeholder
from amplifier.publish.bluesky_videosvc import VideoService

if TYPE_CHECKING:
    from amplifier.publish.bluesky_repo import BlueskyRepo

VIDEO_EMBED = "app.bsky.embed.video"
CAPTION_TYPE = "text/vtt"


def _read(pub: BlueskyRepo, path: str, what: str) -> bytes:
    file = pub.ctx.image_file(path)
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        raise PermanentError(f"{file}: cannot read the {what}: {exc.strerror}") from None


def resolve_video(pub: BlueskyRepo, part: Part, embed: dict[str, Any]) -> None:
    """Upload the video and its captions named in ``embed`` (placeholders) and put their blobs in it."""
    video = part.video
    hit = placeholder(embed.get("video"))
    if hit is not None and hit[0] == UPLOAD:
        if video is None or video.path != hit[1]:
            raise PermanentError(f"the payload uploads {hit[1]} but the part lists no such video")
        if video.mime != "video/mp4":
            raise PermanentError(f"{Path(video.path).name}: Bluesky takes MP4 videos only, not {video.mime}")
        data = _read(pub, video.path, "video")
        service = pub.settings.video_service
        if service is None:  # video_service: none -- the blob straight to the PDS
            embed["video"] = pub._upload_blob(data, video.mime)
        else:
            embed["video"] = VideoService(pub, str(service)).upload(data, Path(video.path).name, video.mime)
    for caption in embed.get("captions") or []:
        hit = placeholder(caption.get("file"))
        if hit is not None and hit[0] == UPLOAD:
            caption["file"] = pub._upload_blob(_read(pub, str(hit[1]), "caption file"), CAPTION_TYPE)
