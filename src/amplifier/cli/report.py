"""``amplifier report``: what went out and what reached people, as a table, JSON, CSV or an HTML page.

The data is :func:`amplifier.delivery.report.build_report`'s (the ledger and the campaign files only); this
module parses the options and renders it:

* ``table`` (default): the totals, the groups of ``--by``, the variants of each message set side by side per
  language, the top posts;
* ``json``: :meth:`Report.to_json`, ``version`` 1 (pinned by ``tests/unit/test_report.py``);
* ``csv``: one row per group of ``--by`` (:data:`CSV_COLUMNS`, ``report_version`` first), UTF-8 with a byte
  order mark and CRLF line ends, so a spreadsheet opens it as it is;
* ``html``: one self-contained page with inline SVG charts (:mod:`amplifier.cli.report_html`).

``--posts`` (JSON and CSV) adds every post of the window with its engagement
(:mod:`amplifier.delivery.report_posts`, ``posts_version`` 1), streamed as the ledger gives it: JSON gets
``posts_version`` and ``posts`` after the report's keys; CSV is one row per post (:data:`POST_CSV_COLUMNS`)
instead of the groups.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from amplifier.cli.options import apply_common, config_option, formats_option, now_option, output_option
from amplifier.delivery.report import COUNTS, DIMENSIONS, REPORT_VERSION, Report, Tally
from amplifier.delivery.report_posts import POST_KEYS, POSTS_VERSION
from amplifier.errors import UsageError

if TYPE_CHECKING:
    from rich.table import Table

DEFAULT_DAYS = 30  # --from: this many days before now
TALLY_COLUMNS = (
    "posts",
    "published",
    "failed",
    "expired",
    "skipped",
    "pending",
    "read",
    *COUNTS,
    "engagement",
)
CSV_COLUMNS = ("report_version", "by", "key", *TALLY_COLUMNS)
POST_CSV_COLUMNS = ("posts_version", *POST_KEYS)
BOM = "\ufeff"


@click.command()
@config_option
@now_option
@click.option("--from", "start", default=None, metavar="TIME", help="Due at or after (default: 30 days ago).")
@click.option("--to", "end", default=None, metavar="TIME", help="Due before (default: now).")
@click.option(
    "--by", "by", type=click.Choice(DIMENSIONS), default="lang", show_default=True, help="Group the posts by."
)
@formats_option("table", "json", "csv", "html")
@click.option(
    "--top", default=10, show_default=True, type=click.IntRange(0, 1000), help="How many top posts."
)
@click.option(
    "--posts",
    "with_posts",
    is_flag=True,
    default=False,
    help="Also every post of the window with its engagement (json: a 'posts' list; csv: one row per post).",
)
@output_option("Write to this file (atomically) instead of standard output.")
@click.pass_context
def report(
    ctx: click.Context,
    config: Path | None,
    now: str | None,
    start: str | None,
    end: str | None,
    by: str,
    fmt: str,
    top: int,
    with_posts: bool,
    output: Path | None,
) -> None:
    """What went out and what reached people: posts published, failed, expired; likes, reposts, replies and
    quotes read back, by event, rule, message set, variant, language, account or platform."""
    from amplifier.delivery.report import build_report

    g = apply_common(ctx, config, now)
    campaign = g.campaign()
    moment = g.moment
    window_start = g.instant(start, "--from", base=moment) or moment - dt.timedelta(days=DEFAULT_DAYS)
    window_end = g.instant(end, "--to", base=moment) or moment + dt.timedelta(seconds=1)
    if window_end <= window_start:
        raise UsageError("--to must be after --from")
    if with_posts and fmt not in ("json", "csv"):
        raise UsageError("--posts goes with --format json or csv")
    with g.open_ledger(moment) as ledger:
        result = build_report(ledger, campaign, window_start, window_end, as_of=moment, by=by, top=top)
        if with_posts:
            from amplifier.delivery.report_posts import iter_posts

            posts = iter_posts(ledger, campaign, window_start, window_end, as_of=moment)
            chunks = render_json_with_posts(result, posts) if fmt == "json" else posts_csv(posts)
        else:
            chunks = iter([render(result, fmt)])
        if output is None:
            for chunk in chunks:
                click.echo(chunk, nl=False)
            return
        from amplifier.cli.render import open_output

        with open_output(output) as out:
            for chunk in chunks:
                out.write(chunk)
    click.echo(f"wrote {output}", err=True)


def render(result: Report, fmt: str) -> str:
    """The report in ``fmt`` (table, json, csv or html), as text."""
    if fmt == "json":
        import json

        return json.dumps(result.to_json(), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return report_csv(result)
    if fmt == "html":
        from amplifier.cli.report_html import render_report_page

        return render_report_page(result)
    out = io.StringIO()
    print_tables(result, out)
    return out.getvalue()


def render_json_with_posts(result: Report, posts: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The report's JSON with ``posts_version`` and ``posts`` last, the posts written as they come."""
    import json

    head = json.dumps(result.to_json(), ensure_ascii=False, indent=2)
    yield head[: head.rindex("}")].rstrip() + f',\n  "posts_version": {POSTS_VERSION},\n  "posts": ['
    separator = "\n    "
    for post in posts:
        yield separator + json.dumps(post, ensure_ascii=False)
        separator = ",\n    "
    yield "\n  ]\n}\n"


