"""Rendering the templates of one campaign's plan: each template compiled once, rendered within the sandbox's limits
with its share of the plan's steps (``MAX_PLAN_STEPS``), and every error reported once, in words, at the line of
the message file where the template stands (:class:`Renderer`).

Straight-line templates (:mod:`amplifier.campaign.straight`) are rendered without a budget: nothing is counted for
them, since they cannot reach a limit the budget would have stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError

from amplifier.campaign.load import Campaign
from amplifier.campaign.sandbox import FREE_STEPS, MAX_PLAN_STEPS, MAX_STEPS, Budget, TemplateLimitError
from amplifier.campaign.templates import Template, compile_template, render
from amplifier.campaign.yamlsource import PathKey
from amplifier.errors import Problem
from amplifier.plan.adapt import tidy


@dataclass(frozen=True)
class TemplateText:
    """A template with where it stands, for locating render errors."""

    source: str
    set_id: str
    path: PathKey


class Renderer:
    """Renders the templates of one campaign (one plan): compiled templates, plan steps and problems."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self._templates: dict[str, Template] = {}
        self._problems: dict[Problem, None] = {}
        self._over_limit: set[str] = set()  # templates that went over a sandbox limit: not rendered again
        self._steps_left: dict[str, int] = {}  # each template's steps left for this plan (MAX_PLAN_STEPS)

    @property
    def problems(self) -> list[Problem]:
        return sorted(self._problems)

    def problem(self, set_id: str, path: PathKey, message: str, template_line: int | None = None) -> None:
        """Record ``message`` at the template of message set ``set_id`` at ``path`` (at a line within it)."""
        source = self.campaign.set_sources[set_id]
        if template_line is None:
            problem = source.problem(("sets", set_id, *path), message)
        else:
            line, col = source.text_line(("sets", set_id, *path), template_line)
            problem = Problem(source.display, line, col, message)
        self._problems[problem] = None

    def render(self, text: TemplateText, context: dict[str, Any]) -> str | None:
        """The tidied text of ``text`` with ``context``; None after recording the error as a problem."""
        template = self._templates.get(text.source)
        if template is not None:  # a straight-line template needs no budget (amplifier.campaign.straight)
            straight = template.render_straight(context)
            if straight is not None:
                return tidy(straight)
        if text.source in self._over_limit:
            return None  # reported once, at its first render
        try:
            if template is None:
                template = self._templates[text.source] = compile_template(text.source)
            left = self._steps_left.get(text.source, MAX_PLAN_STEPS)
            steps = min(MAX_STEPS, left + FREE_STEPS)
            budget = Budget(steps=steps, shared=steps < MAX_STEPS)
            try:
                return tidy(render(template, context, budget))
            finally:
                used = steps - max(budget.steps, 0)
                self._steps_left[text.source] = left - max(0, used - FREE_STEPS)
        except Exception as exc:  # any error raised while rendering is the template's, reported at its line
            if isinstance(exc, TemplateLimitError | SecurityError | RecursionError | MemoryError):
                self._over_limit.add(text.source)
                message = f"template of {_name(text)}: {describe_error(exc)}"
            else:
                message = f"template error: {describe_error(exc)}"
            self.problem(text.set_id, text.path, message, template_line(exc))
            return None


def _name(text: TemplateText) -> str:
    """The template in words: ``message set 'countdown', variant 1, en``."""
    path = text.path
    if path and path[0] == "variants" and len(path) >= 4:
        where = f", variant {int(path[1]) + 1}, {path[3]}"
        if path[2] != "text":
            where += f" on {path[2]}"
        if len(path) > 4:
            where += f", thread part {int(path[4]) + 1}"
    elif path and path[0] == "content_warning":
        where = f", content warning, {path[-1]}"
    else:
        where = ""
    return f"message set {text.set_id!r}{where}"


def describe_error(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "the template calls itself too deeply (a macro or a recursive loop that does not end?)"
    if isinstance(exc, MemoryError):
        return "the template needs too much memory"
    message = str(exc) or type(exc).__name__
    for jinja, words in _KINDS.items():
        message = message.replace(jinja, words)
    return message


_KINDS = {
    "'dict object'": "the value",
    "'str object'": "the text",
    "'int object'": "the number",
    "'float object'": "the number",
    "'list object'": "the list",
    "'None' ": "nothing (none) ",
}


def template_line(exc: BaseException) -> int:
    line = 1
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
