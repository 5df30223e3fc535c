"""An operator's commands on single posts and accounts: ``skip``, ``cancel``, ``retry``, ``pause`` and ``resume``.

Each is one ledger transaction, recorded with who (``--by``, default the OS user), when and why; ``status``
and ``history`` show them. All are safe while the daemon runs: the ledger checks the posts' states under its
write lock, so a post the daemon has just claimed (it is being published) is refused with a message, never
changed under the daemon's feet. A skipped or cancelled post is finished (``skipped``): no re-plan brings it
back. Exit codes: 2 for a usage error (an unknown account or rule, a post outside its window without
``--late``), 4 when the ledger refuses the change (a post being published, finished, unknown).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from typing import TYPE_CHECKING

import click

from amplifier.cli.options import now_option
from amplifier.daemon.settings import remove_pause_file
from amplifier.errors import UsageError

if TYPE_CHECKING:
    from amplifier.cli.options import Globals
    from amplifier.delivery.ledger import Ledger, Row

LATE_FOR = dt.timedelta(hours=1)  # retry --late: how long after the retry the post may still go out


def operator_name() -> str:
    """Who runs the command: the OS user (``uid N`` where the user has no name, as in some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _globals(ctx: click.Context, now: str | None) -> tuple[Globals, dt.datetime]:
    """The common options, and the moment of the action (``--now``, default the clock)."""
    from amplifier.cli.options import apply_common

    g = apply_common(ctx, None, now)
    return g, g.moment


by_option = click.option(
    "--by", default=None, metavar="NAME", help="Who does it, for the record (default: the OS user)."
)


@click.command()
@click.argument("post_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--reason", default="skipped by the operator", show_default=True, help="Why (shown in status).")
@by_option
@now_option
@click.pass_context
def skip(ctx: click.Context, post_ids: tuple[str, ...], reason: str, by: str | None, now: str | None) -> None:
    """Skip planned posts by id (as `preview` shows them): they will not go out. All or none."""
    from amplifier.delivery.operator import skip_posts

    g, moment = _globals(ctx, now)
    with g.open_ledger(moment) as ledger:
        skip_posts(ledger, g.campaign, post_ids, reason, moment, by=by or operator_name())
    for post_id in dict.fromkeys(post_ids):
        click.echo(f"skipped: {post_id}")


@click.command()
@click.option("--rule", default=None, metavar="RULE", help="Every planned post of this rule.")
@click.option(
    "--event", default=None, metavar="EVENT", help="Every planned post of the rules tied to this event."
)
@click.option("--account", default=None, metavar="ID", help="Every planned post of this account.")
@click.option(
    "--reason", default="cancelled by the operator", show_default=True, help="Why (shown in status)."
)
@by_option
@now_option
@click.pass_context
def cancel(
    ctx: click.Context,
    rule: str | None,
    event: str | None,
    account: str | None,
    reason: str,
    by: str | None,
    now: str | None,
) -> None:
    """Cancel every planned post of a rule, an event or an account (posts being published are left alone).

    It acts on the posts the ledger holds (the daemon plans a rolling window ahead); to stop a rule for
    good, remove it from schedule.yaml."""
    from amplifier.delivery.operator import cancel_scope

    g, moment = _globals(ctx, now)
    target, rules = cancel_scope(g.campaign, rule=rule, event=event, account=account)
    with g.open_ledger(moment) as ledger:
        ids = ledger.cancel_posts(
            reason, moment, by=by or operator_name(), target=target, account=account, rules=rules
        )
    click.echo(f"cancelled {len(ids)} planned post(s) of {target}")
    for post_id in ids:
        click.echo(f"  {post_id}")


@click.command()
@click.argument("post_id", metavar="ID")
@click.option(
    "--late", is_flag=True, help="Post it even though its window has passed (within the next hour)."
)
@click.option("--reason", default="retried by the operator", show_default=True, help="Why (shown in status).")
@by_option
@now_option
@click.pass_context
def retry(ctx: click.Context, post_id: str, late: bool, reason: str, by: str | None, now: str | None) -> None:
    """Put a failed or expired post back to planned: the daemon sends it at its next pass, within the post's
    window (its rule's `missed` setting); --late lets it go out after the window."""
    from amplifier.delivery.ledger import IllegalTransition, State

    g, moment = _globals(ctx, now)
    with g.open_ledger(moment) as ledger:
        row = ledger.get(post_id)
        if row.state not in (State.FAILED, State.EXPIRED):
            raise IllegalTransition(post_id, row.state, "retry it (only a failed or expired post can be)")
        late_until = None
        if late:
            late_until = moment + LATE_FOR
        else:
            deadline = _deadline(g, row)
            if moment > deadline:
                raise UsageError(
                    f"post {post_id}: its window ended at {deadline.isoformat()}; "
                    "give --late to post it anyway"
                )
        ledger.retry_post(post_id, reason, moment, by=by or operator_name(), late_until=late_until)
    click.echo(
        f"planned again: {post_id}"
        + (f" (may go out late, until {late_until.isoformat()})" if late_until else "")
    )


def _deadline(g: Globals, row: Row) -> dt.datetime:
    """The post's window as the daemon computes it (its rule's ``missed`` setting)."""
    from amplifier.daemon.planning import post_window
    from amplifier.daemon.settings import settings_from_environ

    return post_window(g.campaign(), settings_from_environ(os.environ), row)[0]


@click.command()
@click.option("--account", default=None, metavar="ID", help="Pause only this account.")
@click.option("--reason", default="paused by the operator", show_default=True, help="Why (shown in status).")
@by_option
@now_option
@click.pass_context
def pause(ctx: click.Context, account: str | None, reason: str, by: str | None, now: str | None) -> None:
    """Stop all posting now (or one account's), without stopping the daemon (posts being sent finish)."""
    g, moment = _globals(ctx, now)
    with g.open_ledger(moment) as ledger:
        if account is not None:
            _check_account(g, ledger, account)
            ledger.pause_account(account, reason, moment, by=by or operator_name())
            click.echo(f"paused {account}: {reason}")
            return
        ledger.set_paused(True, reason, moment)
    click.echo(f"paused: {reason}")


def _check_account(g: Globals, ledger: Ledger, account: str) -> None:
    from amplifier.errors import AmplifierError

    try:
        known = set(g.campaign().schedule.accounts)
    except AmplifierError:
        known = set(ledger.summaries())
    if account not in known:
        raise UsageError(f"--account: no account {account!r} in the campaign")


@click.command()
@click.option("--account", default=None, metavar="ID", help="Resume one paused account.")
@by_option
@now_option
@click.pass_context
def resume(ctx: click.Context, account: str | None, by: str | None, now: str | None) -> None:
    """Resume posting after `amplifier pause` (removes the PAUSE file too), or resume one paused account."""
    g, moment = _globals(ctx, now)
    state = g.state_dir
    with g.open_ledger(moment) as ledger:
        if account is not None:
            if not ledger.resume_account(account, by=by or operator_name(), now=moment):
                raise UsageError(f"--account: {account!r} is not paused")
            click.echo(f"resumed: {account}")
            return
        ledger.set_paused(False, None, moment)
    removed = remove_pause_file(state)
    if removed is not None:
        click.echo(f"removed {removed}")
    click.echo("resumed")


__all__ = ["cancel", "operator_name", "pause", "resume", "retry", "skip"]
