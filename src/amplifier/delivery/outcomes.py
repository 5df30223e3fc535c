"""What the delivery path (:mod:`amplifier.delivery.deliver`) gives back and how it records a failed attempt:
:class:`Outcome` and :class:`Delivered`, the caller's :class:`Retries`, and :class:`OutcomeRecording` (a base of
:class:`~amplifier.delivery.deliver.Delivery`), which turns an error into the ledger's next state as its class
says: released or paused (credentials), failed (permanent), unknown (the request may have gone out), or a retry
at the server's reset or after the backoff. The parts of a thread that went out before the error are recorded.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from amplifier.clock import Clock
from amplifier.delivery.ledger import Ledger, LedgerError, Row
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.reconcile import RECHECK_MAX, RECHECK_MIN, Reconciled, needs_search
from amplifier.errors import AmplifierError, CredentialsError
from amplifier.publish.base import AuthError, PermanentError, PublishResult, RateLimitedError, TransientError


class Emit(Protocol):
    """Where the path reports what it did: one event with safe fields (see ``EventLog.emit``)."""

    def __call__(self, event: str, **fields: Any) -> None: ...


def silent(event: str, **fields: Any) -> None:
    return None


class Outcome(enum.StrEnum):
    PUBLISHED = "published"
    RETRY = "retry"  # back to planned, to try again at ``retry_at``
    UNKNOWN = "unknown"  # claimed, outcome unknown: reconciliation looks at ``retry_at``
    FAILED = "failed"
    PAUSED = "paused"  # rejected credentials: released, and the account paused
    RELEASED = "released"  # released without an attempt (credentials, or the caller is stopping)
    SEARCHED = "searched"  # the platform was searched first (see ``reconciled``); nothing was sent
    NOT_CLAIMED = "not claimed"  # someone else has it, or its account (or everything) is paused
    WAITING = "waiting"  # it quotes a post not published yet: nothing claimed, look again at ``retry_at``


@dataclass(frozen=True)
class Delivered:
    """What the path did with one post."""

    outcome: Outcome
    result: PublishResult | None = None
    error: AmplifierError | None = None
    retry_at: datetime | None = None
    reconciled: Reconciled | None = None


class UnexpectedPublishError(TransientError):
    """A publisher raised something that is not an :class:`AmplifierError` (an SDK or HTTP exception it did not
    classify): the request may have reached the server, so the outcome is unknown."""

    kind = "unknown"

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"outcome unknown after an unexpected error: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Retries:
    """The caller's rules for what follows a failed attempt.

    ``backoff(n)``: the wait before attempt ``n + 1`` after ``n`` failed ones; None keeps the post's own next
    attempt time (``send``: the daemon tries again at the post's time). ``max_attempts`` /
    ``rate_limited_max_attempts``: attempts before the post fails (None: never). ``pause_account``: whether
    rejected credentials pause the account (else the post is only released)."""

    backoff: Callable[[int], timedelta] | None = None
    max_attempts: int | None = None
    rate_limited_max_attempts: int | None = None
    pause_account: bool = False
    recheck_min: timedelta = RECHECK_MIN
    recheck_max: timedelta = RECHECK_MAX

    def wait(self, attempt: int) -> timedelta:
        return self.backoff(attempt) if self.backoff is not None else self.recheck_min


class OutcomeRecording:
    """Records what a failed attempt means (a base of :class:`~amplifier.delivery.deliver.Delivery`, which sets
    these attributes)."""

    ledger: Ledger
    token: str
    retries: Retries
    clock: Clock
    limiter: RateLimiter | None
    emit: Emit

    def _record_done(self, row: Row, exc: AmplifierError) -> None:
        """The parts of a thread that went out before ``exc``: recorded, and counted in the rate budget."""
        done = getattr(exc, "done", None) or {}
        now = self.clock()
        for index, part in sorted(done.items()):
            if index in row.parts:
                continue
            try:
                self.ledger.record_part(row.id, index, part.to_json(), now, token=self.token)
            except LedgerError as error:
                self.emit("error", id=row.id, account=row.account, reason=str(error))
        fresh = sum(1 for index, part in done.items() if index not in row.parts and not part.existed)
        if fresh and self.limiter is not None:
            self.limiter.record(row.account, row.platform, fresh, now)

    def _block(self, account: str, until: datetime) -> None:
        if self.limiter is not None:
            self.limiter.block(account, until)

    def _failed(self, row: Row, exc: AmplifierError) -> Delivered:
        from amplifier.publish.mastodon import StatusOutcomeUnknown
        from amplifier.publish.sessions import LoginRefusedError

        self._record_done(row, exc)
        now = self.clock()
        reason = str(exc)
        attempt = row.attempts + 1
        rules = self.retries
        if isinstance(exc, AuthError | CredentialsError) and not isinstance(exc, LoginRefusedError):
            self.ledger.release(row.id, now, token=self.token)
            if not rules.pause_account:
                return Delivered(Outcome.RELEASED, error=exc)
            self.ledger.pause_account(row.account, reason, now)
            self.emit("paused", account=row.account, reason=reason)
            return Delivered(Outcome.PAUSED, error=exc)
        if isinstance(exc, PermanentError):
            return self._fail(row, reason, exc)
        if isinstance(exc, StatusOutcomeUnknown | UnexpectedPublishError) or needs_search(row):
            return self._unknown(row, exc, attempt)
        if isinstance(exc, RateLimitedError | LoginRefusedError):
            reset = exc.reset_at if isinstance(exc, RateLimitedError) else exc.retry_at
            if rules.backoff is None:  # the post's own time, unless the server said later
                retry_at = max(row.next_attempt_at, reset or now)
            elif reset is not None and reset > now:
                retry_at = reset
            else:
                retry_at = now + rules.backoff(attempt)
            self._block(row.account, retry_at)
            if rules.rate_limited_max_attempts is not None and attempt >= rules.rate_limited_max_attempts:
                return self._fail(row, reason, exc)
        else:
            if rules.max_attempts is not None and attempt >= rules.max_attempts:
                return self._fail(row, f"{reason} (gave up after {attempt} attempts)", exc)
            retry_at = now + rules.backoff(attempt) if rules.backoff is not None else row.next_attempt_at
        # A retry past the post's window stays planned: the daemon's pass at retry_at records it as expired.
        self.ledger.schedule_retry(row.id, reason, retry_at, now, token=self.token)
        self.emit("retry", id=row.id, account=row.account, attempt=attempt, at=retry_at, reason=reason)
        return Delivered(Outcome.RETRY, error=exc, retry_at=retry_at)

    def _unknown(self, row: Row, exc: AmplifierError, attempt: int) -> Delivered:
        """The attempt may have created the post: it stays claimed until reconciliation, at the next check
        (the reset time of a 429, else the backoff, which also gives a slow server time to finish)."""
        now = self.clock()
        check_at = now + self.retries.wait(attempt)
        if isinstance(exc, RateLimitedError) and exc.reset_at is not None and exc.reset_at > now:
            check_at = exc.reset_at
            self._block(row.account, check_at)
        self.ledger.mark_unknown(row.id, str(exc), now, check_at=check_at, token=self.token)
        self.emit("unknown", id=row.id, account=row.account, attempt=attempt, check=check_at, reason=str(exc))
        return Delivered(Outcome.UNKNOWN, error=exc, retry_at=check_at)

    def _fail(self, row: Row, reason: str, exc: AmplifierError) -> Delivered:
        self.ledger.mark_failed(row.id, reason, self.clock(), token=self.token)
        self.emit("failed", id=row.id, account=row.account, reason=reason)
        return Delivered(Outcome.FAILED, error=exc)
