"""The checks across the campaign's files, run once each file has its own shape: a rule naming an unknown account,
message set or event; a message set with no text in an account's language; an image that is missing or has no alt text;
and the templates' syntax, variables and filters (:func:`check_templates`, which needs no other file)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from amplifier.campaign import followups, templates
from amplifier.campaign.images import image_problem
from amplifier.campaign.models import CountdownRule, MessageSet, rule_accounts
from amplifier.campaign.wording import closest
from amplifier.errors import Problem

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.campaign.yamlsource import PathKey, Source

MASTODON_ALT_LIMIT = 1500
BLUESKY_ALT_LIMIT = 2000


def cross_check(campaign: Campaign, broken: set[str] | None = None) -> list[Problem]:
    """What spans files; ``broken`` names the message sets (``*``: maybe any), and the ``account:ID`` and
    ``event:ID`` entries, that already have problems of their own (a rule naming them is not reported again)."""
    problems: list[Problem] = []
    problems.extend(_check_rules(campaign, broken or set()))
    problems.extend(_check_message_sets(campaign))
    problems.extend(followups.problems(campaign))  # boost lists (campaign/followups.py)
    return problems


def _check_rules(campaign: Campaign, broken: set[str]) -> Iterator[Problem]:
    schedule = campaign.schedule
    for rule_id, rule in schedule.rules.items():
        base = ("rules", rule_id)
        if rule.messages not in campaign.message_sets and not broken & {rule.messages, "*"}:
            yield campaign.schedule_problem(
                (*base, "messages"),
                f"rule {rule_id!r} names unknown message set {rule.messages!r}"
                + closest(rule.messages, campaign.message_sets),
            )
        if rule.accounts != "all":
            for index, account in enumerate(rule.accounts):
                if account not in schedule.accounts and f"account:{account}" not in broken:
                    yield campaign.schedule_problem(
                        (*base, "accounts", index),
                        f"rule {rule_id!r} names unknown account {account!r}"
                        + closest(account, schedule.accounts),
                    )
        event_id = getattr(rule, "event", None)
        if event_id is not None and event_id not in schedule.events:
            if f"event:{event_id}" not in broken:
                yield campaign.schedule_problem(
                    (*base, "event"),
                    f"rule {rule_id!r} names unknown event {event_id!r}" + closest(event_id, schedule.events),
                )
            continue
        if isinstance(rule, CountdownRule) and rule.hours_before:
            event = schedule.events[rule.event]
            if not isinstance(event.date, dt.datetime):
                yield campaign.schedule_problem(
                    (*base, "hours_before"),
                    f"hours_before needs a start time on event {rule.event!r} (e.g. date: {event.date}T14:00)",
                )
        if event_id is not None:
            event = schedule.events[event_id]
            for lang in _rule_languages(campaign, rule_id):
                if lang not in event.name and "*" not in event.name:
                    yield campaign.schedule_problem(
                        ("events", event_id, "name"),
                        f"event {event_id!r} has no name in {lang!r} (needed by rule {rule_id!r})",
                    )


def _rule_languages(campaign: Campaign, rule_id: str) -> list[str]:

    rule = campaign.schedule.rules[rule_id]
    return sorted({campaign.account_lang(a) for a in rule_accounts(campaign.schedule, rule)})


def needs(campaign: Campaign) -> dict[str, dict[str, set[str]]]:
    """For each message set, each language it must provide -> the platforms it is posted to in it."""

    out: dict[str, dict[str, set[str]]] = {}
    for rule in campaign.schedule.rules.values():
        if rule.messages not in campaign.message_sets:
            continue
        for account_id in rule_accounts(campaign.schedule, rule):
            account = campaign.account(account_id)
            langs = out.setdefault(rule.messages, {})
            langs.setdefault(campaign.account_lang(account_id), set()).add(account.platform)
    return out


def _check_message_sets(campaign: Campaign) -> Iterator[Problem]:
    required = needs(campaign)
    for set_id, message_set in campaign.message_sets.items():
        source = campaign.set_sources[set_id]
        base: PathKey = ("sets", set_id)
        langs = required.get(set_id, {})
        for index, variant in enumerate(message_set.variants):
            for lang, platforms in sorted(langs.items()):
                for platform in sorted(platforms):
                    override: dict[str, Any] = getattr(variant, platform)
                    if lang not in variant.text and lang not in override:
                        yield source.problem(
                            (*base, "variants", index, "text"),
                            f"variant {index + 1} of {set_id!r} has no {lang!r} text "
                            f"(needed for {platform} accounts in {lang!r})",
                        )
        if message_set.content_warning is not None:
            for lang, platforms in langs.items():
                if (
                    "mastodon" in platforms
                    and lang not in message_set.content_warning
                    and ("*" not in message_set.content_warning)
                ):
                    yield source.problem(
                        (*base, "content_warning"), f"content warning of {set_id!r} has no {lang!r} text"
                    )
        for index, image in enumerate(message_set.images):
            path = (*base, "images", index)
            problem = image_problem(campaign.root, image.path)
            if problem is not None:
                yield source.problem((*path, "path"), problem)
            for lang, platforms in sorted(langs.items()):
                alt = image.alt.get(lang) or image.alt.get("*")
                if alt is None or not alt.strip():
                    yield source.problem((*path, "alt"), f"image {image.path} has no alt text in {lang!r}")
                    continue
                limit = MASTODON_ALT_LIMIT if "mastodon" in platforms else BLUESKY_ALT_LIMIT
                if len(alt) > limit:
                    yield source.problem(
                        (*path, "alt"), f"alt text is {len(alt)} characters, over the limit of {limit}"
                    )


def check_templates(source: Source, set_id: str, message_set: MessageSet) -> Iterator[Problem]:
    """Syntax, variables and filters of every template of a message set; needs no other file."""
    for path, text in message_set.templates():
        yield from _check_template(source, ("sets", set_id, *path), text)


def _check_template(source: Source, path: PathKey, text: str) -> Iterator[Problem]:
    for issue in templates.check(text):
        line, col = source.text_line(path, issue.line)
        yield Problem(source.display, line, col, issue.message)
