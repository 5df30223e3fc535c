"""What the daemon holds to tell the world: the notifier, the dead man's switch, the daily digest and a watchdog for a
pass that does not end, behind five calls (see :class:`Alerting`).

The daemon calls :meth:`~Alerting.raise_` where a fact happens (a post failed...), :meth:`~Alerting.pass_started`
and :meth:`~Alerting.pass_finished` around each pass, :meth:`~Alerting.watch` from a job that does not wait for the
pass (so a stuck pass is noticed: every few seconds while :meth:`~Alerting.busy`, with the heartbeat otherwise),
:meth:`~Alerting.reconfigure` after a valid reload and :meth:`~Alerting.close` when it stops. None of them raises or
blocks for longer than a file write: sending happens in the background.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from amplifier.campaign.load import Campaign
from amplifier.clock import utcnow
from amplifier.delivery.ledger import Ledger
from amplifier.notify.alerts import Alert, Message, daemon_stopped, daemon_stuck
from amplifier.notify.digest import build_digest, digest_message
from amplifier.notify.heartbeat import DeadMansSwitch
from amplifier.notify.notifier import Log, Notifier, stderr_log
from amplifier.notify.redaction import redact
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

STUCK_AFTER = timedelta(minutes=15)  # a pass running longer than this is reported as stuck
CLOSE_TIMEOUT = 10.0  # seconds :meth:`Alerting.close` waits for the last messages


class Alerting:
    """The daemon's alerting; see the module docstring. Thread-safe."""

    def __init__(
        self,
        notifier: Notifier,
        switch: DeadMansSwitch,
        *,
        digest: Callable[[datetime], Message] | None = None,
        stuck_after: timedelta = STUCK_AFTER,
    ) -> None:
        self.notifier = notifier
        self.switch = switch
        self.digest = digest
        self.stuck_after = stuck_after
        self._pass_started: datetime | None = None
        self._lock = threading.Lock()
        self.silent = False  # :meth:`off`: stays off, a reload included

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Alerting never takes posting down: an error here (a ledger the digest cannot read, a bug) is logged."""
        try:
            yield
        except Exception as exc:
            reason = redact(f"{type(exc).__name__}: {exc}", self.notifier.secrets)
            self.notifier.log("notify error", action=action, reason=reason)

    @classmethod
    def for_campaign(
        cls,
        campaign: Campaign,
        state: StateDir | None,
        *,
        ledger: Ledger | None = None,
        log: Log = stderr_log,
        sources: SecretSources | None = None,
    ) -> Alerting:
        """The alerting of ``campaign``'s ``notify:`` section and ``AMPLIFIER_HEARTBEAT_URL``; with a ``ledger``,
        the daily digest reads it."""
        sources = sources or SecretSources.for_campaign(campaign.root)
        notifier = Notifier.from_campaign(campaign, sources, state, log=log)
        switch = DeadMansSwitch.from_sources(sources, log=log)
        digest = None
        if ledger is not None:
            zone = campaign.schedule.campaign.timezone
            name = campaign.name

            def digest(now: datetime) -> Message:
                return digest_message(build_digest(ledger, now), name, zone)

        return cls(notifier, switch, digest=digest)

    @classmethod
    def off(cls, campaign: str = "") -> Alerting:
        """Alerting that sends nothing and pings nothing (a dry run), whatever a reload brings."""
        alerting = cls(Notifier([], campaign=campaign, log=lambda *_a, **_k: None), DeadMansSwitch(None))
        alerting.silent = True
        return alerting

    def raise_(self, alert: Alert, now: datetime | None = None) -> None:
        """Collect ``alert``; it goes out with the next flush after its group window (:meth:`pass_finished`,
        :meth:`watch`)."""
        with self._guard("raise"):
            self.notifier.raise_(alert, now)

    def pass_started(self, now: datetime) -> None:
        with self._lock:
            self._pass_started = now

    def pass_finished(self, now: datetime, *, healthy: bool) -> None:
        """After a pass: send what is due, the digest when it is time, and ping the dead man's switch (``healthy``:
        nothing failed or expired and no account was paused by a credential problem in this pass)."""
        with self._lock:
            self._pass_started = None
        self.flush(now)
        with self._guard("heartbeat"):
            self.switch.ping(healthy)

    def watch(self, now: datetime) -> None:
        """From a job that does not wait for the pass (every few seconds while busy): report a pass that has run
        for longer than ``stuck_after``, and send what is due (alerts raised between passes, the digest)."""
        with self._lock:
            started = self._pass_started
        if started is not None and now - started > self.stuck_after:
            # A stable text: the same stuck pass is one alert, repeated at most every `repeat`.
            limit = self.stuck_after.total_seconds() / 60
            self.raise_(daemon_stuck(f"a pass has run for more than {limit:.0f} minutes"), now)
        self.flush(now)

    def busy(self) -> bool:
        """Whether :meth:`watch` has work every few seconds: a pass runs (is it stuck?), or alerts wait for their
        group window. Otherwise only the digest may fall due, and the daemon looks less often
        (:mod:`amplifier.daemon.scheduler`)."""
        with self._lock:
            running = self._pass_started is not None
        return running or bool(self.notifier.pending())

    def flush(self, now: datetime) -> None:
        """Send the batches whose group window passed, and the digest when it is due."""
        with self._guard("flush"):
            self.notifier.flush(now)
        if self.digest is not None:
            build = self.digest
            with self._guard("digest"):
                self.notifier.maybe_digest(now, lambda: build(now))

    def reconfigure(self, campaign: Campaign, state: StateDir | None, *, log: Log = stderr_log) -> None:
        """After a valid reload: the destinations of the new ``notify:`` section (what is pending goes out first
        to the old ones; what was sent when is kept)."""
        if self.silent:
            return
        self.notifier.flush(force=True)
        old = self.notifier
        self.notifier = Notifier.from_campaign(
            campaign, SecretSources.for_campaign(campaign.root), state, log=log
        )
        old.close(timeout=0)

    def close(
        self, now: datetime | None = None, reason: str | None = None, timeout: float = CLOSE_TIMEOUT
    ) -> bool:
        """When the daemon stops: raise ``daemon_stopped`` (with ``reason``), send everything pending at once and
        wait for it (at most ``timeout`` seconds). True when everything was tried."""
        now = now or utcnow()
        if reason is not None:
            self.raise_(daemon_stopped(reason), now)
        done = False
        with self._guard("close"):
            done = self.notifier.close(now, timeout=timeout)
        return self.switch.wait(timeout) and done
