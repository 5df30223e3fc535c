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

from amplifier.cli.health import PROBLEM_STATES, health_problems, ledger_problems, secret_problems
from amplifier.cli.options import apply_common, config_option, format_option, now_option
from amplifier.daemon.loop import FAR_FUTURE, HEARTBEAT_NAME, PAUSE_NAME
from amplifier.delivery.ledger import Ledger, Row, State
from amplifier.errors import AmplifierError, UsageError

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.cli.options import Globals

JSON_VERSION = 1
UNHEALTHY = 1  # status --check: Docker's "unhealthy"
FINISHED = (State.PUBLISHED, State.FAILED, State.EXPIRED, State.SKIPPED)
DEFAULT_MAX_AGE = 180  # seconds: a heartbeat older than this means the daemon is stuck
DEFAULT_CLAIM_AGE = 15  # minutes: a post claimed longer than this means a publish is stuck
DEFAULT_FAILED_WITHIN = 6  # hours: a post failed or expired this recently makes the check fail
DEFAULT_OVERDUE = 60  # minutes: a due post not sent this long after its time makes the check fail


def state_dir(g: Globals) -> Path:
    """The state folder, without loading (or needing) a valid campaign."""
    from amplifier.publish.sessions import resolve_state_dir

    return resolve_state_dir(g.config, g.state)


def zone_of(g: Globals) -> ZoneInfo:
    try:
        return g.zone
    except AmplifierError:
        return ZoneInfo("UTC")


