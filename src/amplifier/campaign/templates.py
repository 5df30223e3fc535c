"""Message templates: Jinja2 in a sandbox, with StrictUndefined and filters that speak the post's language.

Variables (see the guide for examples): ``event`` (``name`` in the post's language, ``date``, ``start``, ``url``, ``id``),
``days_left``, ``hours_left``, ``now`` and ``at`` (the slot time), ``account`` (``id``, ``platform``, ``handle``),
``lang``, ``hashtags`` (the set's tags as ``#Tag #Tag``), ``campaign`` (``name``).

Filters, each formatting for the post's language with Babel (Kurmanji ``ku``, Sorani ``ckb``, Arabic, Turkish,
German, English...): ``date``, ``time``, ``datetime``, ``number``, ``plural``, ``duration``.

Templates render in a bounded sandbox (:mod:`amplifier.campaign.sandbox`): limits on steps, time, the size of every
value and of the text, each ending in a :class:`~amplifier.campaign.sandbox.TemplateLimitError`. Render with
:func:`render`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes

from amplifier.campaign.environment import env, environment, straight_env
from amplifier.campaign.filters import FILTERS, describe_value
from amplifier.campaign.sandbox import MAX_OUTPUT, Budget, run_with_budget
from amplifier.campaign.straight import is_straight
from amplifier.campaign.template_check import VARIABLES, TemplateIssue, check, syntax_in_words

__all__ = [
    "FILTERS",
    "VARIABLES",
    "NoEvent",
    "Template",
    "TemplateIssue",
    "check",
    "compile_template",
    "describe_value",
    "env",
    "environment",
    "no_event",
    "render",
    "straight_env",
    "syntax_in_words",
    "uses",
]


class NoEvent(StrictUndefined):
    """``event``, ``days_left`` and ``hours_left`` in a post whose rule has no event: false in ``{% if event %}``,
    an error naming the rule anywhere else."""

    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]  # StrictUndefined raises; this one is false
        return False


def no_event(rule_id: str, name: str) -> NoEvent:
    return NoEvent(
        hint=f"rule {rule_id!r} has no event, so {name} has no value: give the rule an event (event: ...) "
        "or test it first: {% if event %}...{% endif %}",
        name=name,
    )


@lru_cache(maxsize=256)
def _parsed(source: str) -> nodes.Template:
    """The template's syntax tree, parsed once for its variables, the straight-line check and its plain compile.
    Not for the bounded compile, whose code generator rewrites loops in the tree."""
    return env().parse(source)


def uses(source: str, name: str) -> bool:
    """Whether the template refers to the variable ``name`` (e.g. ``hashtags`` used inline)."""
    return name in _variables(source)


@lru_cache(maxsize=4096)
def _variables(source: str) -> frozenset[str]:
    """The variables the template refers to (one parse per template, whatever the names asked about)."""
    try:
        return frozenset(meta.find_undeclared_variables(_parsed(source)))
    except (TemplateSyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()


class Template:
    """A compiled template whose :meth:`render` always runs within the sandbox's limits.

    A straight-line template (:mod:`amplifier.campaign.straight`) is compiled twice: with the budget's hooks, and
    without them for the common case; see :meth:`render`.
    """

    __slots__ = ("_bounded", "_source", "_straight")

    def __init__(self, source: str) -> None:
        self._source = source
        self._bounded: Any = None  # compiled at the first render that needs the budget
        self._straight: Any = None
        ast = _parsed(source)
        if is_straight(ast, source):
            self._straight = _flat(straight_env().from_string(ast))  # its compiler leaves the tree as it is
        else:
            self._bounded = _flat(env().from_string(source))

    @property
    def straight(self) -> bool:
        """Whether the template is straight-line (rendered without a budget when that cannot change the result)."""
        return self._straight is not None

    def render(self, context: dict[str, Any], budget: Budget | None = None) -> str:
        """The text for ``context`` (``budget``: default, a fresh one). Raises
        :class:`~amplifier.campaign.sandbox.TemplateLimitError` past a limit, or whatever the template raises.

        A straight-line template is rendered without the budget first; its text is kept when the render ends
        without an error within ``MAX_OUTPUT`` characters (the budget could not have stopped it: see
        :mod:`amplifier.campaign.straight`), otherwise it is rendered again with the budget, for the same error
        at the same line as always."""
        text = self.render_straight(context)
        if text is not None:
            return text
        if self._bounded is None:
            self._bounded = _flat(env().from_string(self._source))
        return run_with_budget(lambda: self._bounded.generate(context), budget)

    def render_straight(self, context: dict[str, Any]) -> str | None:
        """The text of a straight-line template rendered without a budget, when that ends without an error within
        ``MAX_OUTPUT`` characters; None otherwise (render it with :meth:`render`)."""
        fast = self._straight
        if fast is None:
            return None
        try:
            text: str = fast.environment.concat(fast.root_render_func(fast.new_context(context)))
        except Exception:  # rendered again with the budget, which raises it located
            return None
        return text if len(text) <= MAX_OUTPUT else None


def _flat(template: Any) -> Any:
    """``template`` with its globals as one plain dictionary: Jinja2 keeps them as a ``ChainMap`` of the
    environment's and the template's own, which every render copies key by key (more than half the time of a
    short template). The environment's globals are fixed once it is set up, so the copy holds the same names."""
    template.globals = dict(template.globals)
    return template


def compile_template(source: str) -> Template:
    """The compiled template (raises :class:`TemplateSyntaxError` for a template :func:`check` reports)."""
    return Template(source)


def render(template: Template, context: dict[str, Any], budget: Budget | None = None) -> str:
    """``template`` rendered with ``context`` within the sandbox's limits; see :meth:`Template.render`."""
    return template.render(context, budget)
