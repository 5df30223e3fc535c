"""Templates are data from an editor, not trusted code: every render ends, in bounded time and memory.

Each hostile template is fed to ``amplifier validate`` as a user would: exit 2, a located ``file:line:col`` line
naming the message set, in plain words, within seconds and a few megabytes.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplifier.campaign.load import load_campaign
from amplifier.campaign.sandbox import MAX_OUTPUT, MAX_PLAN_STEPS, TemplateLimitError
from amplifier.campaign.templates import check, compile_template, render
from amplifier.plan.planner import plan_window
from tests.conftest import BASE_MESSAGES, BASE_SCHEDULE, Result

NOW = "2027-01-01T00:00:00+00:00"

MESSAGES = """\
sets:
  countdown:
    variants:
      - text:
          en: "{{ days_left }} days until {{ event.name }}."
      - text:
          en: |-
            {{ days_left }} days.
            TEMPLATE
"""

HOSTILE = [
    ("{{ 'x' * 10000000 }}", "repeating a str 10,000,000 times is too large"),
    ("{{ [0] * 10000000 }}", "repeating a list 10,000,000 times is too large"),
    ("{{ (10**100000000) % 7 }}", "10 ** 100000000 is too large"),
    ("{{ 2 ** 300 }}", "2 ** 300 is too large"),
    (
        "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
        "the template takes too",
    ),
    ("{% for a in range(99999) %}{% for b in range(99999) %}x{% endfor %}{% endfor %}", "too"),
    ("{{ 'x' * 99999 }}{{ 'y' * 99999 }}", "the template's text is too long"),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "a text in the template is too large",
    ),
    ("{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}", "calls itself"),
    ("{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}", "calls itself"),
    ("{{ 'x'.ljust(1000000000) }}", "the width of ljust() 1,000,000,000 is too large"),
    ("{{ 'x' | center(1000000000) }}", "the width or count of center 1,000,000,000 is too large"),
    ("{{ ('x' * 1000) | replace('x', 'y' * 1000) }}", "the text replace() would build is too large"),
    ("{{ ('x' * 1000).replace('x', 'y' * 1000) }}", "the text replace() would build is too large"),
    ("{{ ('x\\n' * 40000) | indent(1000) }}", "the text indent would build is too large"),
    ("{{ [[1] * 1000] * 1000 }}", "a value in the template is too large"),
    ("{{ ([['x' * 1000] * 1000] * 10) | join }}", "too large"),
    ("{{ [[1] * 1000] * 1000 | sum(start=[]) }}", "sum adds numbers only"),
    ("{{ '%999999999s' % 'x' }}", "% on text is not available"),
    ("{{ '{:>999999999}'.format(1) }}", "'format' of a str is not available"),
    ("{{ 'ab'.translate({97: 'x' * 99999}) }}", "'translate' of a str is not available"),
    ("{{ range(10000000) | list }}", "range() of 10,000,000 numbers is too large"),
]


@pytest.mark.parametrize(("template", "fragment"), HOSTILE)
def test_hostile_template_is_a_located_error_in_bounded_time_and_memory(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result], template: str, fragment: str
) -> None:
    messages = MESSAGES.replace("TEMPLATE", template)
    path = campaign_dir(messages={"main.yaml": messages})
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = run_cli("validate", "--config", str(path), "--now", "2027-01-01T00:00:00+00:00")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert result.code == 2, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # reported once, though the variant is planned for several posts
    match = re.match(r"^(.*):(\d+):(\d+): (.*)$", lines[0])
    assert match, lines[0]
    file, line, _col, message = match.groups()
    assert file.endswith("main.yaml")
    assert int(line) == 9  # the template's line in the file
    assert message.startswith("template of message set 'countdown', variant 2, en: "), message
    assert fragment in message
    assert "Traceback" not in result.err
    assert elapsed < 15
    assert peak < 64 * 1024 * 1024, peak


@pytest.mark.parametrize(
    "template",
    [
        "{{ days_left | plural(one='# day', other='# days') }} until {{ event.name | upper }}.",
        "{% for i in range(3) %}{{ loop.index }}{% if not loop.last %}, {% endif %}{% endfor %}",
        "{{ ['a', 'b'] | join(', ') }} {{ 'abc'.upper() }} {{ 'x' * 3 }} {{ 2 ** 10 }} {{ 7 % 3 }}",
        "{% set ns = namespace(n=0) %}{% for i in range(1000) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
        "{{ 'a-b'.split('-') | reverse | join }} {{ 'x' | center(5) }}|{{ 'line' | indent(2, first=true) }}",
        "{{ [3, 1, 2] | sort | map('string') | join }} {{ range(5) | sum }} {{ 1.5 | round }}",
    ],
)
def test_ordinary_templates_render(template: str) -> None:
    assert check(template) == []
    assert render(compile_template(template), {"days_left": 3, "lang": "en", "event": {"name": "Day"}})


def test_a_template_of_exactly_the_limit_renders() -> None:
    text = render(compile_template(f"{{{{ 'x' * {MAX_OUTPUT} }}}}"), {})
    assert len(text) == MAX_OUTPUT
    with pytest.raises(TemplateLimitError):
        render(compile_template(f"{{{{ 'x' * {MAX_OUTPUT} }}}}!"), {})


def test_each_render_has_its_own_budget() -> None:
    template = compile_template("{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}")
    for _ in range(10):  # 90,000 steps each: within one budget, not within ten
        assert render(template, {}) == ""


def test_a_number_too_long_to_read_is_a_syntax_problem() -> None:
    (issue,) = check("{{ 1" + "0" * 5000 + " }}")
    assert (
        issue.message == "template syntax error: a number in the template is too long (at most 4,300 digits)"
    )


def test_brackets_nested_too_deeply_are_a_syntax_problem() -> None:
    (issue,) = check("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")
    assert issue.message.startswith("template syntax error: ")


def test_lipsum_and_format_are_not_available() -> None:
    (lipsum,) = check("{{ lipsum(1000000) }}")
    assert lipsum.message.startswith("unknown template variable 'lipsum'")
    (printf,) = check("{{ '%s' | format(1) }}")
    assert printf.message.startswith("unknown filter 'format'")


def test_a_template_just_under_the_limit_is_bounded_over_all_its_posts(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    """About 90,000 steps a render is fine once, not for each of 60 daily posts: the plan stops it."""
    schedule = BASE_SCHEDULE + (
        '  daily:\n    kind: recurring\n    cron: "0 18 * * *"\n    start: 2027-03-01\n    end: 2027-04-29\n'
        "    messages: heavy\n"
    )
    heavy = "{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}Daily."
    messages = BASE_MESSAGES + f'  heavy:\n    variants:\n      - text:\n          en: "{heavy}"\n'
    started = time.monotonic()
    result = run_cli("validate", "-c", str(campaign_dir(schedule, {"main.yaml": messages})), "--now", NOW)
    assert time.monotonic() - started < 20
    assert result.code == 2
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].endswith(
        "template of message set 'heavy', variant 1, en: the template takes too many steps over all its posts "
        f"(over {MAX_PLAN_STEPS:,} in one plan)"
    )


def test_an_ordinary_template_never_runs_short_over_many_posts(campaign_dir: Callable[..., Path]) -> None:
    schedule = BASE_SCHEDULE + (
        '  often:\n    kind: recurring\n    cron: "*/5 * * * *"\n    start: 2027-03-01\n    end: 2027-03-31\n'
        "    messages: tidy\n"
    )
    loop = "{% for i in range(40) %}{{ i }}{% endfor %}"  # about 100 steps: far more than ordinary, well under 10,000
    messages = (
        BASE_MESSAGES + f'  tidy:\n    variants:\n      - text:\n          en: "{loop} {{{{ at | time }}}}"\n'
    )
    campaign = load_campaign(campaign_dir(schedule, {"main.yaml": messages}))
    plan = plan_window(
        campaign, dt.datetime(2027, 3, 1, tzinfo=dt.UTC), dt.datetime(2027, 4, 1, tzinfo=dt.UTC)
    )
    assert plan.problems == []
    assert len([p for p in plan.posts if p.rule == "often"]) > 8000 * 2


_NUMBERS = st.sampled_from(["0", "3", "99", "1000", "99999", "10**6", "2**200", "-5"])
_VALUES = st.sampled_from(
    ["'x'", "'ab '", "[1, 2]", "days_left", "event.name", "range(50)", "'{{ x }}'", "none"]
)
_EXPR = st.one_of(
    _VALUES,
    st.builds(lambda v, n: f"{v} * {n}", _VALUES, _NUMBERS),
    st.builds(lambda n, m: f"{n} ** {m}", _NUMBERS, _NUMBERS),
    st.builds(lambda v, w: f"{v} ~ {w}", _VALUES, _VALUES),
    st.builds(lambda v, n: f"{v} | center({n})", _VALUES, _NUMBERS),
    st.builds(lambda v, n: f"({v} | string) * {n} | replace('x', 'yy')", _VALUES, _NUMBERS),
    st.builds(lambda v: f"{v} | list | join(', ')", _VALUES),
)


@st.composite
def _templates(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["expr", "for", "set", "macro"]))
        expr = draw(_EXPR)
        if kind == "expr":
            parts.append(f"{{{{ {expr} }}}}")
        elif kind == "for":
            inner = draw(
                st.sampled_from(["{{ i }}", "x" * 100, "{% for j in range(N) %}{{ E }}{% endfor %}"])
            )
            inner = inner.replace("N", draw(_NUMBERS)).replace("E", expr)
            parts.append(f"{{% for i in range({draw(_NUMBERS)}) %}}{inner}{{% endfor %}}")
        elif kind == "set":
            parts.append(
                f"{{% set ns = namespace(s={expr}) %}}{{% for i in range(40) %}}{{% set ns.s = ns.s ~ ns.s %}}{{% endfor %}}"
            )
        else:
            parts.append("{% macro m(n) %}{{ m(n) }}{{ m(n) }}{% endmacro %}{{ m(1) }}")
    return "".join(parts)


@settings(max_examples=60, deadline=None)
@given(_templates())
def test_any_template_ends_in_bounded_time_and_size(template: str) -> None:
    context = {"days_left": 3, "lang": "en", "event": {"name": "Day"}}
    started = time.monotonic()
    try:
        text = render(compile_template(template), context)
    except Exception:  # any error is reported at the template's line by the planner
        pass
    else:
        assert len(text) <= MAX_OUTPUT
    assert time.monotonic() - started < 5


def test_a_compiled_template_always_renders_within_the_limits() -> None:
    """Any caller (compose, a future command) that renders a compiled template gets the limits too."""
    with pytest.raises(TemplateLimitError, match="too large"):
        compile_template("{{ 'x' * 10000000 }}").render({})
    assert compile_template("{{ 1 + 1 }}").render({}) == "2"


def test_the_deadline_holds_whatever_the_steps_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps spent in large amounts (long texts) still reach the clock: a render past its deadline stops."""
    from amplifier.campaign import budget

    monkeypatch.setattr(budget, "MAX_SECONDS", 0.0)
    template = compile_template("{% for i in range(2000) %}{{ 'x' * 3000 }}{% endfor %}")  # 3-4 steps a round
    with pytest.raises(TemplateLimitError, match="takes too long"):
        render(template, {})
