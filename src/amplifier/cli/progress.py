"""Progress bars for long runs: shown on stderr only when it is a terminal and the run takes a while.

:func:`track` wraps the items of a long loop (the slots being planned, the posts being sent). It draws a rich
progress bar once the loop has been running for :data:`DELAY` seconds and stderr is a terminal, and removes it
when done; in a pipe, a log or a test nothing is printed.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TextIO, TypeVar

T = TypeVar("T")

DELAY = 1.0  # seconds before a bar appears: short runs stay quiet


def track(
    items: Sequence[T],
    label: str,
    *,
    stream: TextIO | None = None,
    delay: float = DELAY,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[T]:
    """Yield ``items``; draw a transient progress bar on ``stream`` (stderr) if it is a terminal and slow."""
    out = stream if stream is not None else sys.stderr
    interactive = _isatty(out)
    started = clock()
    progress: Any = None
    task: Any = None
    try:
        for done, item in enumerate(items):
            if interactive and progress is None and done and clock() - started >= delay:
                progress, task = _start(out, label, len(items), done)
            elif progress is not None:
                progress.update(task, completed=done)
            yield item
        if progress is not None:
            progress.update(task, completed=len(items))
    finally:
        if progress is not None:
            progress.stop()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _start(
    stream: TextIO, label: str, total: float, done: int = 0, *, counted: bool = True
) -> tuple[Any, Any]:
    """A transient bar on ``stream``: ``done`` of ``total`` items (``counted``), or a share of a span (a window)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn() if counted else TaskProgressColumn(),
        TimeRemainingColumn(),
        console=Console(file=stream),
        transient=True,
    )
    progress.start()
    return progress, progress.add_task(label, total=total, completed=done)


class _Timed(Protocol):
    @property
    def at(self) -> dt.datetime: ...


Timed = TypeVar("Timed", bound=_Timed)


def track_window(
    items: Iterable[Timed],
    label: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    stream: TextIO | None = None,
    delay: float = DELAY,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Timed]:
    """:func:`track` for a stream of unknown length in time order (slots being planned): the bar shows how far
    into the window from ``start`` to ``end`` the items have come, and how many there were so far."""
    out = stream if stream is not None else sys.stderr
    if not _isatty(out):  # no bar to draw: the items as they come, without a step per item
        yield from items
        return
    started = clock()
    total = max((end - start).total_seconds(), 1.0)
    progress: Any = None
    task: Any = None
    try:
        for done, item in enumerate(items):
            if done and done % 64 == 0:
                position = min(max((item.at - start).total_seconds(), 0.0), total)
                if progress is None and clock() - started >= delay:
                    progress, task = _start(out, label, total, counted=False)
                if progress is not None:
                    progress.update(task, completed=position, description=f"{label} ({done:,})")
            yield item
    finally:
        if progress is not None:
            progress.stop()
