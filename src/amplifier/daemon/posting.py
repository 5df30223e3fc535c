"""One account's due posts in a pass, in order: each delivered (the one delivery path), or deferred by the rate
limit, expired (its window missed), skipped (no longer in the campaign) or held back; the first that does not
go out holds back the account's later posts (strict order).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from amplifier.daemon.events import TickReport, utc_minute
from amplifier.daemon.outages import OutageMixin
from amplifier.daemon.planning import post_window
from amplifier.daemon.queues import QueueMixin
from amplifier.delivery.deliver import Delivered, Delivery, Outcome
from amplifier.delivery.ledger import LedgerError, Row
from amplifier.plan.post import PlannedPost

PAUSE_LOOK = 0.25  # seconds: how old a look at the pause switches may be when a post is about to go out


class PostingMixin(QueueMixin, OutageMixin):
    """Delivers an account's due rows, one after the other (see the module docstring)."""

    delivery: Delivery
    stopping: threading.Event
    token: str
    failures: int
    clock: Callable[[], datetime]
    _pause_look_lock: threading.Lock
    _pause_looked_at: float
    _pause_seen: bool

    def hold_back(self, row: Row, post: PlannedPost | None, now: datetime) -> str | None: ...  # the nodes'

    def _paused_now(self) -> bool:
        """Whether posting is paused, looked at most every :data:`PAUSE_LOOK` seconds: a thousand accounts'
        threads share one look instead of queueing for the ledger one after another (each claim checks the
        ledger's pauses again, atomically)."""
        with self._pause_look_lock:
            now = time.monotonic()
            if now - self._pause_looked_at >= PAUSE_LOOK:
                self._pause_seen = self.paused() is not None
                self._pause_looked_at = now
            return self._pause_seen

    def _run_account(self, rows: Iterable[Row]) -> TickReport:
        report = TickReport()
        for row in rows:
            if self.stopping.is_set() or self._paused_now():
                break
            try:
                outcome = self._process(row, report)
            except LedgerError as exc:  # the ledger refused a change: someone else moved the post
                self.log.emit("error", id=row.id, account=row.account, reason=str(exc))
                break
            if outcome != "done":
                break  # strict order: the account's later posts wait behind this one
        return report

    def _process(self, row: Row, report: TickReport) -> str:
        """Deliver one due row, or skip, expire or defer it; "done" when the account may go on."""
        now = self.clock()
        post = self.post_for(row)
        held = self.hold_back(row, post, now)
        if held is not None:
            return held
        if post is None:
            reason = "no longer in the campaign"
            if not self._claim(row, now):
                return "not claimed"
            self.delivery.ledger.mark_skipped(row.id, reason, now, token=self.token)
            report.skipped.append(row.id)
            self.log.emit("skipped", id=row.id, account=row.account, reason=reason)
            return "done"
        deadline, why = post_window(self.campaign, self.settings, row)
        # Unknown outcome, and the key no longer covers a re-send (or its window was missed): only a search
        # may tell whether to send it, or to expire it.
        search = self.delivery.must_search(row, now, deadline)
        if not search and now > deadline:
            reason = (
                f"missed its window: due {utc_minute(row.due_at)} UTC, not out by {utc_minute(deadline)} UTC"
                f" ({why})"
            )
            if not self._claim(row, now):
                return "not claimed"
            self.delivery.ledger.mark_expired(row.id, reason, now, token=self.token)
            report.expired.append(row.id)
            self._emit("expired", id=row.id, account=row.account, reason=reason)
            return "done"
        missing = 0 if search else max(row.part_count - len(row.parts), 1)
        available = self.limiter.available_at(row.account, row.platform, missing, now)
        if available > now:
            report.deferred.append(row.id)
            self.log.emit("deferred", id=row.id, account=row.account, until=available, reason="rate limit")
            return "deferred"
        return self._tally(row, self.delivery.deliver(row, post, search=search), report)

    def _claim(self, row: Row, now: datetime) -> bool:
        """Claim ``row`` before this daemon expires or skips it: never a change over another node's claim."""
        return self.delivery.ledger.claim(row.id, now, self.token, lease_until=self.delivery.lease_until(now))

    def _tally(self, row: Row, delivered: Delivered, report: TickReport) -> str:
        """Note what the delivery path did in the pass's report; "done" when the account may go on."""
        outcome = delivered.outcome
        if delivered.reconciled is not None:
            report.reconciled.append(delivered.reconciled)
            if delivered.reconciled.outcome == "failed":
                self.failures += 1
            return "done" if outcome is Outcome.PUBLISHED else "reconciled"
        if outcome is Outcome.PUBLISHED:
            report.published.append(row.id)
            return "done"
        if outcome is Outcome.FAILED:
            report.failed.append(row.id)
            self.failures += 1
            return "done"
        if outcome is Outcome.RETRY:
            report.retried.append(row.id)
        elif outcome is Outcome.UNKNOWN:
            report.unknown.append(row.id)
        elif outcome in (Outcome.PAUSED, Outcome.RELEASED):
            report.released.append(row.id)
            if outcome is Outcome.PAUSED:
                report.credentials.append(row.account)
                self.credential_pause(row.account, delivered.error, row.id)
        return {Outcome.RELEASED: "stopped", Outcome.NOT_CLAIMED: "not claimed"}.get(outcome, outcome.value)
