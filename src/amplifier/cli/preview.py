"""``amplifier preview``: the planned posts of a window, as text for a terminal, JSON, an HTML page or a calendar.

The command parses its options into a :class:`~amplifier.plan.selection.Selection` (which accounts and rules, in which window, shown in
which zone), plans the window with :func:`amplifier.plan.planner.plan_window` and renders the plan. The filters
``--account``, ``--platform``, ``--lang`` and ``--rule`` select the posts before they are planned, so every format
shows the same posts.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from amplifier.cli.options import apply_common, config_option, formats_option, now_option, output_option
from amplifier.errors import UsageError
from amplifier.plan.selection import Selection, choose_accounts, unknown

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.cli.options import Globals
    from amplifier.plan.planner import Plan


def select(
    campaign: Campaign,
    g: Globals,
    *,
    start: str | None,
    end: str | None,
    tz: str | None,
    accounts: tuple[str, ...] = (),
    platforms: tuple[str, ...] = (),
    langs: tuple[str, ...] = (),
    rules: tuple[str, ...] = (),
) -> Selection:
    """The options of ``preview`` as a :class:`Selection`; a :class:`UsageError` for a value the campaign lacks."""
    from amplifier.campaign.models import check_timezone
    from amplifier.clock import parse_instant

    schedule = campaign.schedule
    zone = g.zone
    if tz is not None:
        try:
            zone = ZoneInfo(check_timezone(tz))
        except ValueError as exc:
            raise UsageError(f"--tz: {exc}") from None
    window_start = parse_instant(start, zone, base=g.now, option="--from") if start else g.now
    window_end = (
        parse_instant(end, zone, base=window_start, option="--to")
        if end
        else window_start + dt.timedelta(days=7)
    )
    if window_end <= window_start:
        raise UsageError(
            f"--to: the window ends ({window_end:%Y-%m-%d %H:%M %Z}) before it starts "
            f"({window_start:%Y-%m-%d %H:%M %Z}); give a --to after --from"
        )
    _known("--account", accounts, schedule.accounts, "the campaign has")
    _known("--lang", langs, campaign.languages, "the accounts post in")
    _known("--rule", rules, schedule.rules, "the campaign has")
    chosen, filters = choose_accounts(campaign, accounts=accounts, platforms=platforms, langs=langs)
    if rules:
        filters.append(f"rule {', '.join(dict.fromkeys(rules))}")
    return Selection(
        window_start,
        window_end,
        zone,
        chosen,
        frozenset(rules) if rules else None,
        tuple(filters),
    )


def _known(option: str, values: tuple[str, ...], known: Any, what: str) -> None:
    missing = unknown(values, known)
    if missing:
        noun = option.removeprefix("--")
        raise UsageError(
            f"{option}: unknown {noun} {', '.join(map(repr, missing))} ({what}: {', '.join(known)})"
        )


@click.command(short_help="Show the planned posts in a window: what, where and when.")
@config_option
@click.option(
    "--from",
    "start",
    default=None,
    metavar="TIME",
    help="Window start (default: now; +2d: two days from now).",
)
@click.option(
    "--to",
    "end",
    default=None,
    metavar="TIME",
    help="Window end, exclusive (default: +7d). An offset such as +1h counts from --from, not from now.",
)
@now_option
@click.option(
    "--tz",
    default=None,
    metavar="ZONE",
    help="Show times (and read --from/--to without an offset) in this zone. Default: the campaign's.",
)
@click.option("--account", "accounts", multiple=True, metavar="ID", help="Only this account (repeatable).")
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    type=click.Choice(["mastodon", "bluesky"]),
    help="Only this platform (repeatable).",
)
@click.option("--lang", "langs", multiple=True, metavar="LANG", help="Only this language (repeatable).")
@click.option("--rule", "rules", multiple=True, metavar="ID", help="Only this rule (repeatable).")
@formats_option(
    "table",
    "json",
    "html",
    "ics",
    help="Output format: text for a terminal, JSON, a self-contained HTML page, or an iCalendar file.",
)
@output_option("Write to this file (atomically) instead of stdout (json, html, ics).")
@click.pass_context
def preview(
    ctx: click.Context,
    config: Path | None,
    start: str | None,
    end: str | None,
    now: str | None,
    tz: str | None,
    accounts: tuple[str, ...],
    platforms: tuple[str, ...],
    langs: tuple[str, ...],
    rules: tuple[str, ...],
    fmt: str,
    output: Path | None,
) -> None:
    """Show the planned posts in a window, in time order: exactly what would be sent, where and when, with
    each post's id (for `amplifier send ID`).

    TIME is ISO 8601 (2027-10-25, 2027-10-25T10:00, with or without offset), `now`, or an offset (+7d, -12h).
    The filters combine: `--platform bluesky --lang ckb` shows the Sorani posts on Bluesky.
    `--format html -o preview.html` writes a page to open in a browser; `--format ics` a calendar."""
    from amplifier.cli.progress import track
    from amplifier.errors import CampaignError

    g = apply_common(ctx, config, now)
    campaign = g.campaign()
    selection = select(
        campaign,
        g,
        start=start,
        end=end,
        tz=tz,
        accounts=accounts,
        platforms=platforms,
        langs=langs,
        rules=rules,
    )
    if output is not None and fmt == "table":
        raise UsageError("--output: choose --format json, html or ics to write a file")
    if fmt == "json":  # streamed: each post written as it is planned, in bounded memory
        _preview_json(campaign, selection, output)
        return
    plan = selection.plan(campaign, progress=lambda slots: track(slots, "Planning posts"))
    if fmt == "table":
        from amplifier.cli.render import console
        from amplifier.cli.terminal import print_posts

        print_posts(console(), plan.posts, campaign.name, selection)
    else:
        text = export(fmt, campaign, plan, selection, g.now)
        if output is None:
            click.echo(text, nl=False)
        else:
            from amplifier.campaign.schema import write_atomic

            try:
                write_atomic(output, text)
            except OSError as exc:
                raise UsageError(f"--output: cannot write {output}: {exc.strerror or exc}") from None
            click.echo(f"wrote {output} ({len(plan.posts)} posts)", err=True)
    if plan.problems:
        raise CampaignError(plan.problems)


def _preview_json(campaign: Campaign, selection: Selection, output: Path | None) -> None:
    from amplifier.cli.progress import track_window
    from amplifier.cli.render import open_output, write_posts_json
    from amplifier.errors import CampaignError

    stream = selection.stream(
        campaign, progress=lambda slots, a, b: track_window(slots, "Planning posts", a, b)
    )
    span = {"from": selection.start.isoformat(), "to": selection.end.isoformat()}
    with open_output(output) as out:
        count = write_posts_json(out, stream.posts, campaign=campaign.name, window=span)
    if output is not None:
        click.echo(f"wrote {output} ({count} posts)", err=True)
    if stream.problems:
        raise CampaignError(stream.problems)


def export(fmt: str, campaign: Campaign, plan: Plan, selection: Selection, now: dt.datetime) -> str:
    """The plan as an HTML page or an iCalendar file (text); JSON is streamed by :func:`_preview_json`."""
    window = (selection.start, selection.end)
    if fmt == "html":
        from amplifier.cli.html import campaign_page

        return campaign_page(campaign, plan, window, zone=selection.zone.key)
    from amplifier.cli.ics import posts_calendar

    return posts_calendar(plan.posts, campaign_name=campaign.name, stamp=now).decode("utf-8")
