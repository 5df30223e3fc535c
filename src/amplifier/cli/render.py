"""Rendering command results: a table for people (rich) or versioned JSON for scripts.

The JSON shapes are a contract (``version`` 1); ``tests/unit/test_result_contract.py`` pins their keys.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO
from zoneinfo import ZoneInfo

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


def posts_table(posts: Sequence[PlannedPost], zones: dict[str, str], title: str | None = None) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None, show_lines=True, expand=False)
    table.add_column("when", no_wrap=True)
    table.add_column("account", no_wrap=True)
    table.add_column("platform", no_wrap=True)
    table.add_column("lang", no_wrap=True)
    table.add_column("length", justify="right", no_wrap=True)
    table.add_column("text", overflow="fold", min_width=40, max_width=80)
    for post in posts:
        zone = ZoneInfo(zones.get(post.account, "UTC"))
        when = post.at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")
        for index, part in enumerate(post.parts):
            over = part.length > part.limit
            length = Text(f"{part.length}/{part.limit}", style="bold red" if over else "")
            text = part.text
            if len(post.parts) > 1:
                text = f"[{index + 1}/{len(post.parts)}] {text}"
            if part.images:
                text += "".join(f"\n[image, alt text: {image.alt}]" for image in part.images)
            cell = Text(text)  # campaign text is never read as rich markup
            if index == 0:
                table.add_row(when, Text(post.account), post.platform, post.lang, length, cell)
            else:
                table.add_row("", "", "", "", length, cell)
        for warning in post.warnings:
            table.add_row("", "", "", "", Text("!", style="bold red"), Text(warning, style="red"))
    return table
