"""The operator's words for every problem the YAML parser and the pydantic models can report.

No library wording reaches an operator: :func:`yaml_error` turns ruamel's parser and scanner errors into what is
wrong and how to fix it, and :func:`model_problems` turns pydantic's validation errors into one located line per
mistake, each saying what is expected with an example, and suggesting the closest valid word from the right place
(the keys of the model that holds the misspelled key, the platforms, the IANA zones, the language codes). Where an
error stands in the data and in the model is found by :mod:`amplifier.campaign.locate`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from amplifier.campaign import locate
from amplifier.errors import Problem

if TYPE_CHECKING:
    from amplifier.campaign.yamlsource import PathKey, Source

_SYNTAX = [
    # (a fragment of ruamel's wording, what to tell the operator)
    ("found character '\\t'", "a tab cannot indent YAML: use spaces"),
    (
        "mapping values are not allowed",
        "a `: ` where no key can start: put the text in quotes, or check the indentation of this line",
    ),
    (
        "could not find expected ':'",
        "a line without `key: value` (a missing `:` or a text that should be quoted)",
    ),
    ("expected <block end>", "this line is not indented like the lines around it: check its spaces"),
    ("expected ',' or ']'", "a list in [ ] is not closed with ] (or misses a comma)"),
    ("expected ',' or '}'", "a mapping in { } is not closed with } (or misses a comma)"),
    ("found unexpected end of stream", "a quote is opened and never closed"),
    (
        "found unknown escape character",
        'an unknown \\ escape in a "double-quoted" text: write \\\\ for a backslash',
    ),
    ("expected a comment or a line break", "something follows a value on its line: quote the whole text"),
    ("found unexpected ':'", "an unexpected `:`: put the text in quotes"),
    ("found undefined tag handle", "an unknown `!tag`: remove it"),
    ("found character", "a character that cannot start a value here: put the text in quotes"),
    ("did not find expected key", "this line is not indented like the keys around it: check its spaces"),
    ("did not find expected '-'", "this list item is not indented like the items around it"),
    ("did not find expected", "the indentation or the quoting is broken here"),
    (
        "expected chomping or indentation indicators",
        "`|` or `>` starts a block of text on the next lines: quote a text that starts with | or >",
    ),
    (
        "sequence entries are not allowed here",
        "a `- ` list item where a value was expected: check its indentation",
    ),
    (
        "expected '<document start>'",
        "the text continues after the end of the file's mapping: check the indentation of this line",
    ),
    ("expected the node content, but found '<stream end>'", "the file ends where a value was expected"),
    ("expected the node content", "a value cannot start with this character: put the text in quotes"),
    ("found duplicate anchor", "the same &anchor is defined twice"),
    ("expected alphabetic or numeric character", "an `&` or `*` must be followed by a name: quote the text"),
]


def yaml_error(context: str | None, problem: str | None) -> str:
    """Plain words for a ruamel parser or scanner error."""
    wording = " ".join(part for part in (context, problem) if part)
    for fragment, message in _SYNTAX:
        if fragment in wording:
            return f"invalid YAML: {message}"
    return "invalid YAML: check the indentation, the quotes and the brackets here"


def reader_error(character: Any) -> str:
    code = ord(character) if isinstance(character, str) else int(character or 0)
    return f"invalid YAML: the file contains the control character U+{code:04X} here: remove it"


# ------------------------------------------------------------------------------------------------ pydantic


LANGUAGE_NAMES = {
    "english": "en",
    "kurdish": "ku",
    "kurmanji": "ku",
    "kurmancî": "ku",
    "sorani": "ckb",
    "central kurdish": "ckb",
    "arabic": "ar",
    "turkish": "tr",
    "german": "de",
    "deutsch": "de",
    "french": "fr",
    "spanish": "es",
    "persian": "fa",
    "farsi": "fa",
    "italian": "it",
    "dutch": "nl",
    "zaza": "zza",
}

ID_WORDS = "use lowercase letters, digits, - and _, starting with a letter or digit (e.g. kobane-day)"
_PATTERNS = {
    "id": ID_WORDS,
    "env": "write the NAME of the environment variable that holds the secret, in capitals "
    "(e.g. MASTODON_TOKEN), never the secret itself",
    "handle": "write the full handle without @, e.g. yourname.bsky.social",
}

_ID_KINDS = {"accounts": "account", "events": "event", "rules": "rule", "sets": "message set"}

_EXPECTED = {
    "int": "write a whole number, e.g. 3",
    "float": "write a number, e.g. 0.5",
    "bool": "write true or false",
    "string": "write a text here (in quotes if it looks like a number, a date or true/false)",
    "dict": "write a mapping of keys to values here (key: value lines)",
    "list": "write a list here, e.g. [a, b] or one `- item` per line",
    "date": "write a date, e.g. 2027-11-01",
    "datetime": "write a date and a local time, e.g. 2027-01-20T09:00",
    "time": 'write a local time in quotes, e.g. "10:00"',
    "timedelta": "write a duration, e.g. PT2H (two hours) or 3600 (seconds)",
    "url": "write the full address, e.g. https://example.org/page",
}

_FIELDS = {
    "instance": "write the full address, https://mastodon.social",
    "service": "write the full address, https://bsky.social",
    "accounts": "write `all` or a list of account ids, e.g. [masto, sky]",
    "hashtags": "write a list of hashtags, e.g. [Riseup4Rojava, Kobane]",
    "focus": "write two numbers from -1 to 1, e.g. [0, 0.5]",
    "date": "write a date (2027-11-01) or a date and local start time (2027-11-01T14:00)",
    "name": "write a text, or a mapping of language code to text",
    "alt": "write a text, or a mapping of language code to text",
    "content_warning": "write a text, or a mapping of language code to text",
    "text": "write a mapping of language code to text, e.g. en: Hello",
    "mastodon": "write a mapping of language code to text, e.g. en: Hello",
    "bluesky": "write a mapping of language code to text, e.g. en: Hello",
    "language": "use a language code such as en, ku, ckb, ar",
}


def model_problems(
    model: type[BaseModel], source: Source, error: ValidationError, prefix: PathKey = ()
) -> Iterator[Problem]:
    """One problem per mistake: errors of one union value give one line, errors at a reported value none.

    ``prefix`` is where the validated data stands in the file (a message set validated on its own)."""
    seen: set[PathKey] = set()
    errors: list[dict[str, Any]] = [
        {**item, "loc": (*prefix, *item["loc"])} for item in error.errors(include_url=False)
    ]
    paths = [locate.data_path(source.data, tuple(item["loc"])) for item in errors]
    misspelled = {  # a missing key that is misspelled next to it is one mistake: report the misspelling
        (path, close)
        for item, path in zip(errors, paths, strict=True)
        if item["type"] == "extra_forbidden"
        for close in difflib.get_close_matches(str(item["loc"][-1]), [str(e["loc"][-1]) for e in errors], n=3)
    }
    branches = [locate.branch(source.data, tuple(item["loc"])) for item in errors]
    for item, path, branch in zip(errors, paths, branches, strict=True):
        if source.reported(path, inside=item["type"] not in ("missing", "extra_forbidden")):
            continue
        if (
            branch is not None
            and path == branch
            and any(
                other == branch and len(deeper) > len(branch)
                for other, deeper in zip(branches, paths, strict=True)
            )
        ):
            continue  # a union member that went deeper (a list of times) says more than "not a time"
        if item["type"] == "missing" and any(
            (path, str(item["loc"][-1])) == (parent[:-1], close) for parent, close in misspelled
        ):
            continue
        if item["type"] not in ("extra_forbidden", "missing") and path in seen:
            continue
        seen.add(path)
        union = paths.count(path) > 1
        yield _problem(model, len(prefix), source, item, path, union=union)


def _problem(
    model: type[BaseModel], skip: int, source: Source, error: Any, path: PathKey, *, union: bool
) -> Problem:
    loc = tuple(error["loc"])
    kind = str(error["type"])
    ctx = error.get("ctx") or {}
    dotted = ".".join(str(part) for part in path)
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        options = sorted(locate.model_keys(model, loc[skip:-1]) or [])
        close = difflib.get_close_matches(key, options, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (use one of: {', '.join(options)})"
        return source.problem(path, f"unknown key {key!r}{hint}", key=True)
    if kind == "missing":
        where = f" in {dotted}" if dotted else ""
        return source.problem(path, f"missing required key {str(loc[-1])!r}{where}")
    if kind == "union_tag_not_found":
        return source.problem(
            path, f"missing required key {str(ctx.get('discriminator', '')).strip(chr(39))!r}"
        )
    if kind == "union_tag_invalid":
        tag_name = str(ctx.get("discriminator", "")).strip("'")
        path = locate.data_path(source.data, (*loc, tag_name))
        expected = [tag.strip(" '") for tag in str(ctx.get("expected_tags", "")).split(",")]
        return source.problem(
            path,
            f"{tag_name}: {ctx.get('tag')!r} is not one of {_words(expected)}"
            + closest(str(ctx.get("tag")), expected),
        )
    if loc and loc[-1] == "[key]" and len(path) >= 2 and path[-2] in _ID_KINDS:
        return source.problem(path, f"{_ID_KINDS[str(path[-2])]} {path[-1]!r}: {ID_WORDS}", key=True)
    field = locate.field_name(loc)
    here = bool(path) and path[-1] == field  # the error is about the field's own value, not an item of it
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
    elif len(path) >= 2 and path[-2] in ("text", "mastodon", "bluesky") and kind.endswith("_type"):
        message = "write a text, or a list of texts (the parts of a thread)"
    elif (union or kind.endswith("_type")) and here and field in _FIELDS:
        message = _FIELDS[field]
        if kind.startswith(("date", "time")) and isinstance(value, str):
            message = f"{value!r} cannot be read: {message}"
    else:
        message = _message(kind, ctx, value, field)
    return source.problem(path, f"{dotted}: {message}" if dotted else message)


def _message(kind: str, ctx: dict[str, Any], value: Any, field: str) -> str:
    if kind in ("literal_error", "enum"):
        expected = [word.strip(" '") for word in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
        expected = [word for word in expected if word]
        return f"use one of {_words(expected)}" + closest(str(value), expected)
    if kind == "string_pattern_mismatch":
        return _pattern(str(ctx.get("pattern", "")), value, field)
    if kind.startswith("url_"):
        return _FIELDS.get(field, _EXPECTED["url"]) if field in ("instance", "service") else _EXPECTED["url"]
    if kind in ("too_short", "too_long"):
        what = "entry" if ctx.get("min_length", ctx.get("max_length")) == 1 else "entries"
        if kind == "too_short":
            return f"needs at least {ctx.get('min_length')} {what}"
        return f"takes at most {ctx.get('max_length')} {what}"
    if kind in ("string_too_short", "string_too_long"):
        return (
            f"use at most {ctx.get('max_length')} characters"
            if kind.endswith("long")
            else "must not be empty"
        )
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{value} is out of range: {_range(field)}"
    if kind in ("model_type", "model_attributes_type", "dict_type", "mapping_type"):
        return _EXPECTED["dict"]
    for prefix in (
        "datetime",
        "date",
        "time_delta",
        "time",
        "int",
        "float",
        "bool",
        "string",
        "list",
        "tuple",
    ):
        if kind.startswith(prefix):
            key = {"time_delta": "timedelta", "tuple": "list"}.get(prefix, prefix)
            if key in ("date", "datetime", "time") and isinstance(value, str):
                return f"{value!r} cannot be read: {_EXPECTED[key]}"
            return _EXPECTED[key]
    return "this value is not accepted here"


def _range(field: str) -> str:
    return {
        "days_before": "use 0 to 366 days",
        "hours_before": "use 1 to 48 hours",
        "focus": "use -1 to 1",
        "max_characters": "use a positive number",
        "characters_reserved_per_url": "use a positive number",
    }.get(field, "see the guide for the allowed values")


def _pattern(pattern: str, value: Any, field: str) -> str:
    text = str(value)
    if "[a-z]{2,3}" in pattern:
        code = LANGUAGE_NAMES.get(text.strip().lower())
        lowered = text.lower() if text.lower() != text and text.lower().isalpha() else None
        hint = f" (did you mean {code or lowered!r}?)" if code or lowered else ""
        return f"{_FIELDS['language']}{hint}"
    if "[A-Z_]" in pattern:
        return _PATTERNS["env"]  # never echo the value: it may be the secret
    if "bsky" in pattern or "\\." in pattern:
        if text.startswith("@"):
            return f"write it without @: {text[1:]}"
        return _PATTERNS["handle"]
    return _PATTERNS["id"]


def _words(options: list[str]) -> str:
    return ", ".join(options[:-1]) + f" or {options[-1]}" if len(options) > 1 else "".join(options)


def closest(value: str, options: Iterable[str]) -> str:
    """`` (did you mean 'kobane'?)`` when one of ``options`` is close to ``value``, else nothing."""
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
