"""The command line. Thin: parse arguments, call one function, render its result.

Errors a user can cause (:class:`~amplifier.errors.AmplifierError`) are caught in :func:`main` and printed as
``file:line:col: message`` lines on stderr with a named exit code; a traceback only with ``--debug``.
``preview`` and ``compose`` live in their own modules (:mod:`amplifier.cli.preview`, :mod:`amplifier.cli.compose`).
Commands that publish (``accounts``, ``send``) live in :mod:`amplifier.cli.publish` and are loaded only when called,
so ``--help``, ``validate`` and ``preview`` never import atproto or APScheduler.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from amplifier import __version__
from amplifier.cli.options import (
    Globals,
    apply_common,
    config_option,
    exit_code,
    format_option,
    now_option,
    output_option,
)
from amplifier.errors import AmplifierError, ExitCode, UsageError

__all__ = ["Globals", "apply_common", "cli", "config_option", "format_option", "main", "now_option"]

LAZY_COMMANDS = {
    "accounts": (
        "amplifier.cli.publish",
        "accounts",
        "Check each account's credentials and read its limits.",
    ),
    "send": ("amplifier.cli.publish", "send", "Publish planned posts by id, now."),
    "gate": ("amplifier.cli.gate", "gate", "Change who may reply to and quote published posts."),
    "correct": (
        "amplifier.cli.correct",
        "correct",
        "Edit published posts to what the files say now (Mastodon).",
    ),
    "retract": (
        "amplifier.cli.retract",
        "retract",
        "Delete published posts (threads, gates, boosts) and record it.",
    ),
    "run": ("amplifier.cli.daemon", "run", "Run the campaign: post everything on time, exactly once."),
    "status": (
        "amplifier.cli.status",
        "status",
        "Next posts due, last published, failures, paused accounts.",
    ),
    "history": ("amplifier.cli.status", "history", "What was published, failed or expired."),
    "pause": (
        "amplifier.cli.operator",
        "pause",
        "Stop all posting (or one account's), without stopping the daemon.",
    ),
    "resume": ("amplifier.cli.operator", "resume", "Resume posting after a pause."),
    "skip": ("amplifier.cli.operator", "skip", "Skip planned posts by id: they will not go out."),
    "cancel": ("amplifier.cli.operator", "cancel", "Cancel every planned post of a rule, event or account."),
    "retry": ("amplifier.cli.operator", "retry", "Put a failed or expired post back to planned."),
    "notify": ("amplifier.cli.notify", "notify", "The alert destinations; --test sends each a test message."),
    "report": (
        "amplifier.cli.report",
        "report",
        "What went out and what reached people: posts and engagement read back.",
    ),
    "ledger": ("amplifier.cli.ledger", "ledger", "Where the delivery ledger is; move it to PostgreSQL."),
}


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
    from amplifier.campaign.videos import caption_warnings
    from amplifier.cli.progress import track_window
    from amplifier.clock import parse_duration
    from amplifier.delivery.accounts import instance_warnings
    from amplifier.errors import CampaignError
    from amplifier.plan.planner import plannable
    from amplifier.plan.stream import validate as validate_plan
    from amplifier.publish.media import upload_problems

    g = apply_common(ctx, config, now)
    span = None
    if horizon is not None:
        span = parse_duration(horizon if horizon.startswith(("+", "-")) else "+" + horizon, "--horizon")
        if span is None:
            raise UsageError(f"--horizon: cannot read {horizon!r}; use e.g. 30d or 12h")
    campaign, problems = load_partial(g.config)
    if campaign is None:
        raise CampaignError(problems)
    # With problems, render the rules they leave whole: rendering problems are reported in the same run.
    rules = plannable(campaign, problems) if problems else None
    g._campaign = campaign  # --now without an offset is read in the campaign's zone
    found = validate_plan(
        campaign,
        g.now,
        span,
        progress=lambda slots, a, b: track_window(slots, "Rendering posts", a, b),
        rules=rules,
    )
    images = upload_problems(campaign)
    if problems or found.problems or images:  # the warnings wait: one mistake, one line
        raise CampaignError([*problems, *found.problems, *images])
    found.warnings.extend(instance_warnings(campaign, g.state))
    found.warnings.extend(caption_warnings(campaign))
    for warning in found.warnings:
        click.echo(f"{warning.file}:{warning.line}:{warning.col}: warning: {warning.message}", err=True)
    click.echo(
        f"{campaign.config_display}: valid: {len(campaign.schedule.accounts)} accounts, "
        f"{len(campaign.schedule.rules)} rules, {len(campaign.message_sets)} message sets, "
        f"{found.posts} posts ({found.parts} parts) planned from {g.now:%Y-%m-%d %H:%M %Z}"
        + (
            f", {len(found.warnings)} warning{'' if len(found.warnings) == 1 else 's'}"
            if found.warnings
            else ""
        )
    )
    for rule in found.finished:
        click.echo(f"{rule.file}:{rule.line}:{rule.col}: {rule.message}")


@cli.command(short_help="The JSON Schema of the campaign files, for editors.")
@output_option(
    "Write schedule.schema.json and messages.schema.json here (default: print both as one JSON object).",
    directory=True,
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
        sys.exit(exit_code(exc))
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


def _register() -> None:
    from amplifier.cli.compose import compose
    from amplifier.cli.preview import preview

    cli.add_command(preview)
    cli.add_command(compose)


_register()
