"""The Jinja2 environments templates compile in: the bounded sandbox (:class:`~amplifier.campaign.sandbox.
BoundedEnvironment`, every filter wrapped by its checks) and the one of straight-line templates
(:mod:`amplifier.campaign.straight`), with the same options and filters."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined

from amplifier.campaign.filters import FILTERS
from amplifier.campaign.sandbox import BoundedEnvironment, StraightEnvironment

_OPTIONS: dict[str, Any] = {
    "undefined": StrictUndefined,
    "autoescape": False,
    "keep_trailing_newline": False,
    "trim_blocks": True,
    "lstrip_blocks": True,
    "auto_reload": False,
    "cache_size": -1,
}


def environment() -> BoundedEnvironment:
    env = BoundedEnvironment(**_OPTIONS)
    env.filters.update(FILTERS)
    env.bound_filters()
    return env


_ENV: BoundedEnvironment | None = None
_STRAIGHT_ENV: StraightEnvironment | None = None


def env() -> BoundedEnvironment:
    global _ENV
    if _ENV is None:
        _ENV = environment()
    return _ENV


def straight_env() -> StraightEnvironment:
    """The environment of straight-line templates (:mod:`amplifier.campaign.straight`): same options and filters,
    no budget hooks."""
    global _STRAIGHT_ENV
    if _STRAIGHT_ENV is None:
        _STRAIGHT_ENV = StraightEnvironment(**_OPTIONS)
        _STRAIGHT_ENV.filters.update(FILTERS)
    return _STRAIGHT_ENV
