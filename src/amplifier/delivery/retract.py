"""``amplifier retract``'s work: which published posts to delete and the jobs that do it (the jobs run through
:class:`~amplifier.delivery.followups.FollowupRunner`, like every follow-up write)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amplifier.delivery.followups import find
from amplifier.delivery.ledger import Ledger, State
from amplifier.delivery.ledger.followups import FollowupJob


@dataclass(frozen=True)
class RetractPlan:
    """What ``amplifier retract`` does or (``dry_run``) would do: the posts and their jobs."""

    posts: tuple[str, ...]
    jobs: tuple[FollowupJob, ...]
    refused: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "posts": list(self.posts),
            "jobs": [job.to_json() for job in self.jobs],
            "refused": list(self.refused),
        }


def retract(
    ledger: Ledger,
    post_ids: Sequence[str],
    *,
    by: str,
    reason: str,
    now: datetime,
    dry_run: bool = False,
) -> RetractPlan:
    """Plan the retraction of the published posts ``post_ids`` (nothing with ``dry_run``); the jobs to run.
    A post that is not published is refused (listed in ``refused``, with why)."""
    posts: list[str] = []
    jobs: list[FollowupJob] = []
    refused: list[str] = []
    for post_id in post_ids:
        row = find(ledger, post_id)
        if row is None:
            refused.append(f"{post_id}: not in the ledger")
            continue
        if row.state is not State.PUBLISHED:
            refused.append(f"{post_id}: it is {row.state.value}, not published: nothing to delete")
            continue
        posts.append(post_id)
        if dry_run:
            jobs.append(FollowupJob(post_id, "delete", row.account, row.platform, now, by=by, reason=reason))
            for job in ledger.followups([post_id]):
                if job.kind in ("boost", "pin") and job.state == "done":
                    undo = "unboost" if job.kind == "boost" else "unpin"
                    jobs.append(FollowupJob(post_id, undo, job.account, job.platform, now, by=by))
            continue
        jobs.extend(ledger.retract(post_id, by=by, reason=reason, now=now))
    return RetractPlan(tuple(posts), tuple(jobs), tuple(refused))
