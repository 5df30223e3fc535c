"""The report as one self-contained HTML page: inline CSS (``templates_html/report.css``) and charts drawn as
inline SVG, no script and nothing fetched, so the page opens anywhere, offline.

The page shows the totals; posts published and engagement by day, with each event in the window marked;
published posts and engagement by language and by platform; the variants of each message set side by side
per language (counts only); and the top posts as cards with links to them. Every text the campaign wrote is
escaped and carries ``dir="auto"`` and its ``lang``, so right-to-left scripts (Arabic, Sorani) read right to
left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from amplifier.cli.html_page import document
from amplifier.cli.html_page import e as _e
from amplifier.delivery.report import COUNTS, Report, Tally, TopPost

WIDTH = 720
BAR_HEIGHT = 18


def render_report_page(report: Report) -> str:
    tz = ZoneInfo(report.zone)
    start, end = report.start.astimezone(tz), report.end.astimezone(tz)
    summary = (
        f"posts due {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({report.zone}); "
        f"engagement as read back by {report.as_of.astimezone(tz):%Y-%m-%d %H:%M}"
    )
    body = [
        '<header class="top">',
        f'<h1 dir="auto">{_e(report.campaign)}: report</h1>',
        f'<p class="summary">{_e(summary)}</p>',
        "</header>",
        "<main>",
        _totals(report.totals),
        '<section id="over-time"><h2>Posts and engagement by day</h2>',
        _legend(),
        _timeline(report, tz),
        "</section>",
        '<div class="charts">',
        f'<section id="by-lang"><h2>By language</h2>{_legend()}{_bars(report.by_lang)}</section>',
        f'<section id="by-platform"><h2>By platform</h2>{_legend()}{_bars(report.by_platform)}</section>',
        "</div>",
        _variants(report),
        _top(report.top, tz),
        "</main>",
    ]
    return document(f"{report.campaign}: report", "report.css", body)


def _totals(totals: Tally) -> str:
    items = [
        ("published", totals.published),
        ("failed", totals.failed),
        ("expired", totals.expired),
        ("read back", totals.read),
        *((name, getattr(totals, name)) for name in COUNTS),
        ("engagement", totals.engagement),
    ]
    cells = "".join(f'<div data-total="{_e(k)}"><b>{v}</b><span>{_e(k)}</span></div>' for k, v in items)
    return f'<section id="totals"><h2>Totals</h2><div class="totals">{cells}</div></section>'


def _legend() -> str:
    return (
        '<p class="legend"><span><i style="background:var(--posts)"></i>posts published</span>'
        '<span><i style="background:var(--engagement)"></i>engagement (likes, reposts, replies, quotes)</span></p>'
    )


def _timeline(report: Report, tz: ZoneInfo) -> str:
    """Bars: posts published per day; a line: their engagement; a dashed line at each event's start."""
    days = set(report.days)
    days.update(mark.start.astimezone(tz).date() for mark in report.events)
    if not days:
        return '<p class="empty">No posts in this window.</p>'
    first, last = min(days), max(days)
    span = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    height, top, bottom, left = 220, 24, 36, 40
    plot_w, plot_h = WIDTH - left - 10, height - top - bottom
    step = plot_w / len(span)
    most_posts = max((t.published for t in report.days.values()), default=0) or 1
    most_engaged = max((t.engagement for t in report.days.values()), default=0) or 1
    parts = [f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="posts and engagement by day">']
    parts.append(f'<text class="muted" x="4" y="{top + 4}">{most_posts}</text>')
    parts.append(f'<text class="muted" x="4" y="{top + plot_h}">0</text>')
    points = []
    for n, day in enumerate(span):
        tally = report.days.get(day, Tally())
        x = left + n * step
        bar = plot_h * tally.published / most_posts
        parts.append(
            f'<rect class="posts" data-day="{day.isoformat()}" data-published="{tally.published}" '
            f'x="{x + step * 0.15:.1f}" y="{top + plot_h - bar:.1f}" width="{step * 0.7:.1f}" height="{bar:.1f}">'
            f"<title>{day.isoformat()}: {tally.published} published, {tally.engagement} engagement</title></rect>"
        )
        points.append(f"{x + step / 2:.1f},{top + plot_h - plot_h * tally.engagement / most_engaged:.1f}")
        if len(span) <= 16 or n % max(1, len(span) // 12) == 0:
            parts.append(
                f'<text class="muted" x="{x + step / 2:.1f}" y="{height - 18}" text-anchor="middle">'
                f"{day:%m-%d}</text>"
            )
    parts.append(f'<polyline class="line" points="{" ".join(points)}"/>')
    for mark in report.events:
        n = (mark.start.astimezone(tz).date() - first).days
        x = left + n * step + step / 2
        parts.append(f'<line class="event" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 8}" y2="{top + plot_h}"/>')
        parts.append(
            f'<text class="event-label" data-event="{_e(mark.id)}" x="{x + 3:.1f}" y="{top - 10}" '
            f'dir="auto">{_e(mark.name)}</text>'
        )
    parts.append(
        f'<text class="muted" x="{left}" y="{height - 4}">most engagement in a day: {most_engaged}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _bars(tallies: Mapping[str, Tally]) -> str:
    """Two bars per key: posts published and engagement, each against its largest value."""
    if not tallies:
        return '<p class="empty">Nothing yet.</p>'
    rows = sorted(tallies.items())
    label_w, row_h = 80, 2 * BAR_HEIGHT + 10
    height = row_h * len(rows) + 4
    width = 340
    most_posts = max(t.published for _, t in rows) or 1
    most_engaged = max(t.engagement for _, t in rows) or 1
    out = [f'<svg viewBox="0 0 {width} {height}" role="img">']
    for n, (key, tally) in enumerate(rows):
        y = 4 + n * row_h
        room = width - label_w - 50
        posts_w = room * tally.published / most_posts
        engaged_w = room * tally.engagement / most_engaged
        out.append(f'<text x="0" y="{y + BAR_HEIGHT:.0f}" dir="auto">{_e(key)}</text>')
        out.append(
            f'<rect class="posts" data-key="{_e(key)}" x="{label_w}" y="{y}" width="{posts_w:.1f}" '
            f'height="{BAR_HEIGHT - 4}"/>'
            f'<text x="{label_w + posts_w + 4:.1f}" y="{y + BAR_HEIGHT - 6}">{tally.published}</text>'
        )
        out.append(
            f'<rect class="engagement" data-key="{_e(key)}" x="{label_w}" y="{y + BAR_HEIGHT}" '
            f'width="{engaged_w:.1f}" height="{BAR_HEIGHT - 4}"/>'
            f'<text x="{label_w + engaged_w + 4:.1f}" y="{y + 2 * BAR_HEIGHT - 6}">{tally.engagement}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _variants(report: Report) -> str:
    out = ['<section id="variants"><h2>Variants side by side (counts only)</h2>']
    if not report.variants:
        out.append('<p class="empty">No variants in this window.</p>')
    for (message_set, lang), variants in sorted(report.variants.items()):
        out.append(f'<table data-set="{_e(message_set)}" data-lang="{_e(lang)}">')
        out.append(f"<caption>{_e(message_set)} · {_e(lang)}</caption>")
        out.append("<tr><th>variant</th><th>published</th><th>read</th>")
        out.extend(f"<th>{name}</th>" for name in COUNTS)
        out.append("<th>engagement</th></tr>")
        for index, tally in sorted(variants.items()):
            cells = [
                tally.published,
                tally.read,
                *(getattr(tally, name) for name in COUNTS),
                tally.engagement,
            ]
            out.append(
                f"<tr><td>#{index + 1}</td>" + "".join(f"<td>{value}</td>" for value in cells) + "</tr>"
            )
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


def _top(posts: list[TopPost], tz: ZoneInfo) -> str:
    out = ['<section id="top"><h2>Top posts</h2>']
    if not posts:
        out.append('<p class="empty">No engagement read back yet.</p>')
    out.append('<div class="cards">')
    for post in posts:
        counts = " · ".join(
            f"<b>{getattr(post, name) if getattr(post, name) is not None else '-'}</b> {name}"
            for name in COUNTS
        )
        link = (
            f'<a href="{_e(post.url)}" rel="noopener">open the post</a>'
            if post.url and not post.gone
            else "deleted"
        )
        out.append(
            f'<article class="card {_e(post.platform)}" data-post="{_e(post.post_id)}">'
            f'<div class="meta">{_e(post.account)} · {_e(post.platform)} · {_e(post.lang)} · '
            f"{post.due_at.astimezone(tz):%Y-%m-%d %H:%M}</div>"
            f'<p class="text" dir="auto" lang="{_e(post.lang)}">{_e(post.text or post.post_id)}</p>'
            f'<div class="counts">{counts} · {link}</div></article>'
        )
    out.append("</div></section>")
    return "".join(out)
