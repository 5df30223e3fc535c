"""Mastodon status length and entities."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from mastodon import Mastodon

from amplifier.platforms.mastodon_text import check, countable_text, entities, status_length

ZWJ = "\u200d"

# Mastodon.py tests/test_status_length.py, ground truth measured against a real server.
GROUND_TRUTH: list[tuple[str, int]] = [
    ("", 0),
    ("hello", 5),
    (" leading and trailing spaces   ", 31),
    (" tabs\tand\nnewlines\r\n", 19),
    ("check http://example.com and https://example.org/page?x=1#frag", 1000 - 943),
    ("ftp://files.example.net/resource", 1000 - 968),
    ("http://user:pass@example.com:8080/path", 1000 - 962),
    ("http://127.0.0.1:3000/health", 1000 - 972),
    ("https://[2001:db8::1]/status", 1000 - 972),
    ("https://[2001:db8:85a3::8a2e:370:7334]:443/path?ok=1", 1000 - 948),
    ("mailto:someone@example.com", 1000 - 974),
    ("git+ssh://git@example.co.uk:22/repo.git", 1000 - 961),
    ("https://very.long.tld.example.museum/collection/item", 1000 - 977),
    ("@alice", 6),
    ("@bob@example.com", 4),
    ("hi @charlie and @dora@example.social!", 1000 - 978),
    ("hey @me@example.com look at https://example.com/a-b_c~d?e=f#g and @you  ", 50),
    ("a: 🇪🇪", 4),
    (f"b: 👨{ZWJ}👩{ZWJ}👧{ZWJ}👦", 4),
    (f"c: 👩🏽{ZWJ}💻", 4),
    ("d: ✊🏿", 4),
    ("é", 1),
    ("f\u0301", 1),
    ("https://sub.sub2.Путин.рф/увидимся/в?Гааге=военный#преступник", 1000 - 952),
    ("clusters: 😀😃😄😁😆😅😂🤣😊🙂😉🙃😇🥰😍🤩😘😗😙😚", 30),
    (
        "See: http://example.com https://[2001:db8::2]:8443/a ftp://user:pw@files.example.org:21/x "
        "http://192.168.0.1/",
        1000 - 886,
    ),
    (f"@one https://example.social/@two 👩🏽{ZWJ}💻 🇪🇪 @three@example.com ✊🏿", 1000 - 959),
    ("(see https://example.com.)", 30),
    ("[link: http://user:pass@host.example:8080/path?x=y#z]", 1000 - 947),
    ("<@root> and {@admin@example.net}", 20),
    ("https://example.com/a-b_c~d?param_a=1&param-b=2", 1000 - 977),
]


@pytest.mark.parametrize(("text", "expected"), GROUND_TRUTH)
def test_ground_truth(text: str, expected: int) -> None:
    assert status_length(text) == expected
    assert status_length(text, "what") == expected + 4


@pytest.mark.parametrize(
    ("text", "spoiler", "url_length", "expected"),
    [
        ("Em ê herin! Kurdî û Kurmancî", "", 23, 28),
        ("İstanbul ılık", "", 23, 13),
        ("کوردستان ئازاد", "", 23, 14),
        ("كوباني؟", "", 23, 7),
        (f"👨{ZWJ}👩{ZWJ}👧{ZWJ}👦 🇹🇷 🏳️{ZWJ}🌈", "", 23, 5),
        ("https://en.wikipedia.org/wiki/Kobani_(city)", "", 23, 23),
        ("https://en.wikipedia.org/wiki/Kobani_(city)", "", 30, 30),
        ("read https://riseup4rojava.org/ now", "", 10, 19),
        ("riseup4rojava.org without a scheme counts in full", "", 23, 49),
        ("@heval@kurd.social silav", "", 23, 12),
        ("text", "CW: şer", 23, 11),
        ("   \n ", "", 23, 0),  # a blank text counts as nothing
        ("   ", "cw", 23, 2),
    ],
)
def test_status_length(text: str, spoiler: str, url_length: int, expected: int) -> None:
    assert status_length(text, spoiler, url_length) == expected


def test_content_warning_joins_the_text() -> None:
    # The server counts spoiler + text as one string: a text starting with a combining mark joins the warning.
    assert status_length("\u0301abc", "e") == 4


def test_countable_text() -> None:
    assert countable_text("see https://example.com/long/path, @bob@example.social!", 5) == "see xxxxx, @bob!"
    assert countable_text("\t ") == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Join #Riseup4Rojava: https://riseup4rojava.org/de/ @heval@kurd.social",
            [
                (5, 19, "hashtag", "Riseup4Rojava"),
                (21, 50, "link", "https://riseup4rojava.org/de/"),
                (51, 69, "mention", "heval@kurd.social"),
            ],
        ),
        (
            "https://en.wikipedia.org/wiki/Kobani_(city).",
            [(0, 43, "link", "https://en.wikipedia.org/wiki/Kobani_(city)")],
        ),
        ("(https://example.com)", [(1, 20, "link", "https://example.com")]),
        ("riseup4rojava.org has no scheme", []),
        (
            "#Kobanê #Şengal #کوردستان #İzmir #ırmak",
            [
                (0, 7, "hashtag", "Kobanê"),
                (8, 15, "hashtag", "Şengal"),
                (16, 25, "hashtag", "کوردستان"),
                (26, 32, "hashtag", "İzmir"),
                (33, 39, "hashtag", "ırmak"),
            ],
        ),
        (
            "#123 #1a #_ #a_b #a·b",
            [(5, 8, "hashtag", "1a"), (12, 16, "hashtag", "a_b"), (17, 21, "hashtag", "a·b")],
        ),
        ("a/#no b)#no c#no é#yes", [(18, 22, "hashtag", "yes")]),
        # The tag stops before "https"; the URL follows a letter, so twitter-text does not link it.
        ("#foohttps://example.com", [(0, 4, "hashtag", "foo")]),
        ("https://example.com/#anchor", [(0, 27, "link", "https://example.com/#anchor")]),
        ("https://example.social/@two", [(0, 27, "link", "https://example.social/@two")]),
        ("@alice, @bob.b@x.org!", [(0, 6, "mention", "alice"), (8, 20, "mention", "bob.b@x.org")]),
        ("mail a@b.org", []),
        ("@a@b.c@d", []),
        ("@josé", []),
        ("#", []),
        ("", []),
    ],
)
def test_entities(text: str, expected: list[tuple[int, int, str, str]]) -> None:
    assert entities(text) == expected


def test_check() -> None:
    assert check("a" * 500) == []
    assert check("a" * 501) == ["501 characters, over the server's 500"]
    assert check("a" * 490, "CW " * 4, limit=500) == [
        "502 characters (content warning included), over the server's 500"
    ]
    assert check("https://example.com/" + "a" * 600, limit=23) == []
    assert check("https://example.com/" + "a" * 600, limit=22) == ["23 characters, over the server's 22"]


_ALPHABET = st.sampled_from(
    [
        *"aZ_.-/:?=&()#@ \n",
        "ê",
        "ş",
        "İ",
        "ı",
        "کورد",
        f"👩🏽{ZWJ}💻",
        "e\u0301",
        "https://",
        "http://",
        "example.com",
        "x.org/",
        "@bob@example.social",
        "@alice",
        "www.",
    ]
)


@settings(max_examples=300)
@given(st.lists(_ALPHABET, max_size=30).map("".join), st.sampled_from(["", "cw", "ê"]))
def test_agrees_with_mastodon_py(text: str, spoiler: str) -> None:
    # Mastodon.py adds the two lengths; the server counts them joined, which only differs at the seam.
    assume(text.strip())
    assert status_length(text, spoiler) == Mastodon.get_status_length(text, spoiler)


@settings(max_examples=300)
@given(st.lists(_ALPHABET, max_size=30).map("".join) | st.text(max_size=40))
def test_entities_are_ordered_slices(text: str) -> None:
    found = entities(text)
    previous_end = 0
    for start, end, kind, value in found:
        assert previous_end <= start < end <= len(text)
        piece = text[start:end]
        if kind == "link":
            assert piece == value
        else:
            assert piece[1:] == value
            assert piece[0] == ("#" if kind == "hashtag" else "@")
        previous_end = end


@settings(max_examples=300)
@given(
    st.lists(
        _ALPHABET | st.sampled_from(["\u3000", "\xa0", "\u2028", "\t", "(https://a.org)"]), max_size=30
    ).map("".join)
)
def test_urls_replaced_token_by_token_as_over_the_whole_text(text: str) -> None:
    """Tokens found from their "://" (any Unicode space ends one) give the substitution of the whole text."""
    from amplifier.platforms import mastodon_text

    whole = mastodon_text._url_regex().sub(lambda match: match.group(2) + "xxx", text)
    assert mastodon_text._replace_urls(text, "xxx") == whole
