"""The one delivery path: a due post through claim -> publish -> outcome -> ledger.

:class:`Delivery` is what every post goes through: the daemon (which decides *when* and *in what order*) and
``amplifier send`` (which decides *which*). A post is one :class:`~amplifier.delivery.write.Write` (:class:`PostWrite`)
carried by the :class:`~amplifier.delivery.write.Writer` that carries every other write too. For one post it:

1. claims it in the ledger (another claimant, a pause: nothing is sent);
2. if its outcome is unknown and a re-send under the Idempotency-Key is no longer safe (or its window closed):
   searches the platform first (:meth:`Delivery.reconcile`), and sends nothing;
3. publishes it (a thread resumes after the parts the ledger recorded); a post that quotes another waits,
   unclaimed, until the quoted post is published (:mod:`amplifier.delivery.quoting`);
4. records the outcome, as the error classes say (:mod:`amplifier.publish.base`; the one classification is
   :func:`amplifier.delivery.outcomes.classify`):

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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from amplifier.clock import Clock, utcnow
from amplifier.delivery.followups import plan_after_publish
from amplifier.delivery.ledger import Ledger, LedgerError, Row, State
from amplifier.delivery.outcomes import (
    Attempt,
    Delivered,
    Emit,
    Failure,
    Outcome,
    Retries,
    UnexpectedPublishError,
    silent,
)
from amplifier.delivery.quoting import QUOTE_WAIT, QuoteReady, quote_ready
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.reconcile import (
    Reconciled,
    needs_search,
    part_results,
    recheck_at,
    reconcile_row,
    resend_is_safe,
    unknown_since,
)
from amplifier.delivery.write import Writer
from amplifier.errors import AmplifierError
from amplifier.plan.post import PlannedPost
from amplifier.publish.base import Publisher, PublishResult


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
        emit: Emit = silent,
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

    @property
    def writer(self) -> Writer:
        """The path every write goes through, under this caller's rules, clock and limiter."""
        return Writer(self.retries, clock=self.clock, limiter=self.limiter)

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
        ready = self._quote(post)
        if ready.waiting_for is not None:
            self.emit("waiting", id=row.id, account=row.account, quote=ready.waiting_for)
            return Delivered(Outcome.WAITING, error=ready.error(), retry_at=now + QUOTE_WAIT)
        return self.writer.carry(PostWrite(self, row, ready.post, search=search))

    def _quote(self, post: PlannedPost) -> QuoteReady:
        """``post`` with its quote filled from the ledger (:mod:`amplifier.delivery.quoting`), or the wait."""
        ready = quote_ready(self.ledger, post)
        if ready.dropped is not None:
            self.emit("quote-dropped", id=post.id, account=post.account, reason=ready.dropped)
        return ready

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
            post = self._quote(post).post  # the quoted post was out before this one could be sent
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
            blocked = self.limiter.blocked_until(row.account, now) if self.limiter is not None else None
            since = unknown_since(row)
            check_at = recheck_at(
                since, now, shortest=self.retries.recheck_min, longest=self.retries.recheck_max
            )
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
            if outcome.blocked_until is not None and self.limiter is not None:
                self.limiter.block(row.account, outcome.blocked_until)
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


