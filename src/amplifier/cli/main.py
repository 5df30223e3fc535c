"""The command line. Thin: parse arguments, call one function, render its result.

Errors a user can cause (:class:`~amplifier.errors.AmplifierError`) are caught in :func:`main` and printed as
``file:line:col: message`` lines on stderr with a named exit code; a traceback only with ``--debug``.
Commands that publish (``accounts``, ``send``) live in :mod:`amplifier.cli.publish` and are loaded only when called,
so ``--help``, ``validate`` and ``preview`` never import atproto or APScheduler.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from amplifier import __version__
from amplifier.errors import AmplifierError, ExitCode, UsageError

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign

LAZY_COMMANDS = {
    "accounts": (
        "amplifier.cli.publish",
        "accounts",
        "Check each account's credentials and read its limits.",
    ),
    "send": ("amplifier.cli.publish", "send", "Publish planned posts by id, now."),
    "run": ("amplifier.cli.daemon", "run", "Run the campaign: post everything on time, exactly once."),
    "status": (
        "amplifier.cli.daemon",
        "status",
        "Next posts due, last published, failures, paused accounts.",
    ),
    "history": ("amplifier.cli.daemon", "history", "What was published, failed or expired."),
    "pause": ("amplifier.cli.daemon", "pause", "Stop all posting now, without stopping the daemon."),
    "resume": ("amplifier.cli.daemon", "resume", "Resume posting after a pause."),
}


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


class LazyGroup(click.Group):
    """Loads the modules of publishing and daemon commands only when one of them is called."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, attr, _help = LAZY_COMMANDS[cmd_name]
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                return None
            command = getattr(module, attr, None)
            return command if isinstance(command, click.Command) else None
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                if importlib.util.find_spec(LAZY_COMMANDS[name][0]) is None:
                    continue
                rows.append((name, LAZY_COMMANDS[name][2]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


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


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, prog_name="amplifier")
@config_option
@click.option(
    "--state",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    envvar="AMPLIFIER_STATE",
    help="State folder (sessions, ledger). Default: .amplifier-state beside schedule.yaml, or $AMPLIFIER_STATE.",
)
@now_option
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, state: Path | None, now: str | None, debug: bool) -> None:
    """Run a social-media campaign on a schedule: countdowns and calls to action to the campaign's own
    Mastodon and Bluesky accounts, with a dry-run preview of every post.

    Start with `amplifier validate` and `amplifier preview` in the campaign folder."""
    ctx.obj = Globals(config_option=config, state=state, now_option=now, debug=debug)


@cli.command(short_help="Check the campaign files, templates and every planned post.")
@config_option
@now_option
@click.option(
    "--horizon",
    default=None,
    metavar="DURATION",
    help="Render the posts of this period from now (e.g. +30d). Default: every post still to come.",
)
@click.pass_context
def validate(ctx: click.Context, config: Path | None, now: str | None, horizon: str | None) -> None:
    """Check the campaign: every file, every template, every planned post against each platform's limit.

    Exit code 0 when valid; 2 with one `file:line:col: message` line per problem on stderr."""
    from amplifier.campaign.load import load_partial
    from amplifier.cli.progress import track
    from amplifier.clock import parse_duration
    from amplifier.errors import CampaignError
    from amplifier.plan.planner import plannable
    from amplifier.plan.planner import validate as validate_plan

    g = apply_common(ctx, config, now)
    span = None
    if horizon is not None:
        span = parse_duration(horizon if horizon.startswith(("+", "-")) else "+" + horizon)
        if span is None:
            raise UsageError(f"--horizon: cannot read {horizon!r}; use e.g. 30d or 12h")
    campaign, problems = load_partial(g.config)
    if campaign is None:
        raise CampaignError(problems)
    # With problems, render the rules they leave whole: rendering problems are reported in the same run.
    rules = plannable(campaign, problems) if problems else None
    g._campaign = campaign  # --now without an offset is read in the campaign's zone
    plan = validate_plan(
        campaign, g.now, span, progress=lambda slots: track(slots, "Rendering posts"), rules=rules
    )
    for warning in plan.warnings:
        click.echo(f"{warning.file}:{warning.line}:{warning.col}: warning: {warning.message}", err=True)
    if problems or plan.problems:
        raise CampaignError([*problems, *plan.problems])
    parts = sum(len(post.parts) for post in plan.posts)
    click.echo(
        f"{campaign.config_display}: valid: {len(campaign.schedule.accounts)} accounts, "
        f"{len(campaign.schedule.rules)} rules, {len(campaign.message_sets)} message sets, "
        f"{len(plan.posts)} posts ({parts} parts) planned from {g.now:%Y-%m-%d %H:%M %Z}"
        + (f", {len(plan.warnings)} warning{'' if len(plan.warnings) == 1 else 's'}" if plan.warnings else "")
    )
    for rule in plan.finished:
        click.echo(f"{rule.file}:{rule.line}:{rule.col}: {rule.message}")


