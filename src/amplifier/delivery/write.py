"""The one delivery path for every write: claim -> (check) -> request -> classify -> record.

A post (:mod:`amplifier.delivery.deliver`), a follow-up job (boost, pin, delete: :mod:`amplifier.delivery.followups`),
a change of a post's reply and quote controls (:mod:`amplifier.delivery.gate`) and an edit
(:mod:`amplifier.delivery.correct`) are each a :class:`Write`: it says only what is its own (how it claims or
begins its record, whether the server already shows it done, the request, and how its record looks after). One
:class:`Writer` carries any of them:

1. :meth:`Write.begin` claims it (or records it as begun, before the request); an answer there ends it without a
   request (another claimant has it, the caller is stopping, a post searched for instead);
2. when an earlier attempt's outcome is unknown (its :class:`~amplifier.delivery.outcomes.Attempt`),
   :meth:`Write.done_before` asks the server first: found done, nothing is sent again (:meth:`Write.found`
   records it);
3. :meth:`Write.request` makes the request; :meth:`Write.done` records what it did;
4. an error is classified in one place (:func:`~amplifier.delivery.outcomes.classify`: released or paused,
   failed, unknown, a retry at the server's reset or after the backoff), the account is blocked in the rate limiter
   until a server-given reset, and :meth:`Write.failed` records it.

The callers decide only *when* (the daemon), *which* (``send``, ``gate``, ``correct``, ``retract``) and in what
order; none of them classifies an error or blocks the limiter itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeVar

from amplifier.clock import Clock, utcnow
from amplifier.delivery.ledger import Ledger, Row, State
from amplifier.delivery.outcomes import Attempt, Failure, Retries, classify
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.errors import AmplifierError

R = TypeVar("R")
T_co = TypeVar("T_co", covariant=True)
Refused = type[AmplifierError]
__all__ = ["Attempt", "Failure", "Refused", "Write", "Writer", "part_ids", "published_row"]


class Write(Protocol[R, T_co]):
    """One write to a platform, as the path carries it; ``R`` is what its request answers, ``T_co`` what it ends
    with (the caller's result)."""

    def begin(self, now: datetime) -> T_co | None:
        """Claim the write (or record it begun); an answer ends it here, before any request."""
        ...

    def attempt(self) -> Attempt:
        """This attempt (asked after :meth:`begin`: a claim may tell more)."""
        ...

    def done_before(self) -> bool:
        """Whether the server already shows it done (asked only when the :class:`Attempt` is ``unknown``)."""
        ...

    def request(self) -> R:
        """Make the request (raising the publishers' classified errors)."""
        ...

    def found(self) -> T_co:
        """Record it done: the server was found showing it done (nothing was sent again)."""
        ...

    def done(self, answer: R) -> T_co:
        """Record it done, with the request's ``answer``."""
        ...

    def failed(self, failure: Failure) -> T_co:
        """Record what the failed attempt means (its outcome, reason and next time)."""
        ...


class Writer:
    """Carries any :class:`Write` (see the module docstring) under the caller's ``retries``; ``limiter``: where a
    server-given reset blocks the account (None: nowhere)."""

    def __init__(
        self, retries: Retries, *, clock: Clock = utcnow, limiter: RateLimiter | None = None
    ) -> None:
        self.retries = retries
        self.clock = clock
        self.limiter = limiter

    def carry(self, write: Write[R, T_co]) -> T_co:
        """Carry ``write`` through (see the module docstring); what it ends with."""
        ended = write.begin(self.clock())
        if ended is not None:
            return ended
        attempt = write.attempt()
        try:
            found = attempt.unknown and write.done_before()
            if not found:
                answer = write.request()
        except Exception as exc:  # classified; an exception nobody classified may have gone out
            failure = classify(exc, attempt, now=self.clock(), retries=self.retries)
            if failure.block_until is not None and self.limiter is not None:
                self.limiter.block(attempt.account, failure.block_until)
            return write.failed(failure)
        return write.found() if found else write.done(answer)


# ---------------------------------------------------------------------------------- writes on a published post


def published_row(ledger: Ledger, post_id: str, refused: Refused, why_not: str) -> Row:
    """The ledger's row of published post ``post_id``; ``refused`` (``why_not`` said after its state) if it is
    not published."""
    row = ledger.get(post_id)
    if row.state is not State.PUBLISHED or not row.result:
        raise refused(f"{post_id}: it is {row.state.value}, not published{why_not}")
    return row


def part_ids(ledger: Ledger, row: Row, refused: Refused, what: str) -> list[str]:
    """The platform ids (``what``) of the published ``row``'s parts; ``refused`` when its account is paused or a
    part has none (a dry run's)."""
    paused = ledger.paused_accounts().get(row.account)
    if paused is not None:
        raise refused(f"{row.id}: the account {row.account} is paused ({paused}); resume it first")
    ids = [str(part.get("id") or "") for part in row.result or ()]
    if not all(ids):
        raise refused(f"{row.id}: the ledger has no {what} for every part (a dry run?)")
    return ids
