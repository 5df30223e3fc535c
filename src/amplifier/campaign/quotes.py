"""What a message set's ``quote:`` may name, checked across files when the campaign is loaded.

A post may quote an earlier post of the campaign: the post of rule ``quote.rule`` for account ``quote.account``
(not set: the quoting post's own account). The quoted post must exist on the same platform: the rule must be
enabled and post to that account, and the account must be on the quoting account's platform (a quote stays on its
platform: a Bluesky record embed names a Bluesky record, Mastodon's ``quoted_status_id`` a status of the same
network). Another account's post must let others quote it (its ``quotes`` is not ``nobody``; on Bluesky not
``followers`` either, which turns quoting off there). Which occurrence is quoted, and that it is earlier, is
checked when the posts are planned
(:mod:`amplifier.plan.quotes`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from amplifier.campaign.models import quote_policy, rule_accounts
from amplifier.campaign.wording import closest
from amplifier.errors import Problem

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign


def quote_problems(campaign: Campaign) -> Iterator[Problem]:
    """Each message set's ``quote``: an unknown or disabled rule or account, a quote across platforms, a rule
    that posts nothing to the account whose post is quoted."""
    schedule = campaign.schedule
    for set_id, message_set in campaign.message_sets.items():
        spec = message_set.quote
        if spec is None:
            continue
        if spec.rule not in schedule.rules:
            yield campaign.set_problem(
                set_id,
                ("quote", "rule"),
                f"{set_id!r} quotes a post of unknown rule {spec.rule!r}"
                + closest(spec.rule, schedule.rules),
            )
            continue
        quoted = schedule.rules[spec.rule]
        if not quoted.enabled:
            yield campaign.set_problem(
                set_id, ("quote", "rule"), f"{set_id!r} quotes rule {spec.rule!r}, which is disabled"
            )
            continue
        if spec.account is not None and spec.account not in schedule.accounts:
            yield campaign.set_problem(
                set_id,
                ("quote", "account"),
                f"{set_id!r} quotes a post of unknown account {spec.account!r}"
                + closest(spec.account, schedule.accounts),
            )
            continue
        quoted_accounts = set(rule_accounts(schedule, quoted))
        said: set[str] = set()
        for rule_id, rule in schedule.rules.items():
            if rule.messages != set_id or not rule.enabled:
                continue
            for account_id in rule_accounts(schedule, rule):
                target = spec.account or account_id
                platform = schedule.accounts[account_id].platform
                other = schedule.accounts[target].platform
                if other != platform:
                    message = (
                        f"rule {rule_id!r} posts {set_id!r} to {account_id!r} on {platform}, which cannot quote "
                        f"{target!r}'s post on {other}: a quote stays on its platform"
                    )
                elif target not in quoted_accounts:
                    message = (
                        f"rule {rule_id!r} posts {set_id!r} to {account_id!r}, but rule {spec.rule!r} posts nothing "
                        f"to {target!r}: there is no post to quote"
                        + ("" if spec.account else " (name the account whose post is quoted: quote.account)")
                    )
                elif target != account_id and _closed(campaign, quoted.messages, target):
                    message = (
                        f"rule {rule_id!r} posts {set_id!r} to {account_id!r}, which would quote {target!r}'s post "
                        f"of rule {spec.rule!r}, but that post lets nobody quote it (`quotes`): the quote would be "
                        "refused"
                    )
                else:
                    continue
                if message not in said:
                    said.add(message)
                    yield campaign.set_problem(set_id, ("quote", "account"), message)


def _closed(campaign: Campaign, set_id: str, account_id: str) -> bool:
    """Whether the posts of message set ``set_id`` on ``account_id`` let no other account quote them: ``quotes``
    nobody (the set's own, else the account's default), or followers on Bluesky (which has no followers-only
    quoting: a postgate turns quoting off)."""
    message_set = campaign.message_sets.get(set_id)
    account = campaign.schedule.accounts[account_id]
    value = (
        message_set.quotes if message_set is not None and message_set.quotes is not None else account.quotes
    )
    policy = quote_policy(value)
    return policy == "nobody" or (policy == "followers" and account.platform == "bluesky")
