"""Bluesky's length: the count without the cluster regex (text with marks only) equals the regex's count."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from amplifier.platforms import bluesky_text
from amplifier.platforms.bluesky_text import grapheme_length


def clusters(text: str) -> int:
    return len(regex.findall(r"\X", text))


@pytest.mark.parametrize(
    "text",
    [
        "14 يومًا حتى World Kobane Day",  # a tanween joins its letter
        "\u064ba",  # a mark at the start is a cluster of its own
        "a\n\u064b",  # after a line feed too (GB4)
        "ق\u0651\u064e",  # two marks on one letter
        "क्ष",  # a virama joins the consonant after it (GB9c): not a mark here
        "👍🏽",  # an emoji modifier
        "a\u200db",  # ZWJ
        "🇩🇪 flag",
        "ab\r\nc\u0301",
        "각 \u0600x",  # Hangul, a prepended character
    ],
)
def test_the_length_is_the_number_of_clusters(text: str) -> None:
    assert grapheme_length(text) == clusters(text)


_CHARS = st.sampled_from(
    [
        *"aبي \n\r\t.#",
        "\u064b",
        "\u0651",
        "\u0301",
        "\u093f",
        "\u094d",
        "क",
        "\u200d",
        "🏽",
        "👍",
        "\x00",
        "\u0600",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_CHARS, max_size=12).map("".join))
def test_any_mix_of_marks_and_controls_counts_as_the_regex(text: str) -> None:
    assert grapheme_length(text) == clusters(text)


def test_marks_are_counted_without_the_regex(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoRegex:
        def findall(self, text: str) -> list[str]:
            raise AssertionError("the cluster regex ran")

    monkeypatch.setattr(bluesky_text, "_GRAPHEME_RE", NoRegex())
    assert grapheme_length("حتى يومًا Kobane") == 15  # 16 code points, one mark
