"""Running the daemon: on the state folder's ledger (:func:`open_daemon`), one pass (:func:`run_once`, the systemd timer's ``run --once``), or until a signal
(:func:`serve`).

The long-running mode uses APScheduler: one date job at the next due instant (re-armed after each pass, on
reload and on pause changes: no busy polling), one that re-plans the rolling window hourly (rendered off the lock:
only its sync with the ledger waits for a pass) and one that writes a heartbeat file for ``amplifier status
--check``. The campaign files and the pause switches are looked at when the kernel reports a change
(:mod:`.filewatch`; every ``watch_backstop`` seconds besides), or every ``watch_interval`` seconds where there are
no notifications, and for what no local file shows (a PostgreSQL ledger's pauses, the lead of a node of several,
a post another node planned before this node's next wake).
An idle daemon sleeps until its next due job: the next post, the heartbeat, the hourly re-plan, a file event.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from amplifier.campaign.load import Campaign
from amplifier.clock import Clock, utcnow
from amplifier.daemon.events import EventLog, TickReport
from amplifier.daemon.filewatch import FileWatcher
from amplifier.daemon.loop import Daemon, PublisherFactory
from amplifier.daemon.readback import READ_INTERVAL
from amplifier.daemon.settings import settings_from_environ
from amplifier.delivery.coordination import open_coordinator
from amplifier.delivery.ledger import ledger_url, open_ledger, open_ledger_copy, outside_pause_reason
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.reconcile import claim_token
from amplifier.delivery.shared_state import state_store
from amplifier.errors import AmplifierError
from amplifier.notify.alerting import Alerting
from amplifier.notify.alerts import daemon_stopped
from amplifier.publish.base import PublishContext
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir


@contextmanager
def open_daemon(
    campaign: Campaign,
    state: Path,
    factory: PublisherFactory,
    *,
    clock: Clock,
    log: EventLog,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
    secrets: SecretSources | None = None,
    publish_ctx: PublishContext | None = None,
) -> Iterator[Daemon]:
    """The daemon of ``campaign`` on the ledger of the state folder ``state``; closed (publishers and ledger)
    when the block ends. A dry run works on a copy of the ledger in a scratch folder and writes its heartbeat
    there (so ``status --check`` never takes it for the real daemon), but obeys the real PAUSE file and
    ``amplifier pause``. ``environ`` (default: the process's) holds the test hooks. ``publish_ctx``: the
    publishers' context; on a shared ledger its state store becomes the ledger's database (sessions, login guard,
    limits shared by the nodes; :mod:`amplifier.delivery.shared_state`), as do the 429 blocks and pause records. ``secrets``: where the
    publishers read their secrets (a paused account's is read again there). The daemon alerts the campaign's
    ``notify:`` destinations and pings the dead man's switch (a dry run neither); closing it sends what is
    pending."""
    environ = os.environ if environ is None else environ
    with tempfile.TemporaryDirectory(prefix="amplifier-dry-run-") as scratch:
        ledger = open_ledger_copy(state, Path(scratch), clock()) if dry_run else open_ledger(state, clock())
        url = None if dry_run else ledger_url()
        settings = settings_from_environ(environ)
        secrets = secrets or SecretSources.for_campaign(campaign.root)
        alerting = (
            Alerting.off(campaign.name)
            if dry_run
            else Alerting.for_campaign(
                campaign, StateDir(state), ledger=ledger, log=log.emit, sources=secrets
            )
        )
        try:
            token = claim_token("daemon")
            store = state_store(ledger, state, shared=url is not None, node=token, clock=clock)
            if url is not None and publish_ctx is not None:
                publish_ctx.state = store
            daemon = Daemon(
                campaign,
                ledger,
                factory,
                clock=clock,
                log=log,
                state_dir=Path(scratch) if dry_run else state,
                settings=settings,
                environ=environ,
                pause_dir=state,
                outside_pause=(lambda: outside_pause_reason(state)) if dry_run else None,
                coordinator=open_coordinator(url, token, settings.claim_lease),
                token=token,
                alerting=alerting,
                secrets=secrets,
                limiter=RateLimiter(shared=store) if url is not None else None,
                state_store=store if url is not None else None,
            )
            try:
                yield daemon
            finally:
                daemon.close()
                alerting.close(clock())
                daemon.coordinator.close()
        finally:
            ledger.close()


def _quietly(call: Callable[[str], object], job: str) -> None:
    """Pause or resume a job; a scheduler that is shutting down has no job to pause or resume."""
    try:
        call(job)
    except Exception:  # JobLookupError, SchedulerNotRunningError: nothing to do
        return


def _polls(daemon: Daemon, notified: bool) -> bool:
    """Whether ``serve`` must look every ``watch_interval``: no file notifications, or something no local file
    shows (the pauses of a PostgreSQL ledger, the lead among nodes)."""
    if not notified or daemon.coordinator.shared:
        return True
    try:
        return ledger_url() is not None
    except AmplifierError:
        return True


def run_once(daemon: Daemon, now: datetime) -> TickReport:
    """Start-up (reconcile, plan), then one pass at ``now``: everything due is handled, then return. The leases
    of the pass's claims run on while it works (a thread extends them, as ``serve``'s lease job does)."""
    done = threading.Event()

    def extend() -> None:
        while not done.wait(daemon.settings.lease_interval):
            daemon.extend_leases(daemon.clock())

    leases = threading.Thread(target=extend, name="leases", daemon=True)
    leases.start()
    daemon.alerting.pass_started(now)
    try:
        report = daemon.start(now)
        report.merge(daemon.tick(now))
    finally:
        done.set()
        leases.join()
    daemon.heartbeat(now)
    daemon.alerting.pass_finished(now, healthy=daemon.healthy(report))
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
            pace_alerts()

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
        now = daemon.clock()
        daemon.alerting.pass_started(now)
        pace_alerts()  # the alerts job wakes: it reports a pass that does not end
        try:
            report = daemon.tick(now)
        except BaseException:  # logged by `guarded`; the pass ended, unhealthy
            daemon.alerting.pass_finished(daemon.clock(), healthy=False)
            raise
        daemon.heartbeat(daemon.clock())
        daemon.alerting.pass_finished(daemon.clock(), healthy=daemon.healthy(report))
        daemon.watch(daemon.clock())  # a pass may pause or resume an account: logged now, as a poll would
        return True

    def watch() -> bool:  # on a file event, or polled: re-arm only on a reload, a pause change or a new lead
        changed = daemon.watch(daemon.clock())
        lost = daemon.watcher is not None and not daemon.watcher.active  # new folders could not be watched
        if lost:
            daemon.watcher = None
            polling()
            scheduler.reschedule_job("watch", trigger="interval", seconds=settings.watch_interval)
        return daemon.take_lead(daemon.clock()) or changed or plan_came()

    def plan_came() -> bool:
        """A node of several: whether another node's plan holds a post due before this daemon's next wake (it
        started before the leader wrote the plan, or the leader re-planned): then it arms again, as after a pass."""
        if not daemon.coordinator.shared:
            return False
        due = daemon.ledger.next_due_at()
        job = scheduler.get_job("batch")
        armed = job.next_run_time if job is not None else None
        return due is not None and (armed is None or due < armed)

    def polling() -> None:
        every = f"{settings.watch_interval:g}s"
        daemon.log.emit("watching", files=f"polled every {every} (no file notifications)")

    def replan() -> None:
        """Render the window off the lock (a pass may post meanwhile); only the ledger's sync takes it."""
        if stop.is_set():
            return
        campaign = daemon.campaign
        try:
            prepared = daemon.prepare(daemon.clock(), campaign)
        except AmplifierError as exc:
            daemon.log.emit("error", reason=str(exc))
            return
        except Exception as exc:  # keep running: one bad re-plan must not end the daemon
            daemon.log.emit("error", reason=f"{type(exc).__name__}: {exc}")
            return

        def apply() -> bool:
            if daemon.campaign is not campaign:  # a reload planned its own campaign meanwhile
                return False
            daemon.apply_plan(prepared, daemon.clock())
            return True

        guarded(apply)()

    def reads() -> bool:  # read-back jobs fall due between posts too (the tick reads as well)
        if daemon.paused() is None:
            daemon.read_back(daemon.clock())
            daemon.follow_up(daemon.clock())
        return False

    def beat() -> None:  # never waits for the pass
        daemon.heartbeat(daemon.clock())
        try:
            daemon.overdue_unknown(daemon.clock())  # a check that did not come (is a pass stuck?)
        except AmplifierError as exc:
            daemon.log.emit("error", reason=str(exc))
        if alerts_asleep[0]:
            look_at_alerts()
        pace_alerts()

    def lease() -> None:  # off the lock: the claims of a pass that is publishing stay ours
        daemon.extend_leases(daemon.clock())

    def look_at_alerts() -> (
        None
    ):  # never waits for the pass: it notices a pass, or a reload, that does not end
        daemon.check_reload(daemon.clock())
        daemon.alerting.watch(daemon.clock())

    def alert_watch() -> None:
        look_at_alerts()
        pace_alerts()

    alerts_asleep = [False]
    pace_lock = threading.Lock()

    def pace_alerts() -> None:
        """The alerts job runs every ``watch_interval`` while a pass or a reload runs or alerts wait for their
        group window; else (idle: only the digest may fall due) it sleeps, and the heartbeat looks at the
        alerts: an idle daemon does not wake for nothing every couple of seconds."""
        with pace_lock:  # called from several threads: the flag and the job's state change together
            asleep = not (daemon.alerting.busy() or daemon.reloading_since is not None)
            if asleep != alerts_asleep[0]:
                alerts_asleep[0] = asleep
                _quietly(scheduler.pause_job if asleep else scheduler.resume_job, "alerts")

    daemon.reload_in_background = True  # a reload never holds the lock the pass needs
    batch = guarded(tick)
    scheduler.add_job(lease, "interval", seconds=settings.lease_interval, id="lease")
    # Idle (no claim held), the lease job sleeps: no write, no wake (see amplifier.daemon.leases).
    daemon.sleep_leases = lambda: _quietly(scheduler.pause_job, "lease")
    daemon.wake_leases = lambda: _quietly(scheduler.resume_job, "lease")
    if not daemon.may_hold_claims and not daemon.coordinator.shared:
        scheduler.pause_job("lease")
    look = guarded(watch)
    watcher = FileWatcher(lambda path: daemon.watch_relevant(path), look)
    notified = settings.notify_files and watcher.start(daemon.watched_folders())
    if not notified and settings.notify_files:
        polling()
    daemon.watcher = watcher if notified else None
    daemon.reload_done = look  # a reload that is ready is swapped in at once (from its own thread)
    every = settings.watch_interval if _polls(daemon, notified) else settings.watch_backstop
    scheduler.add_job(look, "interval", seconds=every, id="watch")
    scheduler.add_job(replan, "interval", seconds=settings.replan_interval.total_seconds(), id="replan")
    scheduler.add_job(guarded(reads), "interval", seconds=READ_INTERVAL, id="readback")
    scheduler.add_job(beat, "interval", seconds=settings.heartbeat_interval, id="heartbeat")
    scheduler.add_job(alert_watch, "interval", seconds=settings.watch_interval, id="alerts")
    with lock:
        daemon.watch(daemon.clock())
        scheduler.start()
        arm()
        pace_alerts()
    daemon.heartbeat(daemon.clock())
    daemon.log.emit("started", pid=os.getpid(), campaign=daemon.campaign.name)
    if on_ready is not None:
        on_ready()
    while not stop.wait(3600):
        pass
    daemon.stop()
    daemon.log.emit("stopping", reason="signal")
    daemon.alerting.raise_(daemon_stopped("stopped by a signal (SIGTERM or SIGINT)"), daemon.clock())
    acquired = lock.acquire(timeout=settings.shutdown_timeout)
    daemon.sleep_leases = daemon.wake_leases = None
    watcher.close()
    scheduler.shutdown(wait=False)
    if acquired:
        lock.release()
    else:
        daemon.log.emit("stopping", reason=f"posts still in flight after {settings.shutdown_timeout:.0f}s")
    leftover = [row for row in daemon.ledger.claimed() if row.claim_token == daemon.token]
    daemon.log.emit("stopped", in_flight=len(leftover) or None)
    if not acquired:
        daemon.alerting.close(daemon.clock())
        sys.stderr.flush()
        os._exit(0)  # threads still blocked in a request: their posts are reconciled at the next start
