"""``amplifier ledger``: where the delivery ledger is, and ``ledger migrate`` to move a running campaign from the
state folder's SQLite file to a shared PostgreSQL database (several nodes, one campaign).

The database URL is a secret: it is read from ``--to-env`` (an environment variable, or a file of that name in
the secrets folder; ``AMPLIFIER_LEDGER`` by default), never from the command line, where any user could read it
in the process list; messages name the database by host, port and name only.
"""

from __future__ import annotations

import click


@click.group()
def ledger() -> None:
    """The delivery ledger: where it is, and moving it to PostgreSQL."""


@ledger.command()
@click.pass_context
def where(ctx: click.Context) -> None:
    """Say which ledger the commands use: the SQLite file of the state folder, or a PostgreSQL database."""
    from amplifier.delivery.ledger import LEDGER_NAME, describe_url, ledger_url

    url = ledger_url()
    if url is None:
        click.echo(f"sqlite: {ctx.obj.state_dir / LEDGER_NAME}")
    else:
        click.echo(f"postgresql: {describe_url(url)} (from AMPLIFIER_LEDGER)")


@ledger.command()
@click.option(
    "--to-env",
    "to_env",
    default="AMPLIFIER_LEDGER",
    show_default=True,
    metavar="NAME",
    help="The variable (or secrets-folder file) that holds the PostgreSQL URL.",
)
@click.pass_context
def migrate(ctx: click.Context, to_env: str) -> None:
    """Move the state folder's SQLite ledger into an empty PostgreSQL database, exactly once.

    Posting from the SQLite ledger is paused first; a post still being published stops the move (stop the daemon
    or wait). Afterwards the SQLite ledger stays paused, and every node runs with AMPLIFIER_LEDGER set."""
    from amplifier.clock import utcnow
    from amplifier.delivery.move import move_ledger, target_url

    report = move_ledger(ctx.obj.state_dir, target_url(to_env), utcnow())
    states = ", ".join(f"{count} {state}" for state, count in report.by_state.items()) or "no posts"
    click.echo(f"moved {report.posts} post(s) to {report.target} ({states})")
    if report.state_documents:
        click.echo(
            f"copied {report.state_documents} document(s) of the state folder the nodes share (Bluesky sessions, "
            "logins, limits, pause records)"
        )
    if report.paused_accounts:
        click.echo(f"paused accounts, still paused there: {', '.join(report.paused_accounts)}")
    if report.paused:
        click.echo("posting was paused, and stays paused there ('amplifier resume' to go on)")
    click.echo("the SQLite ledger is paused for good; run every node with AMPLIFIER_LEDGER set")
