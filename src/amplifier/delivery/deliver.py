"""The one delivery path: a due post through claim -> publish -> outcome -> ledger.

:class:`Delivery` is what every write to a platform goes through: the daemon (which decides *when* and *in what
order*) and ``amplifier send`` (which decides *which*). For one post it:

1. claims it in the ledger (another claimant, a pause: nothing is sent);
2. if its outcome is unknown and a re-send under the Idempotency-Key is no longer safe (or its window closed):
   searches the platform first (:meth:`Delivery.reconcile`), and sends nothing;
3. publishes it (a thread resumes after the parts the ledger recorded);
4. records the outcome, as the error classes say (:mod:`amplifier.publish.base`):

   * published: every part's result, the rate budget used;
   * rejected credentials (:class:`AuthError`, a missing secret): released, and the account paused when the
     caller's :class:`Retries` say so (the daemon: ``amplifier resume --account ID`` after fixing it);
   * permanent (400/422): failed, with the reason;
   * outcome unknown (:class:`~amplifier.publish.mastodon.StatusOutcomeUnknown`, any non-permanent error
     while re-sending a post whose outcome is still unknown, and ANY exception that is not an
     :class:`AmplifierError`: the request may have reached the server): the post stays claimed
     (:meth:`~amplifier.delivery.ledger.Ledger.mark_unknown`), the attempt counts, and reconciliation looks
     at it at its next check (the backoff, or a 429's reset): never an immediate re-send;
   * 429 and a refused login: retried at the reset time the server gave; the account is blocked in the rate
     limiter until then;
   * transient (5xx, network): retried after the backoff; after ``max_attempts`` attempts, failed.

Reconciliation (:meth:`Delivery.reconcile`, :func:`amplifier.delivery.reconcile.reconcile_row`) is part of the
path: a lookup never goes out while its account is blocked by a server-given reset, and a 429 from a lookup
blocks the account until its reset like any other.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from amplifier.clock import Clock, utcnow
from amplifier.delivery.followups import plan_after_publish
from amplifier.delivery.ledger import Ledger, LedgerError, Row, State
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.reconcile import (
    RECHECK_MAX,
    RECHECK_MIN,
    Reconciled,
    needs_search,
    part_results,
    recheck_at,
    reconcile_row,
    resend_is_safe,
    unknown_since,
)
from amplifier.errors import AmplifierError, CredentialsError
from amplifier.plan.post import PlannedPost
from amplifier.publish.base import (
    AuthError,
    PermanentError,
    Publisher,
    PublishResult,
    RateLimitedError,
    TransientError,
)


class Emit(Protocol):
    """Where the path reports what it did: one event with safe fields (see ``EventLog.emit``)."""

    def __call__(self, event: str, **fields: Any) -> None: ...


def _silent(event: str, **fields: Any) -> None:
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


class Delivery:
    """Carries due posts through claim -> publish -> outcome -> ledger; see the module docstring.

    ``publishers(account)`` gives the account's publisher (raising an :class:`AmplifierError` when it cannot
    be made). ``limiter``: the rate limiter to record uses and server-given blocks in (None: none).
    ``stopping()``: whether the caller is shutting down (a post claimed then is released unsent).
    ``after_request()``: called after each successful publish, before the ledger records it (a test hook).
    ``lease``: how long a claim of this caller stays its own without an extension (None: claims without a
    lease; see :meth:`~amplifier.delivery.ledger.Ledger.extend_lease`)."""

    def __init__(
        self,
        ledger: Ledger,
        publishers: Callable[[str], Publisher],
        *,
        token: str,
        retries: Retries,
        clock: Clock = utcnow,
        limiter: RateLimiter | None = None,
        emit: Emit = _silent,
        stopping: Callable[[], bool] = lambda: False,
        after_request: Callable[[], None] = lambda: None,
        lease: timedelta | None = None,
    ) -> None:
        self.ledger = ledger
        self.publishers = publishers
        self.token = token
        self.retries = retries
        self.clock = clock
        self.limiter = limiter
        self.emit = emit
        self.stopping = stopping
        self.after_request = after_request
        self.lease = lease

    def lease_until(self, now: datetime) -> datetime | None:
        """Until when a claim taken (or extended) at ``now`` is this caller's."""
        return None if self.lease is None else now + self.lease

    # ------------------------------------------------------------------------------------------ deciding

    def must_search(self, row: Row, now: datetime, deadline: datetime | None = None) -> bool:
        """Whether ``row`` may only go out after a search of the platform: its outcome is unknown, and a
        re-send under the same key is no longer safe at ``now`` (or its window, up to ``deadline``, closed)."""
        if not needs_search(row):
            return False
        in_window = deadline is None or now <= deadline
        return not (in_window and resend_is_safe(unknown_since(row), now))

    # ------------------------------------------------------------------------------------------ delivering

    def deliver(self, row: Row, post: PlannedPost, *, search: bool = False) -> Delivered:
        """Claim ``row`` and publish ``post`` (or, with ``search``, only search the platform for it)."""
        now = self.clock()
        if not self.ledger.claim(row.id, now, self.token, lease_until=self.lease_until(now)):
            return Delivered(Outcome.NOT_CLAIMED)
        if search:
            found = self.reconcile(self.ledger.get(row.id), post, now, resend_now=False, wait=False)
            outcome = Outcome.PUBLISHED if found.outcome == "published" else Outcome.SEARCHED
            return Delivered(outcome, reconciled=found)
        if self.stopping():
            self.ledger.release(row.id, now, token=self.token)
            return Delivered(Outcome.RELEASED)
        try:
            publisher = self.publishers(row.account)
            result = publisher.publish(post, resume=part_results(row.parts) or None)
        except AmplifierError as exc:
            return self._failed(row, exc)
        except Exception as exc:  # an SDK or HTTP exception nobody classified: it may have gone out
            return self._failed(row, UnexpectedPublishError(exc))
        self.after_request()
        delivered = self._published(row, result)
        if (
            post.followups
        ):  # boosts, pin, delete_after (a dry run's ledger is a copy: they say what they would do)
            plan_after_publish(self.ledger, post, self.clock(), self.emit)
        return delivered

    def _published(self, row: Row, result: PublishResult) -> Delivered:
        now = self.clock()
        fresh = sum(1 for part in result.parts if not part.existed and part.index not in row.parts)
        if self.limiter is not None:
            self.limiter.record(row.account, row.platform, fresh, now)
        self.ledger.mark_published(row.id, [part.to_json() for part in result.parts], now, token=self.token)
        late = now - row.due_at
        self.emit(
            "posted",
            id=row.id,
            account=row.account,
            url=result.url or (result.parts[0].uri if result.parts else None),
            parts=len(result.parts),
            late=f"{late.total_seconds():.0f}s" if late > timedelta(seconds=60) else None,
            dry_run=True if result.dry_run else None,
            already_published=True if result.already_published else None,
        )
        return Delivered(Outcome.PUBLISHED, result=result)

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

    # ------------------------------------------------------------------------------------------ reconciling

    def reconcile(
        self,
        row: Row,
        post: PlannedPost | None,
        now: datetime,
        *,
        resend_now: bool | None = None,
        wait: bool = True,
    ) -> Reconciled:
        """Resolve a claimed ``row`` with the platform (:func:`~amplifier.delivery.reconcile.reconcile_row`);
        never raises for a platform failure, whatever its class: the row stays unknown, checked again later.
        A lookup is not sent while the account is blocked by a server-given reset; a 429 blocks it."""
        outcome: Reconciled | None = None
        publisher = None
        if post is not None:
            try:
                publisher = self.publishers(row.account)
            except Exception as exc:  # a missing secret, a login that failed: looked at again next time
                text = str(exc) if isinstance(exc, AmplifierError) else f"{type(exc).__name__}: {exc}"
                outcome = Reconciled(row.id, row.account, "unknown", f"no publisher: {text}")
        if outcome is None and row.state == State.CLAIMED and row.claim_token != self.token:
            # Fencing: the claim becomes ours first (a compare-and-swap on its token), so its old holder, if
            # it was only paused or cut off, can record nothing over what we find.
            try:
                taken = row.claim_token is not None and self.ledger.take_over(
                    row.id, row.claim_token, self.token, now, lease_until=self.lease_until(now)
                )
                row = self.ledger.get(row.id) if taken else row
            except LedgerError as exc:
                taken, outcome = False, Reconciled(row.id, row.account, "unknown", str(exc))
            if not taken and outcome is None:
                outcome = Reconciled(row.id, row.account, "unknown", "taken over by another process")
        if outcome is None and row.state == State.CLAIMED:
            since = unknown_since(row)
            check_at = recheck_at(
                since, now, shortest=self.retries.recheck_min, longest=self.retries.recheck_max
            )
            blocked = self.limiter.blocked_until(row.account, now) if self.limiter is not None else None
            try:
                outcome = reconcile_row(
                    self.ledger,
                    row,
                    post,
                    publisher,
                    now,
                    resend_now=resend_now,
                    check_at=check_at,
                    wait=wait,
                    blocked_until=blocked,
                )
            except LedgerError as exc:
                outcome = Reconciled(row.id, row.account, "unknown", str(exc))
            if outcome.blocked_until is not None:
                self._block(row.account, outcome.blocked_until)
        if outcome is None:
            outcome = Reconciled(row.id, row.account, row.state.value, "not claimed any more")
        self.emit(
            "reconcile",
            id=row.id,
            account=row.account,
            outcome=outcome.outcome,
            detail=outcome.detail,
            url=outcome.url,
        )
        return outcome
