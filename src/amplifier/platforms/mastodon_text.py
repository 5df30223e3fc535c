"""Mastodon text rules: the status length as the server counts it, and the entities it links.

Length (``app/validators/status_length_validator.rb``): the content warning and the text are joined and
counted in extended grapheme clusters; before counting, every URL in the text becomes ``url_length``
characters (the instance's ``configuration.statuses.characters_reserved_per_url``, 23 by default) and every
``@user@domain`` becomes ``@user``; a blank text (only whitespace) counts as nothing. URLs and remote mentions
are found as Mastodon.py's ``Mastodon.get_status_length`` finds them: its twitter-text URL regex (``https?://``
only, as the server extracts them with ``extract_url_without_protocol: false``) and its mention regex, so the
ground-truth cases of Mastodon.py's ``tests/test_status_length.py`` hold.

Entities (``app/lib/extractor.rb``, ``app/lib/text_formatter.rb``): links by the same URL regex, hashtags by
``Tag::HASHTAG_RE``, mentions by ``Account::MENTION_RE`` (with twitter-text's ``end_mention_match`` and the
253-character domain limit), overlapping ones removed as ``remove_overlapping_entities`` does. Not reproduced:
the rarely used non-HTTP schemes of ``extract_extra_uris_with_indices`` (``dat:``, ``ipfs:``, ...).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Final, Literal

import regex

from amplifier.platforms.bluesky_text import grapheme_length as _graphemes  # the same clusters

DEFAULT_URL_LENGTH: Final = 23

EntityKind = Literal["link", "hashtag", "mention"]

# Mastodon.py get_status_length: a remote mention counts as its local part.
_COUNT_MENTION_RE: Final = re.compile(r"(^|[^/\w])@(([a-z0-9_]+)@[a-z0-9\.\-]+[a-z0-9]+)", re.IGNORECASE)

# Onigmo's [[:word:]] (Letter, Mark, Decimal_Number, Connector_Punctuation) and [[:alpha:]] (Alphabetic).
_WORD: Final = r"\p{L}\p{M}\p{Nd}\p{Pc}"
_ALPHA: Final = r"\p{Alphabetic}"
# Tag::HASHTAG_SEPARATORS and Tag::HASHTAG_RE. Ruby's \w and ^ are ASCII-only and per line.
_SEPARATORS: Final = "_\u00b7\u30fb\u200c"
_HASHTAG_NAME: Final = (
    rf"(?:[{_WORD}_][{_WORD}{_SEPARATORS}]*[{_ALPHA}{_SEPARATORS}][{_WORD}{_SEPARATORS}]*[{_WORD}_])"
    rf"|(?:[{_WORD}_]*[{_ALPHA}][{_WORD}_]*)"
)
_HASHTAG_RE: Final = regex.compile(rf"(?:^|[^/)A-Za-z0-9_])#({_HASHTAG_NAME})", regex.MULTILINE)
_HASHTAG_HTTP_RE: Final = regex.compile(r"(.+)(https?)\Z", regex.DOTALL)

# Account::USERNAME_RE and Account::MENTION_RE.
_MENTION_RE: Final = regex.compile(
    rf"(?<![=/{_WORD}])@((?i:[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@[{_WORD}]+(?:[.-]+[{_WORD}]+)*)?)"
)
# twitter-text end_mention_match: an @ sign, a Latin accent or "://" right after the mention voids it.
_END_MENTION_RE: Final = regex.compile(
    "[@＠\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b\u0263\u0268"
    "\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff]|://",
    regex.IGNORECASE,
)
_MAX_DOMAIN_LENGTH: Final = 253


@functools.cache
def _url_regex() -> re.Pattern[str]:
    """Mastodon.py's twitter-text URL regex (group 2: the character before, group 3: the URL).

    ``mastodon/_url_regex.py`` is a leaf module (it imports only ``json`` and ``re``), but importing it the usual
    way runs the package's ``__init__``, which loads all of Mastodon.py, requests and urllib3 (about 0.1 s). So
    the file is loaded on its own, from where the installed package keeps it; when Mastodon.py is already
    imported (a command that publishes), its own module is used. Either way the pattern is the one the installed
    Mastodon.py counts with.
    """
    module = sys.modules.get("mastodon._url_regex") or _load_leaf("mastodon", "_url_regex")
    pattern: re.Pattern[str] = module.url_regex
    return pattern


def _load_leaf(package: str, name: str) -> types.ModuleType:
    """The module ``package.name`` loaded from its file without importing ``package`` itself."""
    spec = importlib.util.find_spec(package)  # a top-level name: finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"no module named {package!r}", name=package)
    path = Path(next(iter(spec.submodule_search_locations))) / f"{name}.py"
    leaf = importlib.util.spec_from_file_location(f"amplifier._vendored_{package}_{name}", path)
    if leaf is None or leaf.loader is None:
        raise ModuleNotFoundError(f"no module named {package}.{name}", name=f"{package}.{name}")
    module = importlib.util.module_from_spec(leaf)
    leaf.loader.exec_module(module)
    return module


def countable_text(text: str, url_length: int = DEFAULT_URL_LENGTH) -> str:
    """``text`` as Mastodon counts it: URLs replaced by ``url_length`` x's, remote mentions by ``@user``."""
    if not text.strip():
        return ""  # Ruby's String#blank?: a blank text counts as nothing
    placeholder = "x" * url_length
    if "://" in text:
        text = _replace_urls(text, placeholder)
    if "@" in text:
        text = _COUNT_MENTION_RE.sub(r"\1@\3", text)
    return text


