"""The ledger's interface: what delivery, the daemon and the CLI may ask of a ledger, whatever stores it.

The delivery ledger makes publishing exactly-once. Every planned post (or thread) has one row, keyed by its
stable id. Its life::

    planned --claim--> claimed --mark_published--> published
       ^                  |  --mark_failed-------> failed     (reason)
       |                  |  --mark_expired------> expired    (reason; also straight from planned)
       +--schedule_retry--+  --mark_skipped------> skipped    (reason; also straight from planned)
       +--release---------+  --mark_unknown------> claimed    (outcome unknown: only reconciliation goes on)
    planned --sync_plan--> cancelled (removed by a re-plan) --sync_plan--> planned (back in the plan)

An operator's commands (:meth:`Ledger.skip_posts`, :meth:`Ledger.cancel_posts`, :meth:`Ledger.retry_post`) add
``planned -> skipped`` (never from claimed: the daemon is publishing it, :class:`PostBusy`) and ``failed / expired
-> planned``; each is recorded in :meth:`Ledger.operator_actions`. They are not in :data:`TRANSITIONS`, which is
what the daemon may do.

An attempt whose outcome is unknown (a Mastodon status request that timed out: the server may have created the
status) is recorded by :meth:`Ledger.mark_unknown`: the attempt counts, the post stays **claimed** (so
:meth:`Ledger.due` never returns it and nothing re-sends it blindly), and ``unknown_since`` keeps the first
moment an attempt could have created it (the claim time of that attempt), across later re-claims, until the
post is published or a lookup proves it absent (``release(..., absent=True)``). ``next_attempt_at`` of such a
row is when reconciliation should look at it next (:meth:`Ledger.unknown_due`).

``schedule_retry`` counts an attempt (``attempts + 1``) and sets ``next_attempt_at``; ``release`` (a graceful
shutdown) does not. ``mark_failed`` counts the last attempt too. Any other change raises
:class:`IllegalTransition`.

A thread publishes part by part: :meth:`Ledger.record_part` stores each part's result (platform id, URI, CID,
URL) as soon as it is out, so a retry after a failure (or a crash) resumes at :attr:`Row.next_part` and
threads the missing parts onto the ones already published.

What every implementation guarantees (``tests/contract/test_ledger_contract.py`` checks it against each):

* every state change is atomic and checked under a write lock, so two processes (or threads) can never both
  claim one post, and a killed process leaves the ledger consistent;
* a committed change survives a crash of the process and of the machine;
* readers never block writers for long; a writer that waits too long raises :class:`LedgerBusy`;
* the clock is a parameter: every method that records a time takes an aware ``now``;
* rows hold no secrets: ``last_error`` is exactly the reason text a caller passes in, and callers must pass
  texts that are safe to show (as :class:`amplifier.errors.AmplifierError` messages are).

This module imports no database driver; the implementations (:mod:`.sqlite`) do.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from amplifier.delivery.ledger.engagement import EngagementTotal
from amplifier.delivery.ledger.report import ReadAges, ReportRow
from amplifier.errors import AmplifierError, ExitCode, StateError
from amplifier.plan.post import PlannedPost
from amplifier.publish.engagement import Engagement
from amplifier.redact import redact

CANCELLED_REASON = "removed from the plan"

JSONObject = dict[str, Any]


class State(enum.StrEnum):
    PLANNED = "planned"
    CLAIMED = "claimed"
    PUBLISHED = "published"
    FAILED = "failed"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


# The legal transitions, and nothing else.
TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.PLANNED: frozenset({State.CLAIMED, State.EXPIRED, State.SKIPPED, State.CANCELLED}),
    State.CLAIMED: frozenset({State.PUBLISHED, State.FAILED, State.EXPIRED, State.SKIPPED, State.PLANNED}),
    State.CANCELLED: frozenset({State.PLANNED}),
    State.PUBLISHED: frozenset(),
    State.FAILED: frozenset(),
    State.EXPIRED: frozenset(),
    State.SKIPPED: frozenset(),
}
CLAIMED_ONLY = frozenset({State.CLAIMED})  # where publishing, failing, retrying and releasing start
UNFINISHED = frozenset({State.PLANNED, State.CLAIMED})  # where expiring and skipping start


class LedgerError(AmplifierError):
    """The ledger cannot do what was asked (an unknown post, a change its state forbids, an unusable file)."""

    exit_code = ExitCode.PUBLISH


class LedgerUnreachable(LedgerError, StateError):
    """The ledger's folder or file cannot be created or opened: the state folder is unusable (exit 5)."""

    exit_code = ExitCode.STATE


