"""The daemon's settings and its file names, and the test hooks read from the environment.

Test hooks (environment variables, never to be set outside tests):

* ``AMPLIFIER_TEST_CRASH_AFTER_REQUEST=N``: the process exits at once with status 137 (as if SIGKILLed) right
  after its N-th successful publish, before the ledger records it: the window where only reconciliation can
  tell what happened.
* ``AMPLIFIER_TEST_BACKOFF=S``: every transient retry waits S seconds (+-jitter) instead of growing from 30 s.
* ``AMPLIFIER_TEST_WATCH=S``: check the campaign files and pause switches every S seconds (where they are polled).
* ``AMPLIFIER_TEST_POLL_FILES=1``: no file-system notifications: poll the files as where inotify is unavailable.
* ``AMPLIFIER_TEST_RELOAD_SLOW=S``: a reload running longer than S seconds is reported as slow.
* ``AMPLIFIER_TEST_REQUEST_TIMEOUT=S``: the publishers' HTTP timeout (read by ``amplifier run``).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from amplifier.clock import Clock

PAUSE_NAME = "PAUSE"
HEARTBEAT_NAME = "heartbeat.json"
CRASH_ENV = "AMPLIFIER_TEST_CRASH_AFTER_REQUEST"
FAR_FUTURE = timedelta(days=3660)
LEASE_ENV = "AMPLIFIER_CLAIM_LEASE"  # seconds: DaemonSettings.claim_lease (a setting, not a test hook)


def remove_pause_file(state: Path) -> Path | None:
    """Remove the state folder's PAUSE file (``amplifier resume``); the path removed, or None when there was none.
    A usage error when it cannot be removed."""
    from amplifier.errors import UsageError

    pause_file = state / PAUSE_NAME
    if not pause_file.exists():
        return None
    try:
        pause_file.unlink()
    except OSError as exc:
        raise UsageError(f"{pause_file}: cannot remove the pause file: {exc.strerror}") from exc
    return pause_file


def offset_clock(start: datetime) -> Clock:
    """A clock that reads ``start`` now and runs on at real speed from there (``run --now T``)."""
    origin = time.monotonic()

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - origin)

    return clock


@dataclass(frozen=True)
class DaemonSettings:
    lookahead: timedelta = timedelta(days=2)  # how far ahead the rolling window is planned
    default_grace: timedelta = timedelta(hours=1)  # recurring / once rules without `missed`
    on_time: timedelta = timedelta(minutes=10)  # `missed: expire`: how late still counts as on time
    max_attempts: int = 6  # transient errors: attempts before a post fails
    rate_limited_max_attempts: int = 50  # 429s: attempts before a post fails
    backoff_base: timedelta = timedelta(seconds=30)
    backoff_max: timedelta = timedelta(minutes=30)
    jitter: float = 0.2  # +-20 % of each backoff
    workers: int = 1024  # accounts published concurrently (threads start only when needed)
    shutdown_timeout: float = 30.0  # seconds to let in-flight posts finish on SIGTERM
    watch_interval: float = (
        2.0  # seconds between checks of the files and pause switches, where they are polled
    )
    watch_backstop: float = (
        60.0  # seconds between checks when notified: for a change a file system did not report
    )
    notify_files: bool = True  # file-system notifications (inotify) instead of polling, where available
    replan_interval: timedelta = timedelta(hours=1)
    heartbeat_interval: float = 30.0  # seconds
    reload_slow: float = 30.0  # seconds: a reload running longer is logged and alerted (posting goes on)
    # A claim's lease: past it, with no extension, another process or node may take the claim over and
    # reconcile the post; the daemon extends its claims every quarter of it (AMPLIFIER_CLAIM_LEASE=S).
    claim_lease: timedelta = timedelta(seconds=6)

    @property
    def lease_interval(self) -> float:
        """Seconds between two extensions of this daemon's claims' leases."""
        return max(self.claim_lease.total_seconds() / 4, 0.05)

    def backoff(self, attempt: int, rng: random.Random) -> timedelta:
        """The wait before retry number ``attempt`` (1-based): base * 2^(attempt-1), capped, with jitter."""
        raw = min(self.backoff_base * (2 ** max(attempt - 1, 0)), self.backoff_max)
        factor: float = 1.0 + self.jitter * rng.uniform(-1.0, 1.0)
        return timedelta(seconds=raw.total_seconds() * factor)


def _seconds(environ: Mapping[str, str], name: str) -> float | None:
    value = environ.get(name, "").strip()
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


def settings_from_environ(environ: Mapping[str, str]) -> DaemonSettings:
    """The default settings, changed by the test hooks ``AMPLIFIER_TEST_BACKOFF`` / ``_WATCH`` / ``_POLL_FILES`` /
    ``_RELOAD_SLOW`` (see above) and by
    ``AMPLIFIER_CLAIM_LEASE`` (seconds)."""
    changes: dict[str, Any] = {}
    backoff = _seconds(environ, "AMPLIFIER_TEST_BACKOFF")
    if backoff is not None:
        changes["backoff_base"] = changes["backoff_max"] = timedelta(seconds=backoff)
    watch = _seconds(environ, "AMPLIFIER_TEST_WATCH")
    if watch is not None:
        changes["watch_interval"] = watch
    lease = _seconds(environ, LEASE_ENV)
    if lease is not None:
        changes["claim_lease"] = timedelta(seconds=lease)
    if environ.get("AMPLIFIER_TEST_POLL_FILES", "").strip() not in ("", "0"):
        changes["notify_files"] = False
    slow = _seconds(environ, "AMPLIFIER_TEST_RELOAD_SLOW")
    if slow is not None:
        changes["reload_slow"] = slow
    return DaemonSettings(**changes)


def request_timeout_from_environ(environ: Mapping[str, str]) -> float | None:
    return _seconds(environ, "AMPLIFIER_TEST_REQUEST_TIMEOUT")


def crash_after(environ: Mapping[str, str]) -> int | None:
    """``AMPLIFIER_TEST_CRASH_AFTER_REQUEST``: after how many successful publishes the process dies."""
    value = environ.get(CRASH_ENV, "").strip()
    if not value:
        return None
    try:
        count = int(value)
    except ValueError:
        return None
    return count if count > 0 else None


def request_crash_hook(environ: Mapping[str, str]) -> Callable[[], None]:
    """The hook of ``AMPLIFIER_TEST_CRASH_AFTER_REQUEST`` for a command's write requests (``correct``'s edits):
    called after each request, it kills the process (SIGKILL: no cleanup, no flush) after that many, before the
    ledger records the last."""
    limit = crash_after(environ)
    count = 0

    def after_request() -> None:
        nonlocal count
        count += 1
        if limit is not None and count >= limit:
            os.kill(os.getpid(), signal.SIGKILL)

    return after_request
