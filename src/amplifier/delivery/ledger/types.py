"""The ledger's vocabulary, whatever stores it: the post's :class:`State` and its legal transitions, the
errors, :class:`Row` and the other records the operations return, the time and JSON helpers, and the checks
every implementation applies to what it is given (:func:`check_reason`, :func:`check_source`). The operator
records (pauses, actions, gate changes, edits) are in :mod:`.operator_records`. No database driver; see :mod:`.base` for the operations.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from amplifier.errors import AmplifierError, ExitCode, StateError
from amplifier.plan.post import PlannedPost
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
    variant: int | None = None  # the message set's variant the planner chose (0-based); None: not said

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
            variant=post.variant,
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
    # The message set's variant the planner chose (0-based; None: not stored, planned before the ledger kept it).
    variant: int | None = None

    @property
    def missing_parts(self) -> tuple[int, ...]:
        return tuple(index for index in range(self.part_count) if index not in self.parts)

    @property
    def next_part(self) -> int | None:
        """The index of the first part still to publish, None when every part is out."""
        missing = self.missing_parts
        return missing[0] if missing else None


@dataclass(frozen=True)
class AccountSummary:
    """What ``status`` shows of one account, from aggregate queries (no row is read into Python)."""

    account: str
    counts: Mapping[State, int]
    last_published_at: datetime | None
    next_due_at: datetime | None  # the earliest next attempt of a planned post


@dataclass(frozen=True)
class SyncReport:
    """What :meth:`Ledger.sync_plan` did, by post id."""

    inserted: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()  # still planned; due time, text or account changed
    revived: tuple[str, ...] = ()  # cancelled by an earlier re-plan, back in the plan
    cancelled: tuple[str, ...] = ()  # planned, gone from the plan
    ignored: tuple[str, ...] = ()  # the plan changes or drops them, but they are claimed, started or finished
    unchanged: int = 0


EXPORT_BATCH = 2000  # rows read per query by export_rows


def check_reason(reason: str) -> str:
    """``reason``, redacted (:func:`amplifier.redact.redact`: a server's text may echo a secret), if it is a
    non-empty text; every implementation refuses an empty reason the same way and stores what this returns."""
    if not reason or not reason.strip():
        raise ValueError("a reason must be a non-empty text")
    return redact(reason)
