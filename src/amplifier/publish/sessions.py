"""What amplifier keeps between runs, in a :class:`~amplifier.publish.state.StateStore`: the state folder on
one machine, the ledger's database when several nodes share a PostgreSQL ledger (see :mod:`amplifier.publish.state`).

Documents (``folder/name``; in the state folder the files of that name, mode 0600):

* ``sessions/<account>.session``: a Bluesky session string (access + refresh token), so a run never
  logs in again while the refresh token is valid (see :class:`SessionStore`); refreshed under the store's lock.
* ``logins/<account>.json``: the recent ``createSession`` attempts of an account and their outcome (and, for
  a rejected one, the fingerprint of the rejected secret), so that wrong credentials cause at most a few
  logins an hour while a corrected one is tried at once (see :class:`LoginGuard`).
* ``keys/fingerprint.key``: the random key of the secrets' fingerprints (see :class:`Fingerprints`).
* ``limits/<key>.json``: limits read from a server (the Mastodon instance's ``/api/v2/instance``), with
  the time they were read, reused until they are older than a TTL (see :class:`LimitsCache`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from amplifier.clock import Clock, utcnow
from amplifier.errors import AmplifierError, ExitCode
from amplifier.errors import StateError as StateError  # the state folder's error, kept importable from here
from amplifier.publish.state import DEFAULT_STATE_NAME as DEFAULT_STATE_NAME
from amplifier.publish.state import STATE_ENV as STATE_ENV
from amplifier.publish.state import StateDir as StateDir
from amplifier.publish.state import StateStore
from amplifier.publish.state import resolve_state_dir as resolve_state_dir
from amplifier.publish.state import safe_name as safe_name


class SessionStore:
    """Bluesky session strings per account, in ``sessions/`` (mode 0600)."""

    SUB = "sessions"

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def _name(self, account: str) -> str:
        return safe_name(account) + ".session"

    def load(self, account: str) -> str | None:
        raw = self.state.read(self.SUB, self._name(account))
        if raw is None:
            return None
        text = raw.decode("utf-8", errors="replace").strip()
        return text or None

    def save(self, account: str, session_string: str) -> None:
        self.state.write(self.SUB, self._name(account), session_string.encode())

    def delete(self, account: str) -> None:
        self.state.delete(self.SUB, self._name(account))

    @contextlib.contextmanager
    def refreshing(self, account: str) -> Iterator[str | None]:
        """Hold the account's session lock (across processes and nodes) for a refresh; yields the stored
        session as it is now: when another process refreshed first, that one, to be used instead."""
        with self.state.locked(self.SUB, self._name(account)):
            yield self.load(account)


class LoginRefusedError(AmplifierError):
    """A login is not attempted because recent attempts failed; the message says until when.

    ``rejected``: the server rejected this very secret (a credential problem: fix it); else the hour's login
    budget is spent (by an outage, say): wait until ``retry_at``, nothing to fix."""

    exit_code = ExitCode.ACCOUNT

    def __init__(self, message: str, retry_at: datetime, *, rejected: bool = False) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.rejected = rejected


_KEY_LOCK = threading.Lock()


class Fingerprints:
    """Keyed fingerprints of secrets: HMAC-SHA256 under a random key kept in the state store
    (``keys/fingerprint.key``, 0600 in the state folder; shared by the nodes of a PostgreSQL ledger), so a fingerprint stored beside a pause or a rejected login tells
    whether the secret changed without holding the secret, nor anything that could be checked against a
    guess without the key."""

    SUB = "keys"
    NAME = "fingerprint.key"

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._key: bytes | None = None

    def _secret_key(self) -> bytes:
        if self._key is None:
            with _KEY_LOCK:
                key = self.state.read(self.SUB, self.NAME)
                if key is None or len(key) < 32:
                    key = self._create_key(key)
            self._key = key
        return self._key

    def _create_key(self, damaged: bytes | None) -> bytes:
        """A new key, unless another thread, process or node made one first: then that one (every fingerprint
        is made under the same key, or two of one secret would differ). A damaged key is replaced."""
        if damaged is not None:
            self.state.delete(self.SUB, self.NAME)
        key = self.state.create(self.SUB, self.NAME, os.urandom(32))
        if len(key) < 32:
            raise StateError(f"{self.state.where(self.SUB, self.NAME)}: a damaged key")
        return key

    def of(self, secret: str) -> str:
        """The fingerprint of ``secret`` (32 hex characters)."""
        digest = hmac.new(self._secret_key(), secret.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:32]

    def changed(self, fingerprint: str | None, secret: str | None) -> bool:
        """Whether ``secret`` (None: missing) differs from the one ``fingerprint`` was made of (None: the
        secret was missing then). A secret that is missing now has not been fixed."""
        if secret is None or not secret.strip():
            return False
        if fingerprint is None:
            return True
        return not hmac.compare_digest(self.of(secret), fingerprint)


def secret_fingerprint(state: StateStore, secret: str) -> str:
    """The fingerprint of an account's secret, to store with a pause (see :class:`Fingerprints`)."""
    return Fingerprints(state).of(secret)


def secret_changed(state: StateStore, fingerprint: str | None, secret: str | None) -> bool:
    """Whether the account's secret now (``secret``, None when missing) is another than the one paused
    with ``fingerprint`` (None: it was missing): then the account may be tried again at once."""
    return Fingerprints(state).changed(fingerprint, secret)


