"""The field types every campaign model shares: ids, language tags, secret names, timezones, local dates and times,
texts per language, and :class:`Model`, the base that forbids unknown keys."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

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


def no_repeats(items: list[str], noun: str) -> list[str]:
    """``items`` as they are; a ValueError naming each one listed twice (``account listed twice: a, b``)."""
    twice = sorted({item for item in items if items.count(item) > 1})
    if twice:
        raise ValueError(f"{noun} listed twice: {', '.join(twice)}")
    return items


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


def not_a_number(what: str, example: str) -> Any:
    """A before-validator: a YAML number is never a date or a time (``20271101`` is not 2027-11-01)."""

    def check(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"{value} is a number, not {what}: write {example}")
        return value

    return BeforeValidator(check)


def check_local(value: Any) -> Any:
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
    not_a_number("a time", 'the time in quotes, e.g. "10:00"'),
    AfterValidator(check_local),
    Field(description='A local time, "HH:MM"'),
]
LocalDate = Annotated[dt.date, not_a_number("a date", "e.g. 2027-11-01"), AfterValidator(check_local)]
LocalDateTime = Annotated[
    dt.datetime, not_a_number("a date and time", "e.g. 2027-01-20T09:00"), AfterValidator(check_local)
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


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)
