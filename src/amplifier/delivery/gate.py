"""Changing who may reply to and quote a published post (``amplifier gate``), for when a pile-on starts.

One function, :func:`change_gates`: it reads the post from the ledger (it must be published, its account not
paused), and carries the change through the one delivery path (:class:`GateWrite`,
:mod:`amplifier.delivery.write`): the account's publisher changes the controls and the ledger records the change
(who, when, what, how it went) whether it worked or not. Its errors are classified as every write's; a 429 is
reported with the server's reset time and blocks the account in the rate limiter until then.

* Bluesky: the threadgate on the post's root (``replies``; ``everyone`` deletes it) and a postgate on each part
  (``quotes``: followers or nobody turn quoting off, everyone deletes the postgate).
* Mastodon: ``quote_approval_policy`` of each part (``PUT /api/v1/statuses/:id/interaction_policy``, Mastodon
  4.5+). Mastodon has no control over who may reply: a ``replies`` change is reported as not possible there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from amplifier.delivery.ledger import GateChange, Ledger, Row
from amplifier.delivery.outcomes import Attempt, Failure, Retries
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.write import Writer, part_ids, published_row
from amplifier.errors import AmplifierError, ExitCode
from amplifier.plan.gates import quotes_off
from amplifier.publish.base import PostRef, RateLimitedError

MASTODON_NO_REPLIES = (
    "Mastodon has no control over who may reply to a post: replies on Mastodon stay as they are (you can still "
    "mute or block accounts, or delete the post)"
)


class GateRefused(AmplifierError):
    """The post cannot have its controls changed (not published, account paused, nothing to change)."""

    exit_code = ExitCode.PUBLISH


@dataclass(frozen=True)
class GateRequest:
    """What to change: ``replies`` (rules, ``()`` = nobody; ``None`` = unchanged, or everyone with
    ``everyone_replies``) and ``quotes`` (public / followers / nobody; ``None`` = unchanged)."""

    replies: tuple[str, ...] | None = None
    everyone_replies: bool = False
    quotes: str | None = None

    def replies_text(self) -> str | None:
        if self.everyone_replies:
            return "everyone"
        if self.replies is None:
            return None
        return ", ".join(self.replies) or "nobody"


@dataclass(frozen=True)
class GateOutcome(PostRef):
    done: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {**self.ref_json(), "done": list(self.done), "notes": list(self.notes)}


@runtime_checkable
class SetsGates(Protocol):
    def set_gates(self, rkeys: Sequence[str], **change: Any) -> list[str]: ...


@runtime_checkable
class SetsQuotePolicy(Protocol):
    def set_quote_policy(self, status_ids: Sequence[str], policy: str) -> list[str]: ...


def created_at(now: datetime) -> str:
    instant = now.astimezone(UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def change_gates(
    ledger: Ledger,
    publisher: object,
    post_id: str,
    request: GateRequest,
    *,
    by: str,
    now: datetime,
    limiter: RateLimiter | None = None,
) -> GateOutcome:
    """Change the controls of published post ``post_id`` through ``publisher`` (its account's) and record it;
    the change goes through the delivery path (:class:`GateWrite`): a 429 blocks the account in ``limiter``
    until the server's reset."""
    row = published_row(ledger, post_id, GateRefused, "; only a published post has controls")
    ids = part_ids(ledger, row, GateRefused, "platform id")
    if not (
        (row.platform == "bluesky" and isinstance(publisher, SetsGates))
        or (row.platform == "mastodon" and isinstance(publisher, SetsQuotePolicy))
    ):
        raise GateRefused(f"{post_id}: {row.platform} posts have no reply or quote controls here")
    write = GateWrite(ledger, publisher, row, ids, request, by, now)
    return Writer(Retries(), clock=lambda: now, limiter=limiter).carry(write)


@dataclass
class GateWrite:
    """A change of a published post's controls as a :class:`~amplifier.delivery.write.Write`: one attempt (the
    operator runs ``gate`` again), recorded done, partial or failed (who, when, what, how it went) either way."""

    ledger: Ledger
    publisher: object
    row: Row
    ids: list[str]
    change: GateRequest
    by: str
    now: datetime
    notes: list[str] = field(default_factory=list)

    def begin(self, now: datetime) -> GateOutcome | None:
        return None

    def attempt(self) -> Attempt:
        return Attempt(self.row.account)

    def done_before(self) -> bool:
        return False  # a change is safe to repeat: the operator's next ``gate`` makes it again

    def request(self) -> list[str]:
        change, publisher = self.change, self.publisher
        if isinstance(publisher, SetsGates) and self.row.platform == "bluesky":
            return publisher.set_gates(
                self.ids,
                replies=change.replies,
                everyone_replies=change.everyone_replies,
                quotes_off=None if change.quotes is None else quotes_off(change.quotes),
                created_at=created_at(self.now),
            )
        assert isinstance(publisher, SetsQuotePolicy)  # change_gates checked it
        if change.replies is not None or change.everyone_replies:
            self.notes.append(MASTODON_NO_REPLIES)
        return [] if change.quotes is None else publisher.set_quote_policy(self.ids, change.quotes)

    def found(self) -> GateOutcome:
        raise AssertionError("a gate change is not looked for: it is made again")

    def done(self, answer: list[str]) -> GateOutcome:
        post_id, notes = self.row.id, self.notes
        if not answer:
            self.record("failed", "; ".join(notes) or "nothing to change")
            raise GateRefused(
                f"{post_id}: nothing was changed: {'; '.join(notes) or 'give --replies or --quotes'}"
            )
        self.record("done", "; ".join([*answer, *notes]))
        return GateOutcome(post_id, self.row.account, self.row.platform, tuple(answer), tuple(notes))

    def failed(self, failure: Failure) -> GateOutcome:
        reason, exc = failure.reason, failure.error
        if isinstance(exc, RateLimitedError) and exc.reset_at is not None:
            reason += f"; the server allows no more before {exc.reset_at:%Y-%m-%d %H:%M:%S} UTC"
        self.record("failed", reason)
        raise failure.raised

    def record(self, outcome: str, detail: str) -> None:
        change = self.change
        self.ledger.record_gate_change(
            GateChange(
                self.row.id,
                self.row.account,
                self.by,
                self.now,
                change.replies_text(),
                change.quotes,
                outcome,
                detail,
            )
        )
