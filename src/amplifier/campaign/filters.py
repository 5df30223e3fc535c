"""The filters templates format values with, each for the post's language (Babel): ``date``, ``time``,
``datetime``, ``number``, ``plural``, ``duration``. Kurmanji ``ku``, Sorani ``ckb``, Arabic, Turkish, German,
English... A value of the wrong kind is an error that says, in words, what the filter needs.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from jinja2 import Undefined, pass_context
from jinja2.runtime import Context


@lru_cache(maxsize=64)
def _locale(lang: str) -> Any:
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(lang.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(lang.split("-")[0]) if "-" in lang else Locale.parse("en")


def _lang(ctx: Context) -> str:
    return str(ctx.get("lang") or "en")


def _defined(value: Any) -> Any:
    """``value``, or the error of an undefined one (its hint names the rule without an event)."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _expect(value: Any, kinds: type | tuple[type, ...], name: str, wanted: str) -> Any:
    """``value`` if it is of ``kinds``, else an error that says what ``name`` needs, in words."""
    value = _defined(value)
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise ValueError(f"{name} needs {wanted}, not {describe_value(value)}")
    return value


def describe_value(value: Any) -> str:
    """A value in words, for messages: ``the text 'abc'``, ``the number 3``, ``nothing``."""
    if value is None:
        return "nothing (none)"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"the number {value}"
    if isinstance(value, dt.datetime):
        return f"the time {value.isoformat()}"
    if isinstance(value, dt.date):
        return f"the day {value.isoformat()}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _formatted(name: str, format: Any, call: Any) -> str:
    try:
        return str(call())
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ValueError(
            f"{name}({format!r}) cannot format this value: use short, medium, long, full or a CLDR pattern such as "
            "'d MMMM y' (date) or 'HH:mm' (time)"
        ) from exc


_DAY = "a day such as event.date or at"
_TIME = "a time of day such as at or event.start (event.date is a day without a time)"


@pass_context
def _date(ctx: Context, value: dt.date | dt.datetime, format: str = "long") -> str:
    from babel.dates import format_date

    if type(value) is dt.date and type(format) is str:  # the common case: a day (event.date), cached
        return _day_text(_lang(ctx), value, format)
    value = _expect(value, dt.date, "date", _DAY)
    return _formatted("date", format, lambda: format_date(value, format, locale=_locale(_lang(ctx))))


@lru_cache(maxsize=4096)
def _day_text(lang: str, value: dt.date, format: str) -> str:
    """A day formatted for ``lang`` (a campaign formats the same few days on every post)."""
    from babel.dates import format_date

    return _formatted("date", format, lambda: format_date(value, format, locale=_locale(lang)))


@pass_context
def _time(ctx: Context, value: dt.datetime | dt.time, format: str = "short") -> str:
    from babel.dates import format_time

    value = _expect(value, (dt.datetime, dt.time), "time", _TIME)
    tz = value.tzinfo if isinstance(value, dt.datetime) else None
    return _formatted(
        "time", format, lambda: format_time(value, format, tzinfo=tz, locale=_locale(_lang(ctx)))
    )


@pass_context
def _datetime(ctx: Context, value: dt.datetime, format: str = "medium") -> str:
    from babel.dates import format_datetime

    value = _expect(value, dt.datetime, "datetime", _TIME)
    return _formatted(
        "datetime",
        format,
        lambda: format_datetime(value, format, tzinfo=value.tzinfo, locale=_locale(_lang(ctx))),
    )


@pass_context
def _number(ctx: Context, value: float, format: str | None = None) -> str:
    from babel.numbers import format_decimal

    value = _expect(value, (int, float), "number", "a number such as days_left")
    return _formatted("number", format, lambda: format_decimal(value, format, locale=_locale(_lang(ctx))))


@pass_context
def _plural(ctx: Context, value: int, **forms: str) -> str:
    """Pick the text for the CLDR plural category of ``value`` in the post's language; ``#`` is the number.

    ``{{ days_left | plural(one="# day", other="# days") }}``; Arabic also knows zero, two, few and many. ``other``
    is required; a category the template does not give falls back to ``other``. ``zero=`` is used for 0 in every
    language: by the language's rules where it has a zero form (Arabic, Latvian, Welsh...), for exactly 0 elsewhere.
    A form is text, not a template: :func:`check` refuses ``{{ ... }}`` inside one.
    """
    value = _expect(value, int, "plural", "a whole number such as days_left")
    if "other" not in forms:
        raise ValueError("plural() needs other=... (the form for every other number)")
    for key, form in forms.items():
        if not isinstance(form, str):
            raise ValueError(f"plural({key}=...) takes a text in quotes, not {describe_value(form)}")
    lang = _lang(ctx)
    category = _plural_category(lang, abs(value))
    if value == 0 and "zero" in forms and "zero" not in _plural_tags(lang):
        # zero= is for 0 also where the language's rules have no zero form (English, German).
        category = "zero"
    text = forms.get(category, forms["other"])
    if "#" not in text:
        return text
    return text.replace("#", _decimal(lang, value))


@lru_cache(maxsize=64)
def _plural_tags(lang: str) -> frozenset[str]:
    return frozenset(_locale(lang).plural_form.tags)


@lru_cache(maxsize=4096)
def _plural_category(lang: str, value: int) -> str:
    return str(_locale(lang).plural_form(value))


@lru_cache(maxsize=4096)
def _decimal(lang: str, value: int) -> str:
    from babel.numbers import format_decimal

    return str(format_decimal(value, locale=_locale(lang)))


@pass_context
def _duration(ctx: Context, value: dt.timedelta | int, unit: str = "day", format: str = "long") -> str:
    """A duration in words in the post's language: ``{{ days_left | duration }}`` -> "7 days", "7 roj", "7 gün"."""
    from babel.dates import format_timedelta

    value = _expect(value, (int, dt.timedelta), "duration", "a whole number such as days_left")
    if unit not in _UNITS:
        raise ValueError(f"duration(unit=...) takes one of {', '.join(_UNITS)}, not {unit!r}")
    if format not in _FORMATS:
        raise ValueError(f"duration(format=...) takes one of {', '.join(_FORMATS)}, not {format!r}")
    delta = value if isinstance(value, dt.timedelta) else dt.timedelta(**{f"{unit}s": value})
    if delta < dt.timedelta(0):
        # Babel writes "7 days" for -7 in Arabic and "-7 days" in English: neither is what a post after its event means.
        raise ValueError(
            f"duration of a negative value ({value}): the post is after its event; "
            "test it first: {% if days_left >= 0 %}...{% endif %}"
        )
    text = format_timedelta(
        delta,
        granularity=unit,  # type: ignore[arg-type]  # checked against _UNITS above
        threshold=1_000_000,
        format=format,  # type: ignore[arg-type]  # checked against _FORMATS above
        locale=_locale(_lang(ctx)),
    )
    return str(text)


_UNITS = ("week", "day", "hour", "minute", "second")
_FORMATS = ("narrow", "short", "long")


FILTERS = {
    "date": _date,
    "time": _time,
    "datetime": _datetime,
    "number": _number,
    "plural": _plural,
    "duration": _duration,
}
