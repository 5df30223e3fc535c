"""The visual preview: the planned posts as one self-contained HTML page.

:func:`render_page` turns planned posts into a page that needs no network to open: its CSS and JavaScript are
inline (``templates_html/preview.css`` and ``preview.js``, package data) and each image is in the page once, a
``data:`` URI in a JSON map (``<script id="images">``) that the page's script gives to every ``<img data-image>``
showing it. The page shows a timeline by day in the campaign's zone; each post is a card styled after its platform, with the
account, the time, the language, the text with hashtags, links and mentions highlighted exactly where the
platform links them (Mastodon: :func:`amplifier.platforms.mastodon_text.entities`, the server's parser;
Bluesky: the facets of the record, sliced at their UTF-8 byte offsets), the images with their alt text,
threads as connected cards, a length bar against the limit, and every warning next to the post it concerns.
What the page shows (segments, images, account names, problems by post) is built in
:mod:`amplifier.cli.page_data`; this module is the markup. Filters (account, platform, language) work in the page; they also read and write the URL fragment
(``#platform=bluesky&lang=ckb``).

Everything shown is user text and is escaped; every text element carries ``dir="auto"`` (and its ``lang``), so
right-to-left scripts (Arabic, Sorani) render right to left.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from amplifier.cli.html_page import asset, document
from amplifier.cli.html_page import e as _e
from amplifier.cli.page_data import (
    AccountView,
    ImageLoader,
    InlineImages,
    Segment,
    account_views,
    bluesky_segments,
    data_uri,
    mastodon_link_text,
    mastodon_segments,
    post_problems,
)
from amplifier.errors import Problem
from amplifier.plan.followups import describe as describe_followups
from amplifier.plan.gates import controls_line
from amplifier.plan.post import CARD, Part, PlannedPost

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.plan.planner import Plan


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
    images = InlineImages(load_image)
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
            body.append(_post(post, tz, accounts, by_post.get(post.id, []), images))
        body.append("</section>")
    body.append('<p class="none-shown" hidden>No post matches the filters.</p>')
    body.append("</main>")

    scripts = [
        f'<script type="application/json" id="images">{_json_in_script(images.table())}</script>',
        f"<script>\n{asset('preview.js')}</script>",
    ]
    return document(f"{campaign_name}: preview", "preview.css", body, scripts)


def _json_in_script(data: object) -> str:
    """``data`` as JSON that cannot end the ``<script>`` element it stands in."""
    return json.dumps(data, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")


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
    images: InlineImages,
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
        card, facet_problems = _card(post, part, index, view, when, images)
        out.append(card)
        warnings.extend((f"part {index + 1}: " if thread else "") + message for message in facet_problems)
    warnings.extend(
        text for message, text in problems if message not in post.warnings and text not in warnings
    )
    followups = describe_followups(post.followups, tz)
    if followups:
        out.append(f'<div class="followups">{_e(followups)}</div>')
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
    post: PlannedPost, part: Part, index: int, view: AccountView, when: str, images: InlineImages
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
    controls = controls_line([part])
    if controls:
        out.append(f'<div class="controls">{_e(controls)}</div>')
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
            key = images.key(image.path)
            alt = _e(image.alt)
            if key is None:
                picture = f'<div class="missing" dir="auto">image not found: {_e(image.path)}</div>'
                problems.append(f"image {image.path} cannot be read")
            else:
                size = (
                    f' width="{image.width}" height="{image.height}"' if image.width and image.height else ""
                )
                picture = f'<img data-image="{key}" alt="{alt}"{size} dir="auto" lang="{_e(post.lang)}">'
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
