"""The ``notify`` command: the campaign's alert destinations, and ``--test`` to send each a test message.

Registered lazily by :mod:`amplifier.cli.main`. Exit code 6 (:attr:`ExitCode.NOTIFY`) when a destination's URL is
not set or, with ``--test``, when a destination did not take the test message; 2 when ``schedule.yaml`` has no
``notify:`` section. URLs are secrets: they are never shown, only the names of their variables.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from amplifier.cli.options import format_option
from amplifier.errors import ExitCode
from amplifier.notify.check import DestinationReport, check_destinations

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign

__all__ = ["JSON_VERSION", "DestinationReport", "check_destinations", "notify"]

JSON_VERSION = 1


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
