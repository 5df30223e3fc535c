"""The daemon's follow-up jobs (boosts, pins, deletions: :mod:`amplifier.delivery.followups`).

* **When.** After each pass's posts (posts first) and with the read-back jobs between passes (every
  :data:`~amplifier.daemon.readback.READ_INTERVAL` seconds), the jobs due are run: a boost ``delay`` after its
  post, an unpin or a ``delete_after`` deletion at its time, each within a few minutes.
* **Never lost.** The delivery path plans a post's follow-ups when it records the post published; each re-plan
  also plans those of published posts in its window that have none (:func:`catch_up`: a crash between the two
  writes).
* **One node per account.** On a shared ledger a job runs only on the node holding its account's lease (taken
  for the jobs due: :meth:`~amplifier.daemon.nodes.NodesMixin.account_leases`), and its writes count in the
  account's one budget across nodes (:class:`TalliedLimiter` notes them in the shared uses), a Mastodon deletion
  also in the account's one delete budget (:data:`~amplifier.delivery.followups.DELETE_BUDGETS`, checked here
  before the runner gets the job: :meth:`FollowupsMixin.within_delete_budget`).
* A failure here is logged, never raised: follow-ups must not stop publishing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import MastodonAccount
from amplifier.daemon.events import EventLog
from amplifier.delivery import followups as runner_module
from amplifier.delivery.coordination import Coordinator
from amplifier.delivery.followups import FollowupReport, FollowupRunner, catch_up, find
from amplifier.delivery.ledger import Ledger
from amplifier.delivery.ledger.followups import FollowupJob
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.shared_state import DELETES_BUDGET, POSTS_BUDGET, SharedUses, Use
from amplifier.plan.post import PlannedPost

CRASH_ENV = "AMPLIFIER_TEST_CRASH_AFTER_FOLLOWUP"


def crash_hook(environ: Mapping[str, str] | None = None) -> Callable[[FollowupJob], None]:
    """Test hook: with ``AMPLIFIER_TEST_CRASH_AFTER_FOLLOWUP=KIND`` (boost, pin, delete...) the process dies
    right after the platform accepted the first write of that kind, before the ledger records it."""
    kind = (os.environ if environ is None else environ).get(CRASH_ENV, "").strip()

    def after(job: FollowupJob) -> None:
        if kind and job.kind == kind:
            os._exit(137)

    return after


def servers_of(campaign: Campaign) -> Mapping[str, str]:
    """Each Mastodon account's instance base URL (a booster elsewhere looks the status up by its URL)."""
    return {
        name: str(account.instance).rstrip("/")
        for name, account in campaign.schedule.accounts.items()
        if isinstance(account, MastodonAccount)
    }


class TalliedLimiter(RateLimiter):
    """The posts' limiter as the follow-up runner of a node of several sees it: the same uses and blocks (every
    call goes to ``limiter``), and each write it records also noted in the account's shared uses, so the next
    node to hold the account counts it."""

    def __init__(self, limiter: RateLimiter, uses: SharedUses) -> None:
        super().__init__(limiter.budgets, limiter.shared)
        self.inner = limiter
        self.uses = uses

    def available_at(self, account: str, platform: str, parts: int, now: datetime) -> datetime:
        return self.inner.available_at(account, platform, parts, now)

    def record(self, account: str, platform: str, parts: int, now: datetime) -> None:
        self.inner.record(account, platform, parts, now)
        if self.inner.cost(platform, parts) > 0:
            self.uses.note(account, Use(POSTS_BUDGET, platform, now, parts))

    def block(self, account: str, until: datetime) -> None:
        self.inner.block(account, until)

    def load_blocks(self, now: datetime, accounts: Iterable[str]) -> None:
        self.inner.load_blocks(now, accounts)

    def blocked_until(self, account: str, now: datetime) -> datetime | None:
        return self.inner.blocked_until(account, now)

    def replace_uses(self, account: str, uses: Iterable[tuple[str, datetime, int]]) -> None:
        self.inner.replace_uses(account, uses)

    def seed(self, uses: Iterable[tuple[str, str, datetime, int]]) -> None:
        self.inner.seed(uses)


