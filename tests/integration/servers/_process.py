"""Process plumbing shared by the loopback servers: start, wait until ready, stop, show the log.

Every server runs as a child process in its own process group (``start_new_session=True``), with a pipe on
its stdin that the child watches: when the pipe closes (the test process called :meth:`ServerProcess.stop`,
or died), the child exits by itself. :meth:`ServerProcess.stop` then escalates to SIGTERM and SIGKILL of the
whole group if the child does not go.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

#: Header the fixtures' own helper requests carry; servers leave such requests out of their request counts,
#: so ``request_count`` measures only the code under test.
FIXTURE_HEADER = "X-Amplifier-Fixture"
FIXTURE_HEADERS = {FIXTURE_HEADER: "1"}


class ServerStartError(RuntimeError):
    """A loopback server did not come up; the message carries the tail of its log."""


def log_tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """A child process with its log file, started in its own process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("ab")
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.poll() is None

    def fail(self, reason: str) -> ServerStartError:
        """An error for a failed start, with the log tail; stops the process first."""
        self.stop()
        return ServerStartError(
            f"{self.name} did not start: {reason}\n"
            f"--- last lines of {self.log_path} ---\n{log_tail(self.log_path)}"
        )

    def wait_until(self, ready: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Poll ``ready()`` until it is true; raise :class:`ServerStartError` on timeout or early exit."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                code = self._proc.returncode
                raise self.fail(f"the process exited with code {code} while waiting for {what}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise self.fail(f"no {what} within {timeout:g} s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Close stdin (the child exits by itself), then SIGTERM, then SIGKILL its group. Idempotent."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, sig)
                try:
                    self._proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # Whatever the leader did, leave no stray member of its group behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()


def http_ok(url: str) -> bool:
    """Whether ``GET url`` answers 2xx within a second."""
    try:
        return httpx.get(url, timeout=1.0, headers=FIXTURE_HEADERS).is_success
    except httpx.HTTPError:
        return False
