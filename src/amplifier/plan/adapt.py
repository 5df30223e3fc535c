"""Adapting a rendered message to a platform: hashtags, length as the platform counts it, thread splitting, payload.

Pure functions: :func:`adapt` takes the rendered text(s) of a message and returns the :class:`~amplifier.plan.post.Part`
tuple a publisher sends, plus the problems (a part over the platform's limit when splitting is off...).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from amplifier.plan.gates import part_gates, self_labels
from amplifier.plan.post import CARD, REF, UPLOAD, Image, Part, Platform, Video
from amplifier.plan.quotes import bluesky_quote, mastodon_quote
from amplifier.plan.threads import split_text
from amplifier.platforms import bluesky_text, mastodon_text

NUMBERING_RESERVE = 6  # room for a " 12/12" marker when splitting into numbered parts


@dataclass(frozen=True)
class Content:
    """A rendered message for one account, before platform adaptation."""

    texts: tuple[str, ...]  # one text, or the explicit parts of a thread
    lang: str
    hashtags: tuple[str, ...] = ()  # tags to append (without #), those not already in the text
    content_warning: str | None = None
    sensitive: bool = False
    images: tuple[Image, ...] = ()
    video: Video | None = None
    link_card: bool = False
    split: bool = True
    numbering: bool = True
    replies: tuple[str, ...] | None = None  # Bluesky threadgate rules; None: everybody may reply
    quotes: str | None = None  # quote policy: public / followers / nobody; None: the platform's default
    labels: tuple[str, ...] = ()  # Bluesky self-labels
    quote: bool = False  # the first part quotes the post named by PlannedPost.quote (plan.quotes)


@dataclass(frozen=True)
class Target:
    """Where the content goes: the platform and the account's limits."""

    platform: Platform
    visibility: str = "public"
    max_characters: int = 500  # Mastodon: the instance's limit
    url_length: int = 23  # Mastodon: characters reserved per URL
    created_at: dt.datetime | None = None  # Bluesky: the record's createdAt (the slot time)


@dataclass(frozen=True)
class Adapted:
    parts: tuple[Part, ...]
    problems: tuple[str, ...] = field(default=())


def with_hashtags(text: str, tags: Sequence[str]) -> str:
    """Append ``#tags`` on a line of their own, skipping tags the text already has (case-insensitively)."""
    if "#" not in text and "＃" not in text:  # the common case: no tag in the text, every tag is appended
        return f"{text.rstrip()}\n\n{_tag_line(tuple(tags))}" if tags else text
    present = {match.lower() for match in re.findall(r"[#＃](\w+)", text)}
    missing = [tag for tag in tags if tag.lower() not in present]
    if not missing:
        return text
    return f"{text.rstrip()}\n\n{_tag_line(tuple(missing))}"


@lru_cache(maxsize=1024)
def _tag_line(tags: tuple[str, ...]) -> str:
    return " ".join("#" + tag for tag in tags)


def tidy(text: str) -> str:
    """Normalise rendered template output: trim, collapse runs of spaces, at most one blank line in a row."""
    text = text.strip()
    if "  " not in text and "\t" not in text and " \n" not in text and "\n\n\n" not in text:
        return text  # the common case: nothing to tidy, no regex needed
    text = _TRAILING_SPACE.sub("\n", text)
    text = _SPACE_RUN.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text)


_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_SPACE_RUN = re.compile(r"(?<=\S)[ \t]{2,}")
_BLANK_LINES = re.compile(r"\n{3,}")


