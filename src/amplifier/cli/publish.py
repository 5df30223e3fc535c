"""The commands that talk to the platforms: ``accounts`` and ``send``.

Registered lazily on the main group by :mod:`amplifier.cli.main`; they read the global options from ``ctx.obj``
(``config``, ``state``, ``now``, ``campaign()``). The work is done by
:func:`~amplifier.delivery.accounts.check_accounts` and :func:`~amplifier.delivery.send.send_posts`, which return results; the commands only render them.

``send`` records what it does in the delivery ledger the daemon uses, through the same delivery path
(:mod:`amplifier.delivery.send`); ``send --dry-run`` neither reads nor writes it.

Exit codes: ``accounts`` returns 3 (:attr:`ExitCode.ACCOUNT`) when any account fails; ``send`` returns 3 when
an account's credentials were rejected and 4 (:attr:`ExitCode.PUBLISH`) when a post failed otherwise or was
refused (:class:`SendRefused`: the daemon is sending it, it is finished in the ledger, or posting is paused).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from amplifier.cli.options import exit_code, format_option
from amplifier.clock import Clock
from amplifier.delivery.accounts import HIDDEN_AUTOMATION, check_accounts, publish_context
from amplifier.delivery.send import LedgerSend, SendOutcome, SendRefused, send_posts
from amplifier.errors import ExitCode
from amplifier.redact import redact

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign

JSON_VERSION = 1

# send's work moved to amplifier.delivery.send, the accounts' to amplifier.delivery.accounts; these names stay
# importable from here.
__all__ = [
    "HIDDEN_AUTOMATION",
    "JSON_VERSION",
    "LedgerSend",
    "SendOutcome",
    "SendRefused",
    "accounts",
    "check_accounts",
    "format_option",
    "publish_context",
    "send",
    "send_posts",
]


def _limits_text(limits: dict[str, int]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(limits.items()))


@click.command()
@click.option(
    "--fix",
    is_flag=True,
    help="Mark each account that does not disclose automation as automated (Mastodon bot flag; Bluesky "
    "profile self-label `bot`).",
)
@format_option
@click.pass_context
def accounts(ctx: click.Context, fix: bool, fmt: str) -> None:
    """Check each account: do its credentials work, who is it, which limits does its server have, does it
    disclose automation (responsible automation is visible automation; --fix marks it).

    Exit code 3 when any account fails, with the reason per account; 5 when the state folder is unusable.
    Warnings (automation not disclosed, no quote controls on an old instance) go to stderr."""
    from amplifier.cli.render import console, dump_json
    from amplifier.publish.state import StateDir

    campaign: Campaign = ctx.obj.campaign()
    context = publish_context(campaign, ctx.obj.state)
    StateDir(ctx.obj.state_dir).ensure()  # an unusable state folder is exit 5, not every account failing (3)
    results = check_accounts(campaign, context, fix=fix)
    if fmt == "json":
        dump_json({"version": JSON_VERSION, "accounts": [info.to_json() for info in results]})
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{campaign.name}: accounts")
        for column in ("account", "platform", "ok", "who", "bot", "limits / reason"):
            table.add_column(column, overflow="fold")
        for info in results:
            who = " ".join(x for x in (info.handle, f"({info.id})" if info.id else None) if x)
            detail = _limits_text(dict(info.limits)) if info.ok else (info.error or "")
            table.add_row(
                info.account,
                info.platform,
                Text("yes" if info.ok else "NO", style="green" if info.ok else "bold red"),
                Text(who),
                Text(
                    {True: "yes", False: "NO", None: "?"}[info.bot],
                    style="yellow" if info.bot is False else "",
                ),
                Text(detail),
            )
        console().print(table)
    for info in results:
        for warning in info.warnings:
            click.echo(f"{info.account}: warning: {warning}", err=True)
    failed = [info for info in results if not info.ok]
    if failed:
        for info in failed:
            click.echo(f"{info.account}: {info.error}", err=True)
        sys.exit(ExitCode.ACCOUNT)


# --------------------------------------------------------------------------------------------- send


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; publish nothing, record nothing.")
@format_option
@click.pass_context
def send(ctx: click.Context, ids: tuple[str, ...], dry_run: bool, fmt: str) -> None:
    """Publish the planned posts with these ids (from `preview --format json`) now, and print where.

    Each post is recorded in the state folder's ledger, the one `amplifier run` uses: a post already
    published is not posted again (its address is printed, without asking the server), and a post the
    daemon is sending at this moment is refused."""
    from amplifier.cli.render import console, dump_json
    from amplifier.delivery.reconcile import claim_token
    from amplifier.delivery.shared_state import share_state
    from amplifier.plan.planner import find_posts

    campaign: Campaign = ctx.obj.campaign()
    posts = find_posts(campaign, ids)
    publish_ctx = publish_context(campaign, ctx.obj.state)
    clock: Clock = ctx.obj.clock()
    publish_ctx.clock = clock
    if dry_run:
        outcomes = send_posts(posts, campaign, publish_ctx, dry_run=True)
    else:
        with ctx.obj.open_ledger(clock()) as ledger:
            share_state(publish_ctx, ledger, claim_token("send"))  # a shared ledger: the nodes' state store
            outcomes = send_posts(posts, campaign, publish_ctx, dry_run=False, ledger=ledger, clock=clock)
    if fmt == "json":
        dump_json({"version": JSON_VERSION, "dry_run": dry_run, "posts": [o.to_json() for o in outcomes]})
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{campaign.name}: send{' (dry run)' if dry_run else ''}")
        for column in ("id", "account", "status", "where / what"):
            table.add_column(column, overflow="fold")
        for outcome in outcomes:
            if outcome.error is not None:
                detail = redact(str(outcome.error))
            elif outcome.result is not None and outcome.result.dry_run:
                detail = "\n---\n".join(part.text for part in outcome.post.parts)
            else:
                assert outcome.result is not None
                detail = "\n".join(p.url or p.uri or p.id for p in outcome.result.parts)
            style = "bold red" if outcome.error else ("green" if outcome.status == "published" else "")
            table.add_row(
                outcome.post.id, outcome.post.account, Text(outcome.status, style=style), Text(detail)
            )
        console().print(table)
    failures = [o.error for o in outcomes if o.error is not None]
    if failures:
        for error in failures:
            click.echo(redact(str(error)), err=True)
        # An account's credentials first (3): they stop every post of the account; else a post failed (4).
        auth = any(exit_code(error) == ExitCode.ACCOUNT for error in failures)
        sys.exit(ExitCode.ACCOUNT if auth else ExitCode.PUBLISH)
