"""Splitting long texts into thread parts."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplifier.plan.threads import fits, split_text
from amplifier.platforms.bluesky_text import grapheme_length
from amplifier.platforms.mastodon_text import status_length

MARKER = re.compile(r" \d+/\d+\Z")


def _bodies(parts: list[str]) -> list[str]:
    return [MARKER.sub("", part) for part in parts]


def test_fits_unchanged() -> None:
    text = "  Short, with edges kept.  "
    assert split_text(text, 300, grapheme_length) == [text]
    assert fits(text, 27, len)
    assert not fits(text, 26, len)


def test_numbering_markers_count() -> None:
    parts = split_text("word " * 30, 40, len)
    assert all(len(part) <= 40 for part in parts)
    assert [part.rsplit(" ", 1)[1] for part in parts] == [
        f"{i}/{len(parts)}" for i in range(1, len(parts) + 1)
    ]


def test_without_numbering() -> None:
    parts = split_text("alpha beta gamma delta", 11, len, numbering=False)
    assert parts == ["alpha beta", "gamma delta"]


def test_marker_width_grows_with_the_total() -> None:
    # 10 or more parts need "10/10": every part is re-split with the wider marker.
    text = " ".join(f"w{i:02d}" for i in range(40))
    parts = split_text(text, 12, len)
    assert len(parts) >= 10
    assert all(len(part) <= 12 for part in parts)
    assert parts[-1].endswith(f" {len(parts)}/{len(parts)}")
    assert " ".join(_bodies(parts)).split() == text.split()


def test_prefers_paragraphs() -> None:
    first = "Em ê herin. Kobanê li ber xwe dide, roj bi roj."
    second = "Ji bo azadiyê em li vir in. Bi hev re!"
    parts = split_text(first + "\n\n" + second, 70, len)
    assert _bodies(parts) == [first, second]


def test_prefers_sentences_to_words() -> None:
    text = "One two three four. Five six seven eight nine ten eleven"
    parts = split_text(text, 40, len)
    assert _bodies(parts)[0] == "One two three four."


def test_a_short_paragraph_is_not_a_whole_part() -> None:
    # A paragraph break in the first half of the room loses to a later sentence end.
    text = "Hi.\n\nThis is a longer sentence. And another one that follows here."
    parts = split_text(text, 40, len)
    assert _bodies(parts)[0] == "Hi.\n\nThis is a longer sentence."


@pytest.mark.parametrize(
    ("text", "limit", "first"),
    [
        (
            "Rojbaş heval! Em ê herin, bi hev re. Ev dawî ye û dirêj e.",
            40,
            "Rojbaş heval! Em ê herin, bi hev re.",
        ),
        ("Ma tu tê û em li benda te ne؟ Dem kurt e, zû were.", 40, "Ma tu tê û em li benda te ne؟"),
        ("کوردستان ئازاد۔ ئێمە لێرەین و دەمێنینەوە لە کۆبانێ", 30, "کوردستان ئازاد۔"),
        ("Biraz bekle, geliyoruz… İstanbul'da ılık bir gün, ırmak kıyısında", 40, "Biraz bekle, geliyoruz…"),
        ("“Berxwedan jiyan e.” Ew got û çû, bêdeng û bi hêz.", 40, "“Berxwedan jiyan e.”"),
    ],
)
def test_multilingual_sentence_ends(text: str, limit: int, first: str) -> None:
    parts = split_text(text, limit, grapheme_length)
    assert _bodies(parts)[0] == first
    assert all(grapheme_length(part) <= limit for part in parts)


def test_urls_and_hashtags_stay_whole() -> None:
    url = "https://en.wikipedia.org/wiki/Kobani_(city)"
    text = f"Read about it here {url} and share #Riseup4Rojava #Kobanê now please"
    parts = split_text(text, 60, grapheme_length)
    joined = "\n".join(parts)
    assert url in joined
    assert "#Riseup4Rojava" in joined
    assert "#Kobanê" in joined


def test_mastodon_counts_urls_as_23() -> None:
    url = "https://example.com/" + "a" * 200
    text = f"{url} {url} {url}"
    parts = split_text(text, 60, status_length)
    assert all(status_length(part) <= 60 for part in parts)
    assert _bodies(parts) == [f"{url} {url}", url]


def test_emoji_are_never_cut() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"
    text = family * 30  # one long word of 30 clusters
    parts = split_text(text, 12, grapheme_length)
    assert all(grapheme_length(part) <= 12 for part in parts)
    assert "".join(_bodies(parts)) == text
    assert all(set(_bodies(parts)[i].split(family)) == {""} for i in range(len(parts)))


def test_long_word_hard_split_by_graphemes() -> None:
    word = "🇹🇷🏳️\u200d🌈👩🏽\u200d💻" * 20
    text = "start " + word + " end"
    parts = split_text(text, 15, grapheme_length)
    assert all(grapheme_length(part) <= 15 for part in parts)
    bodies = _bodies(parts)
    assert "".join(bodies).replace(" ", "") == text.replace(" ", "")
    # Every cut is between clusters: the parts' clusters are the text's clusters.
    assert sum(grapheme_length(body.replace(" ", "")) for body in bodies) == grapheme_length(
        text.replace(" ", "")
    )


def test_whitespace_trimmed_at_edges() -> None:
    parts = split_text("  alpha   beta \n gamma  \n\n  delta  ", 12, len)
    assert all(body == body.strip() for body in _bodies(parts))


def test_space_before_combining_mark_is_not_a_break() -> None:
    text = "aaaa \u0301bbbb cccc"
    parts = split_text(text, 11, grapheme_length, numbering=False)
    assert parts == ["aaaa \u0301bbbb", "cccc"]


def test_deterministic() -> None:
    text = "Kobanê! " * 80
    assert split_text(text, 50, grapheme_length) == split_text(text, 50, grapheme_length)


def test_limit_too_small() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        split_text("abc def", 3, len)


_WORDS = st.lists(
    st.sampled_from(
        [
            "Em",
            "ê",
            "herin.",
            "Kobanê",
            "#Riseup4Rojava",
            "riseup4rojava.org",
            "https://en.wikipedia.org/wiki/Kobani_(city)",
            "İstanbul",
            "ılık?",
            "کوردستان",
            "ئازاد۔",
            "👩🏽\u200d💻",
            "🇹🇷",
            "🏳️\u200d🌈",
            "xwe…",
            "a",
        ]
    ),
    min_size=1,
    max_size=80,
)
_SEPARATORS = st.sampled_from([" ", " ", " ", "\n", "\n\n", "  "])


@st.composite
def _texts(draw: st.DrawFn) -> str:
    words = draw(_WORDS)
    seps = draw(st.lists(_SEPARATORS, min_size=len(words), max_size=len(words)))
    return "".join(word + sep for word, sep in zip(words, seps, strict=True)).strip()


@settings(max_examples=300, deadline=None)
@given(
    _texts(),
    st.integers(min_value=50, max_value=300),
    st.sampled_from([grapheme_length, status_length, len]),
    st.booleans(),
)
def test_parts_fit_and_keep_the_words(
    text: str, limit: int, length: Callable[[str], int], numbering: bool
) -> None:
    parts = split_text(text, limit, length, numbering=numbering)
    assert all(length(part) <= limit for part in parts)
    if len(parts) == 1:
        assert parts == [text]
        return
    bodies = _bodies(parts) if numbering else parts
    if numbering:
        markers = [match.group() if (match := MARKER.search(part)) else "" for part in parts]
        assert markers == [f" {i}/{len(parts)}" for i in range(1, len(parts) + 1)]
    assert all(body and body == body.strip() for body in bodies)
    assert " ".join(bodies).split() == text.split()


@pytest.mark.parametrize(
    "text",
    [
        "word " * 40_000,
        "x" * 200_000,  # one word: cut between grapheme clusters, part after part
        "Sentence here. " * 13_000,
        ("a" * 3000 + " ") * 66,
        "ab\u0301" * 66_000,
    ],
    ids=["words", "one-word", "sentences", "long-words", "combining"],
)
@pytest.mark.parametrize(
    ("length", "limit"), [(status_length, 494), (grapheme_length, 294)], ids=["mastodon", "bluesky"]
)
def test_splitting_is_linear_in_the_text(text: str, length: Callable[[str], int], limit: int) -> None:
    """Splitting measures a bounded multiple of the text, not the rest of the text again for every part."""
    measured = 0

    def counting(part: str) -> int:
        nonlocal measured
        measured += len(part)
        return length(part)

    parts = split_text(text, limit, counting)
    assert all(length(part) <= limit for part in parts)
    assert "".join(_bodies(parts)).replace(" ", "") == text.strip().replace(" ", "")
    assert measured <= 60 * len(text), measured / len(text)
