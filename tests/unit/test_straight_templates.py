"""Straight-line templates render without the per-node budget, with the same text and the same errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from amplifier.campaign import templates
from amplifier.campaign.sandbox import MAX_OUTPUT, Budget, TemplateLimitError, run_with_budget
from amplifier.campaign.templates import compile_template, env, no_event

CONTEXT: dict[str, Any] = {
    "event": {"name": "World Kobane Day", "date": dt.date(2027, 11, 1), "url": "https://x.org/", "id": "k"},
    "account": {"id": "a01", "platform": "mastodon", "handle": None, "instance": "https://m.example"},
    "lang": "ar",
    "hashtags": "#a #b",
    "campaign": {"name": "C"},
    "days_left": 3,
    "hours_left": 70,
    "now": dt.datetime(2027, 10, 29, 9, tzinfo=dt.UTC),
    "at": dt.datetime(2027, 10, 29, 9, tzinfo=dt.UTC),
}

STRAIGHT = [
    "{{ days_left | plural(zero='اليوم', one='يوم', other='# يوم') }} حتى {{ event.name }}",
    "{{ event.date | date('d MMMM y') }} · {{ at | time }} · {{ now | datetime('short') }}",
    "{% if days_left == 1 %}tomorrow{% elif event %}soon{% else %}-{% endif %} {{ event['url'] }}",
    "{{ 'x' if days_left is even else 'y' }} {{ account.id | upper }} {{ hours_left | number }}",
    "{% if not event or days_left > 7 and hours_left < 9 %}a{% endif %}{{ days_left | duration }}",
    "{{ event.name.upper }}",  # a method, not called: written as Jinja writes it
]

NOT_STRAIGHT = [
    "{% for i in range(3) %}{{ i }}{% endfor %}",
    "{% set x = 1 %}{{ x }}",
    "{% macro f() %}x{% endmacro %}{{ f() }}",
    "{{ days_left + 1 }}",
    "{{ event.name ~ '!' }}",
    "{{ -days_left }}",
    "{{ event.name.upper() }}",
    "{{ event.name | upper | lower }}",  # a chain of filters
    "{{ event.name | replace('a', 'b') }}",
    "{{ event.name | center(9) }}",
    "{{ event.name[0:3] }}",
    "{{ [1, 2] }}",
    "{{ days_left | plural(other=event.name) }}",  # an argument that is not a constant
    "x" * 5000,  # over MAX_SOURCE
]


@pytest.mark.parametrize("source", STRAIGHT)
def test_straight_templates_render_as_the_bounded_render_does(source: str) -> None:
    template = compile_template(source)
    assert template.straight
    bounded = env().from_string(source)
    expected = run_with_budget(lambda: bounded.generate(CONTEXT), Budget())
    assert template.render_straight(CONTEXT) == expected
    assert template.render(CONTEXT) == expected


@pytest.mark.parametrize("source", NOT_STRAIGHT)
def test_templates_that_loop_assign_compute_or_call_are_not_straight(source: str) -> None:
    template = compile_template(source)
    assert not template.straight
    assert template.render_straight(CONTEXT) is None


@pytest.mark.parametrize(
    ("source", "context", "error", "message"),
    [
        ("{{ event.nope }}", CONTEXT, Exception, "has no attribute 'nope'"),
        ("{{ event.name | date }}", CONTEXT, ValueError, "date needs a day"),
        (
            "{{ days_left }}",
            {**CONTEXT, "days_left": no_event("r", "days_left")},
            Exception,
            "rule 'r' has no",
        ),
        ("{{ event.__class__ }}", CONTEXT, Exception, "__class__"),
    ],
)
def test_an_error_in_a_straight_template_is_the_bounded_renders(
    source: str, context: dict[str, Any], error: type[Exception], message: str
) -> None:
    template = compile_template(source)
    assert template.straight
    assert template.render_straight(context) is None
    with pytest.raises(error, match=message):
        template.render(context)


def test_a_straight_template_over_the_output_limit_gets_the_located_error() -> None:
    """Twenty long values: within every per-value limit, the text over MAX_OUTPUT: the bounded render's error."""
    source = " ".join(["{{ event.name }}"] * 20)
    context = {**CONTEXT, "event": {**CONTEXT["event"], "name": "n" * (MAX_OUTPUT // 10)}}
    template = compile_template(source)
    assert template.straight
    assert template.render_straight(context) is None
    with pytest.raises(TemplateLimitError, match="text is too long"):
        template.render(context)


def test_a_straight_template_spends_no_steps_of_the_plan() -> None:
    budget = Budget(steps=100, shared=True)
    compile_template(STRAIGHT[0]).render(CONTEXT, budget)
    assert budget.steps == 100


def test_the_globals_are_one_dictionary_with_the_sandboxs_names() -> None:
    template = compile_template("{{ days_left }}")
    assert type(template._straight.globals) is dict
    assert "range" in template._straight.globals
    assert "lipsum" not in template._straight.globals
    assert templates.straight_env().filters["date"] is templates.FILTERS["date"]
