"""The campaign files as validated models.

``schedule.yaml`` is a :class:`ScheduleFile`; each ``messages/*.yaml`` is a :class:`MessagesFile`. Every model forbids
unknown keys, so a typo is an error with its ``file:line:col``, never a silently ignored setting. The models check the
shape of one file; :mod:`amplifier.campaign.load` checks what spans files (a rule naming an unknown account...).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
LANG_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
Lang = Annotated[
    str, Field(pattern=LANG_PATTERN, description="A BCP 47 language tag: en, de, tr, ar, ku, ckb...")
]
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
EnvName = Annotated[
    str,
    Field(
        pattern=ENV_NAME_PATTERN,
        description="The NAME of an environment variable (or .env entry, or file in the secrets folder) that holds "
        "the secret. Never the secret itself.",
    ),
]


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown timezone {name!r}{suggest_timezone(name)}; use an IANA name such as Europe/Berlin"
        ) from None
    return name


def suggest_timezone(name: str) -> str:
    """`` (did you mean Europe/Berlin?)`` for ``Berlin``, ``europe/berlin`` or ``Europe/Berln``."""
    import difflib

    zones = sorted(available_timezones())
    wanted = name.strip().lower().replace(" ", "_")
    close = [zone for zone in zones if zone.lower() == wanted or zone.lower().rsplit("/", 1)[-1] == wanted]
    close = close or difflib.get_close_matches(name, zones, n=3, cutoff=0.75)
    return f" (did you mean {', '.join(close[:3])}?)" if close else ""


def _not_a_number(what: str, example: str) -> Any:
    """A before-validator: a YAML number is never a date or a time (``20271101`` is not 2027-11-01)."""

    def check(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"{value} is a number, not {what}: write {example}")
        return value

    return BeforeValidator(check)


def _local(value: Any) -> Any:
    """An after-validator: a local time carries no offset (the zone is `timezone`), a date a year a campaign can mean
    (also when quoted: the schedule arithmetic would overflow near year 1 or 9999)."""
    from amplifier.campaign.scalars import MAX_YEAR, MIN_YEAR

    if isinstance(value, dt.date) and not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"{value.isoformat()}: use a year between {MIN_YEAR} and {MAX_YEAR}")
    if isinstance(value, dt.datetime | dt.time) and value.tzinfo is not None:
        raise ValueError("write the local time without an offset (+05:00, Z) and set `timezone` instead")
    return value


TimeZoneName = Annotated[
    str, AfterValidator(check_timezone), Field(description="An IANA timezone name such as Europe/Berlin")
]


LocalTime = Annotated[
    dt.time,
    _not_a_number("a time", 'the time in quotes, e.g. "10:00"'),
    AfterValidator(_local),
    Field(description='A local time, "HH:MM"'),
]
LocalDate = Annotated[dt.date, _not_a_number("a date", "e.g. 2027-11-01"), AfterValidator(_local)]
LocalDateTime = Annotated[
    dt.datetime, _not_a_number("a date and time", "e.g. 2027-01-20T09:00"), AfterValidator(_local)
]
Focus = Annotated[float, Field(ge=-1, le=1)]

Localized = dict[Lang, str]
"""A text per language: ``{en: "...", ku: "..."}``. A plain string is the same text in every language."""


def _localized(value: Any) -> Any:
    if isinstance(value, str):
        return {"*": value}
    return value


LocalizedText = Annotated[
    dict[Annotated[str, Field(pattern=r"^(\*|[a-z]{2,3}(-[A-Za-z0-9]{2,8})*)$")], str],
    BeforeValidator(_localized, json_schema_input_type=str | dict[str, str]),
    Field(description="A text, or a mapping of language tag to text"),
]


# ------------------------------------------------------------------------------ reply / quote controls, labels

LIST_URI_PATTERN = r"^at://[A-Za-z0-9:._%-]+/app\.bsky\.graph\.list/[A-Za-z0-9._~:-]{1,512}$"
REPLY_RULE_NAMES = ("nobody", "mentioned", "followers", "following")


def _reply_rule(value: Any) -> Any:
    if isinstance(value, str) and value not in REPLY_RULE_NAMES and not re.match(LIST_URI_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a reply rule: use nobody, mentioned, followers, following, or the at:// URI of a "
            "Bluesky list (at://did:plc:.../app.bsky.graph.list/...)"
        )
    return value


ReplyRule = Annotated[
    Literal["nobody", "mentioned", "followers", "following"]
    | Annotated[str, Field(pattern=LIST_URI_PATTERN)],
    BeforeValidator(_reply_rule),
    Field(
        description="nobody, mentioned (the accounts the post mentions), followers, following, or the at:// URI "
        "of a Bluesky list (at://did:plc:.../app.bsky.graph.list/...)"
    ),
]
MAX_REPLY_RULES = 5


def _reply_rules(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    return value


def _check_reply_rules(rules: list[str]) -> list[str]:
    if "nobody" in rules and len(rules) > 1:
        raise ValueError("`nobody` cannot be combined with other reply rules: write `replies: nobody` alone")
    twice = sorted({rule for rule in rules if rules.count(rule) > 1})
    if twice:
        raise ValueError(f"reply rule listed twice: {', '.join(twice)}")
    if len(rules) > MAX_REPLY_RULES:
        raise ValueError(f"{len(rules)} reply rules; Bluesky allows at most {MAX_REPLY_RULES}")
    return rules


Replies = Annotated[
    list[ReplyRule],
    BeforeValidator(_reply_rules, json_schema_input_type=str | list[str]),
    AfterValidator(_check_reply_rules),
    Field(
        description="Who may reply. Bluesky: a threadgate on the post (on a thread's first post); `nobody` or [] "
        "lets nobody reply; up to 5 rules. Not set: everybody. Mastodon has no reply control (see docs/messages.md)"
    ),
]
Quotes = Annotated[
    Literal["everyone", "followers", "nobody"] | bool,
    Field(
        description="Who may quote the post: true/everyone, followers, false/nobody. Mastodon 4.5+: "
        "quote_approval_policy public/followers/nobody. Bluesky: a postgate that turns quoting off for "
        "false/nobody and for followers (Bluesky has no followers-only quoting)"
    ),
]
SelfLabel = Literal["graphic-media", "nudity", "sexual", "porn", "!no-unauthenticated"]


def quote_policy(value: bool | str | None) -> str | None:
    """The Mastodon ``quote_approval_policy`` of a ``quotes`` setting (``None``: not set)."""
    if value is None:
        return None
    if value is True or value == "everyone":
        return "public"
    if value is False or value == "nobody":
        return "nobody"
    return "followers"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


# --------------------------------------------------------------------------------------------- schedule.yaml


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
        _not_a_number("a date", "e.g. 2027-11-01 or 2027-11-01T14:00"),
        AfterValidator(_local),
    ] = Field(description="The day (2027-11-01) or the local start time (2027-11-01T14:00) of the event")
    timezone: TimeZoneName | None = Field(default=None, description="Overrides the campaign's timezone")
    url: HttpUrl | None = Field(default=None, description="A page about the event, as {{ event.url }}")


class MastodonAccount(Model):
    platform: Literal["mastodon"]
    instance: HttpUrl = Field(description="The instance's base URL, e.g. https://mastodon.social")
    language: Lang | None = Field(default=None, description="The language of this account's posts")
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    token_env: EnvName = Field(description="Environment variable holding the account's access token")
    max_characters: int = Field(
        default=500,
        ge=1,
        description="The instance's post length limit (read from the instance when publishing)",
    )
    characters_reserved_per_url: int = Field(default=23, ge=1)
    quotes: Quotes | None = Field(
        default=None, description="Default quote control of this account's posts (a message set's own wins)"
    )
    timezone: TimeZoneName | None = Field(
        default=None, description="Zone the preview shows this account's times in"
    )


class BlueskyAccount(Model):
    platform: Literal["bluesky"]
    handle: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z0-9-]+$")] = Field(
        description="The account's handle, e.g. riseup4rojava.bsky.social"
    )
    service: HttpUrl = Field(
        default=HttpUrl("https://bsky.social"),
        description="The PDS or entryway to log in to; a self-hosted PDS's URL works too",
    )
    language: Lang | None = Field(default=None, description="The language of this account's posts")
    password_env: EnvName = Field(description="Environment variable holding an app password")
    replies: Replies | None = Field(
        default=None, description="Default reply control of this account's posts (a message set's own wins)"
    )
    quotes: Quotes | None = Field(
        default=None, description="Default quote control of this account's posts (a message set's own wins)"
    )
    timezone: TimeZoneName | None = Field(
        default=None, description="Zone the preview shows this account's times in"
    )


Account = Annotated[MastodonAccount | BlueskyAccount, Field(discriminator="platform")]


class Missed(Model):
    """What happens to a post whose time passed while amplifier was not running."""

    action: Literal["expire", "post"] = Field(
        description="expire: record it as expired; post: post it late, within `grace`"
    )
    grace: dt.timedelta = Field(
        default=dt.timedelta(hours=1),
        description="How late a post may still go out (ISO 8601 duration or seconds)",
    )


class RuleBase(Model):
    messages: Id = Field(description="The message set to post")
    accounts: Literal["all"] | list[Id] = Field(
        default="all", description="The accounts to post to, or `all`"
    )
    timezone: TimeZoneName | None = Field(default=None, description="The zone of the rule's local times")
    missed: Missed | None = Field(default=None, description="Missed-window behaviour (see the guide)")
    enabled: bool = True


class CountdownRule(RuleBase):
    kind: Literal["countdown"]
    event: Id = Field(description="The event counted down to")
    days_before: list[Annotated[int, Field(ge=0, le=366)]] = Field(
        default_factory=list, description="Post this many calendar days before the event (0: on the day)"
    )
    at: LocalTime | list[LocalTime] = Field(
        default=dt.time(10, 0), description="Local time(s) of the days_before posts"
    )
    hours_before: list[Annotated[int, Field(ge=1, le=48)]] = Field(
        default_factory=list, description="Post this many hours before the event's start time (needs a time)"
    )

    @model_validator(mode="after")
    def _something(self) -> CountdownRule:
        if not self.days_before and not self.hours_before:
            raise ValueError("a countdown needs `days_before` or `hours_before`")
        return self


class RecurringRule(RuleBase):
    kind: Literal["recurring"]
    cron: str = Field(description='A cron expression in the rule\'s zone, e.g. "0 18 * * *" for 18:00 daily')
    start: LocalDate = Field(description="First day (inclusive)")
    end: LocalDate = Field(description="Last day (inclusive)")
    event: Id | None = Field(default=None, description="An event, for {{ days_left }} and {{ event }}")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from amplifier.campaign.cron import check_cron

        return check_cron(value)

    @model_validator(mode="after")
    def _window(self) -> RecurringRule:
        from amplifier.campaign.cron import check_fires

        if self.end < self.start:
            raise ValueError("`end` is before `start`")
        check_fires(self.cron, self.start)
        return self


class OnceRule(RuleBase):
    kind: Literal["once"]
    at: LocalDateTime = Field(description="The local date and time, e.g. 2027-01-20T09:00")
    event: Id | None = Field(default=None, description="An event, for {{ days_left }} and {{ event }}")


Rule = Annotated[CountdownRule | RecurringRule | OnceRule, Field(discriminator="kind")]


NotifyEvent = Literal[
    "post_failed",
    "post_expired",
    "account_paused",
    "account_resumed",
    "outcome_unknown",
    "reload_rejected",
    "daemon_stopped",
    "daemon_stuck",
]
"""The events an alert destination can ask for (see docs/alerts.md)."""

NOTIFY_EVENTS: tuple[str, ...] = get_args(NotifyEvent)


class NotifyDestination(Model):
    """Where alerts go: an Apprise URL, read from a secret (it holds a token), and the events it wants."""

    url_env: EnvName = Field(
        description="Environment variable (or .env entry, or file in the secrets folder) holding the destination's "
        "Apprise URL, e.g. json://..., mailto://..., ntfys://..., matrixs://..., tgram://.... Never the URL itself"
    )
    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(get_args(NotifyEvent)),
        description="The events to send (default: all of them); [] for a digest-only destination",
    )
    digest: LocalTime | None = Field(
        default=None,
        description='Also send a daily digest (what went out, what failed, what is next) at this local time, "HH:MM", '
        "in the campaign's timezone",
    )

    @field_validator("url_env", mode="before")
    @classmethod
    def _not_a_url(cls, value: Any) -> Any:
        if isinstance(value, str) and ("://" in value or "@" in value):
            # Never echo it: the URL holds a token.
            raise ValueError(
                "url_env is the NAME of an environment variable that holds the URL (e.g. AMPLIFIER_NOTIFY_CHAT), "
                "not the URL: the URL holds a token and must not be written in schedule.yaml"
            )
        return value

    @field_validator("events")
    @classmethod
    def _unique(cls, events: list[str]) -> list[str]:
        twice = sorted({event for event in events if events.count(event) > 1})
        if twice:
            raise ValueError(f"event listed twice: {', '.join(twice)}")
        return events

    @model_validator(mode="after")
    def _something(self) -> NotifyDestination:
        if not self.events and self.digest is None:
            raise ValueError(
                "a destination with no `events` needs a `digest` time, else it never gets anything"
            )
        return self


class NotifySettings(Model):
    """Alerts to where operators already are (chat, mail, monitoring), grouped and never repeated too often."""

    destinations: dict[Id, NotifyDestination] = Field(
        min_length=1,
        description="The destinations, by a name of your choice (shown by `amplifier notify --test`)",
    )
    repeat: dt.timedelta = Field(
        default=dt.timedelta(hours=1),
        description="The same alert is not sent again to a destination within this interval "
        "(ISO 8601 duration or seconds)",
    )
    group: dt.timedelta = Field(
        default=dt.timedelta(seconds=30),
        description="Alerts raised within this window are sent as one message per destination "
        "(ISO 8601 duration or seconds)",
    )

    @field_validator("repeat", "group")
    @classmethod
    def _positive(cls, value: dt.timedelta) -> dt.timedelta:
        if value < dt.timedelta(0):
            raise ValueError("must not be negative")
        return value


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


# ------------------------------------------------------------------------------------------ messages/*.yaml


class ImageSpec(Model):
    path: str = Field(description="Image file, relative to the campaign folder")
    alt: LocalizedText = Field(description="Alt text (required), per language")
    focus: tuple[Focus, Focus] | None = Field(default=None, description="Mastodon focal point, x,y in -1..1")


class VideoSpec(Model):
    path: str = Field(
        description="Video file (MP4; MOV or WebM for Mastodon only), relative to the campaign folder"
    )
    alt: LocalizedText = Field(description="Alt text (required), per language")
    captions: dict[Lang, str] = Field(
        default_factory=dict,
        description="Captions per language: WebVTT files (.vtt) relative to the campaign folder. Bluesky shows "
        "them; Mastodon has no captions (validate warns)",
    )


class QuoteSpec(Model):
    """The earlier post of the campaign a post quotes: a rule's post, on the same platform."""

    rule: Id = Field(description="The rule whose post is quoted")
    account: Id | None = Field(
        default=None,
        description="The account whose post is quoted (same platform); not set: the quoting post's own account",
    )
    at: str | None = Field(
        default=None,
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(~\d+)?$",
        description='The occurrence, as in post ids: the rule\'s local wall time "YYYY-MM-DDTHH:MM". Not set: '
        "the rule's latest post before the quoting post",
    )


