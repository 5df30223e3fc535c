"""What the HTML preview shows, apart from its markup (:mod:`amplifier.cli.html`).

* Text segments: a post's text cut where its platform links hashtags, links and mentions (Mastodon:
  :func:`amplifier.platforms.mastodon_text.entities`, the server's parser; Bluesky: the facets of the record,
  sliced at their UTF-8 byte offsets), and how Mastodon shortens a link.
* Images: each image file read once and inlined once as a ``data:`` URI (a smaller copy when large), whatever the
  number of posts that show it (:class:`InlineImages`).
* Accounts and problems: how an account is named on the page, and the plan's problems by the post they concern.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from amplifier.campaign.models import BlueskyAccount
from amplifier.errors import Problem
from amplifier.plan.post import PlannedPost
from amplifier.platforms import bluesky_text, mastodon_text

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign

Kind = Literal["link", "hashtag", "mention"]


@dataclass(frozen=True)
class Segment:
    """A run of a post's text: plain (``kind`` None) or an entity and its ``value`` (URL, tag, handle)."""

    text: str
    kind: Kind | None = None
    value: str = ""


@dataclass(frozen=True)
class AccountView:
    """What the page shows about an account."""

    id: str
    platform: str
    name: str  # "@handle" (Bluesky) or the instance's host (Mastodon)
    zone: str


MAX_IMAGE_SIDE = 1200  # images larger than this (or than MAX_INLINE_BYTES) are inlined as a smaller copy
MAX_INLINE_BYTES = 400_000
MASTODON_LINK_DISPLAY = 30  # Mastodon shows the first 30 characters of a link (after the scheme), then "…"

_FACET_KINDS: dict[str, Kind] = {
    bluesky_text.LINK: "link",
    bluesky_text.TAG: "hashtag",
    bluesky_text.MENTION: "mention",
}


# ---------------------------------------------------------------------------------------------- text segments


def mastodon_segments(text: str) -> list[Segment]:
    """``text`` cut where Mastodon's parser links hashtags, links and mentions."""
    segments: list[Segment] = []
    position = 0
    for start, end, kind, value in mastodon_text.entities(text):
        if start > position:
            segments.append(Segment(text[position:start]))
        segments.append(Segment(text[start:end], kind, value))
        position = end
    if position < len(text):
        segments.append(Segment(text[position:]))
    return segments


def bluesky_segments(text: str, facets: Sequence[dict[str, Any]]) -> tuple[list[Segment], list[str]]:
    """``text`` cut at the facets' UTF-8 byte offsets, and a message for each facet that cannot be applied.

    A facet whose range overlaps the previous one, lies outside the text or does not fall on character
    boundaries is reported and left out (the Bluesky app would show it wrongly too).
    """
    data = text.encode("utf-8")
    segments: list[Segment] = []
    problems: list[str] = []
    position = 0
    for facet in sorted(facets, key=lambda f: int(f["index"]["byteStart"])):
        start, end = int(facet["index"]["byteStart"]), int(facet["index"]["byteEnd"])
        if not (position <= start < end <= len(data)):
            problems.append(f"facet at bytes {start}-{end} overlaps another one or lies outside the text")
            continue
        try:
            before = data[position:start].decode("utf-8")
            inner = data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"facet at bytes {start}-{end} does not fall on character boundaries")
            continue
        feature = facet["features"][0] if facet.get("features") else {}
        kind = _FACET_KINDS.get(str(feature.get("$type", "")))
        if kind is None:
            problems.append(f"facet at bytes {start}-{end} has an unknown feature {feature.get('$type')!r}")
            continue
        if before:
            segments.append(Segment(before))
        segments.append(Segment(inner, kind, _facet_value(kind, feature)))
        position = end
    if position < len(data):
        segments.append(Segment(data[position:].decode("utf-8")))
    return segments, problems


