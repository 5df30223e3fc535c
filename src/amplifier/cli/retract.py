"""``amplifier retract``: delete published posts on their platforms, for a rally cancelled or moved
(:mod:`amplifier.delivery.followups`).

Every part of a thread is deleted (on Bluesky with its threadgate and postgate), the boosts and reposts the
campaign's accounts made of it are undone, a pin is removed, and the ledger records the retraction (who, when,
why); ``status`` and ``history`` show it. The deletions go out at once, within the accounts' rate budgets
(Mastodon: 30 deletes per 30 minutes); what a 429 or a budget holds back stays planned and the daemon
(``amplifier run``) finishes it. Retracting again is harmless.

Exit codes: 0 when every post is retracted or being retracted; 2 for a wrong command line; 4 when a post could
not be retracted (not published, unknown, a deletion refused).
"""

from __future__ import annotations

import os
import sys

import click

from amplifier.cli.options import format_option, now_option
from amplifier.cli.publish import JSON_VERSION
from amplifier.cli.writes import by_option, open_publishers, who
from amplifier.delivery.accounts import publish_context
from amplifier.errors import ExitCode


@click.command()
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option(
    "--event", default=None, metavar="EVENT", help="Every published post of the rules tied to this event."
)
@click.option("--rule", default=None, metavar="RULE", help="Every published post of this rule.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; change nothing.")
@click.option(
    "--reason", default="", metavar="TEXT", help="Why, for the ledger (e.g. 'rally moved to Sunday')."
)
@by_option("Who retracts, for the ledger")
@format_option
@now_option
@click.pass_context
def retract(
    ctx: click.Context,
    ids: tuple[str, ...],
    event: str | None,
    rule: str | None,
    dry_run: bool,
    reason: str,
    by: str | None,
    fmt: str,
    now: str | None,
) -> None:
    """Delete published posts (every part, their gates, the campaign's boosts of them) and record it.

    \b
    amplifier retract kobane-countdown:mastodon-en:2027-10-30T10:00 --reason "wrong date"
    amplifier retract --event efrin-day --reason "rally moved" --dry-run
    amplifier retract --rule efrin-countdown"""
    from amplifier.cli.options import apply_common
    from amplifier.cli.render import dump_json
    from amplifier.daemon.followups import crash_hook, servers_of
    from amplifier.delivery.followups import FollowupRunner
    from amplifier.delivery.operator import published_posts, retract_scope
    from amplifier.delivery.ratelimit import RateLimiter
    from amplifier.delivery.retract import retract as plan_retraction

    g = apply_common(ctx, None, now)
    campaign = g.campaign()
    rules = retract_scope(campaign, ids, rule=rule, event=event)
    moment = g.moment
    with g.open_ledger(moment) as ledger:
        post_ids = list(ids) if rules is None else published_posts(ledger, rules, moment)
        plan = plan_retraction(ledger, post_ids, by=who(by), reason=reason, now=moment, dry_run=dry_run)
        report = None
        if not dry_run and plan.jobs:
            with open_publishers(campaign, publish_context(campaign, g.state)) as publisher_of:
                runner = FollowupRunner(
                    ledger,
                    publisher_of,
                    RateLimiter(),
                    token=f"retract:{who()}:{os.getpid()}",
                    servers=servers_of(campaign),
                    after_request=crash_hook(),
                )
                report = runner.run_jobs(plan.jobs, moment)
        # Why a job waits (a secret not set, a rate limit...), as the ledger recorded it.
        waiting = {job.key_text: job.detail for job in ledger.followups(list(plan.posts))} if report else {}
    if fmt == "json":
        data = {"version": JSON_VERSION, "dry_run": dry_run, **plan.to_json()}
        data["outcome"] = report.to_json() if report is not None else None
        dump_json(data)
    else:
        verb = "would retract" if dry_run else "retracting"
        pending = {job.post_id for job in plan.jobs}
        for post_id in plan.posts:
            if post_id in pending:
                click.echo(f"{verb} {post_id}")
            else:
                click.echo(f"{post_id}: already retracted, nothing left to delete")
        for job in plan.jobs:
            click.echo(f"  {job.kind} by {job.account}" + (" (planned)" if dry_run else ""))
        if report is not None:
            for text in report.done:
                click.echo(f"done: {text}")
            for text in report.deferred:
                why = f": {waiting[text]}" if waiting.get(text) else ""
                click.echo(f"waiting: {text}{why} (the daemon finishes it)")
            for text in report.failed:
                click.echo(f"failed: {text}", err=True)
        if not plan.posts and not plan.refused:
            click.echo("nothing to retract: no published post matches")
    for text in plan.refused:
        click.echo(f"retract: {text}", err=True)
    if plan.refused or (report is not None and report.failed):
        sys.exit(ExitCode.PUBLISH)
