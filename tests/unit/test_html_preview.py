"""The HTML preview: entities where the platforms put them, escaping, RTL, threads, warnings, the CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bs4 import BeautifulSoup, Tag
from hypothesis import given
from hypothesis import strategies as st

from amplifier.cli.html import render_page
from amplifier.cli.page_data import (
    AccountView,
    Segment,
    bluesky_segments,
    data_uri,
    mastodon_link_text,
    mastodon_segments,
)
from amplifier.errors import Problem
from amplifier.plan.adapt import Content, Target, adapt
from amplifier.plan.post import Image, PlannedPost, Platform
from amplifier.platforms import bluesky_text
from tests.conftest import ROOT, Result

RunCli = Callable[..., Result]
BERLIN = ZoneInfo("Europe/Berlin")
AT = dt.datetime(2027, 10, 29, 10, 0, tzinfo=BERLIN)

ACCOUNTS = {
    "masto": AccountView("masto", "mastodon", "mastodon.example", "Europe/Berlin"),
    "sky": AccountView("sky", "bluesky", "@campaign.bsky.social", "Europe/Berlin"),
    "sky-ckb": AccountView("sky-ckb", "bluesky", "@ckb.bsky.social", "Asia/Baghdad"),
}


def make_post(
    texts: str | tuple[str, ...],
    platform: Platform,
    *,
    account: str | None = None,
    lang: str = "en",
    at: dt.datetime = AT,
    images: tuple[Image, ...] = (),
    cw: str | None = None,
    split: bool = True,
    max_characters: int = 500,
) -> PlannedPost:
    """A post through the real adaptation (lengths, thread split, facets), as the planner makes it."""
    account = account or ("masto" if platform == "mastodon" else "sky")
    content = Content(
        texts=(texts,) if isinstance(texts, str) else texts,
        lang=lang,
        images=images,
        content_warning=cw,
        split=split,
    )
    adapted = adapt(content, Target(platform, created_at=at, max_characters=max_characters))
    return PlannedPost(
        id=f"rule:{account}:{at:%Y-%m-%dT%H:%M}",
        at=at,
        rule="rule",
        account=account,
        platform=platform,
        lang=lang,
        parts=adapted.parts,
        message_set="set",
        variant=0,
        event="kobane-day",
        warnings=adapted.problems,
    )


def page(posts: list[PlannedPost], **kwargs: Any) -> BeautifulSoup:
    html = render_page(
        posts, campaign_name="Test campaign", zone="Europe/Berlin", accounts=ACCOUNTS, **kwargs
    )
    return BeautifulSoup(html, "html.parser")


def image_map(soup: BeautifulSoup) -> dict[str, str]:
    """The page's images: key -> data URI."""
    images: dict[str, str] = json.loads(one(soup, "script#images").get_text())
    return images


def one(soup: BeautifulSoup | Tag, selector: str) -> Tag:
    found = soup.select(selector)
    assert len(found) == 1, (selector, found)
    return found[0]


