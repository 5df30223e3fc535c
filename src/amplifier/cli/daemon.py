"""The daemon's commands: ``run``, ``status``, ``history``, ``pause`` and ``resume``.

Registered lazily on the main group by :mod:`amplifier.cli.main`. The ledger is ``ledger.sqlite3`` in the state
folder (``--state DIR``, ``$AMPLIFIER_STATE``, default ``.amplifier-state`` beside ``schedule.yaml``).

Exit codes: ``run --once`` returns 3 (:attr:`ExitCode.ACCOUNT`) when an account is paused for its credentials,
4 (:attr:`ExitCode.PUBLISH`) when a post failed or expired in the pass or a due post was not sent (one ``not sent``
line each says why), 2 when the campaign is invalid at start-up; ``status --check`` returns 1 when the daemon looks stuck (no recent
heartbeat, or a post claimed for too long), for a Docker ``HEALTHCHECK``.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from amplifier.cli.main import apply_common, config_option, now_option
from amplifier.cli.publish import JSON_VERSION, format_option, publish_context
from amplifier.daemon.settings import PAUSE_NAME
from amplifier.daemon.status import collect_status, health_problems, row_json
from amplifier.delivery import ledger as ledgers
from amplifier.delivery.ledger import Ledger, State
from amplifier.errors import AmplifierError, ExitCode, UsageError
from amplifier.publish.sessions import resolve_state_dir

if TYPE_CHECKING:
    from amplifier.cli.main import Globals
    from amplifier.daemon.events import TickReport

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
    With --once, handles what is due at --now and exits: exit code 3 if an account is paused for its
    credentials, 4 if a post failed or expired or a due post was not sent (a line each says why). In both modes
    SIGTERM/SIGINT stop claiming new posts and let the posts being sent finish.

    A dry run works on a copy of the ledger in a scratch folder and writes its heartbeat there (so
    `status --check` never takes it for the real daemon), but obeys the real PAUSE file and `amplifier
    pause`."""
    from amplifier.clock import utcnow
    from amplifier.daemon.events import EventLog
    from amplifier.daemon.scheduler import open_daemon, run_once, serve
    from amplifier.daemon.settings import offset_clock, request_timeout_from_environ
    from amplifier.publish import create_publisher

    g = apply_common(ctx, config, now)
    campaign = g.campaign()
    clock = offset_clock(g.now) if g.now_option else utcnow
    log = EventLog(sys.stderr, log_format, clock)
    publish_ctx = publish_context(campaign, g.state)
    publish_ctx.clock = clock
    publish_ctx.timeout = request_timeout_from_environ(os.environ) or publish_ctx.timeout

    def factory(account: str, settings: Any) -> Any:
        return create_publisher(account, settings, publish_ctx, dry_run=dry_run)

    code = ExitCode.OK
    with open_daemon(
        campaign, state_dir(g), factory, clock=clock, log=log, dry_run=dry_run, secrets=publish_ctx.secrets
    ) as daemon:
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
            unsent = daemon.unsent(clock(), report)
            for row, why, _failure in unsent:
                log.emit("not sent", id=row.id, account=row.account, reason=why)
            code = once_exit_code(report, daemon.failures, daemon.credential_paused(), unsent)
        else:
            stop = threading.Event()

            def stop_all() -> None:
                daemon.stop()
                stop.set()

            with stop_on_signals(stop_all):
                daemon.start(clock())
                serve(daemon, stop)
    if once and code != ExitCode.OK:
        sys.exit(code)


def once_exit_code(
    report: TickReport, failures: int, credentials: Mapping[str, str], unsent: Sequence[tuple[Any, str, bool]]
) -> ExitCode:
    """``run --once``: 3 when an account is paused for its credentials (not by an operator); else 4 when a
    post failed or expired in the pass, or a due post was not sent; else 0 (everything due went out, or was held
    by a pause the operator set)."""
    if report.credentials or credentials:
        return ExitCode.ACCOUNT
    if failures or report.expired or any(failure for _row, _why, failure in unsent):
        return ExitCode.PUBLISH
    return ExitCode.OK


# --------------------------------------------------------------------------------------------- status


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
        data = {"version": JSON_VERSION, **collect_status(ledger, moment, zone, state, accounts)}
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
    items = [row_json(row, zone) for row in rows]
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
