"""Plain YAML scalars as Python values: YAML 1.2's null, booleans and numbers, and dates and times checked as dates.

:func:`resolve` reads an unquoted scalar (``10:00`` and ``no`` stay strings, as in YAML 1.2). A scalar that looks like
a date (``2027-02-30``, ``2027-01-20T09:00+05:00``) becomes a ``date`` or ``datetime`` -- aware when it has an offset,
so the models can refuse it -- or raises :class:`ScalarProblem` with plain words when no such day or time exists or
its year is outside :data:`MIN_YEAR`..:data:`MAX_YEAR`. :func:`text_problem` names a control character or a lone
surrogate in a text.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

MAX_NUMBER_DIGITS = 30
MIN_YEAR, MAX_YEAR = 1900, 2999
"""Dates a campaign can mean; beyond them the schedule arithmetic would overflow."""

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INT = re.compile(r"^[-+]?[0-9][0-9_]*$")
_INT_BASE = re.compile(r"^0o[0-7_]+$|^0x[0-9a-fA-F_]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}
_TIMESTAMP = re.compile(
    r"^(?P<date>[0-9]{4}-[0-9]{1,2}-[0-9]{1,2})"
    r"(?:(?:[Tt]|[ \t]+)(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?P<fraction>\.[0-9]*)?)?"
    r"(?:[ \t]*(?P<tz>Z|[-+][0-9]{1,2}(?::?[0-9]{2})?))?)?$"
)
_BAD_CHARACTER = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_CHARACTER_NAMES = {
    "\x00": "a NUL character",
    "\x1b": "a terminal escape character (ESC)",
    "\r": "a carriage return",
}


class ScalarProblem(ValueError):
    """A scalar that cannot mean what it looks like (an impossible date); the message is for the operator."""


def resolve(text: str) -> Any:
    """The value of the unquoted scalar ``text``."""
    if text in _NULL:
        return None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    if _INT.match(text) or _INT_BASE.match(text):
        return _number(text, int)
    if text.lower() in _SPECIAL_FLOAT:
        return float(_SPECIAL_FLOAT[text.lower()])
    if _FLOAT.match(text):
        return _number(text, float)
    match = _TIMESTAMP.match(text)
    if match:
        return _timestamp(text, match)
    return text


def _number(text: str, kind: type[int] | type[float]) -> Any:
    digits = text.replace("_", "")
    if len(digits) > MAX_NUMBER_DIGITS:
        raise ScalarProblem(f"the number {digits[:12]}... is too long")
    if kind is int and _INT_BASE.match(digits):
        return int(digits, 8 if digits[1] == "o" else 16)
    return kind(digits)


def _timestamp(text: str, match: re.Match[str]) -> dt.date | dt.datetime:
    parts = match.groupdict()
    year, month, day = (int(part) for part in parts["date"].split("-"))
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ScalarProblem(f"{text}: use a year between {MIN_YEAR} and {MAX_YEAR}")
    if not 1 <= month <= 12:
        raise ScalarProblem(f"{text} is not a date: the month is 1 to 12 (e.g. {year}-11-01)")
    try:
        date = dt.date(year, month, day)
    except ValueError:
        last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
        raise ScalarProblem(
            f"{text} is not a date: {dt.date(year, month, 1):%B %Y} has {last} days"
        ) from None
    if parts["hour"] is None:
        return date
    hour, minute = int(parts["hour"]), int(parts["minute"])
    second = int(parts["second"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ScalarProblem(f"{text} is not a time of day: use 00:00 to 23:59")
    fraction = (parts["fraction"] or ".")[1:7].ljust(6, "0")
    tz = None
    if parts["tz"]:
        tz = dt.UTC if parts["tz"] == "Z" else _offset(parts["tz"])
        if tz is None:
            raise ScalarProblem(f"{text}: the offset {parts['tz']} is not a UTC offset")
    return dt.datetime(year, month, day, hour, minute, second, int(fraction), tz)


def _offset(text: str) -> dt.tzinfo | None:
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = (int(digits[:-2]), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
    try:
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    except ValueError:
        return None


def clean_text(text: str) -> str:
    """``text`` with each control character and lone surrogate replaced by U+FFFD (after it was reported): later
    checks, file names and output never meet a character that cannot be encoded."""
    return _BAD_CHARACTER.sub("\ufffd", text)


def text_problem(text: str, what: str) -> str | None:
    """What is wrong with a text (or key) holding a control character or a lone surrogate, or None."""
    found = _BAD_CHARACTER.search(text)
    if found is None:
        return None
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        name = f"a lone surrogate \\u{ord(char):04x} (not a character)"
    else:
        name = _CHARACTER_NAMES.get(char, f"the control character U+{ord(char):04X}")
    return f"this {what} contains {name}: remove it"
