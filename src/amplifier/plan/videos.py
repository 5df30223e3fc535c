"""The video of a planned post: the message set's video in the post's language (its alt text, its captions),
with what the file is (type, frame, duration, size) for the payload and the previews."""

from __future__ import annotations

from html import escape
from pathlib import Path

from amplifier.campaign.models import VideoSpec
from amplifier.campaign.videos import VideoError, read_video
from amplifier.plan.post import Video


def planned_video(root: Path, spec: VideoSpec, lang: str) -> Video:
    """The :class:`Video` of ``spec`` for a post in ``lang``: every caption file, in its language, goes with it
    (Bluesky shows the one the reader wants)."""
    path = (root / spec.path).resolve()
    alt = spec.alt.get(lang) or spec.alt.get("*", "")
    captions = tuple((code, str((root / file).resolve())) for code, file in sorted(spec.captions.items()))
    try:
        info = read_video(path, spec.path)
    except (VideoError, OSError):  # reported by the campaign checks
        return Video(str(path), alt, "video/mp4", captions=captions)
    return Video(str(path), alt, info.mime, info.width, info.height, info.seconds, info.size, captions)


def video_line(video: Video) -> str:
    """What a text preview shows: ``video: rally.mp4 (0:42, 1280x720) alt: ... captions: de, en``."""
    facts = []
    if video.seconds is not None:
        minutes, seconds = divmod(round(video.seconds), 60)
        facts.append(f"{minutes}:{seconds:02d}")
    if video.width and video.height:
        facts.append(f"{video.width}x{video.height}")
    line = f"video: {Path(video.path).name}" + (f" ({', '.join(facts)})" if facts else "")
    line += f" alt: {video.alt}"
    if video.captions:
        line += " captions: " + ", ".join(lang for lang, _path in video.captions)
    return line


def video_html(video: Video, lang: str, extra_class: str = "") -> str:
    """The HTML preview's video: a ``<video>`` of the local file (the preview is opened on this machine), its
    alt text as its label and shown below it, like an image's."""
    alt = escape(video.alt)
    size = f' width="{video.width}" height="{video.height}"' if video.width and video.height else ""
    src = escape(Path(video.path).as_uri()) if Path(video.path).is_absolute() else escape(video.path)
    tracks = "".join(
        f'<track kind="captions" srclang="{escape(code)}" label="{escape(code)}" src="{escape(Path(path).as_uri())}">'
        for code, path in video.captions
        if Path(path).is_absolute()
    )
    return (
        f'<div class="images n1{extra_class}"><figure><video controls preload="metadata"{size} src="{src}" '
        f'aria-label="{alt}">{tracks}</video><figcaption dir="auto" lang="{escape(lang)}">'
        f'<span class="alt-label">ALT</span> {escape(video_line(video).split(" alt: ")[0])} · {alt}'
        "</figcaption></figure></div>"
    )
