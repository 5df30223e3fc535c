"""Instants given on the command line: ISO 8601 dates and date-times, ``now``, and offsets such as ``+7d``.

A date-time without an offset is read in the campaign's timezone (never the machine's); a date is its midnight there.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

from amplifier.errors import UsageError

_OFFSET = re.compile(r"^([+-])\s*(\d+)\s*(w|d|h|m|min)$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "min": "minutes"}


MAX_OFFSET = dt.timedelta(days=36_525)
"""The longest offset accepted (a hundred years): beyond it the calendar arithmetic would overflow."""
MIN_YEAR, MAX_YEAR = 1900, 2999


def parse_duration(value: str, option: str = "offset") -> dt.timedelta | None:
    """``+7d``, ``-3h``... as a timedelta; None if ``value`` is not an offset; a usage error if it is too long."""
    match = _OFFSET.match(value.strip())
    if not match:
        return None
    sign, amount, unit = match.groups()
    try:
        if len(amount.lstrip("0")) > 15:  # too far in any unit; and int() of a huge string is slow
            raise OverflowError
        delta = dt.timedelta(**{_UNITS[unit]: int(amount)})
    except OverflowError:
        delta = MAX_OFFSET * 2
    if delta > MAX_OFFSET:
        raise UsageError(f"{option}: {value!r} is too far; use at most 100 years (e.g. +365d)")
    return -delta if sign == "-" else delta


def _bounded(instant: dt.datetime, value: str, option: str) -> dt.datetime:
    if not MIN_YEAR <= instant.year <= MAX_YEAR:
        raise UsageError(f"{option}: {value!r} is out of range; use a time between {MIN_YEAR} and {MAX_YEAR}")
    return instant


def parse_instant(value: str, tz: ZoneInfo, *, base: dt.datetime, option: str = "time") -> dt.datetime:
    """``value`` as an aware instant. ``base`` anchors ``now`` and relative offsets (``+7d``, ``-2h``)."""
    text = value.strip()
    if text.lower() == "now":
        return base
    delta = parse_duration(text, option)
    if delta is not None:
        return _bounded(base + delta, value, option)  # base is in 1900-2999, delta at most 100 years
    try:
        if len(text) == 10:
            parsed = dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
        else:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise UsageError(
            f"{option}: cannot read {value!r}; use an ISO 8601 date or date-time (2027-10-25, "
            "2027-10-25T10:00, 2027-10-25T10:00+02:00), 'now', or an offset such as +7d or -3h"
        ) from None
    _bounded(parsed, value, option)  # checked before localizing: year 1 or 9999 would overflow there
    return localize(parsed, tz) if parsed.tzinfo is None else parsed


Clock = Callable[[], dt.datetime]
"""A source of the current time: :func:`utcnow`, or a fixed or offset clock in tests and with ``--now``."""


def utcnow() -> dt.datetime:
    """The real current time; the only place amplifier reads the clock outside the daemon."""
    return dt.datetime.now(dt.UTC)


def localize(naive: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """Attach ``tz`` to a local wall time. A wall time skipped by a DST jump moves forward by the gap (02:30 -> 03:30),
    as a person's clock would; an ambiguous one takes its first occurrence."""
    aware = naive.replace(tzinfo=tz, fold=0)
    round_trip = aware.astimezone(dt.UTC).astimezone(tz)
    if round_trip.replace(tzinfo=None) != naive:  # nonexistent local time
        return round_trip
    return aware
