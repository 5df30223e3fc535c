"""``amplifier status`` (and ``status --check``, the Docker HEALTHCHECK) and ``amplifier history``.

Both read the ledger with aggregate and windowed queries (:meth:`Ledger.summaries`, :meth:`Ledger.latest`,
:meth:`Ledger.iter_history`, ...): their cost follows what they show, not the size of the ledger. ``history``
streams its JSON. Before the daemon ever ran (no ledger yet), ``status`` shows the plan from the campaign files
and creates nothing.

``status --check`` exits 1 (:data:`UNHEALTHY`) when anything an operator must act on is found, one line each
on stderr (see :func:`check_problems` and docs/running.md); 0 when healthy.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from amplifier.cli.options import apply_common, config_option, format_option, now_option
from amplifier.cli.status_tables import utc_note
from amplifier.daemon.status import (
    DEFAULT_CLAIM_AGE,
    DEFAULT_FAILED_WITHIN,
    DEFAULT_MAX_AGE,
    DEFAULT_OVERDUE,
    FINISHED,
    JSON_VERSION,
    collect_status,
    health_problems,
    iso_in,
    ledger_problems,
    plan_status,
    row_json,
    secret_problems,
)
from amplifier.delivery.ledger import Row
from amplifier.delivery.ledger.followups import Retraction
from amplifier.errors import AmplifierError, UsageError

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.cli.options import Globals

UNHEALTHY = 1  # status --check: Docker's "unhealthy"


@click.command()
@config_option
@now_option
@format_option
@click.option("--check", is_flag=True, help="Exit 1 when something needs an operator (a Docker HEALTHCHECK).")
@click.option(
    "--max-age",
    default=DEFAULT_MAX_AGE,
    show_default=True,
    metavar="SECONDS",
    help="--check: the oldest acceptable heartbeat.",
)
@click.option(
    "--claim-age",
    default=DEFAULT_CLAIM_AGE,
    show_default=True,
    metavar="MINUTES",
    help="--check: the longest a post may stay claimed.",
)
@click.option(
    "--failed-within",
    default=DEFAULT_FAILED_WITHIN,
    show_default=True,
    metavar="HOURS",
    help="--check: a post failed or expired this recently is a problem.",
)
@click.option(
    "--overdue",
    default=DEFAULT_OVERDUE,
    show_default=True,
    metavar="MINUTES",
    help="--check: a due post not sent this long after its time is a problem.",
)
@click.pass_context
def status(
    ctx: click.Context,
    config: Path | None,
    now: str | None,
    fmt: str,
    check: bool,
    max_age: int,
    claim_age: int,
    failed_within: int,
    overdue: int,
) -> None:
    """The next posts due, the last published (with URLs), failures, pauses, operators' actions, each account.

    Before the daemon ever ran, the next posts of the campaign files (nothing is created). With --check,
    exit 1 and one `unhealthy:` line each when: the heartbeat is missing or stale, a post is stuck claimed or
    its unknown outcome's check is overdue, an account is paused by a credential problem, a post failed or
    expired within --failed-within hours, a due post is --overdue, or an account's secret cannot be read."""
    from amplifier.clock import utcnow
    from amplifier.delivery import ledger as ledgers

    g = apply_common(ctx, config, now)
    campaign, zone, unloaded = _campaign_or_why(g)
    moment = g.now if g.now_option else utcnow()
    problems: list[str] = []
    if check and unloaded:
        problems.append(f"the campaign files cannot be loaded: {unloaded}")
    accounts = {a: s.platform for a, s in campaign.schedule.accounts.items()} if campaign else {}
    state = g.state_dir
    try:
        if not ledgers.ledger_exists(state):
            data = plan_status(campaign, moment, zone, state)
        else:
            with ledgers.open_ledger(state, moment) as ledger:
                data = collect_status(ledger, moment, zone, state, accounts)
                if check:
                    problems += ledger_problems(ledger, moment, failed_within, overdue)
    except ledgers.LedgerError as error:
        if not check:
            raise
        # The health check says it as one more problem (exit 1, the JSON with it), like every other.
        data = plan_status(None, moment, zone, state)
        problems.append(f"the ledger cannot be opened: {error}")
    data["timezone"] = zone.key
    data["campaign_error"] = unloaded
    if check:
        problems = health_problems(data, utcnow(), max_age, claim_age) + problems
        if campaign is not None:
            problems += secret_problems(campaign)
        data["healthy"] = not problems
        data["problems"] = problems
    if fmt == "json":
        from amplifier.cli.render import dump_json

        dump_json(data)
    else:
        from amplifier.cli.status_tables import status_tables

        status_tables(data)
    if problems:
        for problem in problems:
            click.echo(f"unhealthy: {problem}", err=True)
        sys.exit(UNHEALTHY)


