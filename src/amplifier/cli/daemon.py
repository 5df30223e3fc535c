"""The daemon's command: ``run`` (``status``, ``history`` are in :mod:`amplifier.cli.status`; ``pause``,
``resume``, ``skip``, ``cancel``, ``retry`` in :mod:`amplifier.cli.operator`).

Registered lazily on the main group by :mod:`amplifier.cli.main`. The ledger is ``ledger.sqlite3`` in the state
folder (``--state DIR``, ``$AMPLIFIER_STATE``, default ``.amplifier-state`` beside ``schedule.yaml``).

Exit codes: ``run --once`` returns 3 (:attr:`ExitCode.ACCOUNT`) when an account is paused for its credentials,
4 (:attr:`ExitCode.PUBLISH`) when a post failed or expired in the pass or a due post was not sent (one ``not sent``
line each says why), 2 when the campaign is invalid at start-up; ``status --check`` returns 1 when the daemon looks stuck (no recent
heartbeat, or a post claimed for too long), for a Docker ``HEALTHCHECK``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from amplifier.cli.options import apply_common, config_option, now_option
from amplifier.delivery.accounts import publish_context
from amplifier.delivery.ledger import State
from amplifier.errors import ExitCode

if TYPE_CHECKING:
    from amplifier.daemon.events import TickReport

FINISHED = (State.PUBLISHED, State.FAILED, State.EXPIRED, State.SKIPPED)
DEFAULT_MAX_AGE = 180  # seconds: a heartbeat older than this means the daemon is stuck
DEFAULT_CLAIM_AGE = 15  # minutes: a post claimed longer than this means a publish is stuck


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
    from amplifier.daemon.events import EventLog
    from amplifier.daemon.scheduler import open_daemon, run_once, serve
    from amplifier.daemon.settings import request_timeout_from_environ
    from amplifier.publish import create_publisher

    g = apply_common(ctx, config, now)
    campaign = g.campaign()
    clock = g.clock()
    log = EventLog(sys.stderr, log_format, clock)
    publish_ctx = publish_context(campaign, g.state)
    publish_ctx.clock = clock
    publish_ctx.timeout = request_timeout_from_environ(os.environ) or publish_ctx.timeout

    def factory(account: str, settings: Any) -> Any:
        return create_publisher(account, settings, publish_ctx, dry_run=dry_run)

    code = ExitCode.OK
    with open_daemon(
        campaign,
        g.state_dir,
        factory,
        clock=clock,
        log=log,
        dry_run=dry_run,
        secrets=publish_ctx.secrets,
        publish_ctx=publish_ctx,
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


__all__ = ["run", "stop_on_signals"]
