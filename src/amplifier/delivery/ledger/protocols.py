"""The ledger's operations beyond delivery, as protocols that :class:`~.base.Ledger` combines: an operator's
actions and the pauses (:class:`LedgerOperator`), engagement and the report (:class:`LedgerEngagement`), moving
a ledger (:class:`LedgerMoving`), the nodes' shared state store (:class:`LedgerSharedState`). See :mod:`.base` for the guarantees every implementation gives."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from amplifier.delivery.ledger.engagement import EngagementTotal, PostEngagement
from amplifier.delivery.ledger.followups import FollowupJob
from amplifier.delivery.ledger.operator_records import AccountPause, EditRecord, GateChange, OperatorAction
from amplifier.delivery.ledger.report import ReadAges, ReportRow, Variants
from amplifier.delivery.ledger.types import PlanSource, Row
from amplifier.publish.engagement import Engagement


class LedgerOperator(Protocol):
    """An operator's actions (each one transaction, recorded in ``operator_actions``), the pauses, and the
    recorded changes of published posts' reply / quote controls."""

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

    def record_gate_change(self, change: GateChange) -> None:
        """Record a change of a published post's reply / quote controls (:class:`UnknownPost` for an id the
        ledger does not have; ``ValueError`` for an unknown outcome or a naive time)."""
        ...

    def gate_changes(self, post_id: str | None = None) -> list[GateChange]:
        """The recorded gate changes (of one post, or all), oldest first."""
        ...


class LedgerEdits(Protocol):
    """The edits of published posts (``amplifier correct``): each recorded ``pending`` before its request and
    finished after it, so a crash in between is settled once by the next correction."""

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
        """Insert edits recorded in another ledger as they are (outcome, times; new ids); how many."""
        ...


class LedgerEngagement(Protocol):
    """Engagement read back (:mod:`.engagement`), the read-back jobs and the report (:mod:`.report`)."""

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
        ...

    def report_posts(
        self, start: datetime, end: datetime, *, as_of: datetime | None = None
    ) -> Iterator[PostEngagement]:
        """Every post due in [``start``, ``end``), by due time then id, with its engagement as
        :meth:`engagement_totals` counts it (None: no reading); streamed a page at a time."""

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
        variants: Variants = None,
        exact: bool = False,
    ) -> list[ReportRow]:
        """The posts due in [``start``, ``end``) grouped by rule, account, platform, state, variant (the one
        stored with the post; else from ``variants``: (rule, occurrence key) -> number, or a function that gives
        them, called only if a post of the window has none stored; None when in neither)
        and day (the key's), with their engagement (latest reading with counts per part at or before
        ``as_of``), by day, rule and account. Whole days come from the summary when ``as_of`` is not before
        the latest reading; ``exact``: everything from the posts and readings (the same answer, slower)."""
        ...

    def top_posts(
        self,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime | None = None,
        limit: int = 10,
        exact: bool = False,
    ) -> list[EngagementTotal]:
        """The ``limit`` posts due in the window with the most engagement (as :meth:`engagement_totals`
        counts it), most first, then by due time and id. Found on the index of the posts' engagement totals
        when ``as_of`` is not before the latest reading; ``exact``: from the readings (the same answer)."""
        ...


@dataclass(frozen=True)
class Contents:
    """Everything a ledger holds, as :meth:`LedgerMoving.import_contents` takes it (streams: read once)."""

    rows: Iterable[Row]
    pauses: Iterable[AccountPause] = ()
    actions: Iterable[OperatorAction] = ()  # oldest first
    gate_changes: Iterable[GateChange] = ()  # oldest first
    edits: Iterable[EditRecord] = ()  # oldest first
    readings: Iterable[Engagement] = ()
    followups: Iterable[FollowupJob] = ()  # boosts, pins, retractions
    source: PlanSource | None = None
    counted: dict[str, int] = field(default_factory=dict)  # filled by import_contents: what went in, by kind


class LedgerMoving(Protocol):
    """Moving a ledger (``amplifier ledger migrate``, a dry run's copy): all it holds, out and in."""

    def export_rows(self) -> Iterator[Row]:
        """Every post with all it records, by due time then id, read in batches (bounded memory)."""
        ...

    def import_rows(self, rows: Iterable[Row]) -> int:
        """Insert ``rows`` exactly as they are (states, attempts, claims, parts, times), in one transaction;
        :class:`LedgerError` if the ledger has one of their ids already. Returns how many were inserted."""
        ...

    def export_actions(self) -> list[OperatorAction]:
        """Every operator's action recorded, oldest first."""
        ...

    def export_engagement(self) -> Iterator[Engagement]:
        """Every engagement reading, by post, part and time, read in batches (bounded memory)."""
        ...

    def import_contents(self, contents: Contents) -> int:
        """Insert all of ``contents`` exactly as it is (posts with everything they record, paused accounts,
        operators' actions, gate changes, engagement readings, the plan's source), in ONE transaction: all of
        it or nothing. :class:`LedgerError` if the ledger has one of its post ids already (so a copy goes in
        exactly once). Returns how many posts; ``contents.counted`` says how many of each kind."""
        ...


class LedgerSharedState(Protocol):
    """The state store of the nodes of a shared ledger (:class:`amplifier.delivery.shared_state.LedgerState`):
    documents by folder (``sub``) and name (tables ``shared_state``, ``state_locks``), and a lock per document with
    a holder and a lease. Each call is one transaction."""

    @property
    def name(self) -> str:
        """How a message names the ledger (never with a password)."""
        ...

    def state_read(self, sub: str, names: Sequence[str]) -> dict[str, bytes]:
        """The documents of ``names`` in ``sub`` that exist, by name."""
        ...

    def state_write(self, sub: str, name: str, data: bytes, now: datetime) -> None:
        """Store ``data`` as the document (replacing it)."""
        ...

    def state_delete(self, sub: str, name: str) -> None:
        """Remove the document (none: nothing happens)."""
        ...

    def state_create(self, sub: str, name: str, data: bytes, now: datetime) -> bytes:
        """Store ``data`` unless the document exists; what is stored afterwards (the first writer's)."""
        ...

    def state_lock(self, sub: str, name: str, holder: str, until: datetime, now: datetime) -> bool:
        """Take the document's lock for ``holder`` until ``until``: True if it is free, its lease passed at
        ``now``, or ``holder`` holds it already (then renewed); False while another holder's lease runs."""
        ...

    def state_unlock(self, sub: str, name: str, holder: str) -> None:
        """Let the lock go, if ``holder`` holds it (else nothing happens)."""
        ...
