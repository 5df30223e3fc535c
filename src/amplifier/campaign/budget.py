"""The budget of one template render: the sandbox's limits, and what a render may still spend.

The limits and how they are counted are described in :mod:`amplifier.campaign.sandbox`; a render gets a
:class:`Budget` through :func:`run_with_budget`, and the compiled template's hooks spend it (:func:`budget`).
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

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
                generator.throw(TemplateLimitError(too_long_output()))
    finally:
        _BUDGET.reset(token)
    raise TemplateLimitError(too_long_output())


def writes_too_much() -> str:
    return f"the template writes too much text (over {MAX_WRITTEN:,} characters in all)"


def too_long_output() -> str:
    return f"the template's text is too long (over {MAX_OUTPUT:,} characters)"


def too_large(what: str = "a value in the template") -> str:
    return f"{what} is too large (over {MAX_SIZE:,} characters or items)"


def too_big_number() -> str:
    return f"a number in the template is too large (over {MAX_INT_BITS} bits)"
