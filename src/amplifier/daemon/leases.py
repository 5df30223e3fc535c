"""The leases of the daemon's claims (see ``DaemonSettings.claim_lease``), extended while it may hold one.

A claim carries a lease that its holder extends every quarter of it; past it, another process or node may take
the claim over and reconcile the post. An idle daemon holds no claim, and must cost next to nothing (under 0.1 %
of a core), so the extension neither writes nor wakes while the daemon cannot hold one:

* Every operation that may claim (an account's pass, the reconciliation of a claim) runs inside
  :meth:`LeaseMixin.claiming`, which marks the daemon as possibly holding claims and wakes the lease job.
* :meth:`LeaseMixin.extend_leases` extends the claims of the daemon's token; when it found none, no operation
  ran meanwhile and none is running, the daemon holds none (a claim left behind, e.g. an unknown outcome, is
  found by the extension that follows its operation), and the job goes to sleep (``sleep_leases``) until the
  next :meth:`LeaseMixin.claiming`.

A node of several (a shared coordinator) extends every interval regardless: its account leases and its heartbeat
in the ledger (for ``status``) are part of its being alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from amplifier.daemon.events import EventLog
from amplifier.daemon.settings import DaemonSettings
from amplifier.delivery.coordination import Coordinator
from amplifier.delivery.ledger import Ledger, LedgerError


class LeaseMixin:
    """Lease extension for the daemon's claims (see the module docstring)."""

    ledger: Ledger
    settings: DaemonSettings
    log: EventLog
    coordinator: Coordinator
    token: str

    def init_leases(self) -> None:
        self._lease_lock = threading.Lock()
        self._lease_busy = 0  # operations that may claim, running now
        self._lease_activity = 0  # starts and ends of such operations
        self._lease_held = False  # this daemon may hold a claim (a new token holds none)
        # Set by ``serve``: pause and resume its lease job (called under the lease lock).
        self.sleep_leases: Callable[[], None] | None = None
        self.wake_leases: Callable[[], None] | None = None

    @property
    def may_hold_claims(self) -> bool:
        """Whether this daemon may hold a claim now (False: its lease job has nothing to extend)."""
        with self._lease_lock:
            return self._lease_held or self._lease_busy > 0

    @contextmanager
    def claiming(self) -> Iterator[None]:
        """Around an operation that may claim a post: the lease job extends the daemon's claims meanwhile."""
        with self._lease_lock:
            self._lease_busy += 1
            self._lease_activity += 1
            if not self._lease_held:
                self._lease_held = True
                if self.wake_leases is not None:
                    self.wake_leases()
        try:
            yield
        finally:
            with self._lease_lock:
                self._lease_busy -= 1
                self._lease_activity += 1

    def extend_leases(self, now: datetime) -> None:
        """This daemon is alive: the leases of the claims it holds run on and, a node of several, its account
        leases and its heartbeat in the ledger; a failure is logged (the claims' leases then pass, and another
        node may take them over). Writes nothing when the daemon holds no claim (see the module docstring)."""
        shared = self.coordinator.shared
        with self._lease_lock:
            held = self._lease_held
            busy = self._lease_busy
            activity = self._lease_activity
        if not held and not shared:
            return
        if shared:
            self.coordinator.extend(now)
        try:
            claims = self.ledger.extend_lease(self.token, now + self.settings.claim_lease, now) if held else 0
            if shared:  # a node of several: its heartbeat in the ledger, for status
                holds = [f"account {account}" for account in self.coordinator.accounts()]
                holds += [f"{claims} claim(s)"] if claims else []
                self.ledger.beat_node(self.token, now, leader=self.coordinator.is_leader, holds=holds)
        except LedgerError as exc:
            self.log.emit("error", reason=str(exc))
            return
        if claims or busy:
            return
        with self._lease_lock:
            if self._lease_activity == activity and self._lease_held:
                self._lease_held = False
                if self.sleep_leases is not None and not shared:
                    self.sleep_leases()
