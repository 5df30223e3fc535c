"""Cron expressions of recurring rules, checked field by field so a mistake names the field that is wrong.

:func:`check_cron` reads the five fields (minute hour day month weekday) and reports the first wrong one with its
range; :func:`check_fires` makes sure the expression fires at all (a ``0 18 30 2 *`` never does).
"""

from __future__ import annotations

import datetime as dt
import re

FIELDS = (
    ("minute", 0, 59, "0-59"),
    ("hour", 0, 23, "0-23"),
    ("day of the month", 1, 31, "1-31"),
    ("month", 1, 12, "1-12 or jan-dec"),
    ("weekday", 0, 7, "0-7 (0 and 7 are Sunday) or sun-sat"),
)
_NAMES = {
    3: {
        m: i + 1
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        )
    },
    4: {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_ITEM = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?$")


def check_cron(expression: str) -> str:
    """``expression`` if it is five valid cron fields (as croniter reads them); else a ``ValueError`` naming the
    wrong field where one can be named."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expression!r} has {len(fields)} field{'s' if len(fields) != 1 else ''}: "
            'write five, minute hour day month weekday (e.g. "0 18 * * *" for 18:00 daily)'
        )
    from croniter import croniter

    if croniter.is_valid(expression):  # croniter's extensions too: L (last day), 5#2 (second Friday)
        return expression
    for index, text in enumerate(fields):
        problem = _field_problem(index, text.lower())
        if problem:
            name, _low, _high, allowed = FIELDS[index]
            raise ValueError(f"cron {expression!r}: the {name} field {text!r} {problem}; use {allowed}")
    raise ValueError(f'cron {expression!r} is not a valid cron expression; e.g. "0 18 * * *" for 18:00 daily')


def _field_problem(index: int, text: str) -> str | None:
    _name, low, high, _allowed = FIELDS[index]
    names = _NAMES.get(index, {})
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None:
            return "cannot be read"
        span, step = match.groups()
        if step is not None and int(step) == 0:
            return "has a step of 0"
        if span == "*":
            continue
        bounds = []
        for part in span.split("-"):
            if part in names:
                bounds.append(names[part])
            elif part.isdigit():
                bounds.append(int(part))
            else:
                return "cannot be read"
        if any(not low <= bound <= high for bound in bounds):
            return "is out of range"
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            return "is a range that runs backwards"
    return None


def check_fires(expression: str, start: dt.date) -> None:
    """A ``ValueError`` if ``expression`` can never fire after ``start`` (``0 18 30 2 *``: there is no 30 February).

    A cron that fires, only not between a rule's start and end, plans nothing: that is a warning of the planner."""
    from croniter import CroniterBadDateError, croniter

    try:
        croniter(expression, dt.datetime.combine(start, dt.time())).get_next(dt.datetime)
    except (CroniterBadDateError, ValueError, KeyError, OverflowError):
        raise ValueError(
            f"cron {expression!r} never fires: no day matches its day and month fields"
        ) from None
