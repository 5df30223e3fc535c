"""The order of delivery: which account's posts are next, and when the daemon should wake.

Each account's posts go out strictly in order: a post waiting for a retry, or for the check of its unknown
outcome, holds back the account's later posts; accounts are independent of each other.
"""

from __future__ import annotations

from datetime import datetime

from amplifier.daemon.settings import FAR_FUTURE, DaemonSettings
from amplifier.daemon.watch import WatchMixin
from amplifier.delivery.ledger import Row
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.reconcile import claim_holder_alive


class QueueMixin(WatchMixin):
    """Per-account queues of due posts, and the next wake-up."""

    settings: DaemonSettings
    limiter: RateLimiter
    token: str

    def held_accounts(self, now: datetime) -> dict[str, datetime]:
        """Accounts this node leaves to other nodes for now (see :mod:`amplifier.daemon.nodes`)."""
        return {}

    def _unknown_checks(self, now: datetime) -> dict[str, datetime]:
        """Per account with a claimed post (its outcome unknown, or in another process's or node's hands): the
        earliest instant this daemon looks at one. Such a post holds back its account's later posts."""
        checks: dict[str, datetime] = {}
        for row in self.ledger.claimed():
            alive = claim_holder_alive(row, now, own_token=self.token)
            if alive:
                # Its claimant decides; look again when its lease passes (or now and then, without a lease).
                lease = row.lease_until or now + self.settings.backoff_base
                at = max(row.next_attempt_at, lease) if row.unknown_since is not None else lease
            elif row.unknown_since is not None:
                at = row.next_attempt_at
            else:
                at = now  # abandoned: reconciled at the next pass
            if row.account not in checks or at < checks[row.account]:
                checks[row.account] = at
        for account, until in self.held_accounts(now).items():  # left to another node for now
            checks[account] = min(checks.get(account, until), until)
        return checks

    def queues(self, now: datetime) -> dict[str, list[Row]]:
        """Per account, its planned posts in order up to the first one that is not due yet (strict order)."""
        queues: dict[str, list[Row]] = {}
        # A post whose outcome is unknown holds back its account's later posts, as a retry does.
        blocked: set[str] = set(self._unknown_checks(now))
        for row in self.ledger.due(now + FAR_FUTURE):
            if row.account in blocked:
                continue
            if row.next_attempt_at > now:
                blocked.add(row.account)
                continue
            queues.setdefault(row.account, []).append(row)
        return queues

    def next_wake(self, now: datetime) -> datetime | None:
        """When the next pass should run: the earliest instant an account's next post may go out, or a post
        whose outcome is unknown is to be checked (that goes on while paused: a check posts nothing new)."""
        checks = self._unknown_checks(now)
        if self.paused() is not None:
            return min(checks.values(), default=None)
        heads: dict[str, Row] = {}
        for row in self.ledger.due(now + FAR_FUTURE):
            if row.account not in checks:  # waits for the check of its unknown post
                heads.setdefault(row.account, row)
        wake: datetime | None = min(checks.values(), default=None)
        for row in heads.values():
            missing = max(row.part_count - len(row.parts), 1)
            at = max(row.next_attempt_at, self.limiter.available_at(row.account, row.platform, missing, now))
            wake = at if wake is None or at < wake else wake
        return wake
