"""One ad-hoc text for one account of the campaign, rendered and adapted as a planned post of that account would be
(:func:`compose_for_account`). A text taken as it is, for a platform, is :func:`amplifier.plan.adapt.adapt_text`.

The text (and the content warning) is a template with the variables of a message (``{{ event.name }}``,
``{{ days_left }}``, ``{{ account.handle }}``, ``{{ hashtags }}``, ...: :func:`amplifier.plan.context.shared_context`),
rendered in the same sandbox, at the instant ``at``, for the event given (or none). It is adapted with the account's
platform, language and limits (a Mastodon instance's ``max_characters`` and URL length, its visibility). Hashtags
are not appended: ``{{ hashtags }}`` writes the campaign's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.campaign.templates import compile_template, uses
from amplifier.errors import UsageError
from amplifier.plan.adapt import Adapted, Content, adapt, tidy
from amplifier.plan.context import account_controls, account_target, shared_context
from amplifier.plan.localtime import days_between, event_start, hours_between
from amplifier.plan.post import Platform
from amplifier.plan.rendering import describe_error, template_line


@dataclass(frozen=True)
class Composed:
    """An ad-hoc text adapted for one account."""

    account: str
    platform: Platform
    lang: str
    at: dt.datetime
    event: str | None
    adapted: Adapted


def compose_for_account(
    campaign: Campaign,
    account_id: str,
    text: str,
    *,
    at: dt.datetime,
    event_id: str | None = None,
    content_warning: str | None = None,
    split: bool = True,
    controls: dict[str, Any] | None = None,
) -> Composed:
    """``text`` rendered for ``account_id`` at ``at`` and adapted to it; a :class:`UsageError` for an unknown
    account or event, or a template that cannot be rendered."""
    schedule = campaign.schedule
    if account_id not in schedule.accounts:
        raise UsageError(
            f"--account: unknown account {account_id!r} (the campaign has: {', '.join(schedule.accounts)})"
        )
    if event_id is not None and event_id not in schedule.events:
        known = ", ".join(schedule.events) or "no events"
        raise UsageError(f"--event: unknown event {event_id!r} (the campaign has: {known})")
    account = campaign.account(account_id)
    lang = campaign.account_lang(account_id)
    context = {
        **shared_context(campaign, event_id, account_id, lang, schedule.campaign.hashtags),
        **_countdown(campaign, event_id, at),
        "now": at,
        "at": at,
    }
    rendered = _render(text, context, "TEXT", event_id, campaign)
    cw = _render(content_warning, context, "--cw", event_id, campaign) if content_warning else None
    target = replace(account_target(account), created_at=at)
    wanted = account_controls(None, account)
    wanted.update(
        {key: value for key, value in (controls or {}).items() if key in wanted and value is not None}
    )
    content = Content(texts=(rendered,), lang=lang, content_warning=cw or None, split=split, **wanted)
    return Composed(account_id, account.platform, lang, at, event_id, adapt(content, target))


def _countdown(campaign: Campaign, event_id: str | None, at: dt.datetime) -> dict[str, int | None]:
    """``days_left`` (calendar days in the event's zone) and ``hours_left`` from ``at`` to the event."""
    if event_id is None:
        return {"days_left": None, "hours_left": None}
    event = campaign.schedule.events[event_id]
    return {
        "days_left": days_between(at, event, campaign.schedule),
        "hours_left": hours_between(at, event_start(campaign.schedule, event)),
    }


def _render(
    source: str, context: dict[str, object], what: str, event_id: str | None, campaign: Campaign
) -> str:
    if event_id is None and uses(source, "event"):
        known = ", ".join(campaign.schedule.events) or "none"
        raise UsageError(
            f"{what} uses {{{{ event }}}}: name the event with --event (the campaign's events: {known})"
        )
    try:
        return tidy(compile_template(source).render(context))
    except Exception as exc:  # a template's error, in the template's words
        raise UsageError(
            f"{what}: template error: {describe_error(exc)} (line {template_line(exc)})"
        ) from None
