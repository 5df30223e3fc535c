"""The bounded sandbox templates render in: a template is data from an editor, not trusted code.

Jinja2's sandbox keeps a template away from Python's internals, but not from running for ever or filling the
memory: ``{{ 'x' * 10000000 }}``, ``{{ (10**100000000) % 7 }}``, a loop inside a loop inside a loop, a macro that
calls itself twice, ``{% set ns.s = ns.s ~ ns.s %}`` in a loop. Rendering also happens in the daemon, so no template
may ever wedge the process. Every render (:func:`amplifier.campaign.templates.render`) gets a :class:`Budget`:

* **Steps** (``MAX_STEPS``): one per loop iteration, call, filter, operator, concatenation and write, plus one per
  element of each list or mapping a step produces and one per 1,000 characters of text it produces. A render that
  runs out stops with an error. Steps make the limit deterministic: a template stops at the same place on a fast
  laptop and on a loaded server.
  One template also has ``MAX_PLAN_STEPS`` for all the posts of one plan (the planner keeps count; the first
  ``FREE_STEPS`` of each render are free, so a hundred thousand posts of an ordinary template are never short), so a
  template that stays just under the per-render limit cannot make a preview of a thousand posts take minutes.
* **Time** (``MAX_SECONDS`` of wall time), checked with the steps: a backstop for a step that is slow by itself.
* **Size**: every value a step produces is at most ``MAX_SIZE`` characters or items, counted through nesting (a list
  of a thousand references to one long text counts a thousand times); an integer at most ``MAX_INT_BITS`` bits;
  everything the template writes, including into ``{% set %}`` blocks and macros, at most ``MAX_WRITTEN``
  characters; the text of the template at most ``MAX_OUTPUT`` characters.

A size limit checked *after* an operation is too late when one operation can build something huge from small
inputs, so those are checked *before* they run: repetition (``'x' * n``, ``[0] * n``), powers (``**``), the
filters ``center``, ``indent``, ``join``, ``replace``, ``sum``, ``batch``, ``slice``, ``wordwrap`` and ``truncate``,
and the text methods that take a width or build text (``ljust``, ``replace``, ``join``...). ``%`` on text, the
``format`` filter, ``str.format``, ``translate``, ``expandtabs`` and ``lipsum`` are not available; only the text
methods in ``_STR_METHODS`` are.

How: a code generator (:class:`_Generator`) makes the compiled template call the budget at each of those points
(each loop's iterable goes through :meth:`BoundedEnvironment.amp_iter`, each concatenation and filter result
through :meth:`~BoundedEnvironment.amp_value`, each write through :meth:`~BoundedEnvironment.amp_write`); the
sandbox's ``call`` and ``call_binop`` hooks check calls and operators. Constant folding at compile time is off
(``optimized=False``), so nothing of a template runs before its budget exists. The checks run inside the render, in
the same thread: no worker process or thread is needed (a process per render would multiply the cost of a preview
of thousands of posts), and the most a template can take is its budget (well under a second for ``MAX_STEPS``)
before it ends in a located :class:`TemplateLimitError`.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_STEPS = 500_000
MAX_PLAN_STEPS = 5 * MAX_STEPS  # one template's steps over all the posts of one plan (a Planner)...
FREE_STEPS = (
    10_000  # ...not counting the first FREE_STEPS of each render (an ordinary template takes a few dozen)
)
MAX_SECONDS = 2.0
MAX_SIZE = 100_000  # characters of a text, items of a list or mapping (through nesting)
MAX_OUTPUT = 100_000  # characters of a rendered template
MAX_WRITTEN = 1_000_000  # characters written during one render (output, {% set %} blocks, macros)
MAX_INT_BITS = 256


class TemplateLimitError(Exception):
    """A template went over one of the sandbox's limits; the message says which, in plain words."""


