"""Bluesky text rules: lengths and rich-text facets, as the official client computes them.

Bluesky's server does not detect links, tags or mentions: the client must send them as facets with UTF-8 byte
offsets. :func:`detect_facets` is a faithful port of ``detectFacets`` in bluesky-social/atproto
``packages/api/src/rich-text/detection.ts`` and ``util.ts`` as published in ``@atproto/api`` 0.21.0 (mentions,
links, ``#tags`` and ``$CASHTAGS``; facets sorted by ``byteStart`` as ``RichText.detectFacets`` leaves them).

Differences from a line-by-line port, none of which changes a result:

* JavaScript regexes run on UTF-16 code units and these on code points. Every pattern here only ever matches
  whole runs of non-space characters, so the matches are the same; offsets are converted to UTF-8 bytes
  exactly as ``UnicodeString.utf16IndexToUtf8Index`` does.
* JavaScript's ``\\s``, ``\\d``, ``\\b`` and case-insensitive ``[a-z]`` differ from Python's Unicode-aware
  ones: the patterns spell out the JavaScript sets (``_JS_SPACE``, ``[0-9]``, ASCII word boundaries,
  ``[a-zA-Z]``).
* The official code validates a bare domain (and a mention's handle) by looking its last label up in the
  ``tlds`` npm package. :data:`TLDS` embeds the ASCII entries of ``tlds`` 1.261.0 (the version
  ``@atproto/api`` 0.21.0 resolves to): the patterns only ever match ASCII domains, so the Unicode (IDN)
  entries can never match.
* A mention's feature carries a placeholder ``{"$handle": "<handle>"}`` instead of an unresolved handle in
  ``did``: the publisher resolves it to a DID when it publishes. Facets carry no top-level ``$type``
  (it is optional).

Checked against ``@atproto/api`` 0.21.0 itself on 40,000 random texts (links, tags, mentions, emoji, RTL
script, zero-width characters): identical facets.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

import regex

from amplifier.platforms.tlds import TLDS

MAX_GRAPHEMES: Final = 300
MAX_BYTES: Final = 3000
MAX_TAG_GRAPHEMES: Final = 64

LINK: Final = "app.bsky.richtext.facet#link"
MENTION: Final = "app.bsky.richtext.facet#mention"
TAG: Final = "app.bsky.richtext.facet#tag"
HANDLE: Final = "$handle"


# JavaScript's \s (ECMA-262 WhiteSpace + LineTerminator), for use inside a character class.
_JS_SPACE: Final = "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
# The zero-width characters that util.ts excludes from tags besides \s.
_TAG_STOP: Final = "\\u00ad\\u2060\\u200a\\u200b\\u200c\\u200d\\u20e2"

# util.ts MENTION_REGEX: /(^|\s|\()(@)([a-zA-Z0-9.-]+)(\b)/g  (\b is ASCII in a non-unicode JS regex)
_MENTION_RE: Final = regex.compile(
    rf"(?:^|[{_JS_SPACE}]|\()(@)([a-zA-Z0-9.-]+)\b",
    regex.ASCII,
)
# util.ts URL_REGEX: /(^|\s|\()((https?:\/\/[\S]+)|((?<domain>[a-z][a-z0-9]*(\.[a-z0-9]+)+)[\S]*))/gim
_URL_RE: Final = regex.compile(
    rf"(?:^|[{_JS_SPACE}]|\()"
    rf"((?:[hH][tT][tT][pP][sS]?://[^{_JS_SPACE}]+)"
    rf"|(?:(?P<domain>[a-zA-Z][a-zA-Z0-9]*(?:\.[a-zA-Z0-9]+)+)[^{_JS_SPACE}]*))"
)
# util.ts TAG_REGEX (with the u flag; \d is [0-9] in JavaScript)
_TAG_RE: Final = regex.compile(
    rf"(?:^|[{_JS_SPACE}])[#＃]"
    rf"((?!\ufe0f)[^{_JS_SPACE}{_TAG_STOP}]*"
    rf"[^0-9{_JS_SPACE}\p{{P}}{_TAG_STOP}]+"
    rf"[^{_JS_SPACE}{_TAG_STOP}]*)?"
)
# util.ts CASHTAG_REGEX: /(^|\s|\()\$([A-Za-z][A-Za-z0-9]{0,4})(?=\s|$|[.,;:!?)"'\u2019])/gu
_CASHTAG_RE: Final = regex.compile(
    rf"(?:^|[{_JS_SPACE}]|\()\$([A-Za-z][A-Za-z0-9]{{0,4}})(?=[{_JS_SPACE}]|\Z|[.,;:!?)\"'\u2019])"
)
_TRAILING_PUNCTUATION_RE: Final = regex.compile(r"\p{P}+\Z")
_GRAPHEME_RE: Final = regex.compile(r"\X")
_JS_TRIM: Final = "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


# The code points that can join a cluster with their neighbour (UAX #29 rules GB6-GB13). A text without any of
# them has one cluster per code point, except for CR LF (GB3).
_JOINING_RE: Final = regex.compile(
    r"[\p{Grapheme_Cluster_Break=Extend}\p{Grapheme_Cluster_Break=ZWJ}\p{Grapheme_Cluster_Break=SpacingMark}"
    r"\p{Grapheme_Cluster_Break=Prepend}\p{Grapheme_Cluster_Break=Regional_Indicator}"
    r"\p{Grapheme_Cluster_Break=L}\p{Grapheme_Cluster_Break=V}\p{Grapheme_Cluster_Break=T}"
    r"\p{Grapheme_Cluster_Break=LV}\p{Grapheme_Cluster_Break=LVT}]"
)


@functools.lru_cache(maxsize=8192)
def _joins(char: str) -> bool:
    """Whether ``char`` can join a cluster with a neighbour (cached: a campaign uses few distinct characters)."""
    return _JOINING_RE.match(char) is not None


# Code points known not to join a cluster: ASCII, and those met in texts so far (up to _MAX_PLAIN of them), so that
# a text's characters are checked with one set difference, in C.
_PLAIN_CHARS: Final[set[str]] = {chr(code) for code in range(128)}
_MAX_PLAIN: Final = 65_536


# Marks that join the character before them and nothing after them (UAX #29 GB9, GB9a): Extend and SpacingMark,
# but not ZWJ (GB11 joins an emoji after it) nor the Indic conjunct linkers (viramas: GB9c joins the consonant after
# them). Only a control character before a mark (GB4), or the text's start, makes the mark a cluster of its own.
_MARK_RE: Final = regex.compile(
    r"[\p{Grapheme_Cluster_Break=Extend}\p{Grapheme_Cluster_Break=SpacingMark}--\p{Indic_Conjunct_Break=Linker}]",
    regex.V1,
)
_CONTROL_RE: Final = regex.compile(
    r"[\p{Grapheme_Cluster_Break=Control}\p{Grapheme_Cluster_Break=CR}\p{Grapheme_Cluster_Break=LF}]"
)


@functools.lru_cache(maxsize=8192)
def _mark(char: str) -> bool:
    return _MARK_RE.match(char) is not None


@functools.lru_cache(maxsize=8192)
def _control(char: str) -> bool:
    return _CONTROL_RE.match(char) is not None


def _marks_joined(text: str, marks: list[str]) -> int | None:
    """How many occurrences of ``marks`` join the character before them; None if one starts a cluster."""
    joined = 0
    for mark in marks:
        at = text.find(mark)
        while at != -1:
            if at == 0 or _control(text[at - 1]):
                return None
            joined += 1
            at = text.find(mark, at + 1)
    return joined


def grapheme_length(text: str) -> int:
    """The number of extended grapheme clusters, as Bluesky counts a post's length.

    A text whose joining characters are all marks (:func:`_mark`: the vowel signs and diacritics of Arabic, Kurdish,
    Persian...) has one cluster per code point less one per mark, counted without the cluster regex.
    """
    if not text.isascii():
        unknown = set(text).difference(_PLAIN_CHARS)
        if unknown:
            joining = [char for char in unknown if _joins(char)]
            if joining:
                if len(_PLAIN_CHARS) < _MAX_PLAIN and len(joining) < len(unknown):
                    _PLAIN_CHARS.update(unknown.difference(joining))
                joined = _marks_joined(text, joining) if all(_mark(char) for char in joining) else None
                if joined is None:
                    return len(_GRAPHEME_RE.findall(text))
                return len(text) - text.count("\r\n") - joined
            if len(_PLAIN_CHARS) < _MAX_PLAIN:
                _PLAIN_CHARS.update(unknown)
    return len(text) - text.count("\r\n")


def utf8_length(text: str) -> int:
    """The number of UTF-8 bytes of ``text``."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8"))


