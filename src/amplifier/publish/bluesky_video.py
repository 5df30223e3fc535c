"""Videos on Bluesky: ``app.bsky.embed.video`` with the video blob, its alt text, aspect ratio and captions.

The video and each caption file (WebVTT, ``text/vtt``) are uploaded as blobs to the account's PDS
(``com.atproto.repo.uploadBlob``), and the post's embed names them. That is what the lexicon asks and what any
PDS stores; the reference PDS in the tests proves the record, the blobs and their types, and the reference AppView
builds the reader's ``app.bsky.embed.video#view`` from them.

What it cannot prove: that the video plays on bsky.app. The Bluesky app uploads videos to the video service
(``video.bsky.app``, ``app.bsky.video.uploadVideo`` with a service-auth token from
``com.atproto.server.getServiceAuth``), which transcodes them to HLS, checks the account's daily limits, and
writes the blob to the PDS itself; the AppView plays what it processed. No such service runs on loopback here, so
amplifier does not implement that path: a video posted by blob alone is a valid record, but the app may show it
as still processing. See docs/messages.md ("Video").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from amplifier.plan.post import UPLOAD, Part
from amplifier.publish.base import PermanentError, placeholder

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
        embed["video"] = pub._upload_blob(_read(pub, video.path, "video"), video.mime)
    for caption in embed.get("captions") or []:
        hit = placeholder(caption.get("file"))
        if hit is not None and hit[0] == UPLOAD:
            caption["file"] = pub._upload_blob(_read(pub, str(hit[1]), "caption file"), CAPTION_TYPE)
