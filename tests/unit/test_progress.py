"""Progress bars: only on a terminal, only once a run is slow, gone when it ends; every item still yielded."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from amplifier.cli.progress import track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def ticking(step: float) -> Iterator[float]:
    now = 0.0
    while True:
        yield now
        now += step


@pytest.mark.parametrize(
    ("stream", "step", "drawn"),
    [
        (Terminal(), 0.5, True),  # slow, on a terminal
        (Terminal(), 0.0001, False),  # fast: quiet
        (io.StringIO(), 0.5, False),  # a pipe or a log: quiet
    ],
)
def test_bar_only_on_a_terminal_for_slow_runs(stream: io.StringIO, step: float, drawn: bool) -> None:
    clock = ticking(step)
    items = list(range(50))
    assert list(track(items, "Planning posts", stream=stream, clock=lambda: next(clock))) == items
    assert ("Planning posts" in stream.getvalue()) is drawn
    assert ("/50" in stream.getvalue()) is drawn  # items counted: done/total


def test_bar_is_stopped_when_the_loop_is_left_early() -> None:
    stream = Terminal()
    clock = ticking(1.0)
    for item in track(list(range(10)), "Sending", stream=stream, clock=lambda: next(clock)):
        if item == 5:
            break
    assert "Sending" in stream.getvalue()


def test_stream_without_isatty_is_quiet() -> None:
    class Closed(io.StringIO):
        def isatty(self) -> bool:
            raise ValueError("I/O operation on closed file")

    stream = Closed()
    assert list(track([1, 2, 3], "x", stream=stream, delay=0)) == [1, 2, 3]
    assert stream.getvalue() == ""


@pytest.mark.parametrize(("stream", "drawn"), [(Terminal(), True), (io.StringIO(), False)])
def test_track_window_yields_every_item_and_draws_only_on_a_slow_terminal(
    stream: io.StringIO, drawn: bool
) -> None:
    import datetime as dt
    from dataclasses import dataclass

    from amplifier.cli.progress import track_window

    @dataclass
    class Item:
        at: dt.datetime

    start = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    items = [Item(start + dt.timedelta(minutes=i)) for i in range(300)]
    clock = ticking(0.5)
    got = list(
        track_window(
            iter(items),
            "Planning",
            start,
            start + dt.timedelta(hours=5),
            stream=stream,
            clock=lambda: next(clock),
        )
    )
    assert got == items
    assert bool(stream.getvalue()) == drawn
    assert ("%" in stream.getvalue()) is drawn  # a share of the window, not a count of items
    assert "/300" not in stream.getvalue()
