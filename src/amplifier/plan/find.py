"""Finding planned posts by id (``send ID``, the daemon's due posts) and the rules ``validate`` can render."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from amplifier.campaign.load import Campaign
from amplifier.errors import CampaignError, Problem, UsageError
from amplifier.plan.post import PlannedPost
from amplifier.plan.schedule import (
    Occurrence,
    Slot,
    make_slot,
    occurrences,
    occurrences_between,
    parse_slot_id,
    rule_zone,
)


def plannable(campaign: Campaign, problems: Sequence[Problem]) -> set[str]:
    """The rules of a campaign with load-time ``problems`` that can still be rendered: those whose message set, event
    and accounts exist and whose message set's file has no problem. ``validate`` renders them, so problems that
    only rendering finds are reported in the same run as the load-time problems of other files."""
    schedule = campaign.schedule
    broken_files = {problem.file for problem in problems}
    return {
        rule_id
        for rule_id, rule in schedule.rules.items()
        if rule.messages in campaign.message_sets
        and campaign.set_sources[rule.messages].display not in broken_files
        and getattr(rule, "event", None) in (None, *schedule.events)
        and (rule.accounts == "all" or all(account in schedule.accounts for account in rule.accounts))
    }


def find_posts(campaign: Campaign, ids: Iterable[str]) -> list[PlannedPost]:
    """The planned posts with these ids (from ``preview --format json``), in the order given."""
    wanted = list(dict.fromkeys(ids))
    slots: dict[str, Slot] = {}
    by_rule: dict[str, list[str]] = {}
    for post_id in wanted:
        try:
            rule_id, account, _key = parse_slot_id(post_id)
        except ValueError:
            raise UsageError(f"{post_id!r} is not a post id (rule:account:YYYY-MM-DDTHH:MM)") from None
        if rule_id not in campaign.schedule.rules:
            raise UsageError(f"{post_id!r}: no rule {rule_id!r} in the campaign")
        if account not in campaign.schedule.accounts:
            raise UsageError(f"{post_id!r}: no account {account!r} in the campaign")
        by_rule.setdefault(rule_id, []).append(post_id)
    for rule_id, post_ids in by_rule.items():
        rule = campaign.schedule.rules[rule_id]
        event = getattr(rule, "event", None)
        for occ in _occurrences_of(campaign, rule_id, [parse_slot_id(post_id)[2] for post_id in post_ids]):
            for post_id in post_ids:
                _rule, account, key = parse_slot_id(post_id)
                if key == occ.key:
                    slots[post_id] = make_slot(rule_id, account, occ, event)
    missing = [post_id for post_id in wanted if post_id not in slots]
    if missing:
        raise UsageError("no planned post with id " + ", ".join(repr(m) for m in missing))
    from amplifier.plan.planner import Planner  # the planner re-exports this module's functions

    planner = Planner(campaign)
    posts = [planner.post(slots[post_id]) for post_id in wanted]
    if planner.problems:
        raise CampaignError(planner.problems)
    return [post for post in posts if post is not None]


def _occurrences_of(campaign: Campaign, rule_id: str, keys: list[str]) -> Iterable[Occurrence]:
    """The rule's occurrences on the local days named by ``keys`` (all of them if a key names no day)."""
    rule = campaign.schedule.rules[rule_id]
    try:
        days = sorted({dt.date.fromisoformat(key[:10]) for key in keys})
    except ValueError:
        return occurrences(campaign.schedule, rule)
    tz = rule_zone(campaign.schedule, rule)
    found: list[Occurrence] = []
    for day in days:  # a wall time is within a day of the UTC instants of its local day
        start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), tzinfo=tz)
        found.extend(occurrences_between(campaign.schedule, rule, start, start + dt.timedelta(days=3)))
    return found