def _is_valid_domain(name: str) -> bool:
    # detection.ts isValidDomain: some TLD ends the name right after a "." (case-sensitive, as in JavaScript).
    _head, dot, last = name.rpartition(".")
    return bool(dot) and last in TLDS


class _Offsets:
    """Code point index -> UTF-8 byte offset, cheap for ASCII text."""

    __slots__ = ("_ascii", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._ascii = text.isascii()

    def __call__(self, index: int) -> int:
        if self._ascii:
            return index
        return len(self._text[:index].encode("utf-8"))


def _mentions(text: str, offsets: _Offsets) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    if "@" not in text:
        return found
    for match in _MENTION_RE.finditer(text):
        handle = match.group(2)
        if not _is_valid_domain(handle) and not handle.endswith(".test"):
            continue  # probably not a handle
        start = match.start(1)
        found.append((offsets(start), offsets(start + 1 + len(handle)), handle))
    return found


def detect_mentions(text: str) -> list[tuple[int, int, str]]:
    """``(byteStart, byteEnd, handle)`` of every ``@handle`` the official client would make a mention of."""
    return _mentions(text, _Offsets(text))


def _facet(start: int, end: int, feature: dict[str, Any]) -> dict[str, Any]:
    return {"index": {"byteStart": start, "byteEnd": end}, "features": [feature]}


def detect_facets(text: str) -> list[dict[str, Any]]:
    """The ``app.bsky.richtext.facet`` objects for ``text``, sorted by ``byteStart``.

    Mentions carry ``{"did": {"$handle": "<handle>"}}``, to be resolved when publishing.

    Links, tags and cashtags are found token by token (:func:`_token_facets`, cached): each of their patterns
    matches within one run of non-space characters, starting at its beginning (or after a ``(``), so the matches in
    a token are the same whether the pattern runs over the whole text or over the token alone; the tokens of a
    campaign's posts (its links, its hashtags) repeat from post to post.
    """
    offsets = _Offsets(text)
    facets: list[dict[str, Any]] = [
        _facet(start, end, {"$type": MENTION, "did": {HANDLE: handle}})
        for start, end, handle in _mentions(text, offsets)
    ]
    links: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    for token in _TOKEN_RE.finditer(text):
        found = _token_facets(token.group())
        if not found:
            continue
        base = offsets(token.start())  # the token's start in UTF-8 bytes; its facets are in bytes from there
        for kind, start, end, value in found:
            index = {"byteStart": base + start, "byteEnd": base + end}
            if kind == LINK:
                links.append({"index": index, "features": [{"$type": LINK, "uri": value}]})
            else:
                tags.append({"index": index, "features": [{"$type": TAG, "tag": value}]})
    if not facets:  # no mention: links, then tags (each in text order), sorted by where they start
        if not tags:
            return links
        if not links or links[-1]["index"]["byteStart"] < tags[0]["index"]["byteStart"]:
            links.extend(tags)
            return links
    facets.extend(links)
    facets.extend(tags)  # tags, then cashtags (token by token, each kind in text order)
    facets.sort(key=lambda facet: facet["index"]["byteStart"])
    return facets


# A run of non-space characters (a token) holding a character some pattern needs, from the token's start: "." (a
# bare domain), ":" (a URL), "#" / "＃" (a tag), "$" (a cashtag). The other tokens are not looked into (a failed
# match costs one step: the look-behind asks for a token's start, the possessive run does not backtrack).
_TOKEN_RE: Final = re.compile(rf"(?<![^{_JS_SPACE}])[^{_JS_SPACE}.:#$＃]*+[.:#$＃][^{_JS_SPACE}]*+")
_TOKEN_CACHE: Final = 8192


@functools.lru_cache(maxsize=_TOKEN_CACHE)
def _token_facets(token: str) -> tuple[tuple[str, int, int, str], ...]:
    """``(kind, start, end, value)`` of the links, then the tags, then the cashtags in one token, in UTF-8 bytes
    from its start (``kind``: :data:`LINK`, or :data:`TAG` whose value is the tag or ``$TICKER``)."""
    found = _token_matches(token)
    if found and not token.isascii():
        offsets = _Offsets(token)
        return tuple((kind, offsets(start), offsets(end), value) for kind, start, end, value in found)
    return found


def _token_matches(token: str) -> tuple[tuple[str, int, int, str], ...]:
    """:func:`_token_facets` in code points."""
    found: list[tuple[str, int, int, str]] = []
    if "." in token or "://" in token:  # a bare domain has a dot, a URL has "://"
        for match in _URL_RE.finditer(token):
            uri = match.group(1)
            if not uri.startswith("http"):
                domain = match.group("domain")
                if not domain or not _is_valid_domain(domain):
                    continue
                uri = "https://" + uri
            start = match.start(1)
            end = match.end(1)
            if uri[-1] in ".,;:!?":
                uri = uri[:-1]
                end -= 1
            if uri.endswith(")") and "(" not in uri:
                uri = uri[:-1]
                end -= 1
            found.append((LINK, start, end, uri))

    if "#" in token or "＃" in token:
        for match in _TAG_RE.finditer(token):
            tag = match.group(1)
            if not tag:
                continue
            tag = _TRAILING_PUNCTUATION_RE.sub("", tag.strip(_JS_TRIM))
            if not tag or (len(tag) > MAX_TAG_GRAPHEMES and grapheme_length(tag) > MAX_TAG_GRAPHEMES):
                continue
            start = match.start(1) - 1  # the "#"
            found.append((TAG, start, start + 1 + len(tag), tag))

    if "$" in token:
        for match in _CASHTAG_RE.finditer(token):
            ticker = match.group(1).upper()
            start = match.start(1) - 1  # the "$"
            found.append((TAG, start, start + 1 + len(ticker), "$" + ticker))
    return tuple(found)


def overlong_tags(text: str) -> list[str]:
    """The ``#tags`` in ``text`` that are not facets because they are over :data:`MAX_TAG_GRAPHEMES`."""
    if "#" not in text and "＃" not in text:
        return []
    tags: list[str] = []
    for match in _TAG_RE.finditer(text):
        tag = _TRAILING_PUNCTUATION_RE.sub("", (match.group(1) or "").strip(_JS_TRIM))
        if len(tag) > MAX_TAG_GRAPHEMES and grapheme_length(tag) > MAX_TAG_GRAPHEMES:
            tags.append(tag)
    return tags


def check(text: str) -> list[str]:
    """Messages for a person about every Bluesky limit ``text`` breaks; empty when it fits."""
    problems: list[str] = []
    graphemes = grapheme_length(text)
    if graphemes > MAX_GRAPHEMES:
        problems.append(f"{graphemes} graphemes, over Bluesky's {MAX_GRAPHEMES}")
    size = utf8_length(text)
    if size > MAX_BYTES:
        problems.append(f"{size} bytes, over Bluesky's {MAX_BYTES}")
    for tag in overlong_tags(text):
        shown = tag if len(tag) <= 20 else tag[:20] + "…"
        problems.append(
            f"tag #{shown} has {grapheme_length(tag)} graphemes, over Bluesky's {MAX_TAG_GRAPHEMES}: "
            "it will not be a link"
        )
    return problems
