"""``amplifier gate``: change who may reply to and quote published posts (:mod:`amplifier.delivery.gate`).

Exit codes: 0 when every post was changed; 2 for a wrong command line; 3 when an account's credentials were
rejected; 4 when a post could not be changed (not published, paused, a server error, Mastodon's replies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from amplifier.cli.options import format_option, replies_option
from amplifier.cli.publish import JSON_VERSION
from amplifier.cli.writes import Writes, by_option, who
from amplifier.delivery.accounts import publish_context
from amplifier.delivery.gate import GateRequest
from amplifier.errors import UsageError

if TYPE_CHECKING:
    from amplifier.cli.options import Globals
    from amplifier.delivery.gate import GateOutcome
    from amplifier.publish import Publisher

REPLY_CHOICES = "nobody, everyone, mentioned, followers, following or a list's at:// URI"


def parse_request(replies: tuple[str, ...], quotes: str | None) -> GateRequest:
    """The :class:`~amplifier.delivery.gate.GateRequest` of the command line (a UsageError when wrong)."""
    from amplifier.campaign.controls import quote_policy

    if not replies and quotes is None:
        raise UsageError(f"nothing to change: give --replies ({REPLY_CHOICES}) and/or --quotes")
    everyone = "everyone" in replies
    if everyone and len(replies) > 1:
        raise UsageError("--replies everyone cannot be combined with other rules")
    rules = None if everyone else replies_option(replies)
    if rules is not None:
        rules = tuple(rule for rule in rules if rule != "nobody")
    policy = {"on": "public", "off": "nobody"}.get(quotes or "", quote_policy(quotes) if quotes else None)
    return GateRequest(replies=rules, everyone_replies=everyone, quotes=policy)


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option(
    "--replies",
    multiple=True,
    metavar="RULE",
    help=f"Who may reply from now on (Bluesky): {REPLY_CHOICES}; repeatable (up to 5 rules).",
)
@click.option(
    "--quotes",
    type=click.Choice(["everyone", "followers", "nobody", "on", "off"]),
    default=None,
    help="Who may quote from now on: everyone (on), followers, nobody (off). Bluesky turns quoting off for "
    "followers too.",
)
@by_option("Who makes the change, for the ledger")
@format_option
@click.pass_context
def gate(
    ctx: click.Context,
    ids: tuple[str, ...],
    replies: tuple[str, ...],
    quotes: str | None,
    by: str | None,
    fmt: str,
) -> None:
    """Change who may reply to and quote published posts, e.g. when a pile-on starts.

    \b
    amplifier gate kobane-call:bluesky-en:2027-11-01T10:00 --replies nobody --quotes off
    amplifier gate ID --replies followers --replies mentioned
    amplifier gate ID --replies everyone --quotes on

    Bluesky: the threadgate on the thread's first post and a postgate on each post. Mastodon (4.5+): each
    status's quote policy; Mastodon cannot limit replies. Every change is recorded in the ledger (who, when,
    what); `amplifier history` and the ledger keep it."""
    from amplifier.cli.render import dump_json
    from amplifier.clock import utcnow
    from amplifier.delivery.gate import change_gates
    from amplifier.delivery.reconcile import claim_token
    from amplifier.delivery.shared_state import share_state

    request = parse_request(replies, quotes)
    campaign = ctx.obj.campaign()
    context = publish_context(campaign, ctx.obj.state)
    author = who(by)
    writes = Writes("gate", campaign, context)
    g: Globals = ctx.obj
    with g.open_ledger(utcnow()) as ledger:
        share_state(context, ledger, claim_token("gate"))  # a shared ledger: the nodes' state store

        def account(post_id: str) -> str:
            return ledger.get(post_id).account

        def write(publisher: Publisher, post_id: str) -> GateOutcome:
            return change_gates(ledger, publisher, post_id, request, by=author, now=utcnow())

        for post_id in ids:
            outcome = writes.attempt(post_id, account, write)
            if outcome is not None and fmt != "json":
                for line in outcome.done:
                    click.echo(f"{post_id}: {line}")
                for note in outcome.notes:
                    click.echo(f"{post_id}: note: {note}", err=True)
    if fmt == "json":
        dump_json({"version": JSON_VERSION, "gates": writes.results})
    writes.exit()