# ------------------------------------------------------------------------------------------------ segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello #Kobane!", [("#Kobane", "hashtag", "Kobane")]),
        (
            "See https://example.org/a?b=1.",
            [("https://example.org/a?b=1", "link", "https://example.org/a?b=1")],
        ),
        (
            "Hi @alice@social.example and @bob",
            [("@alice@social.example", "mention", "alice@social.example"), ("@bob", "mention", "bob")],
        ),
        ("no#tag here, http://x is not", []),
        (
            "ڕۆژی کۆبانێ #Riseup4Rojava #کۆبانێ",
            [("#Riseup4Rojava", "hashtag", "Riseup4Rojava"), ("#کۆبانێ", "hashtag", "کۆبانێ")],
        ),
        ("#123 is no tag, #a1 is", [("#a1", "hashtag", "a1")]),
    ],
)
def test_mastodon_segments(text: str, expected: list[tuple[str, str, str]]) -> None:
    segments = mastodon_segments(text)
    assert "".join(segment.text for segment in segments) == text
    assert [(s.text, s.kind, s.value) for s in segments if s.kind] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ڕۆژی جیهانیی کۆبانێ #Riseup4Rojava", [("#Riseup4Rojava", "hashtag", "Riseup4Rojava")]),
        (
            "🏳️‍🌈 https://riseup4rojava.org/x! #Kobanê",
            [
                ("https://riseup4rojava.org/x", "link", "https://riseup4rojava.org/x"),
                ("#Kobanê", "hashtag", "Kobanê"),
            ],
        ),
        (
            "Ask @alice.bsky.social about riseup4rojava.org",
            [
                ("@alice.bsky.social", "mention", "alice.bsky.social"),
                ("riseup4rojava.org", "link", "https://riseup4rojava.org"),
            ],
        ),
    ],
)
def test_bluesky_segments_follow_the_facets_byte_offsets(
    text: str, expected: list[tuple[str, str, str]]
) -> None:
    segments, problems = bluesky_segments(text, bluesky_text.detect_facets(text))
    assert problems == []
    assert "".join(segment.text for segment in segments) == text
    assert [(s.text, s.kind, s.value) for s in segments if s.kind] == expected


def _texts(pieces: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), max_size=30).map("".join)


@given(_texts([*"ab #@.:/é😀ڕۆژ\u200d\n", "https://x.org/", "kobane.org", "#tag", "@a.bsky.social"]))
def test_bluesky_segments_slice_the_text_where_the_facets_say(text: str) -> None:
    facets = bluesky_text.detect_facets(text)
    segments, problems = bluesky_segments(text, facets)
    assert problems == []
    assert "".join(segment.text for segment in segments) == text
    data = text.encode("utf-8")
    entity_texts = [segment.text for segment in segments if segment.kind]
    facet_texts = [data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in facets]
    assert entity_texts == facet_texts


@given(_texts([*"ab #@._:/é😀ڕ\n", "https://x.org/", "@me@x.org", "#tag"]))
def test_mastodon_segments_cover_the_text(text: str) -> None:
    segments = mastodon_segments(text)
    assert "".join(segment.text for segment in segments) == text
    assert all(segment.text for segment in segments)


@pytest.mark.parametrize(
    ("facet_range", "message"),
    [
        ((1, 3), "does not fall on character boundaries"),  # inside the two bytes of "é"
        ((4, 99), "outside the text"),
        ((5, 5), "outside the text"),
    ],
)
def test_bluesky_segments_report_facets_that_cannot_apply(facet_range: tuple[int, int], message: str) -> None:
    text = "é #tag"
    start, end = facet_range
    facet = {
        "index": {"byteStart": start, "byteEnd": end},
        "features": [{"$type": bluesky_text.TAG, "tag": "t"}],
    }
    segments, problems = bluesky_segments(text, [facet])
    assert len(problems) == 1
    assert message in problems[0]
    assert "".join(segment.text for segment in segments) == text
    assert all(segment.kind is None for segment in segments)


def test_overlapping_facets_keep_the_first() -> None:
    text = "#one #two"
    facets = bluesky_text.detect_facets(text)
    overlapping = {
        "index": {"byteStart": 2, "byteEnd": 6},
        "features": [{"$type": bluesky_text.TAG, "tag": "x"}],
    }
    segments, problems = bluesky_segments(text, [*facets, overlapping])
    assert len(problems) == 1
    assert "overlaps" in problems[0]
    assert [s.text for s in segments if s.kind] == ["#one", "#two"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://riseup4rojava.org/", ("https://", "riseup4rojava.org/", "")),
        ("https://www.example.org/a", ("https://www.", "example.org/a", "")),
        (
            "http://riseup4rojava.org/take-action/today/now",
            ("http://", "riseup4rojava.org/take-action/", "today/now"),
        ),
    ],
)
def test_mastodon_link_text(url: str, expected: tuple[str, str, str]) -> None:
    assert mastodon_link_text(url) == expected


# ---------------------------------------------------------------------------------------------------- page