@dataclass
class PostWrite:
    """A due post as a :class:`~amplifier.delivery.write.Write` of ``path`` (see the module docstring): its claim,
    its request (the thread, resumed after the parts the ledger has), and its records."""

    path: Delivery
    row: Row
    post: PlannedPost
    search: bool = False

    def attempt(self) -> Attempt:
        from amplifier.publish.mastodon import StatusOutcomeUnknown  # a Bluesky write is safe to repeat

        row = self.row
        unsure = (StatusOutcomeUnknown,)
        return Attempt(row.account, row.attempts + 1, needs_search(row), unsure, row.next_attempt_at)

    def begin(self, now: datetime) -> Delivered | None:
        path, row = self.path, self.row
        if not path.ledger.claim(row.id, now, path.token, lease_until=path.lease_until(now)):
            return Delivered(Outcome.NOT_CLAIMED)
        if self.search:
            found = path.reconcile(path.ledger.get(row.id), self.post, now, resend_now=False, wait=False)
            outcome = Outcome.PUBLISHED if found.outcome == "published" else Outcome.SEARCHED
            return Delivered(outcome, reconciled=found)
        if path.stopping():
            path.ledger.release(row.id, now, token=path.token)
            return Delivered(Outcome.RELEASED)
        return None

    def done_before(self) -> bool:
        """False: a re-send under the post's Idempotency-Key is the check (when it is no longer safe, the post is
        searched for instead: :meth:`begin` with ``search``)."""
        return False

    def request(self) -> PublishResult:
        publisher = self.path.publishers(self.row.account)
        return publisher.publish(self.post, resume=part_results(self.row.parts) or None)

    def found(self) -> Delivered:  # never asked: see done_before
        raise AssertionError("a post is searched for, not checked")

    def done(self, answer: PublishResult) -> Delivered:
        path, row = self.path, self.row
        path.after_request()
        now = path.clock()
        fresh = sum(1 for part in answer.parts if not part.existed and part.index not in row.parts)
        if path.limiter is not None:
            path.limiter.record(row.account, row.platform, fresh, now)
        path.ledger.mark_published(row.id, [part.to_json() for part in answer.parts], now, token=path.token)
        late = now - row.due_at
        path.emit(
            "posted",
            id=row.id,
            account=row.account,
            url=answer.url or (answer.parts[0].uri if answer.parts else None),
            parts=len(answer.parts),
            late=f"{late.total_seconds():.0f}s" if late > timedelta(seconds=60) else None,
            dry_run=True if answer.dry_run else None,
            already_published=True if answer.already_published else None,
        )
        if (
            self.post.followups
        ):  # boosts, pin, delete_after (a dry run's ledger is a copy: they say what they'd do)
            plan_after_publish(path.ledger, self.post, path.clock(), path.emit)
        return Delivered(Outcome.PUBLISHED, result=answer)

    def failed(self, failure: Failure) -> Delivered:
        path, row, exc = self.path, self.row, failure.error
        self._record_done(exc)
        now, reason, token = path.clock(), failure.reason, path.token
        if failure.outcome in (Outcome.RELEASED, Outcome.PAUSED):
            path.ledger.release(row.id, now, token=token)
            if failure.outcome is Outcome.PAUSED:
                path.ledger.pause_account(row.account, reason, now)
                path.emit("paused", account=row.account, reason=reason)
            return Delivered(failure.outcome, error=exc)
        if failure.outcome is Outcome.FAILED:
            path.ledger.mark_failed(row.id, reason, now, token=token)
            path.emit("failed", id=row.id, account=row.account, reason=reason)
            return Delivered(Outcome.FAILED, error=exc)
        at, attempt = failure.at, failure.attempt
        if failure.outcome is Outcome.UNKNOWN:  # it stays claimed until reconciliation, at its next check
            path.ledger.mark_unknown(row.id, reason, now, check_at=at, token=token)
            path.emit("unknown", id=row.id, account=row.account, attempt=attempt, check=at, reason=reason)
            return Delivered(Outcome.UNKNOWN, error=exc, retry_at=at)
        # A retry past the post's window stays planned: the daemon's pass at retry_at records it as expired.
        path.ledger.schedule_retry(row.id, reason, at, now, token=token)
        path.emit("retry", id=row.id, account=row.account, attempt=attempt, at=at, reason=reason)
        return Delivered(Outcome.RETRY, error=exc, retry_at=at)

    def _record_done(self, exc: AmplifierError) -> None:
        """The parts of a thread that went out before ``exc``: recorded, and counted in the rate budget."""
        path, row = self.path, self.row
        done = getattr(exc, "done", None) or {}
        now = path.clock()
        for index, part in sorted(done.items()):
            if index in row.parts:
                continue
            try:
                path.ledger.record_part(row.id, index, part.to_json(), now, token=path.token)
            except LedgerError as error:
                path.emit("error", id=row.id, account=row.account, reason=str(error))
        fresh = sum(1 for index, part in done.items() if index not in row.parts and not part.existed)
        if fresh and path.limiter is not None:
            path.limiter.record(row.account, row.platform, fresh, now)


__all__ = ["Delivered", "Delivery", "Emit", "Outcome", "PostWrite", "Retries", "UnexpectedPublishError"]
