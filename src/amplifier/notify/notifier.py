"""The notifier: alerts raised by the daemon, grouped per destination, throttled, sent in the background.

The daemon calls :meth:`Notifier.raise_` for each fact as it happens and :meth:`Notifier.flush` after each pass
(and every few seconds): a destination's alerts raised within ``notify.group`` of its first pending one go out as
one message. An alert whose :attr:`~amplifier.notify.alerts.Alert.key` was sent to a destination less than
``notify.repeat`` ago is dropped for that destination. What was sent when is kept in the state folder
(``notify/sent.json``), so a restart does not send it again.

Sending happens on one background thread per destination, with a timeout: a slow or failing destination never
blocks or crashes posting. A failed message is logged (``notify failed``, with the redacted reason) and its alerts
are unmarked, so they go out with the next batch if raised again. Every text is redacted of the known secrets
before it is queued.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from amplifier.campaign.load import Campaign
from amplifier.clock import Clock, utcnow
from amplifier.notify.alerts import Alert, Message, compose, test_alert
from amplifier.notify.destinations import Destination, Unusable, known_secrets, resolve
from amplifier.notify.redaction import redact, url_fragments
from amplifier.notify.throttle import SentLog
from amplifier.notify.transport import DEFAULT_TIMEOUT, DeliveryError, Sender, send_apprise
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir, StateError

Log = Callable[..., None]
"""``log(event, **fields)``: the daemon's ``EventLog.emit``."""

DIGEST_LATE = timedelta(hours=3)  # a digest not sent by then (the daemon was down) waits for the next day


def stderr_log(event: str, **fields: Any) -> None:
    pairs = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
    print(f"{event} {pairs}".strip(), file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Delivery:
    """The outcome of one message to one destination."""

    destination: str
    ok: bool
    alerts: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "ok": self.ok, "alerts": self.alerts, "error": self.error}


