"""``amplifier correct``: edit published posts to what the campaign files say now (:mod:`amplifier.delivery.correct`).

Exit codes: 0 when every post was corrected (or already said that); 2 for a wrong command line or campaign files
with problems; 3 when an account's credentials were rejected; 4 when a post could not be corrected (not published,
Bluesky, which has no edits, a thread of another length, a server that refused the edit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from amplifier.cli.options import format_option
from amplifier.cli.publish import JSON_VERSION
from amplifier.cli.writes import Writes, by_option, who
from amplifier.delivery.accounts import publish_context

if TYPE_CHECKING:
    from amplifier.delivery.correct import Correction
    from amplifier.publish import Publisher


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option(
    "--dry-run", is_flag=True, help="Show what would change (old -> new); edit nothing, record nothing."
)
@by_option("Who makes the correction, for the ledger")
@format_option
@click.pass_context
def correct(ctx: click.Context, ids: tuple[str, ...], dry_run: bool, by: str | None, fmt: str) -> None:
    """Edit published posts to what the campaign files say now, e.g. a rally moved to another square.

    \b
    amplifier correct efrin-countdown:mastodon-en:2027-01-17T10:00 --dry-run
    amplifier correct efrin-countdown:mastodon-en:2027-01-17T10:00

    Mastodon: each status whose text or content warning differs is edited (it shows as edited), its media kept;
    every edit is recorded in the ledger (who, when, the text before and after). Bluesky has no edits: delete the
    post with `amplifier retract ID` and send the corrected one with `amplifier send ID`."""
    import os

    from amplifier.cli.render import dump_json
    from amplifier.clock import utcnow
    from amplifier.daemon.settings import request_crash_hook
    from amplifier.delivery.correct import correct_post
    from amplifier.plan.planner import find_posts

    campaign = ctx.obj.campaign()
    posts = find_posts(campaign, ids)
    by_id = {post.id: post for post in posts}
    author = who(by)
    after_request = request_crash_hook(os.environ)
    writes = Writes("correct", campaign, publish_context(campaign, ctx.obj.state))
    with ctx.obj.open_ledger(utcnow()) as ledger:

        def write(publisher: Publisher, post_id: str) -> Correction:
            return correct_post(
                ledger,
                publisher,
                by_id[post_id],
                by=author,
                now=utcnow,
                dry_run=dry_run,
                after_request=after_request,
            )

        for post in posts:
            outcome = writes.attempt(post.id, lambda post_id: by_id[post_id].account, write)
            if outcome is not None and fmt != "json":
                for part in outcome.parts:
                    where = f"{post.id} part {part.index + 1}" if len(outcome.parts) > 1 else post.id
                    if part.outcome == "unchanged":
                        click.echo(f"{where}: unchanged (the server already shows this text)")
                        continue
                    click.echo(f"{where}: {part.outcome}")
                    if part.old_warning != part.new_warning:
                        click.echo(f"  CW  - {part.old_warning}\n  CW  + {part.new_warning}")
                    click.echo(_diff(part.old_text, part.new_text))
    if fmt == "json":
        dump_json({"version": JSON_VERSION, "dry_run": dry_run, "corrections": writes.results})
    writes.exit()


def _diff(old: str, new: str) -> str:
    """The text before and after, line by line (``-`` / ``+``), for a person to check."""
    import difflib

    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1)
    body = [line for line in lines if not line.startswith(("---", "+++", "@@"))]
    return "\n".join(f"  {line}" for line in body)
