"""Splitting a text that is too long for one post into the parts of a thread.

Each part fits the platform's limit as the platform counts it (the ``length`` function), including the
`` 1/3`` marker appended to each part of a numbered thread. Parts end where a reader expects a pause: at a
paragraph break if one is in the second half of the room a part has, else at a sentence end or a line break,
else between words. A part never ends inside a word, so URLs, #hashtags, @mentions and grapheme clusters stay
whole; only a single word longer than a whole part is cut, and then between grapheme clusters.

Splitting is linear in the text: each part is found by measuring prefixes of the text from where the part starts,
at most about twice as long as the part (galloping, then a binary search) and never longer than a window of
``16 * limit + 1024`` code points, so a 1 MB text is split in about as many steps as it has parts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple

import regex

Length = Callable[[str], int]

_PARAGRAPH: Final = 3
_SENTENCE: Final = 2
_WORD: Final = 1

# A run of whitespace is a place to break, unless what follows it would attach to it (a combining mark, a
# joiner or a skin tone modifier make one grapheme cluster with the space before them).
_BREAK_RE: Final = regex.compile(r"\s+(?![\p{M}\u200c\u200d\p{Emoji_Modifier}])")
# Sentence ends: Latin and CJK stops, the Arabic question mark and full stop (Sorani uses both) and the
# ellipsis, with any closing quotes or brackets after them.
_SENTENCE_END_RE: Final = regex.compile(r"[.!?؟۔…。！？][\"'”’»)\]]*\Z")
_GRAPHEME_RE: Final = regex.compile(r"\X")


class _Break(NamedTuple):
    start: int  # where the whitespace starts: the end of the part before it
    end: int  # where the next part starts
    priority: int


def fits(text: str, limit: int, length: Length) -> bool:
    """Whether ``text`` fits ``limit`` as ``length`` counts it."""
    return length(text) <= limit


def _breaks(text: str) -> list[_Break]:
    found: list[_Break] = []
    for match in _BREAK_RE.finditer(text):
        start, end = match.span()
        if start == 0 or end == len(text):
            continue
        space = match.group()
        if space.count("\n") >= 2:
            priority = _PARAGRAPH
        elif "\n" in space or _SENTENCE_END_RE.search(text[max(0, start - 8) : start]):
            priority = _SENTENCE
        else:
            priority = _WORD
        found.append(_Break(start, end, priority))
    return found


def _marker(index: int, total: int, numbering: bool) -> str:
    return f" {index}/{total}" if numbering and total > 1 else ""


def _window(limit: int) -> int:
    """The most code points a part is ever measured over: parts are found by measuring prefixes, so bounding the
    prefixes keeps splitting linear in the text. Generous: a part of ``limit`` counts fits in it unless it holds
    many long links counted short (Mastodon counts each as 23); such a text is split a little earlier."""
    return 16 * limit + 1024


def _last_fitting(count: int | None, fits: Callable[[int], bool]) -> int:
    """The last index in ``[0, count)`` for which ``fits`` holds (``fits`` holds up to some index, then not), or -1.
    With ``count`` None, ``fits`` is False past the end.

    Galloping (1, 2, 4... then a binary search) measures prefixes at most about twice as long as the answer's, so
    the cost of a part is in proportion to the part, not to the rest of the text.
    """
    if count == 0 or not fits(0):
        return -1
    good, probe, step = 0, 1, 1
    while (count is None or probe < count) and fits(probe):
        good = probe
        step *= 2
        probe = good + step
    high = probe - 1 if count is None else min(probe, count) - 1
    while good < high:
        middle = (good + high + 1) // 2
        if fits(middle):
            good = middle
        else:
            high = middle - 1
    return good


def _hard_cut(text: str, start: int, stop: int, marker: str, limit: int, length: Length) -> int:
    """The end of the longest run of whole grapheme clusters from ``start`` (at least one) that fits."""
    clusters = _GRAPHEME_RE.finditer(text, start, min(stop, start + _window(limit)))
    ends: list[int] = []

    def end(index: int) -> int | None:  # the end of cluster ``index``, read from the text as far as needed
        while len(ends) <= index:
            match = next(clusters, None)
            if match is None:
                return None
            ends.append(match.end())
        return ends[index]

    def fits(index: int) -> bool:
        stop_at = end(index)
        return stop_at is not None and length(text[start:stop_at] + marker) <= limit

    index = _last_fitting(None, fits)
    return end(max(index, 0)) or stop  # the first cluster is taken even if it does not fit


def _split(text: str, limit: int, length: Length, total: int, numbering: bool) -> list[str]:
    """Split for a thread of ``total`` parts (the total only sets the markers' width)."""
    breaks = _breaks(text)
    window = _window(limit)
    parts: list[str] = []
    pos = 0
    first = 0  # the first break after pos
    while pos < len(text):
        marker = _marker(len(parts) + 1, total, numbering)
        while first < len(breaks) and breaks[first].start <= pos:
            first += 1
        # Candidate ends: the breaks from ``first``, then the end of the text (the rest as the last part).
        ends = len(breaks) - first + 1

        def fits(offset: int, pos: int = pos, first: int = first, marker: str = marker) -> bool:
            end = breaks[first + offset].start if first + offset < len(breaks) else len(text)
            return end - pos <= window and length(text[pos:end] + marker) <= limit

        found = _last_fitting(ends, fits)
        if found == ends - 1:
            parts.append(text[pos:])
            break
        if found < 0:
            # Even the first word does not fit: cut it between grapheme clusters.
            stop = breaks[first].start if first < len(breaks) else len(text)
            end = _hard_cut(text, pos, stop, marker, limit, length)
            parts.append(text[pos:end])
            pos = end
            continue
        far = first + found
        chosen = breaks[far]
        half = pos + (chosen.start - pos) // 2
        for priority in (_PARAGRAPH, _SENTENCE):
            if chosen.priority >= priority:
                break
            better = next(
                (
                    breaks[index]
                    for index in range(far, first - 1, -1)
                    if breaks[index].start >= half and breaks[index].priority >= priority
                ),
                None,
            )
            if better is not None:
                chosen = better
                break
        parts.append(text[pos : chosen.start])
        pos = chosen.end
    return parts


def split_text(text: str, limit: int, length: Length, *, numbering: bool = True) -> list[str]:
    """``text`` as thread parts that each fit ``limit``; ``[text]`` unchanged when it fits as it is.

    With ``numbering`` and more than one part, each part ends with a marker `` i/n``, counted in its length.
    Raises :class:`ValueError` when ``limit`` cannot hold a single grapheme cluster and its marker.
    """
    if length(text) <= limit:
        return [text]
    body = text.strip()
    total = max(2, -(-length(body) // limit))  # a first guess at the number of parts
    while True:
        parts = _split(body, limit, length, total, numbering)
        if len(parts) > total:
            total = len(parts)  # wider markers: split again
            continue
        labelled = [part + _marker(index, len(parts), numbering) for index, part in enumerate(parts, 1)]
        if all(length(part) <= limit for part in labelled):
            return labelled
        if len(parts) == total or total > len(body):
            raise ValueError(f"a limit of {limit} cannot hold a thread part with its marker")
        total += 1
