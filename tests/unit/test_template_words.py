"""Template syntax errors in an operator's words, never Jinja's ("expected token 'end of print statement'")."""

from __future__ import annotations

import pytest

from amplifier.campaign.templates import check


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ x y }}", "{{ ... }} holds one value (a variable and its filters): 'y' is one word too many"),
        ("{{ days_left  plural }}", "'plural' is one word too many"),
        ("{% if %}x{% endif %}", "a tag or {{ }} with nothing in it"),
        ("{% iff event %}x", "unknown tag {% iff %}: use if / elif / else / endif, for / endfor or set"),
        ("{% if event %}x", "a block is not closed: add {% endif %} where it ends"),
        ("{% for x in y %}x", "a block is not closed: add {% endfor %} where it ends"),
        ("{{ event.name }", "a } too many, or a {{ ... }} closed with a single }"),
        ("{{ event.name", "a {{ is not closed: end it with }}"),
    ],
)
def test_syntax_errors_are_said_in_plain_words(source: str, words: str) -> None:
    (issue,) = check(source)
    assert issue.message.startswith("template syntax error: ")
    assert words in issue.message
    for jinja in ("expected token", "Encountered", "Jinja was looking", "end of print statement"):
        assert jinja not in issue.message
