"""The daemon's follow-up jobs (boosts, pins, deletions: :mod:`amplifier.delivery.followups`).

* **When.** After each pass's posts (posts first) and with the read-back jobs between passes (every
  :data:`~amplifier.daemon.readback.READ_INTERVAL` seconds), the jobs due are run: a boost ``delay`` after its
  post, an unpin or a ``delete_after`` deletion at its time, each within a few minutes.
* **Never lost.** The delivery path plans a post's follow-ups when it records the post published; each re-plan
  also plans those of published posts in its window that have none (:func:`catch_up`: a crash between the two
  writes).
* A failure here is logged, never raised: follow-ups must not stop publishing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import MastodonAccount
from amplifier.daemon.events import EventLog
from amplifier.delivery.followups import FollowupRunner, catch_up
from amplifier.delivery.ledger import Ledger
from amplifier.delivery.ledger.followups import FollowupJob
from amplifier.delivery.ratelimit import RateLimiter
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

    def init_followups(self) -> None:
        self.followup_runner = FollowupRunner(
            self.ledger,
            self._publisher,
            self.limiter,
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
            self.followup_runner.run_due(now)
        except Exception as exc:
            self.log.emit("followup-error", reason=f"{type(exc).__name__}: {exc}")


def catch_up_followups(ledger: Ledger, log: EventLog, posts: Iterable[PlannedPost], now: datetime) -> None:
    """Plan the follow-ups of published posts of the window that have none (logged, never raised)."""
    try:
        added = catch_up(ledger, posts, now)
    except Exception as exc:
        log.emit("followup-error", reason=f"{type(exc).__name__}: {exc}")
        return
    if added:
        log.emit("followups-planned", jobs=added)
