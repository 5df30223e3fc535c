"""YAML files with the position of every node, so each problem can be reported as ``file:line:col``.

:func:`load` reads a file with ruamel.yaml's parser (YAML 1.2: ``no`` stays a string, ``10:00`` stays a string) and
builds plain Python data from its event stream itself, recording where every key and value stands.
:meth:`Source.locate` maps a path into the data (a pydantic error's ``loc``) to the nearest recorded position.

Building the data here, not with ruamel's constructors, keeps every value located and the loader safe on hostile
input: an impossible date (``2027-02-30``, see :mod:`amplifier.campaign.scalars`) is a located problem instead of an
exception; nesting deeper than
:data:`MAX_DEPTH` and aliases that would expand to more than :data:`MAX_ALIAS_NODES` nodes (a "billion laughs" file)
stop with a problem, in bounded memory; control characters and lone surrogates in a text are problems. Value-level
problems are collected in :attr:`Source.problems`, and the paths they concern in :attr:`Source.bad`, so the checks
that follow do not report the same mistake again. The wording of syntax errors is in
:mod:`amplifier.campaign.wording`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError

from amplifier.campaign import scalars, wording
from amplifier.errors import CampaignError, Problem

PathKey = tuple[str | int, ...]

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted (a campaign needs about eight)."""
_BRACKETS = re.compile(r"(?:[\[{][ \t]*){" + str(MAX_DEPTH + 1) + ",}")
MAX_ALIAS_NODES = 10_000
"""Most nodes that aliases (``*name``) may repeat in one file."""
MAX_FILE_BYTES = 5_000_000
"""Largest campaign file read (the example's files are a few kilobytes)."""


@dataclass
class Source:
    """A parsed YAML file: its plain data and where each node stands (1-based line and column)."""

    path: Path
    display: str  # the file name as shown in messages (relative to the campaign folder where possible)
    data: Any
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    block: set[PathKey] = field(default_factory=set)  # values written as block scalars (| or >)
    problems: list[Problem] = field(default_factory=list)  # values that are already reported (bad dates...)
    bad: set[PathKey] = field(default_factory=set)  # the paths of those values

    def locate(self, path: Iterable[str | int], *, key: bool = False) -> tuple[int, int]:
        """The position of the node at ``path``, or of its nearest recorded ancestor."""
        loc: PathKey = tuple(path)
        while True:
            if key and loc in self.keys:
                return self.keys[loc]
            if loc in self.values:
                return self.values[loc]
            if loc in self.keys:
                return self.keys[loc]
            if not loc:
                return (1, 1)
            loc = loc[:-1]

    def problem(self, path: Iterable[str | int], message: str, *, key: bool = False) -> Problem:
        line, col = self.locate(path, key=key)
        return Problem(self.display, line, col, message)

    def reported(self, path: PathKey, *, inside: bool = True) -> bool:
        """Whether the loader already reported the value at ``path`` or around it (or, with ``inside``, a value
        inside it: a rule whose date is impossible needs no second line saying the rule is wrong)."""
        return any(path[: len(bad)] == bad or (inside and bad[: len(path)] == path) for bad in self.bad)

    def text_line(self, path: PathKey, template_line: int) -> tuple[int, int]:
        """The file position of line ``template_line`` (1-based) of the string at ``path``."""
        line, col = self.locate(path)
        if path in self.block:
            # A block scalar's text starts on the line after its indicator; its column is the content indent.
            _key_line, key_col = self.keys.get(path, (line, col - 2))
            return (line + template_line, key_col + 2)
        return (line + template_line - 1, col)


