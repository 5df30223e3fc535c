"""The ledger's records of what operators did, whatever stores them: account pauses, operator actions, gate
changes (``amplifier gate``) and edits (``amplifier correct``), with the checks every implementation applies
before storing one (:func:`check_gate_change`, :func:`check_edit`, :func:`check_finish`). Re-exported by
:mod:`.types`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from amplifier.redact import redact


@dataclass(frozen=True)
class AccountPause:
    """A paused account: why, since when, and who paused it (None: the daemon, after a credential problem)."""

    account: str
    reason: str
    paused_at: datetime
    by: str | None = None


@dataclass(frozen=True)
class OperatorAction:
    """One thing an operator did to the ledger (skip, cancel, retry, pause, resume): who, when, why, to what."""

    at: datetime
    by: str
    action: str
    target: str  # a post id, "rule R", "account A", ...
    reason: str | None
    posts: int  # how many posts it changed


@dataclass(frozen=True)
class GateChange:
    """An operator's change of a published post's reply / quote controls (``amplifier gate``): who, when, what,
    and how it went. ``replies``: the new reply rules in words (``nobody``, ``followers, mentioned``,
    ``everyone``), ``quotes``: the new quote policy (``public`` / ``followers`` / ``nobody``); None: unchanged.
    ``outcome``: ``done``, ``partial`` or ``failed``; ``detail``: what was written or why not (redacted)."""

    post_id: str
    account: str
    by: str
    at: datetime
    replies: str | None
    quotes: str | None
    outcome: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "post_id": self.post_id,
            "account": self.account,
            "by": self.by,
            "at": self.at.isoformat(),
            "replies": self.replies,
            "quotes": self.quotes,
            "outcome": self.outcome,
            "detail": self.detail,
        }


GATE_OUTCOMES = ("done", "partial", "failed")


def check_gate_change(change: GateChange) -> GateChange:
    """``change`` as every implementation stores it: a known outcome, an aware time, the detail redacted."""
    if change.outcome not in GATE_OUTCOMES:
        raise ValueError(f"a gate change's outcome is one of {', '.join(GATE_OUTCOMES)}")
    if change.at.tzinfo is None:
        raise ValueError("the time of a gate change must be aware")
    if not change.by.strip():
        raise ValueError("a gate change needs who made it")
    return replace(change, detail=redact(change.detail))


@dataclass(frozen=True)
class EditRecord:
    """An edit of a published post's part (``amplifier correct``): who, when, the text before and after, and how
    it went. ``outcome``: ``pending`` (recorded before the request), then ``edited`` or ``failed``; ``detail``:
    a changed content warning, or why it failed (redacted). ``id``: the ledger's (None before it is recorded);
    ``done_at``: when it was finished."""

    post_id: str
    part: int
    account: str
    by: str
    at: datetime
    old_text: str
    new_text: str
    outcome: str
    detail: str = ""
    id: int | None = None
    done_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "post_id": self.post_id,
            "part": self.part,
            "account": self.account,
            "by": self.by,
            "at": self.at.isoformat(),
            "old_text": self.old_text,
            "new_text": self.new_text,
            "outcome": self.outcome,
            "detail": self.detail,
            "done_at": None if self.done_at is None else self.done_at.isoformat(),
        }


EDIT_OUTCOMES = ("pending", "edited", "failed")


def check_edit(edit: EditRecord) -> EditRecord:
    """``edit`` as every implementation records it: pending, an aware time, who, the detail redacted."""
    if edit.outcome != "pending":
        raise ValueError("an edit is recorded with the outcome pending, then finished (edited or failed)")
    if edit.at.tzinfo is None:
        raise ValueError("the time of an edit must be aware")
    if not edit.by.strip():
        raise ValueError("an edit needs who made it")
    return replace(edit, detail=redact(edit.detail))


def check_finish(outcome: str, done_at: datetime) -> None:
    """A finished edit's outcome (edited or failed) and time (aware)."""
    if outcome not in EDIT_OUTCOMES[1:]:
        raise ValueError("an edit is finished with the outcome edited or failed")
    if done_at.tzinfo is None:
        raise ValueError("the time an edit was finished must be aware")
