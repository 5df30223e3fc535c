"""Straight-line templates: those whose every render is bounded by their own size, so they need no budget per render.

Most message templates are text with a few ``{{ value | filter }}`` and an ``{% if %}``: no loop, no macro, no
``{% set %}``, no operator, no call. Such a template evaluates each of its nodes at most once, so what one render
can cost is fixed by the template itself, once, when it is compiled (:func:`is_straight`): the budget's counting
at every node (:mod:`amplifier.campaign.sandbox`) cannot stop it, and is only overhead, paid on every post.

A straight-line template therefore also gets a second compiled form without the budget's hooks (still in the
sandbox: attributes are checked as usual). :meth:`amplifier.campaign.templates.Template.render` runs that form and
keeps its text only when the render ends without an error and the text is within ``MAX_OUTPUT``; otherwise it
renders again with the budget, which gives exactly the error (and location) it always gave. The result is the
same text or the same error as the bounded render, for the cost of the bare Jinja2 render.

Why the bounded render could not have stopped such a template where the fast one succeeds:

* **Steps**: at most :data:`MAX_NODES` nodes, each charged one step plus one per 1,024 characters of a value of at
  most ``MAX_SIZE`` characters: fewer than ``FREE_STEPS``, so neither the render's nor the plan's allowance
  (``MAX_PLAN_STEPS`` counts only what a render spends past ``FREE_STEPS``) is ever touched.
* **Size**: every value is a context value, a constant of the template, or the result of one filter of
  :data:`FILTERS` applied to those (no chains): the filters format a value (dates, numbers, plural forms, case),
  they do not build large text from small input beyond what the output check sees; the text written is the
  output, checked against ``MAX_OUTPUT`` (below ``MAX_WRITTEN``).
* **Time**: a few dozen node evaluations and filter calls.
"""

from __future__ import annotations

from jinja2 import nodes

MAX_NODES = 256  # nodes of a straight-line template (each evaluated at most once per render)
MAX_SOURCE = 4_000  # characters of its source (bounds its constants, plural forms and date patterns)

# Filters whose result is a formatted or re-cased copy of their input (amplifier's, and Jinja's case filters).
FILTERS = frozenset({"date", "time", "datetime", "number", "plural", "duration", "upper", "lower", "title"})
TESTS = frozenset({"defined", "undefined", "none", "number", "string", "true", "false", "even", "odd"})

_LEAVES = (nodes.Name, nodes.Const, nodes.TemplateData)
_PLAIN = (nodes.Template, nodes.Output, nodes.If, nodes.CondExpr, nodes.Compare, nodes.Operand, nodes.Not)
_VALUES = (nodes.Name, nodes.Const, nodes.Getattr, nodes.Getitem)


def is_straight(ast: nodes.Template, source: str) -> bool:
    """Whether the parsed template ``ast`` (of ``source``) is straight-line: see the module docstring."""
    if len(source) > MAX_SOURCE:
        return False
    for count, node in enumerate(ast.find_all(nodes.Node), start=1):
        if count > MAX_NODES or not _allowed(node):
            return False
    return _allowed(ast)


def _allowed(node: nodes.Node) -> bool:
    if isinstance(node, (*_LEAVES, *_PLAIN)):
        return not isinstance(node, nodes.Name) or node.ctx == "load"
    if isinstance(node, nodes.And | nodes.Or):
        return True
    if isinstance(node, nodes.Getattr):
        return True
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Const)
    if isinstance(node, nodes.Keyword):
        return isinstance(node.value, nodes.Const)
    if isinstance(node, nodes.Filter):
        return (
            node.name in FILTERS
            and isinstance(node.node, _VALUES)
            and all(isinstance(arg, nodes.Const) for arg in node.args)
            and node.dyn_args is None
            and node.dyn_kwargs is None
        )
    if isinstance(node, nodes.Test):
        return (
            node.name in TESTS
            and not node.args
            and not node.kwargs
            and node.dyn_args is None
            and node.dyn_kwargs is None
        )
    return False
