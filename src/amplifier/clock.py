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


def parse_duration(value: str) -> dt.timedelta | None:
    match = _OFFSET.match(value.strip())
    if not match:
        return None
    sign, amount, unit = match.groups()
    delta = dt.timedelta(**{_UNITS[unit]: int(amount)})
    return -delta if sign == "-" else delta


def parse_instant(value: str, tz: ZoneInfo, *, base: dt.datetime, option: str = "time") -> dt.datetime:
    """``value`` as an aware instant. ``base`` anchors ``now`` and relative offsets (``+7d``, ``-2h``)."""
    text = value.strip()
    if text.lower() == "now":
        return base
    delta = parse_duration(text)
    if delta is not None:
        return base + delta
    try:
        if len(text) == 10:
            return localize(dt.datetime.combine(dt.date.fromisoformat(text), dt.time()), tz)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option}: cannot read {value!r}; use an ISO 8601 date or date-time (2027-10-25, "
            "2027-10-25T10:00, 2027-10-25T10:00+02:00), 'now', or an offset such as +7d or -3h"
        ) from None
    if parsed.tzinfo is None:
        return localize(parsed, tz)
    return parsed


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