@dataclass
class Budget:
    """What one render may still use."""

    steps: int = MAX_STEPS
    written: int = 0
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)
    shared: bool = False  # the steps are what is left of the template's allowance for a whole plan
    clock_at: int = MAX_STEPS  # read the clock when ``steps`` falls to this (every 256 steps)

    def spend(self, steps: int = 1) -> None:
        self.steps -= steps
        if self.steps < 0:
            if self.shared:
                raise TemplateLimitError(
                    f"the template takes too many steps over all its posts (over {MAX_PLAN_STEPS:,} in one plan)"
                )
            raise TemplateLimitError(
                f"the template takes too many steps (over {MAX_STEPS:,}): a loop inside a loop, or a macro that "
                "calls itself?"
            )
        if self.steps <= self.clock_at:
            self.clock_at = self.steps - 256
            if time.monotonic() > self.deadline:
                raise TemplateLimitError(f"the template takes too long (over {MAX_SECONDS:g} seconds)")


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "amplifier_template_budget", default=None
)


def budget() -> Budget:
    current = _BUDGET.get()
    if current is None:
        raise RuntimeError("templates render through amplifier.campaign.templates.render (with a budget)")
    return current


def run_with_budget(render: Any, budget: Budget | None = None) -> str:
    """Call ``render()`` (a template's ``generate``, wrapped in a function) with ``budget`` (default: a fresh one);
    its text."""
    token = _BUDGET.set(budget or Budget())
    try:
        text = "".join(render())  # at most MAX_WRITTEN characters: amp_write and amp_charge see to it
    finally:
        _BUDGET.reset(token)
    if len(text) <= MAX_OUTPUT:
        return text
    # Too long: render again chunk by chunk, to raise the error inside the template at the line that wrote past
    # the limit, so that it is located there.
    token = _BUDGET.set(Budget())
    try:
        size = 0
        generator = render()
        for chunk in generator:
            size += len(chunk)
            if size > MAX_OUTPUT:
                generator.throw(TemplateLimitError(_too_long_output()))
    finally:
        _BUDGET.reset(token)
    raise TemplateLimitError(_too_long_output())


def _writes_too_much() -> str:
    return f"the template writes too much text (over {MAX_WRITTEN:,} characters in all)"


def _too_long_output() -> str:
    return f"the template's text is too long (over {MAX_OUTPUT:,} characters)"


def _too_large(what: str = "a value in the template") -> str:
    return f"{what} is too large (over {MAX_SIZE:,} characters or items)"


def check_value(value: Any) -> Any:
    """Spend the steps ``value`` is worth and refuse it when it is over the size limits; ``value``."""
    current = budget()
    if type(value) is str or isinstance(value, str):  # the common case first
        if len(value) > MAX_SIZE:
            raise TemplateLimitError(_too_large("a text in the template"))
        current.spend(1 + (len(value) >> 10))
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        current.spend()
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(_too_big_number())
        current.spend()
    elif isinstance(value, list | tuple | dict | set | frozenset):
        current.spend(1 + _deep_size(value))
    else:
        current.spend()
    return value


def _too_big_number() -> str:
    return f"a number in the template is too large (over {MAX_INT_BITS} bits)"


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
            raise TemplateLimitError(_too_large())
    return total


