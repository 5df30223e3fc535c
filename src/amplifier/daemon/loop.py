"""The campaign daemon: every planned post on time, exactly once, through crashes, faults and edits.

The daemon decides *when* and *in what order*; the one delivery path (:mod:`amplifier.delivery.deliver`) carries
each post through claim -> publish -> outcome -> ledger. One pass (:meth:`Daemon.tick`) does, at an instant
``now``:

1. reconcile any post left ``claimed`` (a crash, or an unexpected error, between request and ledger
   write) with the platform (:mod:`amplifier.delivery.reconcile`), before anything new is sent; a post whose
   outcome is unknown is looked at when its next check is due; a lookup that fails, whatever the exception,
   is tried again later (the daemon never stops for it, at start-up neither);
2. take the planned posts that are due, account by account, each account's posts strictly in order (a post
   waiting for a retry, or for the check of its unknown outcome, holds back the account's later posts),
   accounts concurrently on a bounded thread pool;
3. for each post: expire it if its window was missed (:mod:`amplifier.daemon.planning`), wait if the account's
   rate limit (:mod:`amplifier.delivery.ratelimit`) or a server's reset time says so, else deliver it. A
   post whose outcome is unknown and whose Idempotency-Key may have expired is searched for first, never
   expired unsearched;
4. then, with spare budget, the read-back jobs that are due (:mod:`amplifier.daemon.readback`), and the
   follow-up writes (boosts, pins, deletions: :mod:`amplifier.daemon.followups`).

What follows an error (retry with backoff, outcome unknown, failed, account paused) is the delivery path's,
with the daemon's :class:`~amplifier.delivery.deliver.Retries`: exponential backoff with jitter
(:meth:`DaemonSettings.backoff`), failing after :attr:`DaemonSettings.max_attempts` transient errors, and
rejected credentials pause the account: it resumes by itself when its secret changes (:mod:`.outages`, which also
raises the alerts), or with ``amplifier resume --account ID``.

Files: the settings and test hooks are in :mod:`.settings`, the event log in :mod:`.events`, planning and
missed windows in :mod:`.planning`, the accounts' queues and the next wake in :mod:`.queues`, one account's
posts in a pass in :mod:`.posting`, hot reload and pause switches in :mod:`.watch` (file notifications in
:mod:`.filewatch`), the heartbeat in :mod:`.heartbeat`, and the scheduler (``serve``,
``run_once``) in :mod:`.scheduler`.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from amplifier.campaign.load import Campaign, load_campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.clock import Clock, utcnow
from amplifier.daemon.commits import GroupedLedger
from amplifier.daemon.events import EventLog, TickReport
from amplifier.daemon.followups import FollowupsMixin
from amplifier.daemon.heartbeat import write_heartbeat
from amplifier.daemon.leases import LeaseMixin
from amplifier.daemon.nodes import NodesMixin
from amplifier.daemon.posting import PostingMixin
from amplifier.daemon.readback import ReadBack
from amplifier.daemon.settings import (
    FAR_FUTURE,
    HEARTBEAT_NAME,
    PAUSE_NAME,
    DaemonSettings,
    crash_after,
    offset_clock,
    request_timeout_from_environ,
    settings_from_environ,
)
from amplifier.daemon.watch import FileStats, snapshot_files
from amplifier.delivery.coordination import Coordinator, LocalCoordinator
from amplifier.delivery.deliver import Delivery, Retries
from amplifier.delivery.ledger import Ledger, Row, State
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.reconcile import Reconciled, claim_holder_alive, claim_token
from amplifier.notify.alerting import Alerting
from amplifier.plan.post import PlannedPost
from amplifier.publish.base import Publisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.state import StateStore

PublisherFactory = Callable[[str, MastodonAccount | BlueskyAccount], Publisher]

# Names this module held before the daemon was split by concept, for code written against that layout
# (``run_once`` and ``serve`` too, through ``__getattr__``).
__all__ = [
    "FAR_FUTURE",
    "HEARTBEAT_NAME",
    "PAUSE_NAME",
    "Daemon",
    "DaemonSettings",
    "EventLog",
    "PublisherFactory",
    "TickReport",
    "offset_clock",
    "request_timeout_from_environ",
    "settings_from_environ",
]


def __getattr__(name: str) -> Any:
    if name in ("run_once", "serve"):  # they live in .scheduler, which imports this module
        from amplifier.daemon import scheduler

        return getattr(scheduler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Daemon(NodesMixin, LeaseMixin, PostingMixin, FollowupsMixin):
    """Plans a rolling window into the ledger and delivers what is due; see the module docstring.

    I/O is passed in: the ledger, a publisher factory, the clock, the log, the state folder (for the
    heartbeat, and the ``PAUSE`` file unless ``pause_dir`` says where it is; ``outside_pause`` is one more
    pause switch to obey). Safe to call from one scheduler thread at a time; it publishes on
    its own thread pool.
    """

    def __init__(
        self,
        campaign: Campaign,
        ledger: Ledger,
        publisher_factory: PublisherFactory,
        *,
        clock: Clock = utcnow,
        log: EventLog | None = None,
        settings: DaemonSettings | None = None,
        state_dir: Path | None = None,
        loader: Callable[[Path], Campaign] = load_campaign,
        rng: random.Random | None = None,
        limiter: RateLimiter | None = None,
        environ: Mapping[str, str] | None = None,
        pause_dir: Path | None = None,
        outside_pause: Callable[[], str | None] | None = None,
        coordinator: Coordinator | None = None,
        token: str | None = None,
        alerting: Alerting | None = None,
        secrets: SecretSources | None = None,
        state_store: StateStore | None = None,
    ) -> None:
        self.campaign = campaign
        self.coordinator = coordinator or LocalCoordinator()
        self._held: dict[str, datetime] = {}
        self._plan_note: str | None = None
        self.init_leases()
        self.ledger = ledger
        self.publisher_factory = publisher_factory
        self.clock = clock
        self.log = log or EventLog(None)
        self.settings = settings or DaemonSettings()
        self.state_dir = state_dir
        self.state_store = state_store  # a node of several: the shared store (credential pause records)
        # Where the PAUSE file is (default: the state folder), and a further pause switch (a dry run works on
        # a copy of the ledger and a scratch state folder, but obeys the real folder's switches).
        self.pause_dir = pause_dir or state_dir
        self.outside_pause = outside_pause
        self.loader = loader
        # Alerts (off unless given: open_daemon gives the campaign's), and the secrets the publishers read (a
        # paused account's secret is read again each pass: it resumes by itself when it changed).
        self.alerting = alerting or Alerting.off(campaign.name)
        self.secrets = secrets or SecretSources.for_campaign(campaign.root)
        self.rng = rng or random.Random()
        self.limiter = limiter or RateLimiter()
        self.token = token or claim_token("daemon")
        self.stopping = threading.Event()
        self.posts: dict[str, PlannedPost] = {}
        self.failures = 0  # posts failed in this process
        self._publishers: dict[str, Publisher] = {}
        self._publishers_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, self.settings.workers), thread_name_prefix="publish"
        )
        self._files: FileStats = snapshot_files(campaign)
        self._pause_state: tuple[str | None, tuple[tuple[str, str], ...]] | None = None
        self._crash_after = crash_after(os.environ if environ is None else environ)
        self._published_requests = 0
        self._count_lock = threading.Lock()
        self._pause_look_lock = threading.Lock()
        self._pause_looked_at = float("-inf")
        self._pause_seen = False
        # The delivery path's changes of posts that finish together share one fsynced commit (.commits).
        self.grouped = GroupedLedger(ledger)
        self.shared_uses = self.open_shared_uses(state_store)  # a node of several: budgets across nodes
        self.readback = ReadBack(cast(Ledger, self.grouped), self.limiter, self._emit, uses=self.shared_uses)
        self.delivery = Delivery(
            cast(Ledger, self.grouped),
            self._publisher,
            token=self.token,
            retries=Retries(
                backoff=lambda attempt: self.settings.backoff(attempt, self.rng),
                max_attempts=self.settings.max_attempts,
                rate_limited_max_attempts=self.settings.rate_limited_max_attempts,
                pause_account=True,
                recheck_min=self.settings.backoff_base,
                recheck_max=self.settings.backoff_max,
            ),
            clock=lambda: self.clock(),
            limiter=self.limiter,
            emit=self._emit,
            stopping=self.stopping.is_set,
            after_request=self._after_request,
            lease=self.settings.claim_lease,
        )
        self.init_followups()

    # ------------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Wait for the thread pool, then close every publisher."""
        self._executor.shutdown(wait=True)
        with self._publishers_lock:
            publishers, self._publishers = list(self._publishers.values()), {}
        for publisher in publishers:
            with contextlib.suppress(Exception):  # closing must never hide the real outcome
                publisher.close()

    def stop(self) -> None:
        """Stop claiming new posts; posts already being sent finish."""
        self.stopping.set()

    def start(self, now: datetime) -> TickReport:
        """At start-up: seed the rate limiter from the ledger, reconcile claimed posts, plan the window."""
        self._seed_limiter(now)
        self.plan(now)
        report = TickReport()
        report.reconciled = self.reconcile(now)
        return report

    def _seed_limiter(self, now: datetime) -> None:
        rows = self.ledger.history(now - timedelta(days=2), now + FAR_FUTURE, states=[State.PUBLISHED])
        uses = []
        for row in rows:
            if row.published_at is not None and row.published_at > now - timedelta(days=1):
                fresh = sum(1 for part in (row.result or ()) if not part.get("existed"))
                uses.append((row.account, row.platform, row.published_at, fresh))
        self.limiter.seed(uses)

    def heartbeat(self, now: datetime) -> None:
        """Write ``heartbeat.json`` in the state folder (atomically): the daemon is alive at ``now``."""
        if self.state_dir is not None:
            wake = self.next_wake(now)
            write_heartbeat(
                self.state_dir,
                now,
                next_wake=wake,
                campaign=self.campaign.name,
                log=self.log,
                reloading_since=self.reloading_since,
            )

    # ------------------------------------------------------------------------------------ reconciliation

    def reconcile(self, now: datetime) -> list[Reconciled]:
        """Resolve every claimed post with the platform before anything new is sent; a post claimed by
        another process that still runs (``amplifier send``) is its business, and left alone; a post whose
        outcome is unknown waits for its next check (``next_attempt_at``: a backoff, so a server that is
        down is not hammered)."""
        done = []
        for row in self.ledger.claimed():
            if (row.unknown_since is None or row.next_attempt_at <= now) and not claim_holder_alive(
                row, now, own_token=self.token
            ):
                post = self.post_for(row)
                with self.coordinator.account(row.account, now) as mine:
                    if mine and self.hold_back(row, post, now) is None:
                        with self.claiming():
                            done.append(self._reconcile_one(row, post, now))
        return done

    def _reconcile_one(self, row: Row, post: PlannedPost | None, now: datetime) -> Reconciled:
        outcome = self.delivery.reconcile(row, post, now)
        if outcome.outcome == "failed":
            self.failures += 1
        return outcome

    # ----------------------------------------------------------------------------------------- a pass

    def tick(self, now: datetime) -> TickReport:
        """One pass at ``now``: reconcile, then publish everything due (see the module docstring)."""
        report = TickReport()
        self.resume_fixed(now)  # an account paused for its credentials, whose secret changed since
        if self.ledger.claimed():
            report.reconciled = self.reconcile(now)
            self.overdue_unknown(now)
        reason = self.paused()
        if reason is not None:
            report.paused = reason
            return report
        with self.pass_accounts(self.queues(now), now) as queues:  # a node of several: its share of them
            futures = [self._executor.submit(self.publish_account, rows) for rows in queues.values()]
            for future in futures:
                report.merge(future.result())
        self.read_back(self.clock())  # after the posts, with spare budget
        self.follow_up(self.clock())  # boosts, pins, deletions (.followups)
        return report

    def read_back(self, now: datetime) -> None:
        """The read-back jobs due at ``now`` (:mod:`amplifier.daemon.readback`); a failure is logged, never
        raised (reading back must not stop publishing)."""
        if self.stopping.is_set():
            return
        try:
            leases = self.account_leases if self.coordinator.shared else None  # a node of several: held ones
            self.readback.run(now, self.campaign, self._publisher, executor=self._executor, leases=leases)
        except Exception as exc:
            self.log.emit("read-failed", reason=f"{type(exc).__name__}: {exc}")

    def _after_request(self) -> None:
        if self._crash_after is None:
            return
        with self._count_lock:
            self._published_requests += 1
            if self._published_requests >= self._crash_after:
                os._exit(137)  # test hook: die between the request and the ledger write

    def _publisher(self, account: str) -> Publisher:
        with self._publishers_lock:
            publisher = self._publishers.get(account)
            if publisher is None:
                publisher = self.publisher_factory(account, self.campaign.account(account))
                self._publishers[account] = publisher
            return publisher
