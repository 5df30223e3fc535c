"""Running the daemon: one pass (:func:`run_once`, the systemd timer's ``run --once``), or until a signal
(:func:`serve`).

The long-running mode uses APScheduler: one date job at the next due instant (re-armed after each pass, on
reload and on pause changes: no busy polling), an interval job that watches the campaign files and the pause
switches every couple of seconds, one that re-plans the rolling window hourly and one that writes a heartbeat
file for ``amplifier status --check``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from amplifier.clock import utcnow
from amplifier.daemon.events import TickReport
from amplifier.daemon.loop import Daemon
from amplifier.errors import AmplifierError


def run_once(daemon: Daemon, now: datetime) -> TickReport:
    """Start-up (reconcile, plan), then one pass at ``now``: everything due is handled, then return."""
    report = daemon.start(now)
    report.merge(daemon.tick(now))
    daemon.heartbeat(now)
    return report


def serve(daemon: Daemon, stop: threading.Event, *, on_ready: Callable[[], None] | None = None) -> None:
    """Run until ``stop`` is set: APScheduler wakes the daemon at the next due instant (see the module
    docstring). On stop: no new claims, in-flight posts get ``shutdown_timeout`` seconds to finish."""
    import logging

    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger

    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    settings = daemon.settings
    lock = threading.Lock()
    scheduler = BackgroundScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )

    def guarded(job: Callable[[], bool]) -> Callable[[], None]:
        """Run ``job`` under the lock; re-arm the batch when it says the next wake may have moved."""

        def run() -> None:
            if stop.is_set():
                return
            with lock:
                if stop.is_set():
                    return
                try:
                    moved = job()
                except AmplifierError as exc:
                    daemon.log.emit("error", reason=str(exc))
                    moved = True
                except Exception as exc:  # keep running: one bad pass must not end the daemon
                    daemon.log.emit("error", reason=f"{type(exc).__name__}: {exc}")
                    moved = True
                if moved:
                    arm()

        return run

    def arm() -> None:
        now = daemon.clock()
        wake = daemon.next_wake(now)
        if wake is None:
            if scheduler.get_job("batch") is not None:
                scheduler.remove_job("batch")
            return
        delay = max((wake - now).total_seconds(), 0.0)
        run_date = utcnow() + timedelta(seconds=delay)
        scheduler.add_job(batch, DateTrigger(run_date), id="batch", replace_existing=True)

    def tick() -> bool:
        daemon.tick(daemon.clock())
        daemon.heartbeat(daemon.clock())
        return True

    def watch() -> bool:  # every couple of seconds: re-arm only on a reload or a pause change
        return daemon.watch(daemon.clock())

    def replan() -> bool:
        daemon.plan(daemon.clock())
        return True

    def beat() -> None:
        daemon.heartbeat(daemon.clock())

    batch = guarded(tick)
    scheduler.add_job(guarded(watch), "interval", seconds=settings.watch_interval, id="watch")
    scheduler.add_job(
        guarded(replan), "interval", seconds=settings.replan_interval.total_seconds(), id="replan"
    )
    scheduler.add_job(beat, "interval", seconds=settings.heartbeat_interval, id="heartbeat")
    with lock:
        daemon.watch(daemon.clock())
        scheduler.start()
        arm()
    daemon.heartbeat(daemon.clock())
    daemon.log.emit("started", pid=os.getpid(), campaign=daemon.campaign.name)
    if on_ready is not None:
        on_ready()
    while not stop.wait(3600):
        pass
    daemon.stop()
    daemon.log.emit("stopping", reason="signal")
    acquired = lock.acquire(timeout=settings.shutdown_timeout)
    scheduler.shutdown(wait=False)
    if acquired:
        lock.release()
    else:
        daemon.log.emit("stopping", reason=f"posts still in flight after {settings.shutdown_timeout:.0f}s")
    leftover = [row for row in daemon.ledger.claimed() if row.claim_token == daemon.token]
    daemon.log.emit("stopped", in_flight=len(leftover) or None)
    if not acquired:
        sys.stderr.flush()
        os._exit(0)  # threads still blocked in a request: their posts are reconciled at the next start