class Notifier:
    """See the module docstring. Thread-safe; :meth:`close` before the process exits."""

    def __init__(
        self,
        destinations: Sequence[Destination],
        *,
        campaign: str,
        state: StateDir | None = None,
        repeat: timedelta = timedelta(hours=1),
        group: timedelta = timedelta(seconds=30),
        zone: str = "UTC",
        secrets: Iterable[str] = (),
        log: Log = stderr_log,
        sender: Sender = send_apprise,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = utcnow,
    ) -> None:
        self.destinations = {d.name: d for d in destinations}
        self.campaign = campaign
        self.group = group
        self.zone = ZoneInfo(zone)
        self.log = log
        self.sender = sender
        self.timeout = timeout
        self.clock = clock
        self.secrets = [*secrets, *(part for d in destinations for part in (d.url, *url_fragments(d.url)))]
        self.sent = SentLog(state, repeat)
        self._pending: dict[str, dict[str, Alert]] = {}  # destination -> alert key -> alert, in raise order
        self._since: dict[str, datetime] = {}
        self._lock = threading.RLock()
        self._queues: dict[str, queue.Queue[tuple[Message, list[str], datetime, int] | None]] = {}
        self._threads: list[threading.Thread] = []
        self.deliveries: deque[Delivery] = deque(maxlen=100)  # the last deliveries, in order
        self.unusable: list[Unusable] = []  # destinations whose URL could not be read (from_campaign)

    @classmethod
    def from_campaign(
        cls,
        campaign: Campaign,
        sources: SecretSources,
        state: StateDir | None,
        *,
        log: Log = stderr_log,
        **options: Any,
    ) -> Notifier:
        """The notifier of ``campaign``'s ``notify:`` section (none: a notifier without destinations, which does
        nothing). Destinations whose URL is not set are left out and listed in :attr:`unusable`, each logged."""
        settings = campaign.schedule.notify
        destinations, unusable = resolve(settings, sources)
        notifier = cls(
            destinations,
            campaign=campaign.name,
            state=state,
            repeat=settings.repeat if settings else timedelta(hours=1),
            group=settings.group if settings else timedelta(seconds=30),
            zone=campaign.schedule.campaign.timezone,
            secrets=known_secrets(campaign, sources),
            log=log,
            **options,
        )
        notifier.unusable = unusable
        for item in unusable:
            log("notify unusable", destination=item.name, reason=item.reason)
        return notifier

    # ------------------------------------------------------------------------------------------ alerts

    def raise_(self, alert: Alert, now: datetime | None = None) -> None:
        """Collect ``alert`` for every destination that wants its event and did not get it lately."""
        now = now or self.clock()
        with self._lock:
            for name, destination in self.destinations.items():
                if not destination.wants(alert.event) or self.sent.recent(name, alert.key, now):
                    continue
                pending = self._pending.setdefault(name, {})
                if alert.key in pending:
                    continue
                if not pending:
                    self._since[name] = now
                pending[alert.key] = alert

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {name: len(alerts) for name, alerts in self._pending.items() if alerts}

    def flush(self, now: datetime | None = None, *, force: bool = False) -> dict[str, Message]:
        """Queue one message per destination whose first pending alert is ``group`` old (all, with ``force``);
        returns them by destination. Never waits for the sending."""
        now = now or self.clock()
        queued: dict[str, Message] = {}
        with self._lock:
            for name, pending in list(self._pending.items()):
                if not pending or not (force or now - self._since[name] >= self.group):
                    continue
                alerts = list(pending.values())
                message = self._redacted(compose(alerts, self.campaign))
                keys = list(pending)
                self.sent.mark(name, keys, now)
                self._pending[name] = {}
                self._enqueue(name, message, keys, now, len(alerts))
                queued[name] = message
            if queued:
                self._save(now)
        return queued

    # ------------------------------------------------------------------------------------------ digest

    def digest_due(self, now: datetime | None = None) -> list[str]:
        """The destinations whose daily digest is due: its time passed today (at most 3 hours ago) and it was
        not sent today."""
        now = now or self.clock()
        local = now.astimezone(self.zone)
        due = []
        with self._lock:
            for name, destination in self.destinations.items():
                if destination.digest is None or self.sent.digests.get(name) == local.date().isoformat():
                    continue
                at = datetime.combine(local.date(), destination.digest, self.zone)
                if at <= local < at + DIGEST_LATE:
                    due.append(name)
        return due

    def send_digest(
        self, message: Message, now: datetime | None = None, names: Sequence[str] | None = None
    ) -> None:
        """Queue ``message`` (a digest) to ``names`` (default: :meth:`digest_due`) and remember the day."""
        now = now or self.clock()
        targets = self.digest_due(now) if names is None else list(names)
        if not targets:
            return
        message = self._redacted(message)
        day = now.astimezone(self.zone).date().isoformat()
        with self._lock:
            for name in targets:
                self.sent.digests[name] = day
                self._enqueue(name, message, [], now, 0)
            self._save(now)

    def maybe_digest(self, now: datetime, build: Callable[[], Message]) -> bool:
        """Send the digest built by ``build`` (called only when a destination's digest is due)."""
        names = self.digest_due(now)
        if names:
            self.send_digest(build(), now, names)
        return bool(names)

    # ------------------------------------------------------------------------------------------ test

    def test(self) -> list[Delivery]:
        """Send a test message to every destination now and wait for each (at most the timeout): which worked."""
        message = self._redacted(compose([test_alert()], self.campaign))
        results: dict[str, Delivery] = {}

        def one(name: str, url: str) -> None:
            results[name] = self._deliver(name, url, message, 1)

        threads = [
            threading.Thread(target=one, args=(d.name, d.url), daemon=True)
            for d in self.destinations.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.timeout * 2 + 5)
        return [
            results.get(name, Delivery(name, False, 1, f"no answer within {self.timeout * 2 + 5:.0f} s"))
            for name in self.destinations
        ]

    # ------------------------------------------------------------------------------------------ sending

    def _redacted(self, message: Message) -> Message:
        return Message(redact(message.title, self.secrets), redact(message.body, self.secrets))

    def _enqueue(self, name: str, message: Message, keys: list[str], now: datetime, count: int) -> None:
        box = self._queues.get(name)
        if box is None:
            box = self._queues[name] = queue.Queue()
            thread = threading.Thread(target=self._work, args=(name, box), name=f"notify-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        box.put((message, keys, now, count))

    def _work(self, name: str, box: queue.Queue[tuple[Message, list[str], datetime, int] | None]) -> None:
        while True:
            item = box.get()
            try:
                if item is None:
                    return
                message, keys, at, count = item
                destination = self.destinations.get(name)
                if destination is None:
                    continue
                delivery = self._deliver(name, destination.url, message, count)
                if not delivery.ok:
                    with self._lock:
                        self.sent.unmark(name, keys, at)
                        self._save(at)
                with self._lock:
                    self.deliveries.append(delivery)
            finally:
                box.task_done()

    def _deliver(self, name: str, url: str, message: Message, count: int) -> Delivery:
        try:
            self.sender(url, message, self.timeout)
        except DeliveryError as exc:
            reason = redact(str(exc), self.secrets)
        except Exception as exc:  # never let a destination take the daemon down
            reason = redact(f"{type(exc).__name__}: {exc}", self.secrets)
        else:
            self.log("notify sent", destination=name, alerts=count or None)
            return Delivery(name, True, count)
        self.log("notify failed", destination=name, reason=reason)
        return Delivery(name, False, count, reason)

    def _save(self, now: datetime) -> None:
        try:
            self.sent.save(now)
        except StateError as exc:
            self.log("notify failed", reason=str(exc))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every queued message was tried (at most ``timeout`` seconds); True when all were."""
        with self._lock:
            boxes = list(self._queues.values())

        def join_all() -> None:
            for box in boxes:
                box.join()

        waiter = threading.Thread(target=join_all, daemon=True)
        waiter.start()
        waiter.join(timeout)
        return not waiter.is_alive()

    def close(self, now: datetime | None = None, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Send what is pending at once, wait for it (at most ``timeout`` seconds), stop the threads."""
        self.flush(now, force=True)
        finished = self.wait(timeout)
        for box in self._queues.values():
            box.put(None)
        return finished