def posts_csv(posts: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One row per post (:data:`POST_CSV_COLUMNS`), UTF-8 BOM and CRLF as the report's CSV; an unknown
    count is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    out.write(BOM)
    writer.writerow(POST_CSV_COLUMNS)
    for n, post in enumerate(posts, 1):
        writer.writerow([POSTS_VERSION, *(post[key] for key in POST_KEYS)])
        if n % 1000 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def report_csv(result: Report) -> str:
    """One row per group of ``--by``, then a ``(total)`` row; UTF-8 BOM, CRLF (see the module docstring)."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    rows = [*sorted(result.groups.items()), ("(total)", result.totals)]
    for key, tally in rows:
        values = tally.to_json()
        writer.writerow([REPORT_VERSION, result.by, key, *(values[name] for name in TALLY_COLUMNS)])
    return out.getvalue()


def _table(title: str, first: str, rows: list[tuple[str, Tally]]) -> Table:
    from rich.table import Table

    table = Table(title=title)
    table.add_column(first, overflow="fold")
    for name in TALLY_COLUMNS:
        table.add_column(name, justify="right")
    for key, tally in rows:
        values = tally.to_json()
        table.add_row(key, *(str(values[name]) for name in TALLY_COLUMNS))
    return table


def print_tables(result: Report, out: TextIO) -> None:
    from rich.table import Table

    from amplifier.cli.render import console

    con = console(out)
    start, end = (instant.astimezone(dt.UTC) for instant in (result.start, result.end))
    window = f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC"
    con.print(
        _table(
            f"{result.campaign}: report {window}, by {result.by}",
            result.by,
            [
                *sorted(result.groups.items()),
                ("(total)", result.totals),
            ],
        )
    )
    for (message_set, lang), variants in sorted(result.variants.items()):
        rows = [(f"#{index + 1}", tally) for index, tally in sorted(variants.items())]
        con.print(_table(f"variants of {message_set} ({lang})", "variant", rows))
    if result.top:
        table = Table(title="top posts")
        for column in ("post", "account", "lang", *COUNTS, "engagement", "url"):
            table.add_column(column, overflow="fold")
        for post in result.top:
            counts = [str(getattr(post, name) if getattr(post, name) is not None else "-") for name in COUNTS]
            table.add_row(
                post.post_id, post.account, post.lang, *counts, str(post.engagement), post.url or "gone"
            )
        con.print(table)
