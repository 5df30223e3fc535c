"""The dead man's switch: a URL pinged after every healthy pass, so a machine that died is noticed by someone else.

The URL comes from ``AMPLIFIER_HEARTBEAT_URL`` (the environment, ``.env`` or a file of that name in the secrets
folder, like every secret: it holds a token). The convention is healthchecks.io's and Uptime Kuma's push monitors:
a request to the URL says "alive and well"; an unhealthy pass requests ``<url>/fail`` (healthchecks.io), or, for a
URL with a ``status=`` query (Uptime Kuma's ``/api/push/TOKEN?status=up``), the same URL with ``status=down``. The
service raises its own alarm when the pings stop.

Pings go out on a background thread with a short timeout and never raise: a monitoring service that is down never
holds up posting. Only the newest ping waits while one is in flight. A failed ping is logged, redacted.
"""

from __future__ import annotations

import threading
from collections import deque
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from amplifier.errors import CredentialsError
from amplifier.notify.notifier import Log, stderr_log
from amplifier.notify.redaction import redact, url_fragments
from amplifier.publish.secrets import SecretSources

HEARTBEAT_ENV = "AMPLIFIER_HEARTBEAT_URL"
PING_TIMEOUT = 5.0


def fail_url(url: str) -> str:
    """The URL that reports an unhealthy pass: ``status=down`` for a URL with a ``status`` query (Uptime Kuma),
    else ``<url>/fail`` (healthchecks.io)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "status" for key, _ in query):
        query = [(key, "down" if key == "status" else value) for key, value in query]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


class DeadMansSwitch:
    """Pings :attr:`url` after each pass (:meth:`ping`); does nothing without a URL."""

    def __init__(self, url: str | None, *, timeout: float = PING_TIMEOUT, log: Log = stderr_log) -> None:
        self.url = url.strip() if url else None
        self.timeout = timeout
        self.log = log
        self.secrets = [self.url, *url_fragments(self.url)] if self.url else []
        self._next: bool | None = None
        self._busy = False
        self._lock = threading.Condition()
        self.sent: deque[tuple[bool, bool]] = deque(maxlen=100)  # the last pings: (healthy, answered 2xx)

    @classmethod
    def from_sources(
        cls, sources: SecretSources, *, timeout: float = PING_TIMEOUT, log: Log = stderr_log
    ) -> DeadMansSwitch:
        """The switch configured by ``AMPLIFIER_HEARTBEAT_URL``; an inactive one when it is not set."""
        try:
            url: str | None = sources.get(HEARTBEAT_ENV).get_secret_value()
        except CredentialsError:
            url = None
        return cls(url, timeout=timeout, log=log)

    @property
    def active(self) -> bool:
        return self.url is not None

    def ping(self, healthy: bool) -> None:
        """Report a pass, in the background: returns at once."""
        if self.url is None:
            return
        with self._lock:
            self._next = healthy
            if self._busy:
                return  # the running thread sends the newest state when it is done
            self._busy = True
        threading.Thread(target=self._run, name="heartbeat", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                healthy, self._next = self._next, None
                if healthy is None:
                    self._busy = False
                    self._lock.notify_all()
                    return
            self.ping_now(healthy)

    def ping_now(self, healthy: bool) -> bool:
        """Report a pass and wait for the answer (at most the timeout); True when the service took it."""
        if self.url is None:
            return False
        import httpx

        target = self.url if healthy else fail_url(self.url)
        try:
            response = httpx.get(target, timeout=self.timeout, follow_redirects=True)
            ok = response.is_success
            reason = None if ok else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.sent.append((healthy, ok))
        if not ok:
            self.log("heartbeat failed", reason=redact(reason or "", self.secrets))
        return ok

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no ping is in flight; True when none is."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._busy, timeout)
