"""Follow-up settings of a message set or rule: ``boost``, ``delete_after`` and ``pin`` (issue 13), and the checks
that span files (a boost account must be one of the campaign's, on the platform of a post it boosts, and not its
author).

* ``boost: [mastodon-de, bluesky-ku]`` (or ``{accounts: [...], delay: 10m}``): once a post is published, each listed
  account of the same campaign on the post's platform boosts it (Mastodon reblog) or reposts it (Bluesky
  ``app.bsky.feed.repost``), once, ``delay`` after the post. A rule's ``boost`` wins over its message set's.
* ``delete_after: 1d``: the post is retracted (deleted, with every part of a thread, its gates and its boosts) this
  long after its event ends, or after the post's own time when the rule has no event.
* ``pin: true``: the post is pinned on its account's profile once published and unpinned after its event.

Durations are written ``90s``, ``30m``, ``12h``, ``1d``, ``1d12h``, as ISO 8601 (``PT30M``) or as seconds.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from amplifier.campaign.fields import no_repeats
from amplifier.campaign.yamlsource import PathKey
from amplifier.errors import Problem

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
_SHORT = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def _short_duration(value: Any) -> Any:
    """``1d``, ``12h``, ``30m``, ``90s`` and combinations (``1d12h``) as a timedelta; anything else as it is."""
    if isinstance(value, str):
        match = _SHORT.match(value)
        if match and any(match.groups()):
            days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
            return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return value


def _not_negative(value: dt.timedelta) -> dt.timedelta:
    if value < dt.timedelta(0):
        raise ValueError("must not be negative")
    return value


Duration = Annotated[
    dt.timedelta,
    BeforeValidator(_short_duration, json_schema_input_type=str | int),
    Field(description="A duration: 90s, 30m, 12h, 1d, 1d12h, an ISO 8601 duration (PT30M) or seconds"),
]


class Boost(BaseModel):
    """Which of the campaign's accounts boost (Mastodon) or repost (Bluesky) a published post, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accounts: list[Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]] = Field(
        min_length=1,
        description="Accounts of this campaign (`accounts:` in schedule.yaml) that boost or repost the post: each "
        "boosts the posts of its own platform, once; never its own post",
    )
    delay: Duration = Field(default=dt.timedelta(0), description="How long after the post the boosts go out")

    @field_validator("accounts")
    @classmethod
    def _unique(cls, accounts: list[str]) -> list[str]:
        return no_repeats(accounts, "account")

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: dt.timedelta) -> dt.timedelta:
        return _not_negative(value)


def _boost(value: Any) -> Any:
    if isinstance(value, str):
        return {"accounts": [value]}
    if isinstance(value, list):
        return {"accounts": value}
    return value


BoostSetting = Annotated[
    Boost | None,
    BeforeValidator(_boost, json_schema_input_type=Boost | list[str] | str | None),
    Field(
        description="Accounts of the campaign that boost (Mastodon) / repost (Bluesky) the post once it is "
        "published: a list, or {accounts: [...], delay: 10m}"
    ),
]
DeleteAfter = Annotated[
    Annotated[Duration, AfterValidator(_not_negative)] | None,
    Field(
        description="Delete (retract) the post this long after its event ends, or after the post's time when "
        "the rule has no event, e.g. 1d"
    ),
]


# ------------------------------------------------------------------------------------------------ cross checks


def problems(campaign: Campaign) -> Iterator[Problem]:
    """Every boost list, checked against the rules that post its message set: an account not in ``accounts:``,
    one on a platform none of the rule's accounts posts to, or one that is an author of the rule's posts."""
    from amplifier.campaign.models import rule_accounts

    schedule = campaign.schedule
    for rule_id, rule in schedule.rules.items():
        message_set = campaign.message_sets.get(rule.messages)
        if rule.boost is not None:
            boost, where = rule.boost, ("rule", rule_id)
        elif message_set is not None and message_set.boost is not None:
            boost, where = message_set.boost, ("set", rule.messages)
        else:
            continue
        authors = rule_accounts(schedule, rule)
        platforms: set[str] = {schedule.accounts[author].platform for author in authors}
        for index, account_id in enumerate(boost.accounts):
            message = _boost_problem(campaign, rule_id, account_id, authors, platforms)
            if message is None:
                continue
            if where[0] == "rule":
                source, base = campaign.schedule_source, ("rules", rule_id, "boost")
            else:
                source, base = campaign.set_sources[where[1]], ("sets", where[1], "boost")
            yield source.problem(_entry(source.values, base, index), message)


def _entry(values: Mapping[PathKey, Any], base: PathKey, index: int) -> PathKey:
    """Where entry ``index`` of a boost list is: ``boost/INDEX`` (a plain list) or ``boost/accounts/INDEX``."""
    mapped = (*base, "accounts", index)
    return mapped if mapped in values else (*base, index)


def _boost_problem(
    campaign: Campaign, rule_id: str, account_id: str, authors: list[str], platforms: set[str]
) -> str | None:
    from amplifier.campaign.wording import closest

    accounts = campaign.schedule.accounts
    if account_id not in accounts:
        hint = closest(account_id, accounts)
        return (
            f"boost names {account_id!r}, which is not one of the campaign's accounts{hint}: only accounts listed "
            "under `accounts:` in schedule.yaml can boost"
        )
    if account_id in authors:
        return (
            f"{account_id} would boost its own post (rule {rule_id!r} posts from it): leave it out of `boost`, or "
            "out of the rule's `accounts`"
        )
    platform = accounts[account_id].platform
    if platform not in platforms:
        return (
            f"{account_id} is a {platform} account, but rule {rule_id!r} posts only to "
            f"{', '.join(sorted(platforms))}: an account can only boost a post on its own platform"
        )
    return None
