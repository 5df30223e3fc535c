"""What the ledger keeps of follow-up writes on published posts (boost / unboost, pin / unpin, delete).

One row of the ``followups`` table per job, its identity the post, the kind and the writing account (the
primary key: a job planned twice is one job). A job goes

    planned --claim--> claimed --write, outcome--> done | failed | skipped
                  ^         |
                  +---------+ released (a 429, a fault, an unknown outcome): planned again, not before ``next_at``

like a post: the claim is committed before the platform write, with a token and a lease. A claim whose lease ran
out (its holder crashed between the request and the ledger write) is taken over by the next claimant with
``unknown`` set, so it reads the server before it writes again (:meth:`FollowupWriter.is_done`).

A retraction (``amplifier retract``, or a ``delete_after`` job coming due) is :meth:`LedgerFollowups.retract`,
one transaction: the post's pending boosts and pins are skipped (reason ``retracted``), the boosts and the pin
already made get ``unboost`` / ``unpin`` jobs, and the ``delete`` job records who asked, when and why. A post
whose ``delete`` job is done is *retracted* (:meth:`LedgerFollowups.retractions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

FollowupState = Literal["planned", "claimed", "done", "failed", "skipped"]
FOLLOWUP_STATES: tuple[FollowupState, ...] = ("planned", "claimed", "done", "failed", "skipped")
FINISHED: tuple[FollowupState, ...] = ("done", "failed", "skipped")
RETRACTED = "retracted"  # the reason of a job skipped because its post was retracted


@dataclass(frozen=True)
class Retraction:
    """A post retracted (or being retracted): who asked, when, why; ``done_at`` once every part is deleted."""

    post_id: str
    by: str
    at: datetime
    reason: str
    state: FollowupState
    done_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "post_id": self.post_id,
            "by": self.by,
            "at": self.at.isoformat(),
            "reason": self.reason,
            "state": self.state,
            "done_at": None if self.done_at is None else self.done_at.isoformat(),
        }


@dataclass(frozen=True)
class FollowupJob:
    """One follow-up write: ``kind`` by ``account`` on post ``post_id``, due at ``due_at``."""

    post_id: str
    kind: str
    account: str
    platform: str
    due_at: datetime
    state: FollowupState = "planned"
    reason: str | None = None  # why it was asked for (a retraction's reason)
    detail: str | None = None  # what it did, or why it failed, waits or was skipped
    attempts: int = 0
    unknown: bool = False  # the last attempt's outcome is unknown: read the server before writing again
    next_at: datetime | None = None  # not tried again before
    result: dict[str, Any] | None = None  # where the write went (a reblog's id, a repost's uri...)
    by: str | None = None  # who asked (a retraction's operator; the daemon: None)
    requested_at: datetime | None = None
    updated_at: datetime | None = None
    token: str | None = None
    lease_until: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.post_id, self.kind, self.account)

    @property
    def key_text(self) -> str:
        return f"{self.post_id} {self.kind} by {self.account}"

    def to_json(self) -> dict[str, Any]:
        return {
            "post_id": self.post_id,
            "kind": self.kind,
            "account": self.account,
            "platform": self.platform,
            "due_at": self.due_at.isoformat(),
            "state": self.state,
            "reason": self.reason,
            "detail": self.detail,
            "attempts": self.attempts,
            "unknown": self.unknown,
            "result": self.result,
            "by": self.by,
        }


class FollowupClaimLost(Exception):
    """The job is not (any more) held with this token: another process took it over."""


class LedgerFollowups(Protocol):
    """The follow-up operations of the ledger (each one transaction)."""

    def plan_followups(self, jobs: Iterable[FollowupJob]) -> int:
        """Add the jobs not there yet (a job already planned, whatever its state, is left as it is); how many
        were added. :class:`~.types.UnknownPost` when a post is not in the ledger."""
        ...

    def followups_due(self, now: datetime, limit: int = 100) -> list[FollowupJob]:
        """Planned jobs due at ``now`` (and past their ``next_at``), and claimed jobs whose lease ran out, by due
        time; one indexed query."""
        ...

    def claim_followup(
        self, key: tuple[str, str, str], token: str, now: datetime, lease_until: datetime
    ) -> FollowupJob | None:
        """Planned (or claimed with its lease run out: then ``unknown``) -> claimed by ``token``; the job as
        claimed, or None when it is not claimable (done, held by another, not due)."""
        ...

    def finish_followup(
        self,
        key: tuple[str, str, str],
        token: str,
        state: FollowupState,
        detail: str,
        now: datetime,
        result: dict[str, Any] | None = None,
    ) -> None:
        """Claimed -> done / failed / skipped. :class:`FollowupClaimLost` when ``token`` does not hold it."""
        ...

    def release_followup(
        self,
        key: tuple[str, str, str],
        token: str,
        now: datetime,
        *,
        next_at: datetime,
        detail: str,
        unknown: bool,
        attempt: bool = True,
    ) -> FollowupJob:
        """Claimed -> planned, not before ``next_at`` (``attempt``: one more attempt counted). The job as it is
        now. :class:`FollowupClaimLost` when ``token`` does not hold it."""
        ...

    def followups(self, post_ids: Sequence[str]) -> list[FollowupJob]:
        """Every job of the posts, by post, due time, kind, account."""
        ...

    def followups_done_since(self, kind: str, since: datetime) -> list[FollowupJob]:
        """The jobs of ``kind`` done at or after ``since`` (a rate budget seeded from the ledger), by time."""
        ...

    def retract(self, post_id: str, *, by: str, reason: str, now: datetime) -> list[FollowupJob]:
        """Plan the retraction of published post ``post_id`` (see the module docstring); the jobs it leaves to
        run (the ``delete`` and the undoing of boosts and pin), due at ``now``. Doing it again changes nothing
        (a delete job already done stays done). :class:`~.types.UnknownPost`; :class:`~.types.IllegalTransition`
        when the post is not published."""
        ...

    def retractions(self, post_ids: Sequence[str] | None = None) -> dict[str, Retraction]:
        """The retractions asked for (of ``post_ids``, or all), by post id."""
        ...

    def export_followups(self) -> Iterable[FollowupJob]:
        """Every job (to move a ledger), by post, kind, account."""
        ...