@cli.command(short_help="Show the planned posts in a window: what, where and when.")
@config_option
@click.option("--from", "start", default=None, metavar="TIME", help="Window start (default: now).")
@click.option(
    "--to", "end", default=None, metavar="TIME", help="Window end, exclusive (default: start + 7 days)."
)
@now_option
@click.option("--account", "accounts", multiple=True, metavar="ID", help="Only this account (repeatable).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "html", "ics"]),
    default="table",
    show_default=True,
    help="Output format: a table, JSON, a self-contained HTML page, or an iCalendar file.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file (atomically) instead of stdout (json, html, ics).",
)
@click.pass_context
def preview(
    ctx: click.Context,
    config: Path | None,
    start: str | None,
    end: str | None,
    now: str | None,
    accounts: tuple[str, ...],
    fmt: str,
    output: Path | None,
) -> None:
    """Show the planned posts in a window, in time order: exactly what would be sent, where and when.

    TIME is ISO 8601 (2027-10-25, 2027-10-25T10:00, with or without offset), `now`, or an offset (+7d, -12h).
    `--format html -o preview.html` writes a page to open in a browser; `--format ics` a calendar."""
    from amplifier.cli.progress import track
    from amplifier.cli.render import console, posts_table
    from amplifier.errors import CampaignError
    from amplifier.plan.planner import plan_window

    g = apply_common(ctx, config, now)
    campaign = g.campaign()
    window_start = g.instant(start, "--from") or g.now
    window_end = g.instant(end, "--to", base=window_start) or window_start + dt.timedelta(days=7)
    unknown = [a for a in accounts if a not in campaign.schedule.accounts]
    if unknown:
        known = ", ".join(campaign.schedule.accounts)
        raise UsageError(
            f"--account: unknown account {', '.join(map(repr, unknown))} (the campaign has: {known})"
        )
    if output is not None and fmt == "table":
        raise UsageError("--output: choose --format json, html or ics to write a file")
    plan = plan_window(
        campaign,
        window_start,
        window_end,
        accounts=set(accounts) or None,
        progress=lambda slots: track(slots, "Planning posts"),
    )
    if fmt in ("html", "ics", "json"):
        text = _export(fmt, campaign, plan, (window_start, window_end), g.now)
        if output is None:
            click.echo(text, nl=False)
        else:
            from amplifier.campaign.schema import write_atomic

            try:
                write_atomic(output, text)
            except OSError as exc:
                raise UsageError(f"--output: cannot write {output}: {exc.strerror or exc}") from None
            click.echo(f"wrote {output} ({len(plan.posts)} posts)", err=True)
    else:
        zones = {account: campaign.account_zone(account) for account in campaign.schedule.accounts}
        title = (
            f"{campaign.name}: {len(plan.posts)} post{'' if len(plan.posts) == 1 else 's'} from {window_start:%Y-%m-%d %H:%M} to "
            f"{window_end:%Y-%m-%d %H:%M} ({campaign.schedule.campaign.timezone})"
        )
        out = console()
        if plan.posts:
            out.print(posts_table(plan.posts, zones, title))
        else:
            out.print(f"{title}\nNo posts planned in this window.", markup=False)
    if plan.problems:
        raise CampaignError(plan.problems)


def _export(
    fmt: str,
    campaign: Campaign,
    plan: Any,
    window: tuple[dt.datetime, dt.datetime],
    now: dt.datetime,
) -> str:
    """The plan as JSON, an HTML page or an iCalendar file (text)."""
    if fmt == "html":
        from amplifier.cli.html import campaign_page

        return campaign_page(campaign, plan, window)
    if fmt == "ics":
        from amplifier.cli.ics import posts_calendar

        return posts_calendar(plan.posts, campaign_name=campaign.name, stamp=now).decode("utf-8")
    import io

    from amplifier.cli.render import dump_json, posts_json

    buffer = io.StringIO()
    dump_json(
        posts_json(
            plan.posts,
            campaign=campaign.name,
            window={"from": window[0].isoformat(), "to": window[1].isoformat()},
        ),
        buffer,
    )
    return buffer.getvalue()


