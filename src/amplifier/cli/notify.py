"""The ``notify`` command: the campaign's alert destinations, and ``--test`` to send each a test message.

Registered lazily by :mod:`amplifier.cli.main`. Exit code 6 (:attr:`ExitCode.NOTIFY`) when a destination's URL is
not set or, with ``--test``, when a destination did not take the test message; 2 when ``schedule.yaml`` has no
``notify:`` section. URLs are secrets: they are never shown, only the names of their variables.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from amplifier.cli.options import format_option
from amplifier.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign

JSON_VERSION = 1


@dataclass(frozen=True)
class DestinationReport:
    """One destination as ``notify`` shows it."""

    name: str
    url_env: str
    events: tuple[str, ...]
    digest: str | None
    url_set: bool
    tested: bool
    ok: bool
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url_env": self.url_env,
            "url_set": self.url_set,
            "events": list(self.events),
            "digest": self.digest,
            "tested": self.tested,
            "ok": self.ok,
            "error": self.error,
        }


def check_destinations(campaign: Campaign, *, send_test: bool) -> tuple[list[DestinationReport], bool]:
    """Each destination of ``campaign`` (its URL set or not; with ``send_test`` whether a test message got
    through), and whether the dead man's switch URL is set."""
    from amplifier.notify.heartbeat import DeadMansSwitch
    from amplifier.notify.notifier import Notifier
    from amplifier.publish.secrets import SecretSources

    settings = campaign.schedule.notify
    if settings is None:
        raise UsageError(
            f"{campaign.config_display}: no `notify:` section: add one to send alerts (see docs/alerts.md)"
        )
    sources = SecretSources.for_campaign(campaign.root)
    notifier = Notifier.from_campaign(campaign, sources, None, log=lambda *_a, **_k: None)
    missing = {item.name: item.reason for item in notifier.unusable}
    results = {delivery.destination: delivery for delivery in notifier.test()} if send_test else {}
    reports = []
    for name, spec in settings.destinations.items():
        delivery = results.get(name)
        error = missing.get(name) or (delivery.error if delivery else None)
        reports.append(
            DestinationReport(
                name=name,
                url_env=spec.url_env,
                events=tuple(spec.events),
                digest=spec.digest.strftime("%H:%M") if spec.digest else None,
                url_set=name not in missing,
                tested=delivery is not None,
                ok=name not in missing and (delivery is None or delivery.ok),
                error=error,
            )
        )
    return reports, DeadMansSwitch.from_sources(sources).active


@click.command()
@click.option("--test", "send_test", is_flag=True, help="Send a test message to every destination.")
@format_option
@click.pass_context
def notify(ctx: click.Context, send_test: bool, fmt: str) -> None:
    """The alert destinations of the campaign's `notify:` section: is each URL set, which events it gets.

    With --test, send each destination a test message and say which took it. Exit code 6 when a destination's
    URL is not set or did not take the test message."""
    from amplifier.cli.render import console, dump_json
    from amplifier.notify.heartbeat import HEARTBEAT_ENV

    campaign: Campaign = ctx.obj.campaign()
    reports, heartbeat = check_destinations(campaign, send_test=send_test)
    if fmt == "json":
        dump_json(
            {
                "version": JSON_VERSION,
                "destinations": [report.to_json() for report in reports],
                "heartbeat": {"url_env": HEARTBEAT_ENV, "url_set": heartbeat},
            }
        )
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{campaign.name}: alert destinations")
        for column in ("destination", "url from", "events", "digest", "test" if send_test else "url set"):
            table.add_column(column, overflow="fold")
        for report in reports:
            if send_test or not report.url_set:
                state = Text(
                    "ok" if report.ok else f"FAILED: {report.error}",
                    style="green" if report.ok else "bold red",
                )
            else:
                state = Text("yes", style="green")
            table.add_row(
                report.name,
                report.url_env,
                ", ".join(report.events) or "-",
                report.digest or "-",
                state,
            )
        console().print(table)
        click.echo(f"dead man's switch ({HEARTBEAT_ENV}): {'set' if heartbeat else 'not set'}")
    failed = [report for report in reports if not report.ok]
    for report in failed:
        click.echo(f"{report.name}: {report.error}", err=True)
    if failed:
        sys.exit(ExitCode.NOTIFY)
