"""What an operator's write on published posts shares (``gate``, ``correct``, ``retract``): who makes it (``--by``,
default ``user@host``), each post's publisher (its account's, as the campaign says now), and one post at a time:
an error is that post's result, a line on stderr and an exit code (the worst one wins), never the end of the run.
"""

from __future__ import annotations

import getpass
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

from amplifier.cli.options import exit_code
from amplifier.errors import AmplifierError, ExitCode, UsageError

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.publish import PublishContext, Publisher


class Outcome(Protocol):
    def to_json(self) -> dict[str, Any]: ...


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


def who(by: str | None = None) -> str:
    """``--by``, else ``user@host`` (``unknown`` where the environment has no user name)."""
    if by:
        return by
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no user name in this environment
        return "unknown"


def by_option(help: str) -> Callable[[Any], Any]:
    """``--by NAME``: who makes the change, for the ledger."""
    return click.option("--by", default=None, metavar="NAME", help=f"{help} (default: user@host).")


def publisher_of(
    campaign: Campaign, account: str, context: PublishContext, post_id: str | None = None
) -> Publisher:
    """The publisher of ``account`` as the campaign says now; a usage error when the campaign dropped it."""
    from amplifier.publish import create_publisher

    settings = campaign.schedule.accounts.get(account)
    if settings is None:
        where = f"{post_id}: its account" if post_id else "the account"
        raise UsageError(f"{where} {account!r} is not in the campaign any more")
    return create_publisher(account, settings, context)


@contextmanager
def open_publishers(campaign: Campaign, context: PublishContext) -> Iterator[Callable[[str], Publisher]]:
    """An account's publisher, made the first time it is asked for; every one is closed after the block."""
    publishers: dict[str, Publisher] = {}

    def publisher(account: str) -> Publisher:
        if account not in publishers:
            publishers[account] = publisher_of(campaign, account, context)
        return publishers[account]

    try:
        yield publisher
    finally:
        for made in publishers.values():
            made.close()


class Writes:
    """One write per post through its account's publisher (opened for it, closed after): the results in order
    (an outcome's JSON, or ``{"id", "error"}``) and the worst exit code."""

    def __init__(self, command: str, campaign: Campaign, context: PublishContext) -> None:
        self.command = command
        self.campaign = campaign
        self.context = context
        self.results: list[dict[str, object]] = []
        self.worst = ExitCode.OK

    def attempt(
        self,
        post_id: str,
        account: Callable[[str], str],
        write: Callable[[Publisher, str], OutcomeT],
    ) -> OutcomeT | None:
        """``write(publisher, post_id)`` with the publisher of the post's ``account(post_id)``; on an error,
        ``command: post id: error`` on stderr (the id once), the error as the post's result, and None."""
        publisher = None
        try:
            publisher = publisher_of(self.campaign, account(post_id), self.context, post_id)
            outcome = write(publisher, post_id)
        except AmplifierError as exc:
            self.worst = max(self.worst, exit_code(exc))
            message = str(exc)
            where = "" if message.startswith(post_id) else f"{post_id}: "
            click.echo(f"{self.command}: {where}{message}", err=True)
            self.results.append({"id": post_id, "error": str(exc)})
            return None
        finally:
            if publisher is not None:
                publisher.close()
        self.results.append(outcome.to_json())
        return outcome

    def exit(self) -> None:
        """Exit with the worst code when a post failed (else return)."""
        if self.worst != ExitCode.OK:
            sys.exit(self.worst)