def adapt(content: Content, target: Target) -> Adapted:
    texts = list(content.texts)
    if content.hashtags:
        texts[-1] = with_hashtags(texts[-1], content.hashtags)
    if target.platform == "mastodon":
        cw = content.content_warning or ""

        def measure(text: str) -> int:
            return mastodon_text.status_length(text, cw, target.url_length)

        limit = target.max_characters
    else:
        measure = bluesky_text.grapheme_length
        limit = bluesky_text.MAX_GRAPHEMES
    lengths: dict[str, int] = {}

    def length(text: str) -> int:  # each text is measured once, though the fit check and the part both ask
        value = lengths.get(text)
        if value is None:
            value = lengths[text] = measure(text)
        return value

    pieces = _split(texts, limit, length, content)
    problems: list[str] = []
    if target.platform == "mastodon":
        parts = _mastodon_parts(pieces, content, target, limit, length)
    else:
        parts = _bluesky_parts(pieces, content, target, limit, length)
        for index, part in enumerate(parts):
            size = bluesky_text.utf8_length(part.text)
            if size > bluesky_text.MAX_BYTES:
                problems.append(
                    _where(index, len(parts)) + f"{size} bytes, over Bluesky's {bluesky_text.MAX_BYTES}"
                )
    for index, part in enumerate(parts):
        if part.length > part.limit:
            unit = "characters" if target.platform == "mastodon" else "graphemes"
            problems.append(
                _where(index, len(parts))
                + f"{part.length} {unit}, over {_platform_name(target.platform)}'s limit of {part.limit}"
                + ("" if content.split else " (splitting into a thread is off for this message set)")
            )
        if (not part.text or part.text.isspace()) and not part.images and part.video is None:
            problems.append(_where(index, len(parts)) + "the text is empty")
    return Adapted(parts, tuple(problems))


def adapt_text(
    text: str,
    platform: Platform,
    *,
    lang: str = "en",
    content_warning: str | None = None,
    max_characters: int | None = None,
    split: bool = True,
    controls: dict[str, Any] | None = None,
    created_at: dt.datetime,
    video: Video | None = None,
) -> Adapted:
    """``text`` as it is (no template), adapted for ``platform``: Mastodon with ``max_characters`` (default
    :class:`Target`'s) and only the quote control, Bluesky with every control given."""
    wanted = {key: value for key, value in (controls or {}).items() if value is not None}
    if platform == "mastodon":
        wanted = {key: value for key, value in wanted.items() if key == "quotes"}
    content = Content(
        texts=(text,), lang=lang, content_warning=content_warning, split=split, video=video, **wanted
    )
    target = Target(platform, created_at=created_at)
    if max_characters is not None:
        target = replace(target, max_characters=max_characters)
    return adapt(content, target)


def _platform_name(platform: Platform) -> str:
    return "Mastodon" if platform == "mastodon" else "Bluesky"


def _where(index: int, total: int) -> str:
    return f"part {index + 1} of {total}: " if total > 1 else ""


def _split(texts: list[str], limit: int, length: Callable[[str], int], content: Content) -> list[str]:
    """The thread parts: each text that is too long split at sentence or word boundaries, numbered ``i/n``.

    A text that cannot be split to fit (a content warning alone over the limit) stays whole; the caller reports it.
    """
    if not content.split:
        return texts
    if len(texts) == 1:  # the common case: one text
        if length(texts[0]) <= limit:
            return texts
    elif all(length(text) <= limit for text in texts):
        return texts
    reserve = NUMBERING_RESERVE if content.numbering else 0
    while True:
        pieces: list[str] = []
        for text in texts:
            if length(text) <= limit - reserve:
                pieces.append(text)
                continue
            try:
                pieces.extend(split_text(text, limit - reserve, length, numbering=False))
            except ValueError:  # not even one grapheme fits beside what every part must carry
                pieces.append(text)
        # A thread of 100 parts or more needs wider markers (" 100/120") than the reserve: split again with room.
        needed = len(f" {len(pieces)}/{len(pieces)}")
        if not content.numbering or len(pieces) < 2 or needed <= reserve or needed >= limit:
            break
        reserve = needed
    if content.numbering and len(pieces) > 1:
        total = len(pieces)
        pieces = [f"{piece} {index}/{total}" for index, piece in enumerate(pieces, start=1)]
    return pieces