@cli.command(short_help="Adapt one ad-hoc text for a platform: length, thread, payload.")
@click.argument("text")
@click.option("--platform", type=click.Choice(["mastodon", "bluesky"]), required=True)
@click.option("--lang", default="en", show_default=True, help="Language tag of the text.")
@click.option("--cw", "content_warning", default=None, help="Content warning (Mastodon).")
@click.option("--max-characters", default=500, show_default=True, help="Mastodon instance limit.")
@click.option("--no-split", is_flag=True, help="Do not split a long text into a thread.")
@format_option
def compose(
    text: str,
    platform: str,
    lang: str,
    content_warning: str | None,
    max_characters: int,
    no_split: bool,
    fmt: str,
) -> None:
    """Adapt one ad-hoc TEXT for a platform: its length as the platform counts it, thread split, payload."""
    from amplifier.cli.render import console, dump_json
    from amplifier.clock import utcnow
    from amplifier.plan.adapt import Content, Target, adapt

    content = Content(texts=(text,), lang=lang, content_warning=content_warning, split=not no_split)
    target = Target(
        "mastodon" if platform == "mastodon" else "bluesky",
        max_characters=max_characters,
        created_at=utcnow(),
    )
    adapted = adapt(content, target)
    if fmt == "json":
        dump_json(
            {
                "version": 1,
                "platform": platform,
                "lang": lang,
                "parts": [part.to_json() for part in adapted.parts],
                "problems": list(adapted.problems),
            }
        )
    else:
        from rich.table import Table

        table = Table(show_lines=True)
        table.add_column("part", justify="right")
        table.add_column("length", justify="right")
        table.add_column("text", overflow="fold", max_width=80)
        from rich.text import Text

        for index, part in enumerate(adapted.parts, start=1):
            table.add_row(str(index), f"{part.length}/{part.limit}", Text(part.text))
        console().print(table)
    if adapted.problems:
        for problem in adapted.problems:
            click.echo(f"compose: {problem}", err=True)
        sys.exit(ExitCode.INVALID)


@cli.command(short_help="The JSON Schema of the campaign files, for editors.")
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write schedule.schema.json and messages.schema.json here (default: print both as one JSON object).",
)
def schema(output_dir: Path | None) -> None:
    """The JSON Schema of schedule.yaml and of message files, for editors (yaml-language-server)."""
    from amplifier.campaign.schema import schemas, write_schemas
    from amplifier.cli.render import dump_json

    if output_dir is None:
        dump_json(schemas())
    else:
        for path in write_schemas(output_dir):
            click.echo(f"wrote {path}")


@cli.command(short_help="Write a new campaign folder that validates at once.")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", default="Our campaign", show_default=True, help="The campaign's name.")
@click.option(
    "--timezone", default="Europe/Berlin", show_default=True, help="The campaign's timezone (IANA name)."
)
@now_option
def init(directory: Path, name: str, timezone: str, now: str | None) -> None:
    """Write a new campaign into DIRECTORY: schedule.yaml, messages/, .env.example and the schemas.

    It validates at once and explains itself in comments. Existing files are never overwritten."""
    from amplifier.campaign.models import check_timezone
    from amplifier.campaign.scaffold import init_campaign
    from amplifier.clock import parse_instant, utcnow

    try:
        zone = ZoneInfo(check_timezone(timezone))
    except ValueError as exc:
        raise UsageError(f"--timezone: {exc}") from None
    # "Today" in the new campaign's own zone, as everything else in a campaign.
    today = parse_instant(now, zone, base=utcnow(), option="--now") if now else utcnow().astimezone(zone)
    today = today.astimezone(zone)
    result = init_campaign(directory, today=today.date(), name=name, timezone=timezone)
    for path in result.files:
        click.echo(f"wrote {directory / path}")
    days = (result.event_date - today.date()).days + 1
    click.echo(f"Next: cd {directory} && amplifier validate && amplifier preview --to +{days}d")


@cli.command(short_help="Print the shell completion script (bash, zsh, fish).")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash: eval "$(amplifier completion bash)"   (in ~/.bashrc)
    zsh:  eval "$(amplifier completion zsh)"    (in ~/.zshrc)
    fish: amplifier completion fish > ~/.config/fish/completions/amplifier.fish"""
    from click.shell_completion import get_completion_class

    completion_class = get_completion_class(shell)
    if completion_class is None:  # pragma: no cover - click knows all three
        raise UsageError(f"no completion for {shell}")
    click.echo(completion_class(cli, {}, "amplifier", "_AMPLIFIER_COMPLETE").source())


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn errors into messages and exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="amplifier", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.INVALID if exc.exit_code == 2 else exc.exit_code)
    except AmplifierError as exc:
        if debug:
            raise
        for line in exc.lines():
            click.echo(line, err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, without a traceback unless asked
        if debug:
            raise
        click.echo(
            f"amplifier: internal error: {type(exc).__name__}: {_safe(exc)} (run with --debug for the traceback)",
            err=True,
        )
        sys.exit(ExitCode.FAILURE)


def _safe(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else ""


def run(argv: list[str]) -> Any:  # pragma: no cover - convenience for python -c
    return main(argv)
