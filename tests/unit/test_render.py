"""Rendering for people: the width of tables in a pipe."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplifier.cli.render import PIPE_WIDTH, console, pipe_width


@pytest.mark.parametrize(
    ("columns", "width"),
    [
        ("200", 200),
        (" 90 ", 90),
        (None, PIPE_WIDTH),
        ("", PIPE_WIDTH),
        ("wide", PIPE_WIDTH),
        ("0", PIPE_WIDTH),  # rich would print nothing at all in zero columns
        ("-5", PIPE_WIDTH),
        ("12.5", PIPE_WIDTH),
        ("٢٠٠", PIPE_WIDTH),  # decimal digits of another script are not a width
    ],
)
def test_pipe_width(columns: str | None, width: int) -> None:
    assert pipe_width(columns) == width


@given(st.text(max_size=8))
def test_pipe_width_is_always_positive(columns: str) -> None:
    assert pipe_width(columns) > 0


@pytest.mark.parametrize(("columns", "width"), [("wide", PIPE_WIDTH), ("0", PIPE_WIDTH), ("99", 99)])
def test_console_in_a_pipe(monkeypatch: pytest.MonkeyPatch, columns: str, width: int) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    out = io.StringIO()
    shown = console(out)
    assert shown.width == width
    shown.print("a text")
    assert out.getvalue() == "a text\n"
