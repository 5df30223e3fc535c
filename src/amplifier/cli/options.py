"""What every command shares: the global options (``ctx.obj``) and the options given before or after a command name.

The command modules (:mod:`~amplifier.cli.main`, :mod:`~amplifier.cli.preview`, :mod:`~amplifier.cli.compose`,
:mod:`~amplifier.cli.publish`, :mod:`~amplifier.cli.daemon`) import these; this module imports none of them.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign


@dataclass
class Globals:
    """Options shared by every command (``ctx.obj``)."""

    config_option: Path | None = None
    state: Path | None = None
    now_option: str | None = None
    debug: bool = False
    _campaign: Campaign | None = field(default=None, repr=False)

    @property
    def config(self) -> Path:
        from amplifier.campaign.load import find_config

        return find_config(self.config_option or _env_path("AMPLIFIER_CONFIG"))

    def campaign(self) -> Campaign:
        if self._campaign is None:
            from amplifier.campaign.load import load_campaign

            self._campaign = load_campaign(self.config)
        return self._campaign

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.campaign().schedule.campaign.timezone)

    @cached_property
    def now(self) -> dt.datetime:
        """``--now`` (read in the campaign's zone when it has no offset), else the real time."""
        from amplifier.clock import parse_instant, utcnow

        real = utcnow()
        if not self.now_option:
            return real
        return parse_instant(self.now_option, self.zone, base=real, option="--now")

    def instant(
        self, value: str | None, option: str, *, base: dt.datetime | None = None
    ) -> dt.datetime | None:
        from amplifier.clock import parse_instant

        if value is None:
            return None
        return parse_instant(value, self.zone, base=base or self.now, option=option)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


config_option = click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="The campaign's schedule.yaml (or its folder). Default: ./schedule.yaml, or $AMPLIFIER_CONFIG.",
)
now_option = click.option(
    "--now",
    "now",
    default=None,
    metavar="TIME",
    help="Pretend it is this instant (ISO 8601; without an offset, in the campaign's timezone).",
)
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def apply_common(ctx: click.Context, config: Path | None = None, now: str | None = None) -> Globals:
    """Options given after the command name override those given before it."""
    globals_: Globals = ctx.ensure_object(Globals)
    if config is not None:
        globals_.config_option = config
    if now is not None:
        globals_.now_option = now
        globals_.__dict__.pop("now", None)
    return globals_
