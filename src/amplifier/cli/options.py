"""What every command shares: the global options (``ctx.obj``) and the options given before or after a command name.

The command modules (:mod:`~amplifier.cli.main`, :mod:`~amplifier.cli.preview`, :mod:`~amplifier.cli.compose`,
:mod:`~amplifier.cli.publish`, :mod:`~amplifier.cli.daemon`) import these; this module imports none of them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import click

from amplifier.errors import AmplifierError, ExitCode

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.clock import Clock
    from amplifier.delivery.ledger import Ledger


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

    @property
    def zone_or_utc(self) -> ZoneInfo:
        """The campaign's zone, or UTC when the campaign cannot be loaded (``status`` works without one)."""
        from amplifier.errors import AmplifierError

        try:
            return self.zone
        except AmplifierError:
            return ZoneInfo("UTC")

    @property
    def state_dir(self) -> Path:
        """The state folder, without loading (or needing) a valid campaign."""
        from amplifier.publish.sessions import resolve_state_dir

        return resolve_state_dir(self.config, self.state)

    def open_ledger(self, now: dt.datetime) -> Ledger:
        """The delivery ledger of the state folder (or ``$AMPLIFIER_LEDGER``), for a ``with`` block."""
        from amplifier.delivery import ledger as ledgers

        return ledgers.open_ledger(self.state_dir, now)

    @cached_property
    def now(self) -> dt.datetime:
        """``--now`` (read in the campaign's zone when it has no offset), else the real time."""
        from amplifier.clock import parse_instant, utcnow

        real = utcnow()
        if not self.now_option:
            return real
        return parse_instant(self.now_option, self.zone, base=real, option="--now")

    def clock(self) -> Clock:
        """The clock of a command that runs on (``send``, ``run``): from ``--now`` at real speed, else the real one."""
        from amplifier.clock import utcnow
        from amplifier.daemon.settings import offset_clock

        return offset_clock(self.now) if self.now_option else utcnow

    @property
    def moment(self) -> dt.datetime:
        """The moment of an action: ``--now``, else the clock as it is read now (not :attr:`now`, read once)."""
        from amplifier.clock import utcnow

        return self.now if self.now_option else utcnow()

    def instant(
        self, value: str | None, option: str, *, base: dt.datetime | None = None
    ) -> dt.datetime | None:
        from amplifier.clock import parse_instant

        if value is None:
            return None
        return parse_instant(value, self.zone, base=base or self.now, option=option)


def replies_option(replies: tuple[str, ...]) -> tuple[str, ...] | None:
    """``--replies`` (repeatable) as reply rules (None when not given); a usage error for a rule that is not one."""
    from amplifier.campaign.controls import parse_replies
    from amplifier.errors import UsageError

    if not replies:
        return None
    try:
        return parse_replies(replies)
    except ValueError as exc:
        raise UsageError(f"--replies: {exc}") from None


def exit_code(error: BaseException) -> ExitCode:
    """The exit code of an error, the one mapping of the CLI: an :class:`~amplifier.errors.AmplifierError`'s own
    (its class says it: 3 for credentials missing or rejected, 4 for a post, 5 for the state folder...), 1 for
    anything else (a bug)."""
    return ExitCode(error.exit_code) if isinstance(error, AmplifierError) else ExitCode.FAILURE


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


def formats_option(*formats: str, help: str = "Output format.") -> Callable[[F], F]:
    """``--format`` (``fmt``), one of ``formats``, the first the default."""
    return click.option(
        "--format", "fmt", type=click.Choice(list(formats)), default=formats[0], show_default=True, help=help
    )


def output_option(help: str, *, directory: bool = False) -> Callable[[F], F]:
    """``--output``/``-o`` (``--output-dir`` for a ``directory``): where to write instead of standard output."""
    if directory:
        return click.option(
            "--output-dir", "-o", type=click.Path(path_type=Path, file_okay=False), default=None, help=help
        )
    return click.option(
        "--output", "-o", type=click.Path(path_type=Path, dir_okay=False), default=None, help=help
    )


format_option = formats_option("table", "json")


def apply_common(ctx: click.Context, config: Path | None = None, now: str | None = None) -> Globals:
    """Options given after the command name override those given before it."""
    globals_: Globals = ctx.ensure_object(Globals)
    if config is not None:
        globals_.config_option = config
    if now is not None:
        globals_.now_option = now
        globals_.__dict__.pop("now", None)
    return globals_
