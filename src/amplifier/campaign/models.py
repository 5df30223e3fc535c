"""The campaign files as validated models.

``schedule.yaml`` is a :class:`ScheduleFile`; each ``messages/*.yaml`` is a :class:`MessagesFile`. Every model forbids
unknown keys, so a typo is an error with its ``file:line:col``, never a silently ignored setting. The models check the
shape of one file; :mod:`amplifier.campaign.load` checks what spans files (a rule naming an unknown account...).

This module holds the root of ``schedule.yaml`` (campaign settings, events, the file itself) and is the one place to
import any model from; the parts live by concept beside it: the shared field types in :mod:`~amplifier.campaign.fields`,
reply and quote controls in :mod:`~amplifier.campaign.controls`, :mod:`~amplifier.campaign.accounts`,
:mod:`~amplifier.campaign.rules`, alerts in :mod:`~amplifier.campaign.notify_settings`, and the message sets in
:mod:`~amplifier.campaign.messages`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, HttpUrl, field_validator

from amplifier.campaign.accounts import Account, BlueskyAccount, MastodonAccount
from amplifier.campaign.controls import (
    LIST_URI_PATTERN,
    MAX_REPLY_RULES,
    REPLY_RULE_NAMES,
    Quotes,
    Replies,
    ReplyRule,
    SelfLabel,
    quote_policy,
)
from amplifier.campaign.fields import (
    ENV_NAME_PATTERN,
    ID_PATTERN,
    LANG_PATTERN,
    EnvName,
    Focus,
    Id,
    Lang,
    LocalDate,
    LocalDateTime,
    Localized,
    LocalizedText,
    LocalTime,
    Model,
    TimeZoneName,
    check_local,
    check_timezone,
    not_a_number,
    suggest_timezone,
)
from amplifier.campaign.messages import (
    Hashtags,
    ImageSpec,
    MessageSet,
    MessagesFile,
    PerLanguage,
    SplitSettings,
    TextOrThread,
    Variant,
)
from amplifier.campaign.notify_settings import NOTIFY_EVENTS, NotifyDestination, NotifyEvent, NotifySettings
from amplifier.campaign.rules import CountdownRule, Missed, OnceRule, RecurringRule, Rule, RuleBase

__all__ = [
    "ENV_NAME_PATTERN",
    "ID_PATTERN",
    "LANG_PATTERN",
    "LIST_URI_PATTERN",
    "MAX_REPLY_RULES",
    "NOTIFY_EVENTS",
    "REPLY_RULE_NAMES",
    "Account",
    "BlueskyAccount",
    "CampaignSettings",
    "CountdownRule",
    "EnvName",
    "Event",
    "Focus",
    "Hashtags",
    "Id",
    "ImageSpec",
    "Lang",
    "LocalDate",
    "LocalDateTime",
    "LocalTime",
    "Localized",
    "LocalizedText",
    "MastodonAccount",
    "MessageSet",
    "MessagesFile",
    "Missed",
    "Model",
    "NotifyDestination",
    "NotifyEvent",
    "NotifySettings",
    "OnceRule",
    "PerLanguage",
    "Quotes",
    "ReadbackSettings",
    "RecurringRule",
    "Replies",
    "ReplyRule",
    "Rule",
    "RuleBase",
    "ScheduleFile",
    "SelfLabel",
    "SplitSettings",
    "TextOrThread",
    "TimeZoneName",
    "Variant",
    "check_local",
    "check_timezone",
    "not_a_number",
    "quote_policy",
    "rule_accounts",
    "suggest_timezone",
]


class ReadbackSettings(Model):
    """When the daemon reads back the engagement (likes, reposts, replies, quotes) of published posts."""

    ages: list[dt.timedelta] = Field(
        default_factory=lambda: [dt.timedelta(hours=1), dt.timedelta(hours=24), dt.timedelta(days=7)],
        max_length=20,
        description="Read each post this long after it was published (ISO 8601 durations or seconds)",
    )
    after_event: dt.timedelta | None = Field(
        default=dt.timedelta(hours=24),
        description="Read the posts of an event once, this long after the event ended (null: not)",
    )
    stop_after: dt.timedelta = Field(
        default=dt.timedelta(days=30),
        description="Posts published longer ago than this are read no more (ISO 8601 duration or seconds)",
    )

    @field_validator("ages")
    @classmethod
    def _ages(cls, value: list[dt.timedelta]) -> list[dt.timedelta]:
        if any(age < dt.timedelta(0) for age in value):
            raise ValueError("a read age must not be negative")
        return sorted(set(value))

    @field_validator("after_event", "stop_after")
    @classmethod
    def _not_negative(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        if value is not None and value < dt.timedelta(0):
            raise ValueError("must not be negative")
        return value


class CampaignSettings(Model):
    name: str = Field(description="The campaign's name, shown in previews")
    timezone: TimeZoneName = Field(description="The default timezone of events and rules")
    language: Lang = Field(default="en", description="The default language of accounts")
    hashtags: list[str] = Field(
        default_factory=list, description="Hashtags appended to every message set that does not set its own"
    )
    readback: ReadbackSettings = Field(
        default_factory=ReadbackSettings,
        description="When published posts' engagement is read back (see docs/report.md)",
    )


class Event(Model):
    name: LocalizedText = Field(description="The event's name, per language")
    date: Annotated[
        dt.date | dt.datetime,
        not_a_number("a date", "e.g. 2027-11-01 or 2027-11-01T14:00"),
        AfterValidator(check_local),
    ] = Field(description="The day (2027-11-01) or the local start time (2027-11-01T14:00) of the event")
    timezone: TimeZoneName | None = Field(default=None, description="Overrides the campaign's timezone")
    url: HttpUrl | None = Field(default=None, description="A page about the event, as {{ event.url }}")


class ScheduleFile(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, title="amplifier schedule.yaml")

    campaign: CampaignSettings
    events: dict[Id, Event] = Field(default_factory=dict)
    accounts: dict[Id, Account]
    rules: dict[Id, Rule] = Field(default_factory=dict)
    messages: list[str] = Field(
        default_factory=lambda: ["messages/*.yaml"],
        description="Glob(s) of message files, relative to this file",
    )
    notify: NotifySettings | None = Field(
        default=None, description="Alerts: where to send them and which (see docs/alerts.md)"
    )


def rule_accounts(schedule: ScheduleFile, rule: Rule) -> list[str]:
    if rule.accounts == "all":
        return list(schedule.accounts)
    return [account for account in rule.accounts if account in schedule.accounts]
