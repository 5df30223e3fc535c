"""The rules of ``schedule.yaml``: when a message set is posted (a countdown to an event, a cron, once), and what
happens to a post whose time passed while amplifier was not running."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from amplifier.campaign.fields import Id, LocalDate, LocalDateTime, LocalTime, Model, TimeZoneName
from amplifier.campaign.followups import BoostSetting


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
    boost: BoostSetting = None  # wins over the message set's (campaign/followups.py)


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