def test_every_text_is_escaped() -> None:
    hostile = '<script>alert("x")</script> & <img src=x onerror=alert(1)> #tag'
    post = make_post(hostile, "mastodon")
    html = render_page(
        [post],
        campaign_name="<b>Campaign</b>",
        zone="Europe/Berlin",
        accounts=ACCOUNTS,
        problems=[Problem("messages/m.yaml", 3, 5, "<i>bad</i>")],
    )
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<b>Campaign</b>" not in html
    assert "&lt;b&gt;Campaign&lt;/b&gt;" in html
    assert "<i>bad</i>" not in html
    soup = BeautifulSoup(html, "html.parser")
    assert one(soup, "p.text").get_text() == hostile
    # only the page's own script and its image map (JSON, which a browser does not run)
    assert [(script.get("id"), script.get("type")) for script in soup.find_all("script")] == [
        ("images", "application/json"),
        (None, None),
    ]


def test_cards_timeline_days_and_filters() -> None:
    posts = [
        make_post("One #Kobane", "mastodon", at=AT),
        make_post("Two #Kobane", "bluesky", at=AT),
        make_post(
            "ڕۆژی جیهانیی کۆبانێ #Riseup4Rojava",
            "bluesky",
            account="sky-ckb",
            lang="ckb",
            at=AT + dt.timedelta(days=1),
        ),
    ]
    soup = page(posts)
    articles = soup.select("article.post")
    assert len(articles) == 3
    assert [a["data-platform"] for a in articles] == ["mastodon", "bluesky", "bluesky"]
    days = soup.select("section.day")
    assert [d["data-day"] for d in days] == ["2027-10-29", "2027-10-30"]
    assert one(days[0], "h2").get_text() == "Friday 29 October 2027"
    assert {o["value"] for o in one(soup, "#filter-account").select("option")} == {
        "",
        "masto",
        "sky",
        "sky-ckb",
    }
    assert {o["value"] for o in one(soup, "#filter-platform").select("option")} == {"", "mastodon", "bluesky"}
    assert {o["value"] for o in one(soup, "#filter-lang").select("option")} == {"", "en", "ckb"}
    assert one(soup, "#shown").get_text() == "3"


