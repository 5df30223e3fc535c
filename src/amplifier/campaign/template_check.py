"""Static checks of a template, before anything renders: syntax (in an operator's words, with an example),
unknown variables, filters and tests, and ``plural()`` forms. All the issues of a template at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta, nodes

from amplifier.campaign.environment import env
from amplifier.campaign.filters import FILTERS

VARIABLES = frozenset(
    {"event", "days_left", "hours_left", "now", "at", "account", "lang", "hashtags", "campaign"}
)


@dataclass(frozen=True)
class TemplateIssue:
    """A problem in one template: ``line`` is 1-based within the template text."""

    line: int
    message: str


_SYNTAX: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"expected token 'end of print statement', got '(.*)'"),
        lambda m: (
            f"{{{{ ... }}}} holds one value (a variable and its filters): {m[1]!r} is one word too many; "
            "e.g. {{ event.name }} or {{ days_left | number }}"
        ),
    ),
    (
        re.compile(r"unexpected end of template, expected 'end of print statement'"),
        lambda m: "a {{ is not closed: end it with }}",
    ),
    (
        re.compile(r"unexpected '}'"),
        lambda m: "a } too many, or a {{ ... }} closed with a single }: write {{ event.name }}",
    ),
    (
        re.compile(r"[Ee]xpected an expression, got 'end of (?:statement block|print statement)'"),
        lambda m: (
            "a tag or {{ }} with nothing in it: write what it tests or shows, e.g. {% if event %} or "
            "{{ event.name }}"
        ),
    ),
    (
        re.compile(r"Encountered unknown tag '(\w+)'"),
        lambda m: f"unknown tag {{% {m[1]} %}}: use if / elif / else / endif, for / endfor or set",
    ),
    (
        re.compile(r"Jinja was looking for the following tags: .*'(end\w+)'"),
        lambda m: f"a block is not closed: add {{% {m[1]} %}} where it ends",
    ),
    (
        re.compile(r"unexpected end of template, expected '(.*)'"),
        lambda m: f"the template ends too early: {m[1]} is missing",
    ),
]


def syntax_in_words(message: str) -> str:
    """Jinja's syntax error ``message`` in an operator's words, with an example; the message as it is when no
    rule matches (it still names the token)."""
    for pattern, words in _SYNTAX:
        found = pattern.search(message)
        if found:
            return words(found)
    return message


def check(source: str) -> list[TemplateIssue]:
    """Static checks: syntax, unknown variables, unknown filters. All issues of the template at once."""
    environment_ = env()
    try:
        ast = environment_.parse(source)
    except TemplateSyntaxError as exc:
        return [
            TemplateIssue(exc.lineno or 1, f"template syntax error: {syntax_in_words(exc.message or '')}")
        ]
    except (ValueError, RecursionError, MemoryError) as exc:  # a number of 5,000 digits, brackets 10,000 deep
        return [TemplateIssue(1, f"template syntax error: {_parse_failure(exc)}")]
    issues = []
    for node in ast.find_all(nodes.Filter):
        if node.name not in environment_.filters:
            known = ", ".join(sorted(FILTERS))
            issues.append(
                TemplateIssue(node.lineno, f"unknown filter {node.name!r} (amplifier adds: {known})")
            )
    for node in ast.find_all(nodes.Filter):
        if node.name == "plural":
            issues.extend(_check_plural(node))
    for test in ast.find_all(nodes.Test):
        if test.name not in environment_.tests:
            issues.append(TemplateIssue(test.lineno, f"unknown test {test.name!r}"))
    if issues:
        return issues
    for name in sorted(meta.find_undeclared_variables(ast) - VARIABLES):
        line = _first_use(ast, name)
        known = ", ".join(sorted(VARIABLES))
        issues.append(TemplateIssue(line, f"unknown template variable {name!r} (known: {known})"))
    return issues


def _check_plural(node: nodes.Filter) -> list[TemplateIssue]:
    issues = []
    if node.dyn_kwargs is None and "other" not in {keyword.key for keyword in node.kwargs}:
        issues.append(
            TemplateIssue(
                node.lineno,
                "plural() needs other=... (the form for every other number), e.g. "
                "plural(one='# day', other='# days')",
            )
        )
    for keyword in node.kwargs:
        value = keyword.value
        if isinstance(value, nodes.Const) and isinstance(value.value, str) and _TAG_RE.search(value.value):
            issues.append(
                TemplateIssue(
                    node.lineno,
                    f"plural({keyword.key}=...): a form is posted as written, so {{{{ ... }}}} inside it would be "
                    "posted literally; write it outside plural(), e.g. "
                    "{{ days_left | plural(one='# day', other='# days') }} until {{ event.name }}",
                )
            )
    return issues


_TAG_RE = re.compile(r"\{\{|\{%|\{#")


def _parse_failure(exc: BaseException) -> str:
    if isinstance(exc, ValueError) and "digits" in str(exc):
        return "a number in the template is too long (at most 4,300 digits)"
    return "the template is nested too deeply"


def _first_use(ast: nodes.Template, name: str) -> int:
    for node in ast.find_all(nodes.Name):
        if node.name == name:
            return int(node.lineno)
    return 1