class LedgerBusy(LedgerError):
    """Another process held the ledger's write lock for longer than the busy timeout."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        super().__init__(
            f"{path}: the ledger is busy (another amplifier process is writing to it); try again"
        )


class UnknownPost(LedgerError):
    def __init__(self, post_id: str) -> None:
        self.post_id = post_id
        super().__init__(f"no post {post_id!r} in the ledger")


class IllegalTransition(LedgerError):
    """A state change that the post's current state does not allow (e.g. publishing a post nobody claimed)."""

    def __init__(self, post_id: str, state: State, action: str) -> None:
        self.post_id = post_id
        self.state = state
        self.action = action
        super().__init__(f"post {post_id!r} is {state.value}: cannot {action}")


class PostBusy(IllegalTransition):
    """An operator asked to change a post that the daemon has claimed: it is being published right now."""

    def __init__(self, post_id: str, action: str) -> None:
        super().__init__(post_id, State.CLAIMED, action)
        self.args = (
            f"post {post_id!r} is being published right now (the daemon has claimed it): cannot {action}; "
            "see `amplifier status` in a minute",
        )

    def __str__(self) -> str:
        return str(self.args[0])


class ClaimMismatch(LedgerError):
    """The post is claimed by another claimant than the one that asks (its claim was released and retaken)."""

    def __init__(self, post_id: str, token: str, holder: str | None) -> None:
        self.post_id = post_id
        self.token = token
        self.holder = holder
        super().__init__(f"post {post_id!r} is claimed by {holder!r}, not by {token!r}")


@dataclass(frozen=True)
class PlanSource:
    """Which campaign files the plan in the ledger was made from: their content hash, and their revision (a git
    commit, or the newest file time) with the instant it was made (``revised_at``), and the node that wrote it."""

    content_hash: str
    revision: str
    revised_at: datetime  # aware
    node: str = ""
    planned_at: datetime | None = None  # when the plan was last written (set by the ledger)


class StalePlan(LedgerError):
    """A node's campaign files are older than those the plan in the ledger was made from: it must not
    overwrite the plan (another node has newer files)."""

    def __init__(self, recorded: PlanSource, offered: PlanSource) -> None:
        self.recorded = recorded
        self.offered = offered
        super().__init__(
            f"the plan in the ledger was made from newer campaign files (revision {recorded.revision}, "
            f"{recorded.revised_at:%Y-%m-%d %H:%M:%S} UTC, by {recorded.node or 'another node'}) than these "
            f"(revision {offered.revision}, {offered.revised_at:%Y-%m-%d %H:%M:%S} UTC): not overwritten"
        )


def check_source(recorded: PlanSource | None, offered: PlanSource) -> None:
    """Raise :class:`StalePlan` when ``offered`` files are older than, and differ from, the ``recorded`` ones."""
    if (
        recorded is not None
        and recorded.content_hash != offered.content_hash
        and recorded.revised_at > offered.revised_at
    ):
        raise StalePlan(recorded, offered)


@dataclass(frozen=True)
class NodeBeat:
    """A node's last heartbeat in a shared ledger: who (``host:pid:nonce``), when, and what it holds."""

    node: str
    beat_at: datetime
    leader: bool
    holds: tuple[str, ...]  # e.g. "account masto", "2 claims"

    @property
    def host(self) -> str:
        return self.node.split(":", 1)[0]

    @property
    def pid(self) -> int | None:
        fields = self.node.split(":")
        return int(fields[1]) if len(fields) > 2 and fields[1].isdigit() else None


class PartConflict(LedgerError):
    """A part of a thread was recorded already with another result: it would be published twice."""

    def __init__(self, post_id: str, index: int) -> None:
        self.post_id = post_id
        self.index = index
        super().__init__(f"part {index} of post {post_id!r} is already recorded with a different result")


