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

_quote = (
    json.encoder.encode_basestring
)  # the string encoder of json.dumps(..., ensure_ascii=False) (C when built)


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


JSON_BATCH = 512  # posts encoded per write by write_posts_json

_PARTS_ENCODER = json.JSONEncoder(
    ensure_ascii=False, default=str
)  # what json.dumps(..., ensure_ascii=False) uses
# The C encoder json.dumps builds at every call, built once (without the check for cycles: parts have none).
_C_ENCODER = (
    json.encoder.c_make_encoder(None, str, _quote, None, ": ", ", ", False, False, True)  # type: ignore[attr-defined]
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else None
)


def _encode(data: Any) -> str:
    """``json.dumps(data, ensure_ascii=False, default=str)`` for a list or dictionary without cycles."""
    if _C_ENCODER is None:
        return _PARTS_ENCODER.encode(data)
    return "".join(_C_ENCODER(data, 0))


def post_json_text(post: PlannedPost, parts: str, at: str | None = None, fields: str | None = None) -> str:
    """``json.dumps(post.to_json(), ensure_ascii=False)`` byte for byte, given the JSON text of its ``parts``.

    The post's own fields are a few short strings, written with the C string encoder ``json.dumps`` uses; the
    parts, the bulk of the bytes, are encoded once per parts tuple (:func:`write_posts_json`) and spliced in.
    ``at`` and ``fields`` (:func:`_fields_text`) may be given already encoded (they repeat from post to post).
    """
    text = (
        f'{{"id": {_quote(post.id)}, "at": {at or _quote(post.at.isoformat())}, '
        f'{fields or _fields_text(post)}, "variant": {int(post.variant)!r}, "parts": {parts}'
    )
    if post.warnings:
        text = f'{text}, "warnings": {_encode(list(post.warnings))}'
    if post.quote:
        text = f'{text}, "quote": {_quote(post.quote)}'
    if post.followups:
        text = f'{text}, "followups": {_encode([followup.to_json() for followup in post.followups])}'
    return text + "}"


def _fields_text(post: PlannedPost) -> str:
    """The JSON of the fields a post shares with its rule and account: rule, account, platform, lang, event and
    message set."""
    event = "null" if post.event is None else _quote(post.event)
    return (
        f'"rule": {_quote(post.rule)}, "account": {_quote(post.account)}, "platform": {_quote(post.platform)}, '
        f'"lang": {_quote(post.lang)}, "event": {event}, "message_set": {_quote(post.message_set)}'
    )


def write_posts_json(
    out: TextIO, posts: Iterable[PlannedPost], *, indent: int | None = None, **extra: Any
) -> int:
    """Write ``posts_json(posts, **extra)`` as ``json.dumps`` would (with ``indent``), as the posts come.

    The document around the posts is encoded once; the posts, a batch at a time, so the whole document is never
    held: memory stays that of one batch whatever the number of posts. Compact (no ``indent``): each post is
    written by :func:`post_json_text`, the JSON text of a parts tuple computed once for all the posts that share it
    (the same text on many accounts), with no intermediate dictionaries of the posts. Returns the number of posts
    written.
    """
    head = json.dumps(
        {"version": JSON_VERSION, **extra, "posts": []}, ensure_ascii=False, indent=indent, default=str
    )
    cut = head.rindex("[]") + 1
    out.write(head[:cut])
    # Indented only on a terminal: one post at a time, indented to its depth.
    count = _write_compact(out, posts) if indent is None else _write_indented(out, posts, indent)
    out.write(head[cut:])
    out.write("\n")
    return count


def _write_compact(out: TextIO, posts: Iterable[PlannedPost]) -> int:
    count = 0
    batch: list[str] = []
    # id(parts) -> (parts, JSON text); holding the tuple keeps its id from being reused while it is a key.
    encoded: dict[int, tuple[Any, str]] = {}
    shared: dict[tuple[Any, ...], str] = {}  # (rule, account, ...) -> _fields_text
    last_at: Any = None
    at = ""
    quote = _quote
    for post in posts:
        parts = post.parts
        known = encoded.get(id(parts))
        if known is None:
            known = encoded[id(parts)] = (parts, _encode([part.to_json() for part in parts]))
        if post.at is not last_at:  # the posts of one occurrence share its instant (the same object)
            last_at, at = post.at, quote(post.at.isoformat())
        key = (post.rule, post.account, post.platform, post.lang, post.event, post.message_set)
        fields = shared.get(key)
        if fields is None:
            if len(shared) >= 65_536:
                shared.clear()
            fields = shared[key] = _fields_text(post)
        # post_json_text(post, known[1], at, fields), inlined: it runs once per post
        if post.warnings or post.quote or post.followups:
            text = f'{{"id": {quote(post.id)}, "at": {at}, {fields}, "variant": {int(post.variant)!r}, "parts": {known[1]}'
            if post.warnings:
                text = f'{text}, "warnings": {_encode(list(post.warnings))}'
            if post.quote:
                text = f'{text}, "quote": {quote(post.quote)}'
            if post.followups:
                text = f'{text}, "followups": {_encode([followup.to_json() for followup in post.followups])}'
            batch.append(text + "}")
        else:  # the common case: the whole post in one string
            batch.append(
                f'{{"id": {quote(post.id)}, "at": {at}, {fields}, "variant": {int(post.variant)!r}, "parts": {known[1]}}}'
            )
        count += 1
        if len(batch) == JSON_BATCH:
            out.write((", " if count > JSON_BATCH else "") + ", ".join(batch))
            batch.clear()
            encoded.clear()
    if batch:
        out.write((", " if count > len(batch) else "") + ", ".join(batch))
    return count


def _write_indented(out: TextIO, posts: Iterable[PlannedPost], indent: int) -> int:
    pad = "\n" + " " * (2 * indent)  # the posts are two levels deep
    separator = "," + pad
    count = 0
    for post in posts:
        item = json.dumps(post.to_json(), ensure_ascii=False, indent=indent, default=str).replace("\n", pad)
        out.write((separator if count else pad) + item)
        count += 1
    if count:
        out.write("\n" + " " * indent)
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
