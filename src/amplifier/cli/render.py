"""Rendering command results: a table for people (rich) or versioned JSON for scripts.

The JSON shapes are a contract (``version`` 1); ``tests/unit/test_result_contract.py`` pins their keys.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from amplifier.plan.post import PlannedPost

JSON_VERSION = 1


def dump_json(data: Any, out: TextIO | None = None) -> None:
    """Indented for a terminal; compact otherwise. ``json.dumps`` without indent takes the C encoder, which is
    several times faster on a large preview than ``json.dump`` (always the pure-Python encoder)."""
    stream = out or sys.stdout
    indent = 2 if stream.isatty() else None
    stream.write(json.dumps(data, ensure_ascii=False, indent=indent, default=str))
    stream.write("\n")


def posts_json(posts: Sequence[PlannedPost], **extra: Any) -> dict[str, Any]:
    from amplifier.plan.planner import gc_paused

    cache: dict[int, list[dict[str, Any]]] = {}  # posts stay alive meanwhile, so id() is a safe key
    with gc_paused():
        return {"version": JSON_VERSION, **extra, "posts": [post.to_json(cache) for post in posts]}


PIPE_WIDTH = 160  # the width of tables when the output is not a terminal, unless $COLUMNS says otherwise


def console(out: TextIO | None = None) -> Any:
    """A rich console; when the output is not a terminal, wide enough that a table is not cut to 80 columns."""
    from rich.console import Console

    stream = out or sys.stdout
    width = None if stream.isatty() else pipe_width(os.environ.get("COLUMNS"))
    return Console(file=stream, soft_wrap=False, highlight=False, width=width)


def pipe_width(columns: str | None) -> int:
    """``$COLUMNS`` when it is a positive number of columns, else :data:`PIPE_WIDTH`."""
    value = (columns or "").strip()
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else PIPE_WIDTH