class FollowupsMixin:
    """The daemon's hooks for follow-up jobs (see the module docstring)."""

    ledger: Ledger
    campaign: Campaign
    limiter: RateLimiter
    token: str
    log: EventLog
    stopping: threading.Event
    _emit: Callable[..., None]
    _publisher: Callable[[str], Any]
    coordinator: Coordinator
    shared_uses: SharedUses | None

    def init_followups(self) -> None:
        # A node of several: the deletions' budget across nodes (the runner keeps one of its own too).
        self.delete_limiter = RateLimiter(runner_module.DELETE_BUDGETS)
        limiter = self.limiter
        if self.shared_uses is not None:  # a node of several: its writes told to the account's next holder
            limiter = TalliedLimiter(limiter, self.shared_uses)
        self.followup_runner = FollowupRunner(
            self.ledger,
            self._publisher,
            limiter,
            token=self.token,
            servers=servers_of(self.campaign),
            emit=self._emit,
            after_request=crash_hook(),
        )

    def follow_up(self, now: datetime) -> None:
        """Run the follow-up jobs due at ``now``."""
        if self.stopping.is_set():
            return
        try:
            self.followup_runner.servers = dict(servers_of(self.campaign))
            if self.coordinator.shared:
                self.follow_up_leased(now)
            else:
                self.followup_runner.run_due(now)
        except Exception as exc:
            self.log.emit("followup-error", reason=f"{type(exc).__name__}: {exc}")

    def follow_up_leased(self, now: datetime) -> None:
        """A node of several: the jobs due, as :meth:`FollowupRunner.run_due` finds them, run only for the
        accounts whose lease this node took (the others' jobs are theirs now, or at the next pass)."""
        self.followup_runner.run_due(now, hold=self.hold_jobs)

    @contextmanager
    def hold_jobs(
        self, ready: list[FollowupJob], now: datetime, report: FollowupReport
    ) -> Iterator[list[FollowupJob]]:
        """The leases of the ``ready`` jobs' accounts, for the time their jobs run: those of them this node holds,
        but the deletions past the delete budget across nodes; the deletions done noted in the shared uses
        before the leases go (the next holder counts them)."""
        leases: AbstractContextManager[set[str]] = self.account_leases(  # type: ignore[attr-defined]
            {job.account for job in ready}, now
        )
        with leases as held:
            mine, deletes = self.within_delete_budget([job for job in ready if job.account in held], now)
            yield mine
            self.note_deletes(deletes, report, now)

    def within_delete_budget(
        self, jobs: list[FollowupJob], now: datetime
    ) -> tuple[list[FollowupJob], dict[str, tuple[FollowupJob, int]]]:
        """``jobs`` but the deletions past their account's delete budget across nodes (read with the leases;
        they stay planned), and each deletion kept with its parts, by its text (counted as they are kept)."""
        budgets = runner_module.DELETE_BUDGETS
        kept: list[FollowupJob] = []
        deletes: dict[str, tuple[FollowupJob, int]] = {}
        for job in jobs:
            if job.kind == "delete" and job.platform in budgets:
                row = find(self.ledger, job.post_id)
                parts = row.part_count if row is not None else 1
                if self.delete_limiter.available_at(job.account, job.platform, parts, now) > now:
                    continue
                self.delete_limiter.record(job.account, job.platform, parts, now)
                deletes[job.key_text] = (job, parts)
            kept.append(job)
        return kept, deletes

    def note_deletes(
        self, deletes: Mapping[str, tuple[FollowupJob, int]], report: FollowupReport, now: datetime
    ) -> None:
        """The deletions ``report`` says were done, in their accounts' shared uses (for the next holder)."""
        if self.shared_uses is None:
            return
        for text in report.done:
            if text in deletes:
                job, parts = deletes[text]
                self.shared_uses.note(job.account, Use(DELETES_BUDGET, job.platform, now, parts))


def catch_up_followups(ledger: Ledger, log: EventLog, posts: Iterable[PlannedPost], now: datetime) -> None:
    """Plan the follow-ups of published posts of the window that have none (logged, never raised)."""
    try:
        added = catch_up(ledger, posts, now)
    except Exception as exc:
        log.emit("followup-error", reason=f"{type(exc).__name__}: {exc}")
        return
    if added:
        log.emit("followups-planned", jobs=added)
