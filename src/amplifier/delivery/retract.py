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
            jobs.extend(_would_run(ledger, post_id, row.account, row.platform, by=by, reason=reason, now=now))
            continue
        jobs.extend(ledger.retract(post_id, by=by, reason=reason, now=now))
    return RetractPlan(tuple(posts), tuple(jobs), tuple(refused))


_PENDING = ("planned", "claimed")


def _would_run(
    ledger: Ledger, post_id: str, author: str, platform: str, *, by: str, reason: str, now: datetime
) -> list[FollowupJob]:
    """The jobs :meth:`Ledger.retract` would return, changing nothing: the delete unless it is done (a failed one
    is tried again); on Bluesky only, an unboost / unpin for each boost / pin made, unless it is done already
    (Mastodon removes the reblogs and the pin with the status)."""
    existing = {(job.kind, job.account): job for job in ledger.followups([post_id])}
    jobs: list[FollowupJob] = []
    delete = existing.get(("delete", author))
    if delete is None or delete.state in (*_PENDING, "failed"):
        jobs.append(FollowupJob(post_id, "delete", author, platform, now, by=by, reason=reason))
    if platform != "bluesky":
        return jobs
    for (kind, account), job in sorted(existing.items()):
        if kind in ("boost", "pin") and job.state in ("done", "claimed"):
            undo = "unboost" if kind == "boost" else "unpin"
            prior = existing.get((undo, account))
            if prior is None or prior.state in _PENDING:
                jobs.append(FollowupJob(post_id, undo, account, platform, now, by=by))
    return jobs
