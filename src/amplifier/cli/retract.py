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
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from amplifier.cli.options import format_option, now_option
from amplifier.cli.publish import JSON_VERSION
from amplifier.cli.writes import by_option, open_publishers, who
from amplifier.delivery.accounts import publish_context
from amplifier.errors import ExitCode

if TYPE_CHECKING:
    from amplifier.delivery.followups import FollowupReport
    from amplifier.delivery.ledger.followups import FollowupJob
    from amplifier.delivery.retract import RetractPlan


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
    from amplifier.delivery.ledger import ledger_exists
    from amplifier.delivery.operator import published_posts, retract_scope
    from amplifier.delivery.ratelimit import RateLimiter
    from amplifier.delivery.retract import RetractPlan
    from amplifier.delivery.retract import retract as plan_retraction

    g = apply_common(ctx, None, now)
    campaign = g.campaign()
    rules = retract_scope(campaign, ids, rule=rule, event=event)
    moment = g.moment
    if dry_run and not ledger_exists(g.state_dir):  # nothing was ever published: create nothing
        plan = RetractPlan((), (), tuple(f"{post_id}: not in the ledger" for post_id in ids))
        report, details = None, {}
    else:
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
            # What each job did, or why it waits (a secret not set, a rate limit...), as the ledger recorded it.
            details = (
                {job.key_text: job.detail for job in ledger.followups(list(plan.posts))} if report else {}
            )
    if fmt == "json":
        data = {"version": JSON_VERSION, "dry_run": dry_run, **plan.to_json()}
        data["outcome"] = report.to_json() if report is not None else None
        dump_json(data)
    else:
        for line in table_lines(plan, report, details, dry_run=dry_run):
            click.echo(line)
    for text in (*plan.refused, *(report.failed if report is not None else ())):
        click.echo(f"retract: {text}", err=True)  # what went wrong, on stderr too, as every command says it
    if plan.refused or (report is not None and report.failed):
        sys.exit(ExitCode.PUBLISH)


def table_lines(
    plan: RetractPlan, report: FollowupReport | None, details: Mapping[str, str | None], *, dry_run: bool
) -> list[str]:
    """The table form, grouped by post: each post's line, then its jobs (every part's delete with the gates, the
    undoing of boosts and the pin) with what became of each. ``details``: job key text -> the ledger's detail."""
    lines: list[str] = []
    pending = {job.post_id for job in plan.jobs}
    for post_id in plan.posts:
        if post_id not in pending:
            lines.append(f"{post_id}: already retracted, nothing left to delete")
            continue
        lines.append(f"{'would retract' if dry_run else 'retracting'} {post_id}")
        for job in plan.jobs:
            if job.post_id == post_id:
                lines.append(f"  {job.kind} by {job.account}: {_outcome(job, report, details)}")
    if not plan.posts and not plan.refused:
        lines.append("nothing to retract: no published post matches")
    return lines


def _outcome(job: FollowupJob, report: FollowupReport | None, details: Mapping[str, str | None]) -> str:
    if report is None:
        return "would run"
    detail = details.get(job.key_text)
    for word, texts in (("done", report.done), ("failed", report.failed), ("skipped", report.skipped)):
        if any(text == job.key_text or text.startswith(f"{job.key_text}: ") for text in texts):
            return f"{word}: {detail}" if detail else word
    why = f": {detail}" if detail else ""
    return f"waiting{why} (the daemon finishes it)"