def test_rtl_text_has_dir_auto_and_its_language() -> None:
    text = "ڕۆژی جیهانیی کۆبانێ #Riseup4Rojava"
    soup = page([make_post(text, "bluesky", account="sky-ckb", lang="ckb")])
    paragraph = one(soup, "article.post p.text")
    assert paragraph["dir"] == "auto"
    assert paragraph["lang"] == "ckb"
    tag = one(paragraph, "span.tag")
    assert tag.get_text() == "#Riseup4Rojava"
    assert tag["dir"] == "auto"
    # the tag is where the facet's byte offsets put it
    facet = bluesky_text.detect_facets(text)[0]
    assert text.encode()[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode() == tag.get_text()
    # every element holding user text says dir="auto"
    for element in soup.select("p.text, .handle, .account, figcaption, .warnings li, h1"):
        assert element.get("dir") == "auto", element


def test_account_time_in_its_own_zone_when_it_differs() -> None:
    soup = page([make_post("Hello", "bluesky", account="sky-ckb", lang="ckb")])
    assert one(soup, ".when").get_text() == "10:00 CEST (11:00 Asia/Baghdad)"
    assert one(soup, ".handle").get_text() == "@ckb.bsky.social"


def test_mastodon_links_shown_as_mastodon_shows_them() -> None:
    url = "https://riseup4rojava.org/take-action/and/more/of/it"
    soup = page([make_post(f"Join us {url} #Kobane @alice@example.org", "mastodon")])
    link = one(soup, "a.link")
    assert link["href"] == url
    assert link.get_text() == url + "…"  # the hidden parts are still text; CSS hides them
    assert [s.get_text() for s in link.select(".invisible")] == ["https://", "and/more/of/it"]
    assert one(soup, "span.mention").get_text() == "@alice@example.org"
    assert one(soup, "span.tag")["data-value"] == "Kobane"


def test_only_http_links_get_an_href() -> None:
    facet = {
        "index": {"byteStart": 0, "byteEnd": 4},
        "features": [{"$type": bluesky_text.LINK, "uri": "javascript:alert(1)"}],
    }
    post = make_post("evil text", "bluesky")
    part = post.parts[0]
    hacked = type(part)(part.text, part.length, part.limit, {**part.payload, "facets": [facet]})
    soup = page([dataclasses.replace(post, parts=(hacked,))])
    assert soup.select("a") == []
    assert one(soup, "span.link").get_text() == "evil"


def test_threads_are_connected_cards() -> None:
    parts = ("First part #Kobane", "Second part", "Third part https://riseup4rojava.org/")
    soup = page([make_post(parts, "bluesky")])
    article = one(soup, "article.post")
    assert "thread" in article["class"]
    cards = article.select(".card")
    assert [card["data-part"] for card in cards] == ["1", "2", "3"]
    assert [one(card, "p.text").get_text() for card in cards] == list(parts)
    assert "2/3" in one(cards[1], ".when").get_text()


def test_length_bar_and_warnings_next_to_their_post() -> None:
    long_text = "Kobanê " * 80
    over = make_post(long_text, "bluesky", split=False)
    fine = make_post("Short", "mastodon")
    assert over.warnings  # adapt reports the part over Bluesky's limit
    problems = [
        Problem("messages/m.yaml", 7, 9, f"{fine.id}: something about this post"),
        Problem("schedule.yaml", 2, 3, "a problem of the whole campaign"),
    ]
    soup = page([over, fine], problems=problems)
    second, first = soup.select("article.post")  # same time: in account order, masto first
    assert "over" in one(first, ".length")["class"]
    assert one(first, ".length .count").get_text() == f"{over.parts[0].length}/300"
    assert one(first, ".length .bar span")["style"] == "width:100.0%"
    assert [li.get_text() for li in first.select(".warnings li")] == list(over.warnings)
    assert "ok" in one(second, ".length")["class"]
    assert [li.get_text() for li in second.select(".warnings li")] == [
        "messages/m.yaml:7:9: something about this post"
    ]
    assert [li.get_text() for li in soup.select(".problems li")] == [
        "schedule.yaml:2:3: a problem of the whole campaign"
    ]


def test_a_warning_the_plan_also_reports_is_shown_once_with_its_location() -> None:
    over = make_post("Kobanê " * 80, "bluesky", split=False)
    (warning,) = over.warnings
    problems = [
        Problem("messages/m.yaml", 7, 9, f"{over.id}: {warning}"),
        Problem("messages/m.yaml", 8, 1, f"{over.id}: another problem of this post"),
    ]
    card = one(page([over], problems=problems), "article.post")
    assert [li.get_text() for li in card.select(".warnings li")] == [
        f"messages/m.yaml:7:9: {warning}",
        "messages/m.yaml:8:1: another problem of this post",
    ]


def test_images_inline_with_alt_text(tmp_path: Path) -> None:
    from PIL import Image as PILImage

    path = tmp_path / "poster.png"
    PILImage.new("RGB", (40, 20), "red").save(path)
    alt = 'Poster: "World Kobane Day" <1 November>'
    images = (
        Image(str(path), alt, "image/png", 40, 20),
        Image(str(tmp_path / "gone.png"), "gone", "image/png"),
    )
    soup = page([make_post("With images", "mastodon", images=images)])
    img = one(soup, "img")
    assert image_map(soup)[img["data-image"]].startswith("data:image/png;base64,")
    assert (img["alt"], img["width"], img["height"]) == (alt, "40", "20")
    captions = [c.get_text(" ", strip=True) for c in soup.select("figcaption")]
    assert captions == [f"ALT {alt}", "ALT gone"]
    assert "image not found" in one(soup, ".missing").get_text()
    assert any("cannot be read" in li.get_text() for li in soup.select(".warnings li"))


def test_each_image_is_in_the_page_once(tmp_path: Path) -> None:
    from PIL import Image as PILImage

    poster, other = tmp_path / "poster.png", tmp_path / "other.png"
    PILImage.new("RGB", (300, 200), "red").save(poster)
    PILImage.new("RGB", (30, 20), "blue").save(other)
    loaded: list[str] = []

    def load(path: str) -> str | None:
        loaded.append(path)
        return data_uri(path)

    image = Image(str(poster), "Poster", "image/png", 300, 200)
    posts = [
        make_post(
            f"Post {n}", "mastodon" if n % 2 else "bluesky", at=AT + dt.timedelta(hours=n), images=(image,)
        )
        for n in range(24)
    ]
    posts.append(make_post("Two", "mastodon", images=(Image(str(other), "Other", "image/png"), image)))
    html = render_page(
        posts, campaign_name="Test campaign", zone="Europe/Berlin", accounts=ACCOUNTS, load_image=load
    )
    soup = BeautifulSoup(html, "html.parser")
    assert sorted(loaded) == sorted([str(poster), str(other)])  # each file read once
    uris = image_map(soup)
    assert len(uris) == 2
    uri = data_uri(str(poster))
    assert uri is not None
    payload = uri.split(",", 1)[1]
    assert html.count(payload) == 1
    assert len(html) < len(payload) + 120_000  # not 25 copies
    keys = [img["data-image"] for img in soup.select("img")]
    assert len(keys) == 26
    assert {uris[key] for key in keys} == set(uris.values())


def test_the_image_map_cannot_end_its_script() -> None:
    post = make_post("Image", "mastodon", images=(Image("/x.png", "x", "image/png"),))
    hostile = "data:image/png;base64,</script><script>alert(1)</script>"
    html = render_page(
        [post], campaign_name="c", zone="UTC", accounts=ACCOUNTS, load_image=lambda _path: hostile
    )
    assert "alert(1)</script>" not in html
    assert image_map(BeautifulSoup(html, "html.parser")) == {"i0": hostile}


def test_content_warning_and_link_card() -> None:
    cw = make_post("Hidden text", "mastodon", cw="Violence")
    summary = page([cw]).select_one("details.cw summary")
    assert summary is not None
    assert summary.get_text() == "Violence"
    card_post = make_post("Read https://riseup4rojava.org/take-action/", "bluesky")
    payload = {
        **card_post.parts[0].payload,
        "embed": {
            "$type": "app.bsky.embed.external",
            "external": {"$card": "https://riseup4rojava.org/take-action/"},
        },
    }
    part = card_post.parts[0]
    with_card = dataclasses.replace(
        card_post, parts=(type(part)(part.text, part.length, part.limit, payload),)
    )
    assert one(page([with_card]), ".linkcard .host").get_text() == "riseup4rojava.org"


def test_empty_plan() -> None:
    soup = page([])
    assert "No posts planned" in one(soup, ".empty").get_text()


def test_page_needs_no_network() -> None:
    html = render_page(
        [make_post("Hello https://example.org/ #tag", "bluesky")],
        campaign_name="C",
        zone="Europe/Berlin",
        accounts=ACCOUNTS,
    )
    soup = BeautifulSoup(html, "html.parser")
    assert soup.select("link[rel=stylesheet], script[src], img[src^=http], iframe") == []
    assert not re.search(r"url\((?!data:)", html)  # no CSS resource from elsewhere


def test_data_uri_shrinks_large_images(tmp_path: Path) -> None:
    from PIL import Image as PILImage

    big = tmp_path / "big.jpg"
    PILImage.new("RGB", (3000, 2000), "blue").save(big)
    uri = data_uri(str(big))
    assert uri is not None
    assert uri.startswith("data:image/jpeg;base64,")
    import base64
    import io

    with PILImage.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert max(image.size) == 1200
    assert data_uri(str(tmp_path / "missing.png")) is None


def test_a_shrunk_photo_keeps_its_exif_orientation(tmp_path: Path) -> None:
    import base64
    import io

    from PIL import Image as PILImage

    photo = tmp_path / "portrait.jpg"  # stored landscape, shown portrait: EXIF orientation 6 (rotate 90° CW)
    exif = PILImage.Exif()
    exif[0x0112] = 6
    PILImage.new("RGB", (3000, 2000), "green").save(photo, exif=exif)
    uri = data_uri(str(photo))
    assert uri is not None
    with PILImage.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        assert image.size == (800, 1200)


def test_segment_is_a_value() -> None:
    assert Segment("#a", "hashtag", "a") == Segment("#a", "hashtag", "a")


# ----------------------------------------------------------------------------------------------------- CLI


def test_cli_writes_the_page(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "preview.html"
    result = run_cli(
        "preview",
        "-c",
        str(ROOT / "schedule.yaml"),
        "--from",
        "2027-10-28",
        "--to",
        "2027-11-02",
        "--format",
        "html",
        "-o",
        str(out),
    )
    assert result.code == 0, result.err
    assert result.out == ""
    assert f"wrote {out} (31 posts)" in result.err
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    assert len(soup.select("article.post")) == 31
    ckb = soup.select('article.post[data-lang="ckb"]')
    assert ckb
    assert all(one(a, "p.text")["dir"] == "auto" for a in ckb)
    assert [tag.get_text() for tag in ckb[0].select("span.tag")] == ["#Riseup4Rojava", "#WorldKobaneDay"]
    assert soup.select("article.thread")  # the Kobanê day thread
    assert soup.select("img[data-image]")
    assert all(uri.startswith("data:image/png;base64,") for uri in image_map(soup).values())


def test_cli_html_to_stdout(run_cli: RunCli) -> None:
    result = run_cli(
        "preview",
        "-c",
        str(ROOT / "schedule.yaml"),
        "--from",
        "2027-10-31",
        "--to",
        "2027-11-01",
        "--format",
        "html",
    )
    assert result.code == 0, result.err
    assert result.out.startswith("<!DOCTYPE html>")


def test_cli_output_needs_a_file_format(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("preview", "-c", str(ROOT / "schedule.yaml"), "-o", str(tmp_path / "x.txt"))
    assert result.code == 2
    assert "--output: choose --format json, html or ics" in result.err
    assert not (tmp_path / "x.txt").exists()


def test_cli_json_to_a_file(run_cli: RunCli, tmp_path: Path) -> None:
    import json

    out = tmp_path / "plan.json"
    result = run_cli(
        "preview",
        "-c",
        str(ROOT / "schedule.yaml"),
        "--from",
        "2027-10-31",
        "--to",
        "2027-11-01",
        "--format",
        "json",
        "-o",
        str(out),
    )
    assert result.code == 0, result.err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["version"] == 1
    assert len(data["posts"]) == 7


def test_cli_page_shows_the_problems_and_exits_2(
    run_cli: RunCli, campaign_dir: Callable[..., Path], tmp_path: Path
) -> None:
    from tests.conftest import BASE_MESSAGES

    messages = BASE_MESSAGES.replace(
        "    hashtags: [Riseup4Rojava]\n", "    split: {enabled: false}\n"
    ).replace("until {{ event.name }}.", "until {{ event.name }}." + " Kobanê" * 60)
    config = campaign_dir(messages={"main.yaml": messages})
    out = tmp_path / "preview.html"
    result = run_cli(
        "preview",
        "-c",
        str(config),
        "--from",
        "2027-10-29",
        "--to",
        "2027-11-01",
        "--format",
        "html",
        "-o",
        str(out),
    )
    assert result.code == 2
    assert "graphemes, over Bluesky's limit of 300" in result.err
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    over = soup.select_one('article.post[data-platform="bluesky"][id^="countdown:sky:2027-10-29"]')
    assert over is not None
    assert "over" in one(over, ".length")["class"]
    assert any("over Bluesky's limit of 300" in li.get_text() for li in over.select(".warnings li"))
