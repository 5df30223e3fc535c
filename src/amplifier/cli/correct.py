"""``amplifier correct``: edit published posts to what the campaign files say now (:mod:`amplifier.delivery.correct`).

Exit codes: 0 when every post was corrected (or already said that); 2 for a wrong command line or campaign files
with problems; 3 when an account's credentials were rejected; 4 when a post could not be corrected (not published,
Bluesky, which has no edits, a thread of another length, a server that refused the edit).
"""

from __future__ import annotations

import os
import signal
import sys

import click

from amplifier.cli.gate import _who
from amplifier.cli.publish import JSON_VERSION, format_option, publish_context
from amplifier.errors import AmplifierError, CredentialsError, ExitCode, UsageError


def _crash_hook() -> object:
    """The test hook of ``AMPLIFIER_TEST_CRASH_AFTER_REQUEST``: the process kills itself (SIGKILL: no cleanup,
    no flush) after that many edit requests, before the ledger records them."""
    from amplifier.daemon.settings import crash_after

    limit = crash_after(os.environ)
    count = 0

    def after_request() -> None:
        nonlocal count
        count += 1
        if limit is not None and count >= limit:
            os.kill(os.getpid(), signal.SIGKILL)

    return after_request


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option(
    "--dry-run", is_flag=True, help="Show what would change (old -> new); edit nothing, record nothing."
)
@click.option(
    "--by",
    default=None,
    metavar="NAME",
    help="Who makes the correction, for the ledger (default: user@host).",
)
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
    from typing import Any

    from amplifier.cli.render import dump_json
    from amplifier.clock import utcnow
    from amplifier.delivery.correct import correct_post
    from amplifier.plan.planner import find_posts
    from amplifier.publish import create_publisher

    campaign = ctx.obj.campaign()
    posts = find_posts(campaign, ids)
    context = publish_context(campaign, ctx.obj.state)
    who = by or _who()
    after_request: Any = _crash_hook()
    results: list[dict[str, object]] = []
    worst = ExitCode.OK
    with ctx.obj.open_ledger(utcnow()) as ledger:
        for post in posts:
            publisher = None
            try:
                settings = campaign.schedule.accounts.get(post.account)
                if settings is None:
                    raise UsageError(
                        f"{post.id}: its account {post.account!r} is not in the campaign any more"
                    )
                publisher = create_publisher(post.account, settings, context)
                outcome = correct_post(
                    ledger, publisher, post, by=who, now=utcnow, dry_run=dry_run, after_request=after_request
                )
            except AmplifierError as exc:
                code = ExitCode.ACCOUNT if isinstance(exc, CredentialsError) else ExitCode(exc.exit_code)
                worst = max(worst, code)
                click.echo(f"correct: {exc}", err=True)
                results.append({"id": post.id, "error": str(exc)})
                continue
            finally:
                if publisher is not None:
                    publisher.close()
            results.append(outcome.to_json())
            if fmt != "json":
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
        dump_json({"version": JSON_VERSION, "dry_run": dry_run, "corrections": results})
    if worst != ExitCode.OK:
        sys.exit(worst)


def _diff(old: str, new: str) -> str:
    """The text before and after, line by line (``-`` / ``+``), for a person to check."""
    import difflib

    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1)
    body = [line for line in lines if not line.startswith(("---", "+++", "@@"))]
    return "\n".join(f"  {line}" for line in body)
