"""The ``notify`` section of ``schedule.yaml``: the alert destinations and the events each wants (see docs/alerts.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from amplifier.campaign.fields import EnvName, Id, LocalTime, Model, no_repeats

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
        return no_repeats(events, "event")

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