def _count(value: Any, what: str) -> int:
    """An integer argument that sets the size of a result (a width, a count): at most ``MAX_SIZE``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
        raise TemplateLimitError(f"{what} {value:,} is too large (at most {MAX_SIZE:,})")
    return int(value) if isinstance(value, int) else 0


def _room(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise TemplateLimitError(_too_large(what))


def _len(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return len(str(value))


# ----------------------------------------------------------------------------------------- operators, calls


def _check_binop(operator: str, left: Any, right: Any) -> None:
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


def _cannot(operator: str, left: Any, right: Any) -> str:
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


def _str_method_check(obj: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
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
_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join",
        "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex",
        "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase",
        "title", "upper", "zfill",
    }
)  # fmt: skip


# -------------------------------------------------------------------------------------------------- filters


def _bounded_filter(name: str, func: Any) -> Any:
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
            _str_method_check(value, "replace", tuple(str(r) for r in rest[:2]), {})
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
_REMOVED_FILTERS = ("format",)  # printf-style formatting: widths build text of any size
_REMOVED_GLOBALS = ("lipsum",)  # lipsum(n) writes n paragraphs


class _Generator(CodeGenerator):
    """Compiles templates so that every loop iteration, concatenation, filter and write calls the budget."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not getattr(node, "amp_bounded", False):
            node.iter = nodes.Call(nodes.EnvironmentAttribute("amp_iter"), [node.iter], [], None, None)
            node.iter.set_lineno(node.lineno)
            node.amp_bounded = True  # type: ignore[attr-defined]
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.amp_value(")
        super().visit_Concat(node, frame)
        self.write(")")

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        self.write("environment.amp_value(")
        super().visit_Filter(node, frame)
        self.write(")")

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        # The template's own text is written as constants: charge it once per output statement (a loop body's
        # text, each time round the loop).
        size = sum(len(child.data) for child in node.nodes if isinstance(child, nodes.TemplateData))
        if size:
            self.writeline(f"environment.amp_charge({size})")
        super().visit_Output(node, frame)

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()  # every expression's text is counted when it is written (amp_write)
        return super()._output_child_to_const(node, frame, finalize)

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("environment.amp_write(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        self.write(")")


class _PlainGenerator(CodeGenerator):
    """Compiles a straight-line template (:mod:`amplifier.campaign.straight`) without the budget's hooks; like
    :class:`_Generator`, it folds no expression at compile time, so nothing of a template runs before its render."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the budget's hooks (see the module docstring)."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"-", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(optimized=False, **options)
        for name in _REMOVED_FILTERS:
            self.filters.pop(name, None)
        for name in _REMOVED_GLOBALS:
            self.globals.pop(name, None)
        self.globals["range"] = _range

    def bound_filters(self) -> None:
        """Wrap every filter (call after adding one's own) so its arguments and result are checked."""
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}

    # Hooks called by the compiled template.

    def amp_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        current = budget()
        for item in iterable:
            current.spend()
            yield item

    def amp_value(self, value: Any) -> Any:
        return check_value(value)

    def amp_write(self, text: str) -> str:
        current = budget()
        current.written += len(text)
        if current.written > MAX_WRITTEN:
            raise TemplateLimitError(_writes_too_much())
        current.spend(1 + (len(text) >> 10))
        return text

    def amp_charge(self, size: int) -> None:
        current = budget()
        current.written += size
        if current.written > MAX_WRITTEN:
            raise TemplateLimitError(_writes_too_much())
        current.spend(1 + (size >> 10))

    # Sandbox hooks.

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget().spend()
        _check_binop(operator, left, right)
        try:
            result = super().call_binop(context, operator, left, right)
        except TypeError:
            raise TypeError(_cannot(operator, left, right)) from None
        return check_value(result)

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        return check_value(super().call_unop(context, operator, arg))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget().spend()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _str_method_check(owner, getattr(__obj, "__name__", ""), args, kwargs)
        return check_value(super().call(__context, __obj, *args, **kwargs))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and callable(value) and attr not in _STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        return self.undefined(
            f"{attribute!r} of a {type(obj).__name__} is not available in templates",
            name=attribute,
            obj=obj,
            exc=SecurityError,
        )

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is not in _STR_METHODS: is_safe_attribute refuses it


class StraightEnvironment(BoundedEnvironment):
    """The same sandbox (attributes, removed filters and globals) for straight-line templates: compiled without the
    budget's hooks, with the filters as they are (not wrapped by :meth:`BoundedEnvironment.bound_filters`)."""

    code_generator_class = _PlainGenerator


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_SIZE:
        raise TemplateLimitError(f"range() of {len(numbers):,} numbers is too large (at most {MAX_SIZE:,})")
    return numbers


__all__ = [
    "FREE_STEPS",
    "MAX_OUTPUT",
    "MAX_PLAN_STEPS",
    "MAX_SECONDS",
    "MAX_SIZE",
    "MAX_STEPS",
    "MAX_WRITTEN",
    "BoundedEnvironment",
    "Budget",
    "StraightEnvironment",
    "TemplateLimitError",
]