@dataclass(frozen=True)
class LoginPolicy:
    """How often an account may log in.

    A login whose credentials were rejected blocks the next one for ``after_rejection`` (so wrong
    credentials cause at most three ``createSession`` calls an hour), and no account logs in more than
    ``per_hour`` times an hour whatever the outcome (Bluesky allows 30 per 5 minutes and 300 a day, and
    locks accounts out well before that).
    """

    per_hour: int = 5
    after_rejection: timedelta = timedelta(minutes=20)


class LoginGuard:
    """Remembers the login attempts of each account on disk and refuses one that would come too soon."""

    SUB = "logins"

    def __init__(self, state: StateStore, clock: Clock = utcnow, policy: LoginPolicy | None = None) -> None:
        self.state = state
        self.clock = clock
        self.policy = policy or LoginPolicy()
        self.fingerprints = Fingerprints(state)

    def _name(self, account: str) -> str:
        return safe_name(account) + ".json"

    def _attempts(self, account: str, now: datetime) -> list[dict[str, Any]]:
        data = self.state.read_json(self.SUB, self._name(account))
        attempts: list[dict[str, Any]] = []
        if isinstance(data, dict) and isinstance(data.get("attempts"), list):
            for item in data["attempts"]:
                try:
                    at = datetime.fromisoformat(item["at"])
                except (KeyError, TypeError, ValueError):
                    continue
                if now - at < timedelta(hours=1):
                    attempt = {"at": at.isoformat(), "outcome": str(item.get("outcome", "unknown"))}
                    if isinstance(item.get("secret"), str):
                        attempt["secret"] = item["secret"]
                    attempts.append(attempt)
        return attempts

    def check(self, account: str, secret: str | None = None) -> None:
        """Raise :class:`LoginRefusedError` when a login of ``account`` with ``secret`` now would come too
        soon: the server rejected this same secret less than ``after_rejection`` ago (another secret, a
        corrected password, is tried at once), or the hour's budget of logins is spent."""
        now = self.clock()
        attempts = self._attempts(account, now)
        rejected = [a for a in attempts if a["outcome"] == "rejected"]
        same = bool(rejected) and (
            secret is None or not self.fingerprints.changed(rejected[-1].get("secret"), secret)
        )
        if same:
            last = datetime.fromisoformat(rejected[-1]["at"])
            retry_at = last + self.policy.after_rejection
            if now < retry_at:
                raise LoginRefusedError(
                    f"{account}: the server rejected this account's credentials at "
                    f"{last:%Y-%m-%d %H:%M:%S} UTC; "
                    f"not trying to log in again before {retry_at:%H:%M:%S} UTC (fix the password, or delete "
                    f"{self.state.where(self.SUB, self._name(account))} to retry at once)",
                    retry_at,
                    rejected=True,
                )
        if len(attempts) >= self.policy.per_hour:
            first = datetime.fromisoformat(attempts[0]["at"])
            retry_at = first + timedelta(hours=1)
            raise LoginRefusedError(
                f"{account}: {len(attempts)} logins in the last hour; not logging in again before "
                f"{retry_at:%H:%M:%S} UTC, to stay clear of the server's login rate limit",
                retry_at,
            )

    def record(self, account: str, outcome: str, secret: str | None = None) -> None:
        """Remember one attempt: ``ok``, ``rejected`` (the server rejected the credentials: a 401, or a 400
        with an authentication error) or ``failed`` (network, timeout, 5xx: an outage, never a rejection).
        A rejected attempt keeps the fingerprint of ``secret`` (never the secret)."""
        now = self.clock()
        attempt = {"at": now.isoformat(), "outcome": outcome}
        if outcome == "rejected" and secret is not None:
            attempt["secret"] = self.fingerprints.of(secret)
        with self.state.locked(self.SUB, self._name(account)):  # another node's attempt is kept too
            attempts = self._attempts(account, now)
            attempts.append(attempt)
            self.state.write_json(self.SUB, self._name(account), {"attempts": attempts})


class LimitsCache:
    """Server limits per key, in memory and in ``limits/`` with the time read; stale after ``ttl``."""

    SUB = "limits"

    def __init__(
        self, state: StateStore, clock: Clock = utcnow, ttl: timedelta = timedelta(hours=24)
    ) -> None:
        self.state = state
        self.clock = clock
        self.ttl = ttl
        self._memory: dict[str, tuple[datetime, dict[str, Any]]] = {}

    def _name(self, key: str) -> str:
        return safe_name(key) + ".json"

    def get(self, key: str) -> dict[str, Any] | None:
        now = self.clock()
        hit = self._memory.get(key)
        if hit is None:
            data = self.state.read_json(self.SUB, self._name(key))
            if isinstance(data, dict) and isinstance(data.get("limits"), dict) and data.get("key") == key:
                try:
                    hit = (datetime.fromisoformat(data["read_at"]), data["limits"])
                except (TypeError, ValueError, KeyError):
                    hit = None
            if hit is not None:
                self._memory[key] = hit
        if hit is None or not (timedelta(0) <= now - hit[0] < self.ttl):
            return None
        return dict(hit[1])

    def put(self, key: str, limits: dict[str, Any]) -> None:
        now = self.clock()
        self._memory[key] = (now, dict(limits))
        self.state.write_json(
            self.SUB, self._name(key), {"key": key, "read_at": now.isoformat(), "limits": limits}
        )
