"""The daemon's commands: ``run``, ``status``, ``history``, ``pause`` and ``resume``.

Registered lazily on the main group by :mod:`amplifier.cli.main`. The ledger is ``ledger.sqlite3`` in the state
folder (``--state DIR``, ``$AMPLIFIER_STATE``, default ``.amplifier-state`` beside ``schedule.yaml``).

Exit codes: ``run --once`` returns 4 (:attr:`ExitCode.PUBLISH`) when a post failed in the run, 2 when the
campaign is invalid at start-up; ``status --check`` returns 1 when the daemon looks stuck (no recent
heartbeat, or a post claimed for too long), for a Docker ``HEALTHCHECK``.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from amplifier.cli.main import apply_common, config_option, now_option
from amplifier.cli.publish import JSON_VERSION, format_option, publish_context
from amplifier.daemon.settings import FAR_FUTURE, HEARTBEAT_NAME, PAUSE_NAME
from amplifier.delivery import ledger as ledgers
from amplifier.delivery.ledger import Ledger, Row, State
from amplifier.errors import AmplifierError, ExitCode, UsageError
from amplifier.publish.sessions import resolve_state_dir

if TYPE_CHECKING:
    from amplifier.cli.main import Globals

FINISHED = (State.PUBLISHED, State.FAILED, State.EXPIRED, State.SKIPPED)
DEFAULT_MAX_AGE = 180  # seconds: a heartbeat older than this means the daemon is stuck
DEFAULT_CLAIM_AGE = 15  # minutes: a post claimed longer than this means a publish is stuck


def state_dir(g: Globals) -> Path:
    """The state folder, without loading (or needing) a valid campaign."""
    return resolve_state_dir(g.config, g.state)


def _zone(g: Globals) -> ZoneInfo:
    try:
        return g.zone
    except AmplifierError:
        return ZoneInfo("UTC")


@contextmanager
def open_ledger(g: Globals, now: dt.datetime) -> Iterator[Ledger]:
    with ledgers.open_ledger(state_dir(g), now) as ledger:
        yield ledger


# --------------------------------------------------------------------------------------------- run


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop`` on SIGTERM or SIGINT while the block runs; the handlers before it are restored after.
    Does nothing outside the main thread (where Python cannot install signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        stop()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@click.command()
@config_option
@now_option
@click.option("--once", is_flag=True, help="Handle everything due at --now (default: now), then exit.")
@click.option("--dry-run", is_flag=True, help="Publish nothing; work on a copy of the ledger.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per event, for people or as JSON.",
)
@click.pass_context
def run(
    ctx: click.Context, config: Path | None, now: str | None, once: bool, dry_run: bool, log_format: str
) -> None:
    """Run the campaign: post every planned post on time, exactly once.

    Without --once, runs until SIGTERM/SIGINT, waking at the next due post, reloading the campaign when its
    files change, and pausing while `amplifier pause` is on or a file PAUSE exists in the state folder.
    With --once, handles what is due at --now and exits: exit code 4 if a post failed. In both modes
    SIGTERM/SIGINT stop claiming new posts and let the posts being sent finish.

    A dry run works on a copy of the ledger in a scratch folder and writes its heartbeat there (so
    `status --check` never takes it for the real daemon), but obeys the real PAUSE file and `amplifier
    pause`."""
    from amplifier.clock import utcnow
    from amplifier.daemon.events import EventLog
    from amplifier.daemon.loop import Daemon
    from amplifier.daemon.scheduler import run_once, serve
    from amplifier.daemon.settings import offset_clock, request_timeout_from_environ, settings_from_environ
    from amplifier.publish import create_publisher

    g = apply_common(ctx, config, now)
    campaign = g.campaign()
    clock = offset_clock(g.now) if g.now_option else utcnow
    log = EventLog(sys.stderr, log_format, clock)
    state = state_dir(g)
    publish_ctx = publish_context(campaign, g.state)
    publish_ctx.clock = clock
    publish_ctx.timeout = request_timeout_from_environ(os.environ) or publish_ctx.timeout

    def factory(account: str, settings: Any) -> Any:
        return create_publisher(account, settings, publish_ctx, dry_run=dry_run)

    with tempfile.TemporaryDirectory(prefix="amplifier-dry-run-") as scratch:
        if dry_run:
            ledger = ledgers.open_ledger_copy(state, Path(scratch), clock())
        else:
            ledger = ledgers.open_ledger(state, clock())
        daemon = Daemon(
            campaign,
            ledger,
            factory,
            clock=clock,
            log=log,
            state_dir=Path(scratch) if dry_run else state,
            settings=settings_from_environ(os.environ),
            pause_dir=state,
            outside_pause=(lambda: ledgers.outside_pause_reason(state)) if dry_run else None,
        )
        try:
            if once:
                with stop_on_signals(daemon.stop):
                    report = run_once(daemon, clock())
                log.emit(
                    "done",
                    published=len(report.published),
                    retried=len(report.retried),
                    failed=daemon.failures,
                    expired=len(report.expired),
                    paused=report.paused,
                    dry_run=True if dry_run else None,
                )
            else:
                stop = threading.Event()

                def stop_all() -> None:
                    daemon.stop()
                    stop.set()

                with stop_on_signals(stop_all):
                    daemon.start(clock())
                    serve(daemon, stop)
        finally:
            daemon.close()
            ledger.close()
    if once and daemon.failures:
        sys.exit(ExitCode.PUBLISH)


# --------------------------------------------------------------------------------------------- status


def _row_json(row: Row, zone: ZoneInfo) -> dict[str, Any]:
    url = None
    if row.result:
        url = row.result[0].get("url") or row.result[0].get("uri")
    return {
        "id": row.id,
        "account": row.account,
        "platform": row.platform,
        "rule": row.rule,
        "state": row.state.value,
        "due_at": row.due_at.astimezone(zone).isoformat(),
        "next_attempt_at": row.next_attempt_at.astimezone(zone).isoformat(),
        "attempts": row.attempts,
        "published_at": row.published_at.astimezone(zone).isoformat() if row.published_at else None,
        "url": url,
        "reason": row.last_error,
        "parts": row.part_count,
    }


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
    planned = ledger.due(now + FAR_FUTURE)
    every = ledger.history(now - FAR_FUTURE, now + FAR_FUTURE)
    published = sorted(
        (row for row in every if row.state == State.PUBLISHED and row.published_at is not None),
        key=lambda row: row.published_at or now,
        reverse=True,
    )
    failures = sorted(
        (row for row in every if row.state in (State.FAILED, State.EXPIRED)),
        key=lambda row: row.updated_at,
        reverse=True,
    )
    paused_accounts = ledger.paused_accounts()
    per_account: dict[str, dict[str, Any]] = {}
    for account, platform in sorted(accounts.items()):
        per_account[account] = {"platform": platform}
    for row in every:
        per_account.setdefault(row.account, {"platform": row.platform})
    for account, info in per_account.items():
        rows = [row for row in every if row.account == account]
        counts = {state.value: sum(1 for row in rows if row.state == state) for state in State}
        last = max((row.published_at for row in rows if row.published_at), default=None)
        upcoming = [row for row in planned if row.account == account]
        info.update(
            {
                "paused": paused_accounts.get(account),
                "counts": counts,
                "last_published_at": last.astimezone(zone).isoformat() if last else None,
                "next_due_at": upcoming[0].next_attempt_at.astimezone(zone).isoformat() if upcoming else None,
            }
        )
    heartbeat = _read_heartbeat(state)
    pause_file = state / PAUSE_NAME
    return {
        "version": JSON_VERSION,
        "now": now.astimezone(zone).isoformat(),
        "paused": ledger.pause_reason() or (f"the file {pause_file} exists" if pause_file.exists() else None),
        "paused_accounts": paused_accounts,
        "heartbeat": heartbeat,
        "counts": {state.value: count for state, count in ledger.counts_by_state().items()},
        "next": [_row_json(row, zone) for row in planned[:limit]],
        "last_published": [_row_json(row, zone) for row in published[:limit]],
        "failures": [_row_json(row, zone) for row in failures[:limit]],
        "claimed": [
            {
                **_row_json(row, zone),
                "claimed_at": row.claimed_at.isoformat() if row.claimed_at else None,
                # set: an attempt ended with its outcome unknown; reconciliation looks at next_attempt_at
                "unknown_since": row.unknown_since.isoformat() if row.unknown_since else None,
            }
            for row in ledger.claimed()
        ],
        "accounts": per_account,
    }


def _read_heartbeat(state: Path) -> dict[str, Any] | None:
    from amplifier.publish.sessions import StateDir

    data = StateDir(state).read_json("", HEARTBEAT_NAME)
    return data if isinstance(data, dict) else None


def health_problems(
    status: dict[str, Any], real_now: dt.datetime, max_age: float, claim_age: float
) -> list[str]:
    """Why the daemon looks stuck (empty: healthy): an old or missing heartbeat, a post claimed too long."""
    problems = []
    heartbeat = status.get("heartbeat")
    written = None
    if heartbeat is not None:
        try:
            written = dt.datetime.fromisoformat(str(heartbeat.get("written_at")))
        except ValueError:
            written = None
    if written is None:
        problems.append("no heartbeat: the daemon is not running (or has never run)")
    elif (real_now - written).total_seconds() > max_age:
        age = (real_now - written).total_seconds()
        problems.append(f"the last heartbeat is {age:.0f}s old (more than {max_age:.0f}s)")
    for row in status.get("claimed", []):
        claimed_at = row.get("claimed_at")
        if row.get("unknown_since"):
            # Outcome unknown: waiting for its next check (a backoff, a reset time) is not being stuck;
            # a check overdue by as long is.
            check = row.get("next_attempt_at")
            if check and (real_now - dt.datetime.fromisoformat(check)).total_seconds() > claim_age * 60:
                problems.append(
                    f"post {row['id']}: outcome unknown since {row['unknown_since']}, its check due at {check} "
                    "is overdue (is the daemon running?)"
                )
        elif (
            claimed_at and (real_now - dt.datetime.fromisoformat(claimed_at)).total_seconds() > claim_age * 60
        ):
            problems.append(f"post {row['id']} has been claimed since {claimed_at} (stuck publishing?)")
    return problems


@click.command()
@config_option
@now_option
@format_option
@click.option("--check", is_flag=True, help="Exit 1 when the daemon looks stuck (for a Docker HEALTHCHECK).")
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
@click.pass_context
def status(
    ctx: click.Context,
    config: Path | None,
    now: str | None,
    fmt: str,
    check: bool,
    max_age: int,
    claim_age: int,
) -> None:
    """The next posts due, the last published (with URLs), failures, pauses, the state of each account."""
    from amplifier.clock import utcnow

    g = apply_common(ctx, config, now)
    zone = _zone(g)
    moment = g.now if g.now_option else utcnow()
    try:
        accounts = {a: s.platform for a, s in g.campaign().schedule.accounts.items()}
    except AmplifierError:
        accounts = {}
    state = state_dir(g)
    with open_ledger(g, moment) as ledger:
        data = collect_status(ledger, moment, zone, state, accounts)
    problems = health_problems(data, utcnow(), max_age, claim_age) if check else []
    if check:
        data["healthy"] = not problems
        data["problems"] = problems
    if fmt == "json":
        from amplifier.cli.render import dump_json

        dump_json(data)
    else:
        _status_tables(data)
    if problems:
        for problem in problems:
            click.echo(f"unhealthy: {problem}", err=True)
        sys.exit(1)


def _status_tables(data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from amplifier.cli.render import console

    out = console()
    if data["paused"]:
        out.print(Text(f"PAUSED: {data['paused']}", style="bold red"))
    heartbeat = data["heartbeat"]
    out.print(Text(f"heartbeat: {heartbeat['written_at'] if heartbeat else 'none'}"))
    accounts = Table(title="accounts")
    for column in (
        "account",
        "platform",
        "state",
        "published",
        "planned",
        "failed",
        "last published",
        "next due",
    ):
        accounts.add_column(column, overflow="fold")
    for account, info in data["accounts"].items():
        state = Text(f"paused: {info['paused']}", style="bold red") if info["paused"] else Text("active")
        accounts.add_row(
            account,
            info["platform"],
            state,
            str(info["counts"]["published"]),
            str(info["counts"]["planned"]),
            str(info["counts"]["failed"]),
            info["last_published_at"] or "",
            info["next_due_at"] or "",
        )
    out.print(accounts)
    for title, key, detail in (
        ("next due", "next", "next_attempt_at"),
        ("last published", "last_published", "url"),
        ("failed / expired", "failures", "reason"),
    ):
        table = Table(title=title)
        for column in ("id", "account", "due", "state", detail):
            table.add_column(column, overflow="fold")
        for row in data[key]:
            table.add_row(
                row["id"], row["account"], row["due_at"], row["state"], Text(str(row[detail] or ""))
            )
        out.print(table)


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
    """What was published, failed, expired or skipped, by due time."""
    from amplifier.clock import parse_instant, utcnow

    g = apply_common(ctx, config, now)
    zone = _zone(g)
    moment = g.now if g.now_option else utcnow()
    window_start = (
        parse_instant(start, zone, base=moment, option="--from") if start else moment - dt.timedelta(days=7)
    )
    window_end = (
        parse_instant(end, zone, base=moment, option="--to") if end else moment + dt.timedelta(seconds=1)
    )
    if window_end <= window_start:
        raise UsageError("--to must be after --from")
    with open_ledger(g, moment) as ledger:
        rows = ledger.history(window_start, window_end, account, FINISHED)
    items = [_row_json(row, zone) for row in rows]
    if fmt == "json":
        from amplifier.cli.render import dump_json

        dump_json(
            {
                "version": JSON_VERSION,
                "from": window_start.isoformat(),
                "to": window_end.isoformat(),
                "account": account,
                "posts": items,
            }
        )
        return
    from rich.table import Table
    from rich.text import Text

    from amplifier.cli.render import console

    table = Table(title=f"history {window_start:%Y-%m-%d %H:%M} .. {window_end:%Y-%m-%d %H:%M}")
    for column in ("due", "id", "account", "state", "url / reason"):
        table.add_column(column, overflow="fold")
    for item in items:
        style = "green" if item["state"] == "published" else "red"
        table.add_row(
            item["due_at"],
            item["id"],
            item["account"],
            Text(item["state"], style=style),
            Text(str(item["url"] or item["reason"] or "")),
        )
    console().print(table)


# --------------------------------------------------------------------------------------------- pause


@click.command()
@click.option("--reason", default="paused by the operator", show_default=True, help="Why (shown in status).")
@click.pass_context
def pause(ctx: click.Context, reason: str) -> None:
    """Stop all posting now, without stopping the daemon (posts already being sent finish)."""
    from amplifier.clock import utcnow

    g: Globals = ctx.obj
    with open_ledger(g, utcnow()) as ledger:
        ledger.set_paused(True, reason, utcnow())
    click.echo(f"paused: {reason}")


@click.command()
@click.option("--account", default=None, metavar="ID", help="Resume one account paused after an error.")
@click.pass_context
def resume(ctx: click.Context, account: str | None) -> None:
    """Resume posting after `amplifier pause` (removes the PAUSE file too), or resume one paused account."""
    from amplifier.clock import utcnow

    g: Globals = ctx.obj
    state = state_dir(g)
    with open_ledger(g, utcnow()) as ledger:
        if account is not None:
            if not ledger.resume_account(account):
                raise UsageError(f"--account: {account!r} is not paused")
            click.echo(f"resumed: {account}")
            return
        ledger.set_paused(False, None, utcnow())
    pause_file = state / PAUSE_NAME
    if pause_file.exists():
        try:
            pause_file.unlink()
        except OSError as exc:
            raise UsageError(f"{pause_file}: cannot remove the pause file: {exc.strerror}") from exc
        click.echo(f"removed {pause_file}")
    click.echo("resumed")


__all__ = ["history", "pause", "resume", "run", "status"]