def _facet_value(kind: Kind, feature: dict[str, Any]) -> str:
    if kind == "link":
        return str(feature.get("uri", ""))
    if kind == "hashtag":
        return str(feature.get("tag", ""))
    did = feature.get("did")
    if isinstance(did, dict):
        return str(did.get(bluesky_text.HANDLE, ""))
    return str(did or "")


def mastodon_link_text(url: str) -> tuple[str, str, str]:
    """How Mastodon shows a link: (hidden prefix, shown part, hidden rest); the rest is replaced by "…"."""
    prefix = ""
    for scheme in ("https://www.", "http://www.", "https://", "http://"):
        if url.startswith(scheme):
            prefix = scheme
            break
    shown = url[len(prefix) :]
    return prefix, shown[:MASTODON_LINK_DISPLAY], shown[MASTODON_LINK_DISPLAY:]


# ----------------------------------------------------------------------------------------------------- images


def data_uri(path: str) -> str | None:
    """The image at ``path`` as a ``data:`` URI (a smaller copy when large); None when it cannot be read."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError:
        return None
    mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    try:
        from PIL import Image as PILImage
        from PIL import ImageOps

        with PILImage.open(io.BytesIO(raw)) as opened:
            if len(raw) > MAX_INLINE_BYTES or max(opened.size) > MAX_IMAGE_SIDE:
                # the copy keeps no EXIF: turn it the way the orientation tag says, as a browser shows the file
                image = ImageOps.exif_transpose(opened)
                image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
                out = io.BytesIO()
                if image.mode in ("RGBA", "LA", "P"):
                    image.save(out, "PNG", optimize=True)
                    mime = "image/png"
                else:
                    image.convert("RGB").save(out, "JPEG", quality=82)
                    mime = "image/jpeg"
                raw = out.getvalue()
    except (OSError, ValueError, ImportError):
        if not mime.startswith("image/"):
            return None
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


ImageLoader = Callable[[str], str | None]


class InlineImages:
    """The page's images: each file loaded once and given a key (``i0``, ``i1``, ...) the cards refer to, so an
    image shown on many posts is in the page once (:meth:`table`: key -> ``data:`` URI)."""

    def __init__(self, load: ImageLoader = data_uri) -> None:
        self._load = load
        self._keys: dict[str, str | None] = {}
        self._uris: dict[str, str] = {}

    def key(self, path: str) -> str | None:
        """The key of the image at ``path``; None when it cannot be read."""
        if path not in self._keys:
            uri = self._load(path)
            key = None
            if uri is not None:
                key = f"i{len(self._uris)}"
                self._uris[key] = uri
            self._keys[path] = key
        return self._keys[path]

    def table(self) -> dict[str, str]:
        return dict(self._uris)


# ----------------------------------------------------------------------------------------- accounts, problems


def post_problems(
    posts: Iterable[PlannedPost], problems: Iterable[Problem]
) -> tuple[dict[str, list[tuple[str, str]]], list[Problem]]:
    """Plan problems by the post they concern (their message starts with ``<post id>: ``), and the others.

    A post's problem is its message without the id and the same message after its ``file:line:col``.
    """
    ids = {post.id for post in posts}
    by_post: dict[str, list[tuple[str, str]]] = {}
    general: list[Problem] = []
    for problem in problems:
        post_id, sep, rest = problem.message.partition(": ")
        if sep and post_id in ids:
            located = f"{problem.file}:{problem.line}:{problem.col}: {rest}"
            by_post.setdefault(post_id, []).append((rest, located))
        else:
            general.append(problem)
    return by_post, general


def account_views(campaign: Campaign) -> dict[str, AccountView]:
    """How each account of ``campaign`` is named on the page."""
    views = {}
    for account_id, account in campaign.schedule.accounts.items():
        if isinstance(account, BlueskyAccount):
            name = "@" + account.handle
        else:
            name = urlsplit(str(account.instance)).hostname or str(account.instance)
        views[account_id] = AccountView(account_id, account.platform, name, campaign.account_zone(account_id))
    return views