def _quote(value: Any) -> Any:
    if isinstance(value, str):
        return {"rule": value}
    return value


TextOrThread = str | list[str]
"""One text, or the explicit parts of a thread."""

PerLanguage = dict[Lang, TextOrThread]


class Variant(Model):
    text: PerLanguage = Field(description="The text per language; a list is a thread, one entry per part")
    mastodon: PerLanguage = Field(default_factory=dict, description="Texts used on Mastodon instead")
    bluesky: PerLanguage = Field(default_factory=dict, description="Texts used on Bluesky instead")


class Hashtags(Model):
    tags: list[str] = Field(description="Hashtags, with or without #")
    placement: Literal["append", "none"] = Field(
        default="append",
        description="append: added at the end (unless the text uses {{ hashtags }} inline); none: only inline",
    )

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        out = []
        for tag in tags:
            bare = tag.lstrip("#＃")
            if not bare:
                raise ValueError(f"hashtag {tag!r} is empty: write a word after the #")
            if re.search(r"\s", bare):
                raise ValueError(
                    f"hashtag {tag!r}: write it as one word, without spaces (e.g. Riseup4Rojava)"
                )
            out.append(bare)
        return out


def _hashtags(value: Any) -> Any:
    if isinstance(value, list):
        return {"tags": value}
    return value