def _iso(value: dt.datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def part_results(row: Row) -> list[dict[str, Any]]:
    """Every published part's result (id, URI, URL; None where the platform has none), in part order."""
    recorded = (row.parts[index] for index in sorted(row.parts))
    parts: Iterable[Mapping[str, Any]] = row.result if row.result is not None else recorded
    return [{"id": part.get("id"), "uri": part.get("uri"), "url": part.get("url")} for part in parts]


def row_json(row: Row, zone: ZoneInfo) -> dict[str, Any]:
    results = part_results(row)
    first = results[0] if results else {}
    return {
        "id": row.id,
        "account": row.account,
        "platform": row.platform,
        "rule": row.rule,
        "state": row.state.value,
        "due_at": _iso(row.due_at, zone),
        "next_attempt_at": _iso(row.next_attempt_at, zone),
        "attempts": row.attempts,
        "published_at": _iso(row.published_at, zone),
        "url": first.get("url") or first.get("uri"),
        "results": results,
        "reason": row.last_error,
        "parts": row.part_count,
    }


def read_heartbeat(state: Path) -> dict[str, Any] | None:
    from amplifier.publish.sessions import StateDir

    data = StateDir(state).read_json("", HEARTBEAT_NAME)
    return data if isinstance(data, dict) else None


def collect_status(
    ledger: Ledger,
    now: dt.datetime,
    zone: ZoneInfo,
    state: Path,
    accounts: Mapping[str, str],
    *,
    limit: int = 10,
) -> dict[str, Any]:
    """Everything ``status`` shows, as versioned JSON data; ``accounts`` maps account id -> platform."""
    summaries = ledger.summaries()
    pauses = {pause.account: pause for pause in ledger.account_pauses()}
    per_account: dict[str, dict[str, Any]] = {
        account: {"platform": p} for account, p in sorted(accounts.items())
    }
    platforms = {row.account: row.platform for row in ledger.due(now + FAR_FUTURE, limit)}
    for account, summary in summaries.items():
        info = per_account.setdefault(account, {"platform": platforms.get(account)})
        info.update(
            {
                "counts": {state.value: summary.counts[state] for state in State},
                "last_published_at": _iso(summary.last_published_at, zone),
                "next_due_at": _iso(summary.next_due_at, zone),
            }
        )
    for account, info in per_account.items():
        pause = pauses.get(account)
        info.setdefault("counts", dict.fromkeys((s.value for s in State), 0))
        info.setdefault("last_published_at", None)
        info.setdefault("next_due_at", None)
        info["paused"] = pause.reason if pause else None
        info["paused_by"] = (pause.by or "the daemon") if pause else None
        info["platform"] = info.get("platform") or platforms.get(account)
    held = [
        row_json(row, zone)
        for account in sorted(pauses)
        for row in _first(
            ledger.iter_history(now - FAR_FUTURE, now + FAR_FUTURE, account, [State.PLANNED]), 3
        )
    ]
    totals = dict.fromkeys((s.value for s in State), 0)
    for summary in summaries.values():
        for state_, count in summary.counts.items():
            totals[state_.value] += count
    pause_file = state / PAUSE_NAME
    return {
        "version": JSON_VERSION,
        "now": now.astimezone(zone).isoformat(),
        "paused": ledger.pause_reason() or (f"the file {pause_file} exists" if pause_file.exists() else None),
        "paused_accounts": {account: pause.reason for account, pause in pauses.items()},
        "heartbeat": read_heartbeat(state),
        "counts": totals,
        "next": [row_json(row, zone) for row in ledger.due(now + FAR_FUTURE, limit)],
        "held": held,
        "last_published": [
            row_json(r, zone) for r in ledger.latest([State.PUBLISHED], limit, by_published=True)
        ],
        "failures": [row_json(row, zone) for row in ledger.latest(PROBLEM_STATES, limit)],
        "claimed": [
            {
                **row_json(row, zone),
                "claimed_at": row.claimed_at.isoformat() if row.claimed_at else None,
                # set: an attempt ended with its outcome unknown; reconciliation looks at next_attempt_at
                "unknown_since": row.unknown_since.isoformat() if row.unknown_since else None,
            }
            for row in ledger.claimed()
        ],
        "accounts": per_account,
        "actions": [
            {
                "at": _iso(action.at, zone),
                "by": action.by,
                "action": action.action,
                "target": action.target,
                "reason": action.reason,
                "posts": action.posts,
            }
            for action in ledger.operator_actions(limit=limit)
        ],
        "planned_only": False,
    }


def _first(rows: Iterable[Row], count: int) -> list[Row]:
    taken: list[Row] = []
    for row in rows:
        taken.append(row)
        if len(taken) >= count:
            break
    return taken


def plan_status(
    campaign: Campaign | None, now: dt.datetime, zone: ZoneInfo, state: Path, *, limit: int = 10
) -> dict[str, Any]:
    """``status`` before the daemon ever ran: the next posts due from the campaign files; nothing is created."""
    from amplifier.plan.planner import plan_window

    upcoming: list[Any] = []
    settings_by_account: dict[str, Any] = {}
    if campaign is not None:  # campaign files that cannot be loaded: an empty status, still nothing created
        window = plan_window(campaign, now, now + dt.timedelta(days=14)).posts
        upcoming = sorted(window, key=lambda p: (p.at, p.id))
        settings_by_account = dict(campaign.schedule.accounts)
    empty = dict.fromkeys((s.value for s in State), 0)
    accounts: dict[str, dict[str, Any]] = {}
    for account, settings in sorted(settings_by_account.items()):
        first = next((post for post in upcoming if post.account == account), None)
        accounts[account] = {
            "platform": settings.platform,
            "paused": None,
            "paused_by": None,
            "counts": dict(empty),
            "last_published_at": None,
            "next_due_at": _iso(first.at, zone) if first else None,
        }
    pause_file = state / PAUSE_NAME
    return {
        "version": JSON_VERSION,
        "now": now.astimezone(zone).isoformat(),
        "paused": f"the file {pause_file} exists" if pause_file.exists() else None,
        "paused_accounts": {},
        "heartbeat": None,
        "counts": dict(empty),
        "next": [
            {
                "id": post.id,
                "account": post.account,
                "platform": post.platform,
                "rule": post.rule,
                "state": "planned",
                "due_at": _iso(post.at, zone),
                "next_attempt_at": _iso(post.at, zone),
                "attempts": 0,
                "published_at": None,
                "url": None,
                "results": [],
                "reason": None,
                "parts": len(post.parts),
            }
            for post in upcoming[:limit]
        ],
        "held": [],
        "last_published": [],
        "failures": [],
        "claimed": [],
        "accounts": accounts,
        "actions": [],
        "planned_only": True,
    }


# --------------------------------------------------------------------------------------------- status


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
    zone = zone_of(g)
    moment = g.now if g.now_option else utcnow()
    campaign: Campaign | None = None
    problems: list[str] = []
    try:
        campaign = g.campaign()
    except AmplifierError as error:
        if check:
            problems.append(f"the campaign files cannot be loaded: {str(error).splitlines()[0]}")
    accounts = {a: s.platform for a, s in campaign.schedule.accounts.items()} if campaign else {}
    state = state_dir(g)
    if not ledgers.ledger_exists(state):
        data = plan_status(campaign, moment, zone, state)
    else:
        with ledgers.open_ledger(state, moment) as ledger:
            data = collect_status(ledger, moment, zone, state, accounts)
            if check:
                problems += ledger_problems(ledger, moment, failed_within, overdue)
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
    zone = zone_of(g)
    moment = g.now if g.now_option else utcnow()
    window_start = (
        parse_instant(start, zone, base=moment, option="--from") if start else moment - dt.timedelta(days=7)
    )
    window_end = (
        parse_instant(end, zone, base=moment, option="--to") if end else moment + dt.timedelta(seconds=1)
    )
    if window_end <= window_start:
        raise UsageError("--to must be after --from")
    state = state_dir(g)
    if not ledgers.ledger_exists(state):
        rows: Iterable[Row] = ()
        actions: list[Any] = []
        _history_out(fmt, rows, actions, zone, window_start, window_end, account)
        return
    with ledgers.open_ledger(state, moment) as ledger:
        rows = ledger.iter_history(window_start, window_end, account, FINISHED)
        actions = ledger.operator_actions(since=window_start, limit=1000)
        _history_out(fmt, rows, actions, zone, window_start, window_end, account)


def _history_out(
    fmt: str,
    rows: Iterable[Row],
    actions: list[Any],
    zone: ZoneInfo,
    start: dt.datetime,
    end: dt.datetime,
    account: str | None,
) -> None:
    import json

    acts = [
        {"at": _iso(a.at, zone), "by": a.by, "action": a.action, "target": a.target, "reason": a.reason}
        for a in actions
        if a.at < end
    ]
    if fmt == "json":
        # streamed: the header, each post as it is read, the footer; never the whole list in memory
        out = sys.stdout
        head = {"version": JSON_VERSION, "from": start.isoformat(), "to": end.isoformat(), "account": account}
        out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "posts": [')
        for index, row in enumerate(rows):
            out.write((", " if index else "") + json.dumps(row_json(row, zone), ensure_ascii=False))
        out.write('], "actions": ' + json.dumps(acts, ensure_ascii=False) + "}\n")
        out.flush()
        return
    from amplifier.cli.status_tables import history_table

    history_table(rows, acts, zone, start, end)


__all__ = ["collect_status", "history", "plan_status", "row_json", "status"]