def to_db_time(value: datetime) -> str:
    """``value`` (aware) as fixed-width UTC ISO 8601 text, e.g. ``2027-10-25T10:00:00.000000+00:00``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the ledger needs aware datetimes")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def optional_time(text: str | None) -> datetime | None:
    return None if text is None else from_db_time(text)


def dump_json(value: Any) -> str:
    """``value`` as canonical JSON text (sorted keys, no spaces): equal values give equal texts."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def content_hash(post: PlannedPost) -> str:
    """A hash of all a post would send (its parts' text, payloads, images), to tell a changed text."""
    return hashlib.sha256(dump_json([part.to_json() for part in post.parts]).encode()).hexdigest()


@dataclass(frozen=True)
class PlanEntry:
    """What the ledger needs to know of one planned post."""

    id: str
    account: str
    platform: str
    rule: str
    due_at: datetime  # aware
    content_hash: str
    part_count: int = 1

    @classmethod
    def from_post(cls, post: PlannedPost) -> PlanEntry:
        return cls(
            id=post.id,
            account=post.account,
            platform=post.platform,
            rule=post.rule,
            due_at=post.at,
            content_hash=content_hash(post),
            part_count=len(post.parts),
        )


@dataclass(frozen=True)
class Row:
    """One post as the ledger knows it. Times are aware UTC datetimes."""

    id: str
    account: str
    platform: str
    rule: str
    due_at: datetime
    content_hash: str
    part_count: int
    state: State
    attempts: int  # attempts that ended in an error (retried or failed)
    next_attempt_at: datetime
    last_error: str | None  # the reason of the last error, or of failed / expired / skipped / cancelled
    claimed_at: datetime | None
    claim_token: str | None  # who holds (or last held) the claim
    published_at: datetime | None
    result: tuple[JSONObject, ...] | None  # when published: one result per part
    created_at: datetime
    updated_at: datetime
    parts: Mapping[int, JSONObject] = field(default_factory=dict)  # part index -> result, as recorded so far
    # The first moment an attempt whose outcome is unknown could have created the post (see mark_unknown).
    unknown_since: datetime | None = None
    # An operator's ``retry --late``: the post may go out after its window, until then.
    late_until: datetime | None = None
    # Until when the claim's holder vouches for it (None: a claim without a lease); see Ledger.take_over.
    lease_until: datetime | None = None

    @property
    def missing_parts(self) -> tuple[int, ...]:
        return tuple(index for index in range(self.part_count) if index not in self.parts)

    @property
    def next_part(self) -> int | None:
        """The index of the first part still to publish, None when every part is out."""
        missing = self.missing_parts
        return missing[0] if missing else None


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
class AccountSummary:
    """What ``status`` shows of one account, from aggregate queries (no row is read into Python)."""

    account: str
    counts: Mapping[State, int]
    last_published_at: datetime | None
    next_due_at: datetime | None  # the earliest next attempt of a planned post


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
    if outcome not in EDIT_OUTCOMES[1:]:
        raise ValueError("an edit is finished with the outcome edited or failed")
    if done_at.tzinfo is None:
        raise ValueError("the time an edit was finished must be aware")


@dataclass(frozen=True)
class SyncReport:
    """What :meth:`Ledger.sync_plan` did, by post id."""

    inserted: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()  # still planned; due time, text or account changed
    revived: tuple[str, ...] = ()  # cancelled by an earlier re-plan, back in the plan
    cancelled: tuple[str, ...] = ()  # planned, gone from the plan
    ignored: tuple[str, ...] = ()  # the plan changes or drops them, but they are claimed, started or finished
    unchanged: int = 0


PlanKey = tuple[str, str, str, Any, str, int]  # account, platform, rule, due time, content hash, part count


@dataclass(frozen=True)
class Existing:
    """A post the ledger holds, as :func:`diff_plan` needs it (times in the backend's own comparable form)."""

    id: str
    key: PlanKey
    state: State
    attempts: int
    next_attempt_at: Any
    started: bool  # some part is published already


