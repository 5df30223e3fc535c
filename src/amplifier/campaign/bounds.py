"""The sandbox's checks of values, operators, text methods and filters (:mod:`amplifier.campaign.sandbox`).

A size limit checked *after* an operation is too late when one operation can build something huge from small
inputs, so those are checked *before* they run (:func:`check_binop`, :func:`check_str_method`,
:func:`bounded_filter`); every value a step produces is charged and checked after (:func:`check_value`).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from jinja2.nodes import EvalContext
from jinja2.runtime import Context

from amplifier.campaign.budget import (
    MAX_INT_BITS,
    MAX_SIZE,
    TemplateLimitError,
    budget,
    too_big_number,
    too_large,
)


def check_value(value: Any) -> Any:
    """Spend the steps ``value`` is worth and refuse it when it is over the size limits; ``value``."""
    current = budget()
    if type(value) is str or isinstance(value, str):  # the common case first
        if len(value) > MAX_SIZE:
            raise TemplateLimitError(too_large("a text in the template"))
        current.spend(1 + (len(value) >> 10))
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        current.spend()
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(too_big_number())
        current.spend()
    elif isinstance(value, list | tuple | dict | set | frozenset):
        current.spend(1 + _deep_size(value))
    else:
        current.spend()
    return value


def _deep_size(value: Any) -> int:
    """Items and characters inside ``value``, through nesting and shared references; stops past ``MAX_SIZE``."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        total += max(1, len(item)) if isinstance(item, str) else 1  # a container counts 1, plus what it holds
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        if total > MAX_SIZE:
            raise TemplateLimitError(too_large())
    return total


def _count(value: Any, what: str) -> int:
    """An integer argument that sets the size of a result (a width, a count): at most ``MAX_SIZE``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
        raise TemplateLimitError(f"{what} {value:,} is too large (at most {MAX_SIZE:,})")
    return int(value) if isinstance(value, int) else 0


def _room(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise TemplateLimitError(too_large(what))


def _len(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return len(str(value))


# ----------------------------------------------------------------------------------------- operators, calls


def check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                _room(len(seq) * max(times, 0), f"repeating a {type(seq).__name__} {times:,} times")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        if abs(left) > 1 and (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
            raise TemplateLimitError(f"{left} ** {right} is too large (over {MAX_INT_BITS} bits)")
    elif operator == "%" and isinstance(left, str):
        raise TemplateLimitError("% on text is not available in templates: join text with ~ instead")


_VERBS = {
    "+": "add",
    "-": "subtract",
    "*": "multiply",
    "/": "divide",
    "//": "divide",
    "%": "take %",
    "**": "raise",
}


def cannot(operator: str, left: Any, right: Any) -> str:
    def kind(value: Any) -> str:
        if value is None:
            return "nothing (none)"
        if isinstance(value, str):
            return "a text"
        if isinstance(value, bool):
            return "true/false"
        if isinstance(value, int | float):
            return "a number"
        return f"a {type(value).__name__}"

    message = f"cannot {_VERBS.get(operator, operator)} {kind(left)} and {kind(right)} ({operator})"
    if operator == "+" and (isinstance(left, str) or isinstance(right, str)):
        message += ": join text with ~, which also writes numbers as text"
    return message


def check_str_method(obj: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    values = [*args, *kwargs.values()]
    if name in ("center", "ljust", "rjust", "zfill"):
        for value in values:
            _count(value, f"the width of {name}()")
    elif name == "replace":
        old, new = (str(v) for v in [*values, "", ""][:2])
        hits = obj.count(old) if old else len(obj) + 1
        _room(len(obj) + hits * max(0, len(new) - len(old)), "the text replace() would build")
    elif name == "join" and values:
        items = values[0]
        if isinstance(items, str | list | tuple):
            _room(
                sum(_len(i) for i in items) + len(obj) * max(0, len(items) - 1), "the text join() would build"
            )


# The text methods a template may call (``str.format``, ``translate``, ``expandtabs``, ``encode``... are not).
STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join",
        "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex",
        "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase",
        "title", "upper", "zfill",
    }
)  # fmt: skip


# -------------------------------------------------------------------------------------------------- filters


def bounded_filter(name: str, func: Any) -> Any:
    """``func`` with its size-setting arguments checked before and its result after."""

    def pre(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        values = [a for a in args if not isinstance(a, Context | EvalContext | Environment)]
        value = values[0] if values else None
        rest = [*values[1:], *kwargs.values()]
        if name in ("center", "indent", "wordwrap", "truncate", "batch", "slice"):
            for item in rest:
                _count(item, f"the width or count of {name}")
        if name == "indent" and isinstance(value, str):
            width = kwargs.get("width", values[1] if len(values) > 1 else 4)
            step = len(width) if isinstance(width, str) else int(width)
            _room(len(value) + (value.count("\n") + 1) * step, "the text indent would build")
        elif name == "wordwrap" and isinstance(value, str):
            width = kwargs.get("width", values[1] if len(values) > 1 else 79)
            glue = kwargs.get("wrapstring", values[3] if len(values) > 3 else "\n")
            lines = len(value) // max(1, int(width)) + 1
            _room(len(value) + lines * len(str(glue or "")), "the text wordwrap would build")
        elif name == "replace" and isinstance(value, str) and len(rest) >= 2:
            check_str_method(value, "replace", tuple(str(r) for r in rest[:2]), {})
        elif name == "join" and isinstance(value, list | tuple):
            glue = str(rest[0]) if rest else ""
            _room(
                sum(_len(v) for v in value) + len(glue) * max(0, len(value) - 1), "the text join would build"
            )
        elif name == "sum":
            start = kwargs.get("start", values[2] if len(values) > 2 else 0)
            if not isinstance(start, int | float):
                raise TemplateLimitError("sum adds numbers only")

    if name in _PRECHECKED_FILTERS:

        def bounded(*args: Any, **kwargs: Any) -> Any:
            budget().spend()
            pre(args, kwargs)
            return check_value(func(*args, **kwargs))

    else:

        def bounded(*args: Any, **kwargs: Any) -> Any:
            return check_value(func(*args, **kwargs))  # check_value spends the step

    for attribute in ("jinja_pass_arg", "__name__", "__doc__"):
        if hasattr(func, attribute):
            setattr(bounded, attribute, getattr(func, attribute))
    return bounded


_PRECHECKED_FILTERS = frozenset(
    {"center", "indent", "wordwrap", "truncate", "batch", "slice", "replace", "join", "sum"}
)
