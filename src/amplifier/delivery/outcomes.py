"""What a failed write means, in one place: :func:`classify` turns the error of any write (a post, a follow-up
job, a gate change, an edit; :mod:`amplifier.delivery.write` carries them all) into a :class:`Failure` as its
class says: released or paused (credentials), failed (permanent), unknown (the request may have gone out), or a
retry at the server's reset or after the backoff, with the account's block in the rate limiter. Also what the
post path gives back (:class:`Outcome`, :class:`Delivered`) and the caller's :class:`Retries`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from amplifier.delivery.reconcile import RECHECK_MAX, RECHECK_MIN, Reconciled
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
        self.original = exc


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


@dataclass(frozen=True)
class Attempt:
    """What the classification of a failure needs to know of a write's attempt.

    ``number``: which attempt (1: the first). ``unknown``: an earlier attempt's outcome is unknown (the server is
    asked first, and a fault keeps it unknown). ``unsure``: the errors after which this write's request may have
    reached the server. ``own_time``: the write's own next attempt time, kept by a retry when the caller's rules
    have no backoff."""

    account: str
    number: int = 1
    unknown: bool = False
    unsure: tuple[type[BaseException], ...] = ()
    own_time: datetime | None = None


@dataclass(frozen=True)
class Failure:
    """What one failed attempt of a write means (:func:`classify`); the write records it its own way.

    ``at``: RETRY, when to try again; UNKNOWN, when to check the server; RELEASED / PAUSED, when a write that keeps
    no time of its own may look again (the backoff); FAILED, now. ``counts``: whether the attempt counts towards
    ``max_attempts`` (a 429 counts only where ``rate_limited_max_attempts`` is set). ``block_until``: the
    server-given block of the account, for the rate limiter. ``raised``: what was raised (``error`` wraps an
    exception that is not an :class:`AmplifierError`)."""

    outcome: Outcome  # RETRY, UNKNOWN, FAILED, PAUSED or RELEASED
    error: AmplifierError
    reason: str
    attempt: int
    at: datetime
    raised: BaseException
    counts: bool = True
    block_until: datetime | None = None


def classify(exc: BaseException, of: Attempt, *, now: datetime, retries: Retries) -> Failure:
    """What the attempt ``of`` a write failing with ``exc`` at ``now`` means, as its class says.

    After an unknown outcome (``of.unknown``) any fault but a refusal leaves it unknown; ``of.unsure`` are the
    write's error classes after which its request may have reached the server (an exception that is not an
    :class:`AmplifierError` always is one); ``of.own_time`` is kept when ``retries`` has no backoff."""
    from amplifier.publish.sessions import LoginRefusedError

    attempt, unknown, unsure, own_time = of.number, of.unknown, of.unsure, of.own_time

    error = exc if isinstance(exc, AmplifierError) else UnexpectedPublishError(exc)
    reason = str(error)
    backoff_at = now + retries.wait(attempt)

    def failure(
        outcome: Outcome,
        at: datetime,
        *,
        why: str = reason,
        counts: bool = True,
        block_until: datetime | None = None,
    ) -> Failure:
        return Failure(outcome, error, why, attempt, at, exc, counts=counts, block_until=block_until)

    if isinstance(error, AuthError | CredentialsError) and not isinstance(error, LoginRefusedError):
        return failure(Outcome.PAUSED if retries.pause_account else Outcome.RELEASED, backoff_at)
    if isinstance(error, PermanentError):
        return failure(Outcome.FAILED, now)
    limit = retries.rate_limited_max_attempts
    if unknown or isinstance(error, (UnexpectedPublishError, *unsure)):
        if isinstance(error, RateLimitedError) and error.reset_at is not None and error.reset_at > now:
            return failure(
                Outcome.UNKNOWN, error.reset_at, counts=limit is not None, block_until=error.reset_at
            )
        return failure(Outcome.UNKNOWN, backoff_at)
    if isinstance(error, RateLimitedError | LoginRefusedError):
        reset = error.reset_at if isinstance(error, RateLimitedError) else error.retry_at
        if retries.backoff is None:  # the write's own time, unless the server said later
            at = max(own_time or now, reset or now)
        elif reset is not None and reset > now:
            at = reset
        else:
            at = now + retries.backoff(attempt)
        if limit is not None and attempt >= limit:
            return failure(Outcome.FAILED, now, block_until=at)
        return failure(Outcome.RETRY, at, counts=limit is not None, block_until=at)
    if retries.max_attempts is not None and attempt >= retries.max_attempts:
        return failure(Outcome.FAILED, now, why=f"{reason} (gave up after {attempt} attempts)")
    return failure(Outcome.RETRY, backoff_at if retries.backoff is not None else own_time or now)