class SplitSettings(Model):
    enabled: bool = Field(default=True, description="Split a text too long for a platform into a thread")
    numbering: bool = Field(default=True, description='Add a " 1/3" marker to each part')


class MessageSet(Model):
    description: str | None = None
    hashtags: Annotated[
        Hashtags | None, BeforeValidator(_hashtags, json_schema_input_type=Hashtags | list[str] | None)
    ] = None
    content_warning: LocalizedText | None = Field(default=None, description="Mastodon content warning")
    sensitive: bool | None = Field(
        default=None,
        description="Mark media as sensitive (Mastodon). Not set: sensitive when the set has a content warning "
        "or labels, and images or a video",
    )
    replies: Replies | None = None
    quotes: Quotes | None = None
    labels: list[SelfLabel] | None = Field(
        default=None,
        description="Bluesky self-labels on the post record: graphic-media, nudity, sexual, porn, "
        "!no-unauthenticated. Not set: graphic-media when the set has a content warning and images or a video; [] for none",
    )
    images: list[ImageSpec] = Field(default_factory=list, max_length=4)
    videos: list[VideoSpec] = Field(
        default_factory=list,
        max_length=1,
        description="One video (instead of images), with alt text and optional captions",
    )
    quote: Annotated[
        QuoteSpec | None, BeforeValidator(_quote, json_schema_input_type=str | QuoteSpec | None)
    ] = Field(
        default=None,
        description="Quote an earlier post of the campaign: a rule id, or {rule, account, at}. Bluesky: a "
        "record embed; Mastodon 4.5+: quoted_status_id. The quoted post goes out first",
    )
    link_card: bool = Field(default=False, description="Bluesky: a link card for the first link")
    split: SplitSettings = Field(default_factory=SplitSettings)
    variants: list[Variant] = Field(min_length=1)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            twice = sorted({label for label in labels if labels.count(label) > 1})
            if twice:
                raise ValueError(f"label listed twice: {', '.join(twice)}")
        return labels

    @model_validator(mode="after")
    def _images_or_video(self) -> MessageSet:
        if self.images and self.videos:
            raise ValueError(
                "a post carries images or one video, not both: move the video to a message set of its own"
            )
        return self

    def self_labels(self) -> tuple[str, ...]:
        """The Bluesky self-labels: as set, else ``graphic-media`` for a content warning with images."""
        if self.labels is not None:
            return tuple(self.labels)
        return ("graphic-media",) if self.content_warning and (self.images or self.videos) else ()

    def media_sensitive(self) -> bool:
        """Mastodon's ``sensitive``: as set, else for a content warning or a label, with images."""
        if self.sensitive is not None:
            return self.sensitive
        return bool(self.images or self.videos) and bool(self.content_warning or self.self_labels())

    def texts(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Every message text of the set (all variants, languages, platforms, thread parts) with its path."""
        for index, variant in enumerate(self.variants):
            for field_name in ("text", "mastodon", "bluesky"):
                texts: dict[str, TextOrThread] = getattr(variant, field_name)
                for lang, value in texts.items():
                    path: tuple[str | int, ...] = ("variants", index, field_name, lang)
                    if isinstance(value, list):
                        for part_index, part in enumerate(value):
                            yield (*path, part_index), part
                    else:
                        yield path, value

    def templates(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Every template of the set: its texts and its content warnings."""
        yield from self.texts()
        for lang, text in (self.content_warning or {}).items():
            yield ("content_warning", lang), text


class MessagesFile(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, title="amplifier messages file")

    sets: dict[Id, MessageSet]


def rule_accounts(schedule: ScheduleFile, rule: Rule) -> list[str]:
    if rule.accounts == "all":
        return list(schedule.accounts)
    return [account for account in rule.accounts if account in schedule.accounts]
