"""Rendering command results: a table for people (rich) or versioned JSON for scripts.

The JSON shapes are a contract (``version`` 1); ``tests/unit/test_result_contract.py`` pins their keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from amplifier.errors import UsageError
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


@contextlib.contextmanager
def open_output(path: Path | None) -> Iterator[TextIO]:
    """Standard output, or ``path`` written atomically (a temporary file beside it, renamed once complete).

    A file that cannot be written is a :class:`~amplifier.errors.UsageError` naming ``--output``.
    """
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    from amplifier.campaign.schema import atomic_writer

    try:
        with atomic_writer(path) as handle:
            yield handle
    except OSError as exc:
        raise UsageError(f"--output: cannot write {path}: {exc.strerror or exc}") from None


JSON_BATCH = 512  # posts encoded per json.dumps call by write_posts_json


def write_posts_json(
    out: TextIO, posts: Iterable[PlannedPost], *, indent: int | None = None, **extra: Any
) -> int:
    """Write ``posts_json(posts, **extra)`` as ``json.dumps`` would (with ``indent``), as the posts come.

    The document around the posts is encoded once; the posts, a batch at a time (one ``json.dumps`` per batch, the
    C encoder), so the whole document is never held: memory stays that of one batch whatever the number of posts.
    Posts of a batch that share a parts tuple (the same text on many accounts) share its JSON form. Returns the
    number of posts written.
    """
    head = json.dumps(
        {"version": JSON_VERSION, **extra, "posts": []}, ensure_ascii=False, indent=indent, default=str
    )
    cut = head.rindex("[]") + 1
    out.write(head[:cut])
    pad = "" if indent is None else "\n" + " " * (2 * indent)  # the posts are two levels deep
    separator = ", " if indent is None else "," + pad
    count = 0
    batch: list[PlannedPost] = []

    def flush() -> None:
        cache: dict[int, list[dict[str, Any]]] = {}  # the batch keeps its posts alive: id() is a safe key
        data = [post.to_json(cache) for post in batch]
        if indent is None:
            text = json.dumps(data, ensure_ascii=False, default=str)[1:-1]
        else:  # only on a terminal: one post at a time, indented to its depth
            text = separator.join(
                json.dumps(item, ensure_ascii=False, indent=indent, default=str).replace("\n", pad)
                for item in data
            )
        out.write((separator if count > len(batch) else pad) + text)
        batch.clear()

    for post in posts:
        batch.append(post)
        count += 1
        if len(batch) == JSON_BATCH:
            flush()
    if batch:
        flush()
    if count and indent is not None:
        out.write("\n" + " " * indent)
    out.write(head[cut:])
    out.write("\n")
    return count


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
