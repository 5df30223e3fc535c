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

The operations are grouped by concept into small protocols; :class:`Ledger` is all of them. The vocabulary
(states, rows, errors, helpers) is in :mod:`.types`, re-exported by the package. No database driver is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from amplifier.delivery.ledger.followups import LedgerFollowups
from amplifier.delivery.ledger.protocols import (
    LedgerEdits,
    LedgerEngagement,
    LedgerMoving,
    LedgerOperator,
    LedgerSharedState,
)
from amplifier.delivery.ledger.types import (
    AccountSummary,
    NodeBeat,
    PlanEntry,
    PlanSource,
    Row,
    State,
    SyncReport,
)


class LedgerPlan(Protocol):
    """The plan, the campaign files it was made from, and the nodes that share the ledger."""

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


class LedgerTransitions(Protocol):
    """A post's transitions, each one atomic; ``token``: the claimant that must hold the claim."""

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
        """Part ``index`` (0-based) of the claimed post is out, with this result (the same result again: a no-op;
        another one: :class:`PartConflict`)."""
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
        """Claimed -> failed for good (the attempt counts); ``reason`` is stored as given."""
        ...

    def schedule_retry(
        self, post_id: str, reason: str, next_attempt_at: datetime, now: datetime, *, token: str | None = None
    ) -> None:
        """Claimed -> planned, to try again at ``next_attempt_at``; the attempt counts, ``reason`` is kept."""
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
        """Claimed -> planned without counting an attempt (a graceful shutdown before anything was sent).
        ``unknown_since`` is kept (a post released to be re-sent under its Idempotency-Key stays unknown until
        it is published), unless ``absent``: a lookup proved the post is not on the platform (it is cleared).
        ``unknown``: the released claim's outcome is unknown (a crash left it claimed): ``unknown_since``
        becomes the claim time unless set."""
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
        """Claimed -> still claimed, outcome unknown: only reconciliation may move it on.

        ``unknown_since`` is set to the claim time (the earliest the request could have gone out) unless it
        is set already: it keeps the FIRST such moment across re-claims, because Mastodon's Idempotency-Key
        lives an hour from the status's creation and a repeat does not extend it. ``next_attempt_at`` becomes
        ``check_at``, when reconciliation should look next; ``reason`` is kept as ``last_error``. ``attempt``:
        whether a publish attempt ended here (counted), or only a lookup failed (not counted)."""
        ...

    def mark_expired(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Planned or claimed -> expired (its window was missed); ``reason`` is stored as given."""
        ...

    def mark_skipped(self, post_id: str, reason: str, now: datetime, *, token: str | None = None) -> None:
        """Planned or claimed -> skipped (on purpose); ``reason`` is stored as given."""
        ...

    def group(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run ``calls`` (each one call of this ledger's transitions, e.g. ``lambda: ledger.claim(...)``)
        together: each one atomic on its own (a change that raises leaves nothing behind, the others stand),
        all of them committed (and fsynced) before this returns. Returns per call what it returned, or the
        exception it raised; raises (and keeps none of them) only when the commit itself fails. The daemon
        groups the changes of posts that finish together (:mod:`amplifier.daemon.commits`)."""
        ...


class LedgerQueries(Protocol):
    """What delivery, the daemon and the CLI read."""

    def get(self, post_id: str) -> Row:
        """The post's row; :class:`UnknownPost` when there is none."""
        ...

    def due(self, now: datetime, limit: int | None = None) -> list[Row]:
        """Planned posts whose next attempt is at or before ``now``, by due time then id; none of a paused
        account, none at all while everything is paused."""
        ...

    def next_due_at(self) -> datetime | None:
        """The earliest next attempt of a planned post that :meth:`due` could return (pauses considered)."""
        ...

    def claimed(self, older_than: datetime | None = None) -> list[Row]:
        """Claimed posts (claimed before ``older_than``, if given), by claim time then id: after a crash, their
        fate is unknown and must be reconciled with the platform."""
        ...

    def unknown_due(self, now: datetime) -> list[Row]:
        """Claimed posts whose outcome is unknown (:meth:`mark_unknown`) and whose next check is at or before
        ``now``, by that time then id."""
        ...

    def next_check_at(self) -> datetime | None:
        """The earliest next check of a claimed post whose outcome is unknown (None: there is none)."""
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


class Ledger(
    LedgerPlan,
    LedgerTransitions,
    LedgerQueries,
    LedgerOperator,
    LedgerEngagement,
    LedgerMoving,
    LedgerSharedState,
    LedgerFollowups,
    LedgerEdits,
    Protocol,
):
    """The delivery ledger, as delivery, the daemon and the CLI use it. Open one with
    :func:`amplifier.delivery.ledger.open_ledger`, as a context manager; threads may share it."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
