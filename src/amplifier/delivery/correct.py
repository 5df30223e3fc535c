"""Correcting a published post from the edited campaign files (``amplifier correct``).

:func:`correct_post` re-renders the post (the caller plans it from the files as they are now) and compares each
part with what the server says the status is (its source text and content warning). A part that differs is edited
in place (Mastodon ``PUT /api/v1/statuses/:id``); the ledger records every edit: who, when, the text before and
after, and how it went.

Exactly once through a crash: the edit is recorded as ``pending`` (with the text the server had) BEFORE the request
and finished after it. A process killed between the request and the ledger write leaves a pending edit; the next
``correct`` of the post finds the server already showing the new text, finishes that same record (``edited``) and
sends nothing. An edit whose outcome is unknown (the answer was lost) stays pending the same way; any other
refusal finishes it as ``failed``.

Bluesky has no edits: a record changed in place is not shown as edited, and the replies and quotes that point at
its CID would point at a version that no longer exists. A correction there is a deletion and a new post:
``amplifier retract ID`` then ``amplifier send ID``; this module says so and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from amplifier.delivery.ledger import EditRecord, Ledger
from amplifier.delivery.outcomes import Attempt, Failure, Outcome, Retries
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.write import Writer, part_ids, published_row
from amplifier.errors import AmplifierError, ExitCode
from amplifier.plan.post import PlannedPost
from amplifier.publish.base import OutcomeUnknownError, PostRef

BLUESKY_NO_EDITS = (
    "Bluesky has no edits: a published post cannot be changed (an edited record would break the replies and "
    "quotes that point at it). To correct it, delete it and send the corrected text: `amplifier retract {id}`, "
    "then `amplifier send {id}`"
)


class CorrectRefused(AmplifierError):
    """The post cannot be corrected (not published, Bluesky, its account paused, a different thread length)."""

    exit_code = ExitCode.PUBLISH


@runtime_checkable
class EditsStatuses(Protocol):
    def status_source(self, status_id: str) -> tuple[str, str]: ...

    def edit_status(self, status_id: str, payload: Mapping[str, Any]) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class PartCorrection:
    """What happened to one part: ``edited``, ``unchanged``, ``would edit`` (a dry run) or ``edited before``
    (an earlier, interrupted correction had edited it; its record is finished now)."""

    index: int
    status_id: str
    outcome: str
    old_text: str
    new_text: str
    old_warning: str = ""
    new_warning: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.index,
            "status_id": self.status_id,
            "outcome": self.outcome,
            "old_text": self.old_text,
            "new_text": self.new_text,
            "old_content_warning": self.old_warning,
            "new_content_warning": self.new_warning,
        }


@dataclass(frozen=True)
class Correction(PostRef):
    dry_run: bool
    parts: tuple[PartCorrection, ...]

    @property
    def changed(self) -> bool:
        return any(part.outcome != "unchanged" for part in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {**self.ref_json(), "dry_run": self.dry_run, "parts": [part.to_json() for part in self.parts]}


def _warning_detail(old: str, new: str) -> str:
    return "" if old == new else f"content warning: {old!r} -> {new!r}"


def correct_post(
    ledger: Ledger,
    publisher: object,
    post: PlannedPost,
    *,
    by: str,
    now: Callable[[], datetime],
    dry_run: bool = False,
    after_request: Callable[[], None] = lambda: None,
    limiter: RateLimiter | None = None,
) -> Correction:
    """Edit the published ``post`` (planned from the files as they are now) where its parts differ from what the
    server shows; see the module docstring. Each edit goes through the delivery path (:class:`EditWrite`; a 429
    blocks the account in ``limiter`` until the server's reset). ``after_request``: called after each edit
    request, before the ledger records it (a test hook)."""
    row = published_row(
        ledger,
        post.id,
        CorrectRefused,
        ": nothing to correct (a planned post goes out with the files' text as they are when it is due)",
    )
    if row.platform == "bluesky":
        raise CorrectRefused(f"{post.id}: " + BLUESKY_NO_EDITS.format(id=post.id))
    ids = part_ids(ledger, row, CorrectRefused, "status id")
    if len(ids) != len(post.parts):
        raise CorrectRefused(
            f"{post.id}: the corrected text makes {len(post.parts)} part(s), the published thread has {len(ids)}: "
            f"an edit cannot change that; delete and send again (`amplifier retract {post.id}`, then "
            f"`amplifier send {post.id}`)"
        )
    if not isinstance(publisher, EditsStatuses):
        raise CorrectRefused(f"{post.id}: {row.platform} posts cannot be edited here")
    pending = [edit for edit in ledger.edits(post.id) if edit.outcome == "pending" and edit.id is not None]
    done: list[PartCorrection] = []
    for index, (status_id, part) in enumerate(zip(ids, post.parts, strict=True)):
        new_text = str(part.payload.get("status", ""))
        new_warning = str(part.payload.get("spoiler_text") or "")
        old_text, old_warning = publisher.status_source(status_id)
        found, again = _settle(
            ledger, [e for e in pending if e.part == index], old_text, new_text, now, dry_run
        )
        if (old_text, old_warning) == (new_text, new_warning):
            outcome, before = (
                ("edited before", found.old_text) if found is not None else ("unchanged", old_text)
            )
            done.append(PartCorrection(index, status_id, outcome, before, new_text, old_warning, new_warning))
            continue
        if dry_run:
            done.append(
                PartCorrection(index, status_id, "would edit", old_text, new_text, old_warning, new_warning)
            )
            continue
        detail = _warning_detail(old_warning, new_warning)
        record = EditRecord(post.id, index, row.account, by, now(), old_text, new_text, "pending", detail)
        edit = EditWrite(
            ledger, publisher, record, status_id, part.payload, new_warning, old_warning, again, now
        )
        edit.after_request = after_request
        done.append(Writer(Retries(), clock=now, limiter=limiter).carry(edit))
    return Correction(post.id, row.account, row.platform, dry_run, tuple(done))


def _settle(
    ledger: Ledger,
    pending: list[EditRecord],
    server_text: str,
    new_text: str,
    now: Callable[[], datetime],
    dry_run: bool,
) -> tuple[EditRecord | None, EditRecord | None]:
    """The pending edits of one part, left by an interrupted correction, against what the server shows: one whose
    text the server has went through (finished ``edited``: returned first); one with another text than both is
    replaced by this correction (finished ``failed``); one with this correction's text is tried again (returned
    second). A dry run changes nothing."""
    found = again = None
    for edit in pending:
        if edit.id is None:
            continue
        if edit.new_text == server_text:
            found = edit
            if not dry_run:
                ledger.finish_edit(edit.id, "edited", "found edited after an interrupted correction", now())
        elif edit.new_text != new_text:
            if not dry_run:
                ledger.finish_edit(
                    edit.id, "failed", "it did not reach the server; a later correction replaced it", now()
                )
        else:
            again = edit
    return found, again


@dataclass
class EditWrite:
    """One part's edit as a :class:`~amplifier.delivery.write.Write`: recorded ``pending`` before its request
    (or the pending record of an interrupted correction with this text, tried again), finished ``edited`` after
    it; one attempt: a refusal finishes it ``failed``, an unknown outcome leaves it pending (the next ``correct``
    compares the server's text first, :func:`_settle`), and the error is raised either way."""

    ledger: Ledger
    publisher: EditsStatuses
    record: EditRecord
    status_id: str
    payload: Mapping[str, Any]
    new_warning: str
    old_warning: str
    again: EditRecord | None
    now: Callable[[], datetime]
    after_request: Callable[[], None] = lambda: None
    edit_id: int = 0

    @property
    def detail(self) -> str:
        return self.record.detail

    def begin(self, now: datetime) -> PartCorrection | None:
        if self.again is not None and self.again.id is not None:
            self.edit_id = self.again.id
        else:
            self.edit_id = self.ledger.begin_edit(self.record)
        return None

    def attempt(self) -> Attempt:
        # not unknown: the server's text was compared first (a pending edit it shows is settled before)
        return Attempt(self.record.account, unsure=(OutcomeUnknownError,))

    def done_before(self) -> bool:
        return False  # see attempt()

    def request(self) -> Mapping[str, Any]:
        return self.publisher.edit_status(self.status_id, self.payload)

    def found(self) -> PartCorrection:
        raise AssertionError("an edit's server text is compared before it begins")

    def done(self, answer: Mapping[str, Any]) -> PartCorrection:
        self.after_request()
        self.ledger.finish_edit(self.edit_id, "edited", self.detail, self.now())
        edit = self.record
        return PartCorrection(
            edit.part,
            self.status_id,
            "edited",
            edit.old_text,
            edit.new_text,
            self.old_warning,
            self.new_warning,
        )

    def failed(self, failure: Failure) -> PartCorrection:
        if failure.outcome is not Outcome.UNKNOWN:  # unknown: stays pending, the next correct looks first
            reason = "; ".join(x for x in (self.detail, failure.reason) if x)
            self.ledger.finish_edit(self.edit_id, "failed", reason, self.now())
        raise failure.raised