@dataclass
class PlanDiff:
    """What :meth:`Ledger.sync_plan` must change: ids with the values to write, and what it leaves alone."""

    inserted: list[tuple[str, PlanKey]] = field(default_factory=list)
    updated: list[tuple[str, PlanKey, Any]] = field(default_factory=list)  # (id, key, next attempt)
    revived: list[tuple[str, PlanKey]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    unchanged: int = 0

    def report(self) -> SyncReport:
        return SyncReport(
            inserted=tuple(post_id for post_id, _ in self.inserted),
            updated=tuple(post_id for post_id, _, _ in self.updated),
            revived=tuple(post_id for post_id, _ in self.revived),
            cancelled=tuple(self.cancelled),
            ignored=tuple(sorted(self.ignored)),
            unchanged=self.unchanged,
        )


def plan_keys(entries: Iterable[PlanEntry], due: Callable[[datetime], Any]) -> dict[str, PlanKey]:
    """The plan by id, its due times converted by ``due`` to the backend's form; refuses a malformed plan."""
    plan: dict[str, PlanKey] = {}
    for entry in entries:
        if not entry.id:
            raise ValueError("a plan entry needs a non-empty id")
        if entry.part_count < 1:
            raise ValueError(f"plan entry {entry.id!r}: part_count must be at least 1")
        if entry.id in plan:
            raise ValueError(f"the plan holds the id {entry.id!r} twice")
        plan[entry.id] = (
            entry.account,
            entry.platform,
            entry.rule,
            due(entry.due_at),
            entry.content_hash,
            entry.part_count,
        )
    return plan


def diff_plan(existing: Iterable[Existing], plan: Mapping[str, PlanKey], start: Any, end: Any) -> PlanDiff:
    """The changes that make the ledger's planned posts match ``plan`` (see :meth:`Ledger.sync_plan`); every
    backend applies them in one transaction. ``start``/``end`` bound the cancellations (None: unbounded)."""
    diff = PlanDiff()
    known: set[str] = set()
    for row in existing:
        known.add(row.id)
        wanted = plan.get(row.id)
        due_at = row.key[3]
        if wanted is None:
            if row.state not in UNFINISHED:
                continue
            if (start is not None and due_at < start) or (end is not None and due_at >= end):
                continue
            if row.state == State.PLANNED and not row.started:
                diff.cancelled.append(row.id)
            else:
                diff.ignored.append(row.id)
            continue
        if wanted == row.key:
            if row.state == State.CANCELLED:
                diff.revived.append((row.id, wanted))
            else:
                diff.unchanged += 1
            continue
        if row.state == State.PLANNED and not row.started:
            new_next = wanted[3] if row.attempts == 0 else max(wanted[3], row.next_attempt_at)
            diff.updated.append((row.id, wanted, new_next))
        elif row.state == State.CANCELLED:
            diff.revived.append((row.id, wanted))
        else:
            diff.ignored.append(row.id)
    diff.inserted = [(post_id, wanted) for post_id, wanted in plan.items() if post_id not in known]
    return diff


class Ledger(Protocol):
    """The delivery ledger, as delivery, the daemon and the CLI use it. Open one with
    :func:`amplifier.delivery.ledger.open_ledger`, as a context manager; threads may share it."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    # -- the plan

    def sync_plan(
        self,
        entries: Iterable[PlanEntry],
        now: datetime,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        source: PlanSource | None = None,
    ) -> SyncReport:
        """Make the planned posts match ``entries``, in one transaction.

        ``source``: the campaign files the plan was made from. If the recorded source is of newer, different
        files, nothing changes and :class:`StalePlan` is raised; else ``source`` is recorded with the plan
        (:meth:`plan_source`). None: nothing is checked or recorded (one machine).

        New ids are inserted as planned (due, and next attempt, at ``due_at``). A still-planned post whose due
        time, content hash, account, platform, rule or part count changed is updated (a post waiting for a
        retry keeps its later ``next_attempt_at``). A cancelled post that is back in the plan is planned
        again. A planned post missing from ``entries`` is cancelled, but only if its due time is within
        [``start``, ``end``) (a bound may be None: unbounded), so a plan of a window does not cancel the posts
        outside it. Posts that are claimed, finished or planned with parts already published are never
        changed or cancelled; when the plan would change or drop one, its id is in :attr:`SyncReport.ignored`.
        """
        ...

    def plan_source(self) -> PlanSource | None:
        """The campaign files the plan was last written from (:meth:`sync_plan`'s ``source``), None if none."""
        ...

    def beat_node(self, node: str, now: datetime, *, leader: bool, holds: Sequence[str]) -> None:
        """Node ``node`` is alive at ``now``, leads planning or not, and holds ``holds`` (shown by status)."""
        ...

    def nodes(self) -> list[NodeBeat]:
        """Every node's last heartbeat, the latest first."""
        ...

    # -- transitions (each one atomic; ``token``: the claimant that must hold the claim)

    def claim(self, post_id: str, now: datetime, token: str, *, lease_until: datetime | None = None) -> bool:
        """Planned -> claimed, atomically: True if this call took it. False if it is not planned, or its
        account (or everything) is paused. :class:`UnknownPost` for an id the ledger does not have.
        ``lease_until``: the claim's lease (see :meth:`extend_lease`, :meth:`take_over`)."""
        ...

    def take_over(
        self,
        post_id: str,
        old_token: str,
        new_token: str,
        now: datetime,
        *,
        lease_until: datetime | None = None,
    ) -> bool:
        """Fencing: the claim held by ``old_token`` becomes ``new_token``'s, atomically (a compare-and-swap on
        the token): True if this call swapped it; False if the post is not claimed by ``old_token`` any more.
        The claim time and ``unknown_since`` stay (they tell when an attempt could have created the post).
        From then on every change by the old holder raises :class:`ClaimMismatch`."""
        ...

    def extend_lease(self, token: str, lease_until: datetime, now: datetime) -> int:
        """Every claim ``token`` holds is leased until ``lease_until`` (never shortened): the holder is alive.
        Returns how many claims it holds."""
        ...

    def record_part(
        self, post_id: str, index: int, result: Mapping[str, Any], now: datetime, *, token: str | None = None
    ) -> None:
        """Part ``index`` of the claimed post is out, with this result (the same result again: a no-op; another
        one: :class:`PartConflict`)."""
        ...

    def mark_published(
        self,
        post_id: str,
        parts: Sequence[Mapping[str, Any]] | None,
        now: datetime,
        *,
        token: str | None = None,
    ) -> None:
        """Claimed -> published. ``parts`` is one result per part (None: every part was recorded already)."""
        ...

    def mark_failed(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Claimed -> failed for good (the attempt counts)."""
        ...

    def schedule_retry(
        self, post_id: str, reason: str, next_attempt_at: datetime, now: datetime, *, token: str | None = None
    ) -> None:
        """Claimed -> planned, to try again at ``next_attempt_at``; the attempt counts."""
        ...

    def release(
        self,
        post_id: str,
        now: datetime,
        *,
        token: str | None = None,
        absent: bool = False,
        unknown: bool = False,
    ) -> None:
        """Claimed -> planned without counting an attempt. ``absent``: a lookup proved the post is not on the
        platform (``unknown_since`` is cleared); ``unknown``: the released claim's outcome is unknown
        (``unknown_since`` becomes the claim time unless set)."""
        ...

    def mark_unknown(
        self,
        post_id: str,
        reason: str,
        now: datetime,
        *,
        check_at: datetime,
        token: str | None = None,
        attempt: bool = True,
    ) -> None:
        """Claimed -> still claimed, outcome unknown: ``unknown_since`` keeps its first moment, the next check is
        at ``check_at``; ``attempt``: whether a publish attempt ended here (counted) or only a lookup failed."""
        ...

    def mark_expired(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Planned or claimed -> expired (its window was missed)."""
        ...

    def mark_skipped(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Planned or claimed -> skipped (on purpose)."""
        ...

    def group(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run ``calls`` (each one call of this ledger's transitions, e.g. ``lambda: ledger.claim(...)``)
        together: each one atomic on its own (a change that raises leaves nothing behind, the others stand),
        all of them committed (and fsynced) before this returns. Returns per call what it returned, or the
        exception it raised; raises (and keeps none of them) only when the commit itself fails. The daemon
        groups the changes of posts that finish together (:mod:`amplifier.daemon.commits`)."""
        ...

    # -- queries

    def get(self, post_id: str) -> Row:
        """The post's row; :class:`UnknownPost` when there is none."""
        ...

    def due(self, now: datetime, limit: int | None = None) -> list[Row]:
        """Planned posts whose next attempt is at or before ``now``, by due time then id; none of a paused
        account, none at all while everything is paused."""
        ...

    def next_due_at(self) -> datetime | None:
        """The earliest next attempt of a planned post that :meth:`due` could return."""
        ...

    def claimed(self, older_than: datetime | None = None) -> list[Row]:
        """Claimed posts (claimed before ``older_than``, if given), by claim time then id."""
        ...

    def unknown_due(self, now: datetime) -> list[Row]:
        """Claimed posts whose outcome is unknown and whose next check is at or before ``now``."""
        ...

    def next_check_at(self) -> datetime | None:
        """The earliest next check of a claimed post whose outcome is unknown."""
        ...

    def history(
        self,
        start: datetime,
        end: datetime,
        account: str | None = None,
        states: Iterable[State] | None = None,
    ) -> list[Row]:
        """Posts due in [``start``, ``end``), by due time then id; optionally of one account, some states."""
        ...

    def remote_ids(self, account: str, *, except_post: str | None = None) -> frozenset[str]:
        """The platform ids (Mastodon status ids, Bluesky record keys) recorded for any part of any post of
        ``account``, leaving out ``except_post``'s own: a search for a post must never take one of these."""
        ...

    def counts_by_state(self) -> dict[State, int]:
        """How many posts are in each state (every state present, 0 included)."""
        ...

    def summaries(self) -> dict[str, AccountSummary]:
        """Per account in the ledger: its counts by state, last publication, next due attempt (aggregates)."""
        ...

    def latest(self, states: Iterable[State], limit: int, *, by_published: bool = False) -> list[Row]:
        """The ``limit`` posts in ``states`` changed (``by_published``: published) last, newest first."""
        ...

    def finished_since(self, states: Iterable[State], since: datetime, limit: int = 100) -> list[Row]:
        """Posts in ``states`` whose last change is at or after ``since``, newest first (at most ``limit``)."""
        ...

    def overdue(self, before: datetime, limit: int = 100) -> list[Row]:
        """Planned posts that :meth:`due` would return whose next attempt is before ``before``."""
        ...

    def iter_history(
        self,
        start: datetime,
        end: datetime,
        account: str | None = None,
        states: Iterable[State] | None = None,
        *,
        batch: int = 1000,
    ) -> Iterator[Row]:
        """:meth:`history`, streamed in batches of ``batch`` rows (constant memory whatever the window)."""
        ...

    # -- an operator's actions (each one transaction, recorded in :meth:`operator_actions`)

    def skip_posts(self, post_ids: Sequence[str], reason: str, now: datetime, *, by: str) -> None:
        """Planned -> skipped, all of ``post_ids`` or none. :class:`PostBusy` when one is claimed (being
        published now), :class:`IllegalTransition` when one is finished, :class:`UnknownPost`. A skipped post is
        finished: no re-plan brings it back."""
        ...

    def cancel_posts(
        self,
        reason: str,
        now: datetime,
        *,
        by: str,
        target: str,
        account: str | None = None,
        rules: Sequence[str] | None = None,
    ) -> list[str]:
        """Every planned post of ``account`` and/or ``rules`` -> skipped (a post being published is left
        alone); ``target`` names what was cancelled in the record. The ids changed, by due time."""
        ...

    def retry_post(
        self, post_id: str, reason: str, now: datetime, *, by: str, late_until: datetime | None = None
    ) -> None:
        """Failed or expired -> planned, its next attempt at ``now``, its attempts counted from 0 again (the
        parts of a thread already out are kept). ``late_until``: it may go out after its window, until then."""
        ...

    def operator_actions(self, since: datetime | None = None, limit: int = 20) -> list[OperatorAction]:
        """The operators' actions (at or after ``since``), newest first."""
        ...

    # -- pauses

    def pause_account(self, account: str, reason: str, now: datetime, *, by: str | None = None) -> None:
        """Stop claiming the account's posts until :meth:`resume_account` (pausing again updates the reason).
        ``by``: the operator (recorded as an action); None: the daemon, for a credential problem."""
        ...

    def account_pauses(self) -> list[AccountPause]:
        """The paused accounts, by account."""
        ...

    def resume_account(self, account: str, *, by: str | None = None, now: datetime | None = None) -> bool:
        """Resume the account; True if it was paused. ``by`` (with ``now``): the operator, recorded."""
        ...

    def paused_accounts(self) -> dict[str, str]:
        """Paused account -> reason."""
        ...

    def set_paused(self, paused: bool, reason: str | None, now: datetime) -> None:
        """Pause (or resume) all publishing; a pause needs a reason."""
        ...

    def is_paused(self) -> bool: ...

    def pause_reason(self) -> str | None:
        """Why everything is paused, None when it is not."""
        ...

    # -- engagement read back (see :mod:`amplifier.delivery.ledger.engagement`) -----------------------------

    def record_engagement(self, readings: Iterable[Engagement]) -> int:
        """Store ``readings`` in one transaction; returns how many were new (a reading of a part at an instant
        already stored is skipped). :class:`UnknownPost` for a post the ledger does not have, ``ValueError``
        for a part index past the post's parts or an invalid reading: then nothing is stored."""
        ...

    def engagement(self, post_id: str) -> list[Engagement]:
        """Every reading of ``post_id``, by part then time (empty if it has none)."""
        ...

    def engagement_totals(
        self, start: datetime, end: datetime, *, as_of: datetime | None = None, account: str | None = None
    ) -> list[EngagementTotal]:
        """The engagement of each post due in [``start``, ``end``) that has readings (at or before ``as_of``
        when given), by due time then id; optionally of one account."""

    # -- operator actions on published posts --------------------------------------------------------------

    def record_gate_change(self, change: GateChange) -> None:
        """Record a change of a published post's reply / quote controls (:class:`UnknownPost` for an id the
        ledger does not have; ``ValueError`` for an unknown outcome or a naive time)."""
        ...

    def gate_changes(self, post_id: str | None = None) -> list[GateChange]:
        """The recorded gate changes (of one post, or all), oldest first."""
        ...

    def begin_edit(self, edit: EditRecord) -> int:
        """Record an edit of a published post's part as ``pending``, before its request; returns its id
        (:class:`UnknownPost` for an id the ledger does not have; ``ValueError`` for another outcome or a naive
        time)."""
        ...

    def finish_edit(self, edit_id: int, outcome: str, detail: str, now: datetime) -> None:
        """A pending edit is ``edited`` or ``failed`` (``detail`` redacted); :class:`LedgerError` for an edit
        that is unknown or already finished."""
        ...

    def edits(self, post_id: str | None = None) -> list[EditRecord]:
        """The recorded edits (of one post, or all), oldest first."""
        ...

    def import_edits(self, edits: Iterable[EditRecord]) -> int:
        """Insert edits recorded in another ledger as they are (outcome, times; new ids), for moving a ledger;
        returns how many."""
        ...

    # -- read-back jobs and the report (see :mod:`amplifier.delivery.ledger.report`) --------------------------

    def reads_due(self, now: datetime, ages: ReadAges, limit: int = 100) -> list[Row]:
        """Published posts (published at or after ``ages.since``) with a read-back due at ``now``: an age
        passed with no reading at or after it, or their rule's event read instant passed with no reading at or
        after it; by publishing time then id, at most ``limit``."""
        ...

    def report_rows(
        self,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime | None = None,
        variants: Mapping[tuple[str, str], int] | None = None,
    ) -> list[ReportRow]:
        """The posts due in [``start``, ``end``) grouped by rule, account, platform, state, variant (from
        ``variants``: (rule, occurrence key) -> number; None when not in it) and day (the key's), with their
        engagement (latest reading with counts per part at or before ``as_of``), by day, rule and account."""
        ...

    def top_posts(
        self, start: datetime, end: datetime, *, as_of: datetime | None = None, limit: int = 10
    ) -> list[EngagementTotal]:
        """The ``limit`` posts due in the window with the most engagement (as :meth:`engagement_totals`
        counts it), most first, then by due time and id."""
        ...

    # -- moving a ledger -----------------------------------------------------------------------------------

    def export_rows(self) -> Iterator[Row]:
        """Every post with all it records, by due time then id, read in batches (bounded memory)."""
        ...

    def import_rows(self, rows: Iterable[Row]) -> int:
        """Insert ``rows`` exactly as they are (states, attempts, claims, parts, times), in one transaction;
        :class:`LedgerError` if the ledger has one of their ids already. Returns how many were inserted."""
        ...


EXPORT_BATCH = 2000  # rows read per query by export_rows


def check_reason(reason: str) -> str:
    """``reason``, redacted (:func:`amplifier.redact.redact`: a server's text may echo a secret), if it is a
    non-empty text; every implementation refuses an empty reason the same way and stores what this returns."""
    if not reason or not reason.strip():
        raise ValueError("a reason must be a non-empty text")
    return redact(reason)
