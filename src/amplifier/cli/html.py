"""The visual preview: the planned posts as one self-contained HTML page.

:func:`render_page` turns planned posts into a page that needs no network to open: its CSS and JavaScript are
inline (``templates_html/preview.css`` and ``preview.js``, package data) and images are ``data:`` URIs. The
page shows a timeline by day in the campaign's zone; each post is a card styled after its platform, with the
account, the time, the language, the text with hashtags, links and mentions highlighted exactly where the
platform links them (Mastodon: :func:`amplifier.platforms.mastodon_text.entities`, the server's parser;
Bluesky: the facets of the record, sliced at their UTF-8 byte offsets), the images with their alt text,
threads as connected cards, a length bar against the limit, and every warning next to the post it concerns.
Filters (account, platform, language) work in the page; they also read and write the URL fragment
(``#platform=bluesky&lang=ckb``).

Everything shown is user text and is escaped; every text element carries ``dir="auto"`` (and its ``lang``), so
right-to-left scripts (Arabic, Sorani) render right to left.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import mimetypes
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from amplifier.campaign.models import BlueskyAccount
from amplifier.errors import Problem
from amplifier.plan.post import CARD, Part, PlannedPost
from amplifier.platforms import bluesky_text, mastodon_text

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.plan.planner import Plan

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


ImageLoader = Callable[[str], str | None]

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


# --------------------------------------------------------------------------------------------------- the page


def _asset(name: str) -> str:
    return resources.files("amplifier.cli").joinpath("templates_html", name).read_text(encoding="utf-8")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


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


def render_page(
    posts: Sequence[PlannedPost],
    *,
    campaign_name: str,
    zone: str,
    accounts: dict[str, AccountView],
    window: tuple[dt.datetime, dt.datetime] | None = None,
    problems: Sequence[Problem] = (),
    load_image: ImageLoader = data_uri,
) -> str:
    """The self-contained HTML page for ``posts`` (in time order), grouped by day in ``zone``."""
    tz = ZoneInfo(zone)
    image_cache = functools.lru_cache(maxsize=None)(load_image)
    by_post, general = post_problems(posts, problems)
    days: dict[dt.date, list[PlannedPost]] = {}
    for post in sorted(posts, key=lambda p: (p.at, p.account, p.id)):
        days.setdefault(post.at.astimezone(tz).date(), []).append(post)

    body: list[str] = []
    body.append('<header class="top">')
    body.append(f'<h1 dir="auto">{_e(campaign_name)}</h1>')
    summary = f"{len(posts)} post{'' if len(posts) == 1 else 's'}"
    parts = sum(len(post.parts) for post in posts)
    if parts != len(posts):
        summary += f" ({parts} parts)"
    if window is not None:
        start, end = (instant.astimezone(tz) for instant in window)
        summary += f" from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
    summary += f", times in {zone}"
    body.append(f'<p class="summary">{_e(summary)}</p>')
    body.append(_filters(posts, accounts))
    body.append("</header>")
    body.append('<main id="timeline">')
    if general:
        body.append('<section class="problems"><h2>Problems in the campaign files</h2><ul>')
        body.extend(f'<li dir="auto">{_e(problem)}</li>' for problem in general)
        body.append("</ul></section>")
    if not posts:
        body.append('<p class="empty">No posts planned in this window.</p>')
    for day, day_posts in days.items():
        body.append(f'<section class="day" data-day="{day.isoformat()}">')
        body.append(f'<h2 class="day-title">{_e(_day_title(day))}</h2>')
        for post in day_posts:
            body.append(_post(post, tz, accounts, by_post.get(post.id, []), image_cache))
        body.append("</section>")
    body.append('<p class="none-shown" hidden>No post matches the filters.</p>')
    body.append("</main>")

    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="amplifier">',
            f"<title>{_e(campaign_name)}: preview</title>",
            f"<style>\n{_asset('preview.css')}</style>",
            "</head>",
            "<body>",
            *body,
            f"<script>\n{_asset('preview.js')}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _day_title(day: dt.date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def _filters(posts: Sequence[PlannedPost], accounts: dict[str, AccountView]) -> str:
    def select(key: str, label: str, values: Iterable[str], names: dict[str, str] | None = None) -> str:
        options = ['<option value="">all</option>']
        options.extend(
            f'<option value="{_e(value)}">{_e((names or {}).get(value, value))}</option>'
            for value in sorted(set(values))
        )
        field = f'<select id="filter-{key}" data-filter="{key}">{"".join(options)}</select>'
        return f"<label>{label} {field}</label>"

    names = {account: f"{account} ({view.name})" for account, view in accounts.items()}
    return (
        '<form class="filters" id="filters" onsubmit="return false">'
        + select("account", "Account", (post.account for post in posts), names)
        + select("platform", "Platform", (post.platform for post in posts))
        + select("lang", "Language", (post.lang for post in posts))
        + f'<span class="count"><span id="shown">{len(posts)}</span> of {len(posts)} shown</span>'
        + "</form>"
    )


def _post(
    post: PlannedPost,
    tz: ZoneInfo,
    accounts: dict[str, AccountView],
    problems: list[tuple[str, str]],
    load_image: ImageLoader,
) -> str:
    view = accounts.get(post.account) or AccountView(post.account, post.platform, "", tz.key)
    local = post.at.astimezone(tz)
    when = f"{local:%H:%M %Z}"
    account_zone = ZoneInfo(view.zone)
    if account_zone.key != tz.key:
        there = post.at.astimezone(account_zone)
        if there.utcoffset() != local.utcoffset():
            when += f" ({there:%H:%M} {account_zone.key})"
    thread = len(post.parts) > 1
    out = [
        f'<article class="post {_e(post.platform)}{" thread" if thread else ""}" id="{_e(post.id)}" '
        f'data-account="{_e(post.account)}" data-platform="{_e(post.platform)}" data-lang="{_e(post.lang)}">'
    ]
    # The plan reports a post's warnings as problems too: shown once, where the plan located it.
    located = dict(problems)
    warnings = [located.get(message, message) for message in post.warnings]
    for index, part in enumerate(post.parts):
        card, facet_problems = _card(post, part, index, view, when, load_image)
        out.append(card)
        warnings.extend((f"part {index + 1}: " if thread else "") + message for message in facet_problems)
    warnings.extend(
        text for message, text in problems if message not in post.warnings and text not in warnings
    )
    if warnings:
        out.append('<ul class="warnings">')
        out.extend(f'<li dir="auto">{_e(warning)}</li>' for warning in warnings)
        out.append("</ul>")
    out.append(
        f'<footer class="meta"><code>{_e(post.id)}</code> · rule {_e(post.rule)} · '
        f"messages {_e(post.message_set)} · variant {post.variant + 1}"
        + (f" · event {_e(post.event)}" if post.event else "")
        + "</footer>"
    )
    out.append("</article>")
    return "\n".join(out)


def _card(
    post: PlannedPost, part: Part, index: int, view: AccountView, when: str, load_image: ImageLoader
) -> tuple[str, list[str]]:
    platform_name = "Mastodon" if post.platform == "mastodon" else "Bluesky"
    out = [f'<div class="card" data-part="{index + 1}">']
    initial = (post.account[:1] or "?").upper()
    position = f" · {index + 1}/{len(post.parts)}" if len(post.parts) > 1 else ""
    visibility = part.payload.get("visibility")
    badge = f'<span class="badge">{_e(visibility)}</span>' if visibility and visibility != "public" else ""
    out.append(
        f'<div class="head"><span class="avatar" aria-hidden="true">{_e(initial)}</span>'
        f'<span class="who"><span class="account" dir="auto">{_e(post.account)}</span>'
        f'<span class="handle" dir="auto">{_e(view.name)}</span></span>'
        f'<span class="when"><time datetime="{_e(post.at.isoformat())}">{_e(when)}</time>'
        f"{_e(position)}</span>"
        f'<span class="badge platform">{platform_name}</span>'
        f'<span class="badge lang" title="language">{_e(post.lang)}</span>{badge}</div>'
    )
    problems: list[str] = []
    if post.platform == "bluesky":
        segments, problems = bluesky_segments(part.text, part.payload.get("facets") or [])
    else:
        segments = mastodon_segments(part.text)
    text_html = "".join(_segment(segment, post.platform) for segment in segments)
    text_block = f'<p class="text" dir="auto" lang="{_e(post.lang)}">{text_html}</p>'
    spoiler = part.payload.get("spoiler_text")
    if spoiler:
        out.append(
            f'<details class="cw" open><summary dir="auto" lang="{_e(post.lang)}">{_e(spoiler)}</summary>'
            f"{text_block}</details>"
        )
    else:
        out.append(text_block)
    if part.images:
        sensitive = " sensitive" if part.payload.get("sensitive") else ""
        out.append(f'<div class="images n{len(part.images)}{sensitive}">')
        for image in part.images:
            src = load_image(image.path)
            alt = _e(image.alt)
            if src is None:
                picture = f'<div class="missing" dir="auto">image not found: {_e(image.path)}</div>'
                problems.append(f"image {image.path} cannot be read")
            else:
                picture = f'<img src="{_e(src)}" alt="{alt}" dir="auto" lang="{_e(post.lang)}">'
            out.append(
                f'<figure>{picture}<figcaption dir="auto" lang="{_e(post.lang)}">'
                f'<span class="alt-label">ALT</span> {alt}</figcaption></figure>'
            )
        out.append("</div>")
    embed = part.payload.get("embed")
    if isinstance(embed, dict) and isinstance(embed.get("external"), dict) and CARD in embed["external"]:
        url = str(embed["external"][CARD])
        out.append(
            f'<div class="linkcard"><span class="host">{_e(urlsplit(url).hostname or url)}</span>'
            '<span class="note">link card: title, description and image are read from the page when '
            "publishing</span>"
            "</div>"
        )
    over = part.length > part.limit
    ratio = min(part.length / part.limit, 1.0) if part.limit else 1.0
    level = "over" if over else "near" if ratio >= 0.9 else "ok"
    unit = "characters" if post.platform == "mastodon" else "graphemes"
    out.append(
        f'<div class="length {level}" title="{part.length} of {part.limit} {unit}">'
        f'<span class="bar"><span style="width:{ratio * 100:.1f}%"></span></span>'
        f'<span class="count">{part.length}/{part.limit}</span></div>'
    )
    out.append("</div>")
    return "\n".join(out), problems


def _segment(segment: Segment, platform: str) -> str:
    if segment.kind is None:
        return _e(segment.text)
    if segment.kind == "link":
        url = segment.value
        safe = url.startswith(("https://", "http://"))
        if platform == "mastodon" and segment.text == url:
            prefix, shown, rest = mastodon_link_text(url)
            inner = f'<span class="invisible">{_e(prefix)}</span>{_e(shown)}' + (
                f'<span class="invisible">{_e(rest)}</span><span class="ellipsis">…</span>' if rest else ""
            )
        else:
            inner = _e(segment.text)
        if safe:
            return (
                f'<a class="link" dir="auto" href="{_e(url)}" title="{_e(url)}" '
                f'rel="noopener noreferrer nofollow" target="_blank">{inner}</a>'
            )
        return f'<span class="link" dir="auto" title="{_e(url)}">{inner}</span>'
    css = "tag" if segment.kind == "hashtag" else "mention"
    return f'<span class="{css}" dir="auto" data-value="{_e(segment.value)}">{_e(segment.text)}</span>'


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


def campaign_page(
    campaign: Campaign,
    plan: Plan,
    window: tuple[dt.datetime, dt.datetime] | None = None,
    *,
    zone: str | None = None,
) -> str:
    """The preview page of ``plan`` (planned from ``campaign``), its times in ``zone`` (default: the campaign's)."""
    return render_page(
        plan.posts,
        campaign_name=campaign.name,
        zone=zone or campaign.schedule.campaign.timezone,
        accounts=account_views(campaign),
        window=window,
        problems=plan.problems,
    )