_NON_SPACE_RUN = re.compile(r"\S*")


def _replace_urls(text: str, placeholder: str) -> str:
    """Mastodon.py's URL substitution, run only on the whitespace-free tokens that contain ``://``.

    A URL never contains whitespace, and the regex looks at one character before a URL, so each token with the
    character before it gives the same matches as the whole text, at a fraction of the cost of the full regex.
    A token is found from its ``://`` (``str.isspace`` is the ``\\s`` of ``re``), not by a scan of every token.
    """
    out: list[str] = []
    last = 0
    found = text.find("://")
    while found != -1:
        start = found
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        end = _NON_SPACE_RUN.match(text, found).end()  # type: ignore[union-attr]  # \S* always matches
        start = max(start - 1, last)
        out.append(text[last:start])
        out.append(_replace_in_token(text[start:end], placeholder))
        last = end
        found = text.find("://", end)
    out.append(text[last:])
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _replace_in_token(token: str, placeholder: str) -> str:
    """The URL substitution of one token (cached: a campaign's posts repeat the same few links)."""
    return _url_regex().sub(lambda match: match.group(2) + placeholder, token)


def status_length(text: str, spoiler_text: str = "", url_length: int = DEFAULT_URL_LENGTH) -> int:
    """The length Mastodon checks against its limit: content warning and text together, in graphemes."""
    return _graphemes(spoiler_text + countable_text(text, url_length))


def _links(text: str) -> list[tuple[int, int, EntityKind, str]]:
    if "://" not in text:
        return []
    return [(match.start(3), match.end(3), "link", match.group(3)) for match in _url_regex().finditer(text)]


def _hashtags(text: str) -> list[tuple[int, int, EntityKind, str]]:
    if "#" not in text:
        return []
    found: list[tuple[int, int, EntityKind, str]] = []
    for match in _HASHTAG_RE.finditer(text):
        name = match.group(1)
        start, end = match.start(1) - 1, match.end(1)
        if text.startswith("://", end):
            # "#foohttps://..." is the tag "foo" followed by a link.
            split = _HASHTAG_HTTP_RE.match(name)
            if split:
                name = split.group(1)
                end -= len(split.group(2))
        found.append((start, end, "hashtag", name))
    return found


def _mentions(text: str) -> list[tuple[int, int, EntityKind, str]]:
    if "@" not in text and "＠" not in text:
        return []
    found: list[tuple[int, int, EntityKind, str]] = []
    for match in _MENTION_RE.finditer(text):
        if _END_MENTION_RE.match(text, match.end()):
            continue
        screen_name = match.group(1)
        _user, _at, domain = screen_name.partition("@")
        if len(domain) > _MAX_DOMAIN_LENGTH:
            continue
        found.append((match.start(1) - 1, match.end(1), "mention", screen_name))
    return found


def entities(text: str) -> list[tuple[int, int, EntityKind, str]]:
    """``(start, end, kind, value)`` in ``str`` indices of what Mastodon links in ``text``, in order.

    ``kind`` is ``"link"`` (value: the URL), ``"hashtag"`` (value: the name without ``#``) or ``"mention"``
    (value: ``user`` or ``user@domain``). Where two would overlap, the one starting first wins.
    """
    found = sorted(_links(text) + _hashtags(text) + _mentions(text), key=lambda entity: entity[0])
    kept: list[tuple[int, int, EntityKind, str]] = []
    for entity in found:
        if kept and kept[-1][1] > entity[0]:
            continue
        kept.append(entity)
    return kept


def check(
    text: str, spoiler_text: str = "", limit: int = 500, url_length: int = DEFAULT_URL_LENGTH
) -> list[str]:
    """Messages for a person about the Mastodon limits ``text`` breaks; empty when it fits."""
    length = status_length(text, spoiler_text, url_length)
    if length <= limit:
        return []
    with_cw = " (content warning included)" if spoiler_text else ""
    return [f"{length} characters{with_cw}, over the server's {limit}"]
