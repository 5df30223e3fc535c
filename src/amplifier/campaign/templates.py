"""Message templates: Jinja2 in a sandbox, with StrictUndefined and filters that speak the post's language.

Variables (see the guide for examples): ``event`` (``name`` in the post's language, ``date``, ``start``, ``url``, ``id``),
``days_left``, ``hours_left``, ``now`` and ``at`` (the slot time), ``account`` (``id``, ``platform``, ``handle``),
``lang``, ``hashtags`` (the set's tags as ``#Tag #Tag``), ``campaign`` (``name``).

Filters, each formatting for the post's language with Babel (Kurmanji ``ku``, Sorani ``ckb``, Arabic, Turkish,
German, English...): ``date``, ``time``, ``datetime``, ``number``, ``plural``, ``duration``.

Templates render in a bounded sandbox (:mod:`amplifier.campaign.sandbox`): limits on steps, time, the size of every
value and of the text, each ending in a :class:`~amplifier.campaign.sandbox.TemplateLimitError`. Render with
:func:`render`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes, pass_context
from jinja2.runtime import Context

from amplifier.campaign.sandbox import (
    MAX_OUTPUT,
    BoundedEnvironment,
    Budget,
    StraightEnvironment,
    run_with_budget,
)
from amplifier.campaign.straight import is_straight

VARIABLES = frozenset(
    {"event", "days_left", "hours_left", "now", "at", "account", "lang", "hashtags", "campaign"}
)


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


_OPTIONS: dict[str, Any] = {
    "undefined": StrictUndefined,
    "autoescape": False,
    "keep_trailing_newline": False,
    "trim_blocks": True,
    "lstrip_blocks": True,
    "auto_reload": False,
    "cache_size": -1,
}


def environment() -> BoundedEnvironment:
    env = BoundedEnvironment(**_OPTIONS)
    env.filters.update(FILTERS)
    env.bound_filters()
    return env


_ENV: BoundedEnvironment | None = None
_STRAIGHT_ENV: StraightEnvironment | None = None


def env() -> BoundedEnvironment:
    global _ENV
    if _ENV is None:
        _ENV = environment()
    return _ENV


def straight_env() -> StraightEnvironment:
    """The environment of straight-line templates (:mod:`amplifier.campaign.straight`): same options and filters,
    no budget hooks."""
    global _STRAIGHT_ENV
    if _STRAIGHT_ENV is None:
        _STRAIGHT_ENV = StraightEnvironment(**_OPTIONS)
        _STRAIGHT_ENV.filters.update(FILTERS)
    return _STRAIGHT_ENV


class NoEvent(StrictUndefined):
    """``event``, ``days_left`` and ``hours_left`` in a post whose rule has no event: false in ``{% if event %}``,
    an error naming the rule anywhere else."""

    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]  # StrictUndefined raises; this one is false
        return False


def no_event(rule_id: str, name: str) -> NoEvent:
    return NoEvent(
        hint=f"rule {rule_id!r} has no event, so {name} has no value: give the rule an event (event: ...) "
        "or test it first: {% if event %}...{% endif %}",
        name=name,
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


def uses(source: str, name: str) -> bool:
    """Whether the template refers to the variable ``name`` (e.g. ``hashtags`` used inline)."""
    return name in _variables(source)


@lru_cache(maxsize=4096)
def _variables(source: str) -> frozenset[str]:
    """The variables the template refers to (one parse per template, whatever the names asked about)."""
    try:
        return frozenset(meta.find_undeclared_variables(env().parse(source)))
    except (TemplateSyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()


class Template:
    """A compiled template whose :meth:`render` always runs within the sandbox's limits.

    A straight-line template (:mod:`amplifier.campaign.straight`) is compiled twice: with the budget's hooks, and
    without them for the common case; see :meth:`render`.
    """

    __slots__ = ("_bounded", "_source", "_straight")

    def __init__(self, source: str) -> None:
        self._source = source
        self._bounded: Any = None  # compiled at the first render that needs the budget
        self._straight: Any = None
        if is_straight(env().parse(source), source):
            self._straight = _flat(straight_env().from_string(source))
        else:
            self._bounded = _flat(env().from_string(source))

    @property
    def straight(self) -> bool:
        """Whether the template is straight-line (rendered without a budget when that cannot change the result)."""
        return self._straight is not None

    def render(self, context: dict[str, Any], budget: Budget | None = None) -> str:
        """The text for ``context`` (``budget``: default, a fresh one). Raises
        :class:`~amplifier.campaign.sandbox.TemplateLimitError` past a limit, or whatever the template raises.

        A straight-line template is rendered without the budget first; its text is kept when the render ends
        without an error within ``MAX_OUTPUT`` characters (the budget could not have stopped it: see
        :mod:`amplifier.campaign.straight`), otherwise it is rendered again with the budget, for the same error
        at the same line as always."""
        text = self.render_straight(context)
        if text is not None:
            return text
        if self._bounded is None:
            self._bounded = _flat(env().from_string(self._source))
        return run_with_budget(lambda: self._bounded.generate(context), budget)

    def render_straight(self, context: dict[str, Any]) -> str | None:
        """The text of a straight-line template rendered without a budget, when that ends without an error within
        ``MAX_OUTPUT`` characters; None otherwise (render it with :meth:`render`)."""
        fast = self._straight
        if fast is None:
            return None
        try:
            text: str = fast.environment.concat(fast.root_render_func(fast.new_context(context)))
        except Exception:  # rendered again with the budget, which raises it located
            return None
        return text if len(text) <= MAX_OUTPUT else None


def _flat(template: Any) -> Any:
    """``template`` with its globals as one plain dictionary: Jinja2 keeps them as a ``ChainMap`` of the
    environment's and the template's own, which every render copies key by key (more than half the time of a
    short template). The environment's globals are fixed once it is set up, so the copy holds the same names."""
    template.globals = dict(template.globals)
    return template


def compile_template(source: str) -> Template:
    """The compiled template (raises :class:`TemplateSyntaxError` for a template :func:`check` reports)."""
    return Template(source)


def render(template: Template, context: dict[str, Any], budget: Budget | None = None) -> str:
    """``template`` rendered with ``context`` within the sandbox's limits; see :meth:`Template.render`."""
    return template.render(context, budget)
