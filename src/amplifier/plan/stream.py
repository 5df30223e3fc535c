"""The plan as a stream: the posts of a window planned as they are read, in time order, and the validation of a whole
campaign counted the same way, so neither ever holds every post.

:func:`stream_window` merges the slots of every rule (:func:`amplifier.plan.schedule.iter_slots`) and plans each as it
comes (:class:`amplifier.plan.planner.Planner`); only what one instant shares between accounts is cached meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from amplifier.campaign.load import Campaign
from amplifier.errors import Problem
from amplifier.plan.planner import Planner
from amplifier.plan.post import PlannedPost
from amplifier.plan.review import review
from amplifier.plan.schedule import Slot, iter_slots, last_instant

StreamProgress = Callable[[Iterable[Slot], dt.datetime, dt.datetime], Iterable[Slot]]
"""Wraps a stream of slots in a window, e.g. to draw a progress bar (:func:`amplifier.cli.progress.track_window`)."""


@dataclass
class PlanStream:
    """The posts of a window, planned as they are read, in time order (read them once).

    Only what one instant shares between accounts is held meanwhile: a preview of any length in bounded memory.
    """

    posts: Iterator[PlannedPost]
    planner: Planner

    @property
    def problems(self) -> list[Problem]:
        """Every problem found, once :attr:`posts` has been read to its end."""
        return self.planner.problems


def stream_window(
    campaign: Campaign,
    start: dt.datetime,
    end: dt.datetime | None,
    *,
    accounts: set[str] | None = None,
    rules: set[str] | None = None,
    progress: StreamProgress | None = None,
) -> PlanStream:
    """Every post with ``start <= at < end`` (``end`` ``None``: to the last one; of these accounts and rules, if
    given), in time order, as it is planned."""
    slots: Iterable[Slot] = iter_slots(campaign.schedule, start, end, accounts=accounts, rules=rules)
    if progress is not None:
        slots = progress(slots, start, end if end is not None else last_instant(campaign.schedule, rules))
    planner = Planner(campaign)
    return PlanStream(planner.stream(slots), planner)


@dataclass(frozen=True)
class Validation:
    """What :func:`validate` found: how many posts (and parts) it planned, every problem, the warnings (exit 0) and
    the rules that have finished (:func:`amplifier.plan.review.review`)."""

    posts: int
    parts: int
    problems: list[Problem]
    warnings: list[Problem] = field(default_factory=list)
    finished: list[Problem] = field(default_factory=list)


def validate(
    campaign: Campaign,
    now: dt.datetime,
    horizon: dt.timedelta | None = None,
    *,
    progress: StreamProgress | None = None,
    rules: set[str] | None = None,
) -> Validation:
    """Render every planned post from ``now`` (to the last one, or ``now + horizon``) and collect all problems, the
    warnings and the finished rules. ``rules``: render only these (see :func:`amplifier.plan.planner.plannable`);
    the warnings are of the whole campaign.

    The posts are counted as they are planned, not kept: a campaign of any size validates in bounded memory.
    """
    findings = review(campaign, now)
    end = max(now + horizon, now) if horizon is not None else None
    stream = stream_window(campaign, now, end, rules=rules, progress=progress)
    posts = parts = 0
    for post in stream.posts:
        posts += 1
        parts += len(post.parts)
    return Validation(posts, parts, sorted(set(stream.problems)), findings.warnings, findings.finished)