def _campaign_or_why(g: Globals) -> tuple[Campaign | None, ZoneInfo, str | None]:
    """The campaign and its zone; or, when its files cannot be loaded, None, UTC and the first problem (``status``
    and ``history`` work without a campaign, and say so)."""
    try:
        campaign = g.campaign()
    except AmplifierError as error:
        return None, ZoneInfo("UTC"), str(error).splitlines()[0]
    return campaign, ZoneInfo(campaign.schedule.campaign.timezone), None


# --------------------------------------------------------------------------------------------- history


@click.command()
@config_option
@now_option
@click.option("--from", "start", default=None, metavar="TIME", help="Due at or after (default: 7 days ago).")
@click.option("--to", "end", default=None, metavar="TIME", help="Due before (default: now).")
@click.option("--account", default=None, metavar="ID", help="Only this account.")
@format_option
@click.pass_context
def history(
    ctx: click.Context,
    config: Path | None,
    now: str | None,
    start: str | None,
    end: str | None,
    account: str | None,
    fmt: str,
) -> None:
    """What was published, failed, expired or skipped, by due time (JSON streamed, one post at a time)."""
    from amplifier.clock import parse_instant, utcnow
    from amplifier.delivery import ledger as ledgers

    g = apply_common(ctx, config, now)
    _campaign, zone, unloaded = _campaign_or_why(g)
    moment = g.now if g.now_option else utcnow()
    if unloaded and fmt != "json":  # the JSON's times carry their offset
        click.echo(utc_note(unloaded))
    window_start = (
        parse_instant(start, zone, base=moment, option="--from") if start else moment - dt.timedelta(days=7)
    )
    window_end = (
        parse_instant(end, zone, base=moment, option="--to") if end else moment + dt.timedelta(seconds=1)
    )
    if window_end <= window_start:
        raise UsageError("--to must be after --from")
    state = g.state_dir
    if not ledgers.ledger_exists(state):
        rows: Iterable[Row] = ()
        actions: list[Any] = []
        _history_out(fmt, rows, actions, zone, window_start, window_end, account)
        return
    with ledgers.open_ledger(state, moment) as ledger:
        retracted = ledger.retractions()
        rows = ledger.iter_history(window_start, window_end, account, FINISHED)
        actions = ledger.operator_actions(since=window_start, limit=1000)
        _history_out(fmt, rows, actions, zone, window_start, window_end, account, retracted)


def _history_out(
    fmt: str,
    rows: Iterable[Row],
    actions: list[Any],
    zone: ZoneInfo,
    start: dt.datetime,
    end: dt.datetime,
    account: str | None,
    retracted: Mapping[str, Retraction] | None = None,
) -> None:
    import json

    retracted = retracted or {}

    def post_json(row: Row) -> dict[str, Any]:
        item = row_json(row, zone)
        if row.id in retracted:
            item["retracted"] = retraction_json(retracted[row.id], zone)
        return item

    acts = [
        {"at": iso_in(a.at, zone), "by": a.by, "action": a.action, "target": a.target, "reason": a.reason}
        for a in actions
        if a.at < end
    ]
    if fmt == "json":
        # streamed: the header, each post as it is read, the footer; never the whole list in memory
        out = sys.stdout
        head = {"version": JSON_VERSION, "from": start.isoformat(), "to": end.isoformat(), "account": account}
        out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "posts": [')
        for index, row in enumerate(rows):
            out.write((", " if index else "") + json.dumps(post_json(row), ensure_ascii=False))
        out.write('], "actions": ' + json.dumps(acts, ensure_ascii=False) + "}\n")
        out.flush()
        return
    from amplifier.cli.status_tables import history_table

    history_table(rows, acts, zone, start, end, retracted)


def retraction_json(retraction: Retraction, zone: ZoneInfo) -> dict[str, Any]:
    """A retraction as ``history`` and ``status`` show it: who, when, why, and whether it is done."""
    return {
        "by": retraction.by,
        "at": iso_in(retraction.at, zone),
        "reason": retraction.reason,
        "state": retraction.state,
        "done_at": None if retraction.done_at is None else iso_in(retraction.done_at, zone),
    }


__all__ = ["history", "status"]