def load(path: Path, display: str | None = None) -> Source:
    """Read and parse ``path``; raise :class:`CampaignError` when it cannot be read or is not YAML at all."""
    shown = display or str(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        raise CampaignError(
            [Problem(shown, 1, 1, "not a regular file (a device or a pipe): point to a YAML file")]
        )
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise CampaignError([Problem(shown, 1, 1, "file not found")]) from None
    except IsADirectoryError:
        raise CampaignError([Problem(shown, 1, 1, "this is a folder, not a file")]) from None
    except OSError as exc:
        raise CampaignError([Problem(shown, 1, 1, f"cannot read the file: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        message = f"the file is larger than {MAX_FILE_BYTES // 1_000_000} MB: split it, or check it is the right file"
        raise CampaignError([Problem(shown, 1, 1, message)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(raw[: exc.start].decode("utf-8", "replace"))
        message = f"the file is not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be read; save it as UTF-8"
        raise CampaignError([Problem(shown, line, col, message)]) from None
    return parse(text.removeprefix("\ufeff"), path, shown)


def parse(text: str, path: Path, display: str) -> Source:
    """Parse ``text``; a syntax error raises :class:`CampaignError`, value problems go to ``Source.problems``."""
    source = Source(path=path, display=display, data=None)
    brackets = _BRACKETS.search(text)
    if (
        brackets is not None
    ):  # ruamel's scanner looks ahead across open brackets quadratically: refuse them early
        line, col = _position(text[: brackets.start() + MAX_DEPTH])
        raise CampaignError([Problem(display, line, col, f"nested more than {MAX_DEPTH} levels deep")])
    builder = _Builder(source)
    yaml = YAML(typ="rt")
    try:
        for event in yaml.parse(text):
            builder.feed(event)
    except _Stop as stop:
        raise CampaignError([*source.problems, stop.problem]) from None
    except ReaderError as exc:
        line, col = _position(text[: exc.position])
        raise CampaignError([Problem(display, line, col, wording.reader_error(exc.character))]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = wording.yaml_error(exc.context, exc.problem)
        raise CampaignError([*source.problems, Problem(display, line, col, message)]) from None
    except (YAMLError, RecursionError, ValueError):
        raise CampaignError([Problem(display, 1, 1, wording.yaml_error(None, None))]) from None
    source.data = {} if builder.root is _EMPTY else builder.root
    if builder.root is not _EMPTY:
        source.values.setdefault((), (1, 1))
    return source


def _position(before: str) -> tuple[int, int]:
    """The 1-based line and column just after ``before``."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


class _Stop(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


_EMPTY: Any = object()


@dataclass
class _Frame:
    path: PathKey
    value: dict[str, Any] | list[Any]
    size: int = 1
    key: str | None = None  # a mapping's pending key
    key_plain: bool = False
    anchor: str | None = None


class _Builder:
    """Plain data from a stream of parser events, without recursion."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.alias_nodes = 0
        self.documents = 0
        self.root: Any = _EMPTY

    def stop(self, mark: Any, message: str) -> _Stop:
        return _Stop(Problem(self.source.display, mark.line + 1, mark.column + 1, message))

    def feed(self, event: Any) -> None:
        if isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.stop(
                    event.start_mark, "a campaign file holds one YAML document: remove this `---`"
                )
        elif isinstance(event, MappingStartEvent | SequenceStartEvent):
            if len(self.stack) >= MAX_DEPTH:
                raise self.stop(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
            path = self.child_path(event)
            if path is None:
                return
            self.stack.append(
                _Frame(path, {} if isinstance(event, MappingStartEvent) else [], anchor=event.anchor)
            )
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            frame = self.stack.pop()
            if frame.anchor is not None:
                self.anchors[frame.anchor] = (frame.value, frame.size)
            self.add(frame.path, frame.value, frame.size)
        elif isinstance(event, ScalarEvent):
            self.scalar(event)
        elif isinstance(event, AliasEvent):
            self.alias(event)

    def child_path(self, event: Any) -> PathKey | None:
        """The path of the node starting at ``event`` (recording its position), or None for a key."""
        mark = (event.start_mark.line + 1, event.start_mark.column + 1)
        if not self.stack:
            self.source.values[()] = mark
            return ()
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            path: PathKey = (*parent.path, len(parent.value))
            self.source.values[path] = mark
            return path
        if parent.key is None:
            raise self.stop(event.start_mark, "a key must be a plain word, not a list or mapping")
        path = (*parent.path, parent.key)
        self.source.values[path] = mark
        return path

    def add(self, path: PathKey, value: Any, size: int) -> None:
        if not self.stack:
            self.root = value
            return
        parent = self.stack[-1]
        parent.size += size
        if isinstance(parent.value, list):
            parent.value.append(value)
            return
        assert parent.key is not None
        if parent.key == "<<" and parent.key_plain:
            self.merge(parent, value, path)
        else:
            parent.value[parent.key] = value
        parent.key = None

    def merge(self, parent: _Frame, value: Any, path: PathKey) -> None:
        assert isinstance(parent.value, dict)
        for mapping in value if isinstance(value, list) else [value]:
            if not isinstance(mapping, dict):
                self.bad_value(path, "`<<` merges a mapping (`<<: *name`), not a single value")
                return
            for key, item in mapping.items():
                if key not in parent.value:
                    parent.value[key] = item
                    self.source.values[(*parent.path, key)] = self.source.keys[path]

    def scalar(self, event: ScalarEvent) -> None:
        parent = self.stack[-1] if self.stack else None
        if isinstance(parent, _Frame) and isinstance(parent.value, dict) and parent.key is None:
            self.key(parent, event)
            return
        path = self.child_path(event)
        assert path is not None
        if event.style in ("|", ">"):
            self.source.block.add(path)
        value = self.resolve(event, path)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, 1)
        self.add(path, value, 1)

    def key(self, parent: _Frame, event: ScalarEvent) -> None:
        raw = str(event.value)
        key = scalars.clean_text(raw)
        path = (*parent.path, key)
        if key in parent.value and not (key == "<<" and not event.style):
            first = self.source.keys[path][0]
            raise self.stop(event.start_mark, f"duplicate key {key!r}: it is already set on line {first}")
        self.source.keys[path] = (event.start_mark.line + 1, event.start_mark.column + 1)
        self.check_text(path, raw, "key")
        parent.key = key
        parent.key_plain = not event.style
        if event.anchor is not None:
            self.anchors[event.anchor] = (key, 1)

    def alias(self, event: AliasEvent) -> None:
        if event.anchor not in self.anchors:
            raise self.stop(
                event.start_mark, f"*{event.anchor} names no anchor &{event.anchor} written before it"
            )
        value, size = self.anchors[event.anchor]
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise self.stop(
                event.start_mark, f"aliases (*name) repeat more than {MAX_ALIAS_NODES} values; write them out"
            )
        parent = self.stack[-1] if self.stack else None
        if parent is not None and isinstance(parent.value, dict) and parent.key is None:
            if not isinstance(value, str):
                raise self.stop(event.start_mark, "a key must be a plain word, not a list or mapping")
            parent.key, parent.key_plain = value, True
            self.source.keys[(*parent.path, value)] = (event.start_mark.line + 1, event.start_mark.column + 1)
            return
        path = self.child_path(event)
        assert path is not None
        self.add(path, value, size)

    def resolve(self, event: ScalarEvent, path: PathKey) -> Any:
        text = str(event.value)
        if event.style == ">":
            text = text.replace("\a", "")  # ruamel marks the folds of a folded scalar with BEL
        if self.check_text(path, text, "text"):
            text = scalars.clean_text(
                text
            )  # reported here; what reads it later never meets the bad character
        tag = str(event.tag) if event.tag is not None else None
        if event.style or tag in ("tag:yaml.org,2002:str", "!"):
            return text
        try:
            return scalars.resolve(text)
        except scalars.ScalarProblem as problem:
            return self.bad_value(path, str(problem))

    def check_text(self, path: PathKey, text: str, what: str) -> bool:
        """Report a control character or lone surrogate in ``text`` at ``path``; whether there was one."""
        problem = scalars.text_problem(text, what)
        if problem is not None:
            self.bad_value(path, problem)
        return problem is not None

    def bad_value(self, path: PathKey, message: str) -> str:
        self.source.problems.append(self.source.problem(path, message))
        self.source.bad.add(path)
        return "?"
