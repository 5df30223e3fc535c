"""A re-plan's arithmetic (:meth:`~.base.Ledger.sync_plan`), the same for every backend: the plan by id
(:func:`plan_keys`), and what must change to make the ledger's planned posts match it (:func:`diff_plan`).
Each backend reads the :class:`Existing` posts and applies the :class:`PlanDiff` in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from amplifier.delivery.ledger.types import UNFINISHED, PlanEntry, State, SyncReport

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
