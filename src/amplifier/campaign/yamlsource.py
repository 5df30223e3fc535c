"""YAML files with the position of every node, so each problem can be reported as ``file:line:col``.

:func:`load` parses a file with ruamel.yaml (YAML 1.2: ``no`` stays a string, ``10:00`` stays a string), converts it to
plain Python data, and records where every key and value stands. :meth:`Source.locate` maps a path into the data (a
pydantic error's ``loc``) to the nearest recorded position.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

from amplifier.errors import CampaignError, Problem

PathKey = tuple[str | int, ...]


@dataclass
class Source:
    """A parsed YAML file: its plain data and where each node stands (1-based line and column)."""

    path: Path
    display: str  # the file name as shown in messages (relative to the campaign folder where possible)
    data: Any
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    block: set[PathKey] = field(default_factory=set)  # values written as block scalars (| or >)

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

    def text_line(self, path: PathKey, template_line: int) -> tuple[int, int]:
        """The file position of line ``template_line`` (1-based) of the string at ``path``."""
        line, col = self.locate(path)
        if path in self.block:
            # A block scalar's text starts on the line after its indicator; its column is the content indent.
            _key_line, key_col = self.keys.get(path, (line, col - 2))
            return (line + template_line, key_col + 2)
        return (line + template_line - 1, col)


def load(path: Path, display: str | None = None) -> Source:
    """Parse ``path``; raise :class:`CampaignError` with the position of a syntax error."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CampaignError([Problem(shown, 1, 1, "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise CampaignError([Problem(shown, 1, 1, f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise CampaignError([Problem(shown, 1, 1, f"cannot read the file: {exc.strerror}")]) from None
    return parse(text, path, shown)


def parse(text: str, path: Path, display: str) -> Source:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        if "found duplicate key" in message or "duplicate key" in str(exc):
            message = message.replace("while constructing a mapping ", "")
        raise CampaignError([Problem(display, line, col, f"invalid YAML: {_clean(message)}")]) from None
    except YAMLError as exc:
        raise CampaignError([Problem(display, 1, 1, f"invalid YAML: {_clean(str(exc))}")]) from None
    source = Source(path=path, display=display, data=None)
    if root is None:
        source.data = {}
        return source
    source.values[()] = (1, 1)
    source.data = _plain(root, (), source)
    return source


def _clean(message: str) -> str:
    return " ".join(message.split())


def _plain(node: Any, path: PathKey, source: Source) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            child = (*path, str(key))
            kl, kc = node.lc.key(key)
            vl, vc = node.lc.value(key)
            source.keys[child] = (kl + 1, kc + 1)
            source.values[child] = (vl + 1, vc + 1)
            if isinstance(value, LiteralScalarString | FoldedScalarString):
                source.block.add(child)
            out[str(key) if not isinstance(key, str | int) else key] = _plain(value, child, source)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*path, index)
            il, ic = node.lc.item(index)
            source.values[child] = (il + 1, ic + 1)
            if isinstance(value, LiteralScalarString | FoldedScalarString):
                source.block.add(child)
            items.append(_plain(value, child, source))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dt.datetime):
        return dt.datetime(
            node.year,
            node.month,
            node.day,
            node.hour,
            node.minute,
            node.second,
            node.microsecond,
            node.tzinfo,
        )
    return node