def _mastodon_parts(
    pieces: list[str], content: Content, target: Target, limit: int, length: Callable[[str], int]
) -> tuple[Part, ...]:
    parts = []
    for index, text in enumerate(pieces):
        payload: dict[str, Any] = {"status": text, "visibility": target.visibility, "language": content.lang}
        if content.content_warning:
            payload["spoiler_text"] = content.content_warning
        images = content.images if index == 0 else ()
        video = content.video if index == 0 else None
        if images:
            payload["media_ids"] = [{UPLOAD: image.path} for image in images]
        elif video is not None:
            payload["media_ids"] = [{UPLOAD: video.path}]
        if content.sensitive and (images or video or content.content_warning):
            payload["sensitive"] = True
        if content.quotes is not None:
            payload["quote_approval_policy"] = content.quotes
        if index > 0:
            payload["in_reply_to_id"] = {REF: f"part:{index - 1}"}
        elif content.quote:
            mastodon_quote(payload)
        parts.append(Part(text, length(text), limit, payload, images, video=video))
    return tuple(parts)


@lru_cache(maxsize=1024)
def bluesky_created_at(at: dt.datetime, index: int) -> str:
    """A deterministic ``createdAt``: the slot time, plus one millisecond per thread part (keeps their order)."""
    instant = at.astimezone(dt.UTC) + dt.timedelta(milliseconds=index)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def _bluesky_parts(
    pieces: list[str], content: Content, target: Target, limit: int, length: Callable[[str], int]
) -> tuple[Part, ...]:
    at = target.created_at or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    parts = []
    card_done = not content.link_card
    for index, text in enumerate(pieces):
        record: dict[str, Any] = {
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": bluesky_created_at(at, index),
            "langs": [content.lang],
        }
        facets = bluesky_text.detect_facets(text)
        if facets:
            record["facets"] = facets
        images = content.images if index == 0 else ()
        video = content.video if index == 0 else None
        if images:
            record["embed"] = {
                "$type": "app.bsky.embed.images",
                "images": [_bluesky_image(image) for image in images],
            }
        elif video is not None:
            record["embed"] = bluesky_video(video)
        elif not card_done:
            link = next(
                (
                    feature["uri"]
                    for facet in facets
                    for feature in facet["features"]
                    if feature["$type"] == "app.bsky.richtext.facet#link"
                ),
                None,
            )
            if link is not None:
                record["embed"] = {"$type": "app.bsky.embed.external", "external": {CARD: link}}
                card_done = True
        if index > 0:
            record["reply"] = {"root": {REF: "part:0"}, "parent": {REF: f"part:{index - 1}"}}
        elif content.quote:
            bluesky_quote(record)
        if content.labels:
            record["labels"] = self_labels(content.labels)
        gates = part_gates(index, content.replies, content.quotes, record["createdAt"])
        parts.append(Part(text, length(text), limit, record, images, gates, video))
    return tuple(parts)


def _bluesky_image(image: Image) -> dict[str, Any]:
    entry: dict[str, Any] = {"alt": image.alt, "image": {UPLOAD: image.path}}
    if image.width and image.height:
        entry["aspectRatio"] = {"width": image.width, "height": image.height}
    return entry


VIDEO_EMBED = "app.bsky.embed.video"


def bluesky_video(video: Video) -> dict[str, Any]:
    """The ``app.bsky.embed.video`` of a video: its blob, alt text, aspect ratio and caption files to upload."""
    embed: dict[str, Any] = {"$type": VIDEO_EMBED, "video": {UPLOAD: video.path}, "alt": video.alt}
    if video.width and video.height:
        embed["aspectRatio"] = {"width": video.width, "height": video.height}
    if video.captions:
        embed["captions"] = [{"lang": lang, "file": {UPLOAD: path}} for lang, path in video.captions]
    return embed
