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

from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from amplifier.campaign.bounds import (
    STR_METHODS,
    bounded_filter,
    cannot,
    check_binop,
    check_str_method,
    check_value,
)
from amplifier.campaign.budget import (
    FREE_STEPS,
    MAX_INT_BITS,
    MAX_OUTPUT,
    MAX_PLAN_STEPS,
    MAX_SECONDS,
    MAX_SIZE,
    MAX_STEPS,
    MAX_WRITTEN,
    Budget,
    TemplateLimitError,
    budget,
    run_with_budget,
    writes_too_much,
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

    code_generator_class: type[CodeGenerator] = _Generator
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
        self.filters = {name: bounded_filter(name, func) for name, func in self.filters.items()}

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
            raise TemplateLimitError(writes_too_much())
        current.spend(1 + (len(text) >> 10))
        return text

    def amp_charge(self, size: int) -> None:
        current = budget()
        current.written += size
        if current.written > MAX_WRITTEN:
            raise TemplateLimitError(writes_too_much())
        current.spend(1 + (size >> 10))

    # Sandbox hooks.

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget().spend()
        check_binop(operator, left, right)
        try:
            result = super().call_binop(context, operator, left, right)
        except TypeError:
            raise TypeError(cannot(operator, left, right)) from None
        return check_value(result)

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        return check_value(super().call_unop(context, operator, arg))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget().spend()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        return check_value(super().call(__context, __obj, *args, **kwargs))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and callable(value) and attr not in STR_METHODS:
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
        return None  # str.format is not in STR_METHODS: is_safe_attribute refuses it


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
    "MAX_INT_BITS",
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
    "check_value",
    "run_with_budget",
]
