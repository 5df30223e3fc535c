"""A template's mistakes in plain words: what the filter or operator needs, never a Python or Babel message."""

from __future__ import annotations

import datetime as dt

import pytest

from amplifier.campaign.templates import check, compile_template, render

CONTEXT = {
    "days_left": 3,
    "lang": "en",
    "at": dt.datetime(2027, 1, 1, 10, tzinfo=dt.UTC),
    "event": {"date": dt.date(2027, 1, 1), "name": "Day"},
}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ event.date | time }}",
            "time needs a time of day such as at or event.start (event.date is a day",
        ),
        ("{{ 'abc' | number }}", "number needs a number such as days_left, not the text 'abc'"),
        (
            "{{ none | plural(other='x') }}",
            "plural needs a whole number such as days_left, not nothing (none)",
        ),
        (
            "{{ days_left | plural(one=1, other=2) }}",
            "plural(one=...) takes a text in quotes, not the number 1",
        ),
        (
            "{{ at | date('QQQQQQQ') }}",
            "date('QQQQQQQ') cannot format this value: use short, medium, long, full",
        ),
        ("{{ 'In ' + days_left }}", "cannot add a text and a number (+): join text with ~"),
        ("{{ 'x' | duration }}", "duration needs a whole number such as days_left, not the text 'x'"),
    ],
)
def test_a_filter_or_operator_says_what_it_needs(template: str, message: str) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        render(compile_template(template), CONTEXT)
    assert str(info.value).startswith(message), str(info.value)


def test_plural_without_other_is_found_before_rendering() -> None:
    (issue,) = check("{{ days_left | plural(one='# day') }}")
    assert issue.message.startswith("plural() needs other=... (the form for every other number)")


def test_the_right_values_still_format() -> None:
    text = render(
        compile_template("{{ at | date }}|{{ at | time }}|{{ 3.5 | number }}|{{ days_left | duration }}"),
        CONTEXT,
    )
    assert text == "January 1, 2027|10:00\u202fAM|3.5|3 days"
