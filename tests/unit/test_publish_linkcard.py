"""Link cards: Open Graph tags from a page served on loopback by httpx's mock transport (no network)."""

from __future__ import annotations

import httpx
import pytest

from amplifier.publish.linkcard import MAX_PAGE_BYTES, CardError, fetch_card, fetch_image, parse_card

PAGE = """<html><head><title> Fallback  title </title>
<meta property="og:title" content="Vote   in Rojava">
<meta property="og:description" content="All about it.">
<meta property="og:image" content="/img/card.png">
</head></html>"""


@pytest.mark.parametrize(
    ("html", "title", "description", "image"),
    [
        (PAGE, "Vote in Rojava", "All about it.", "https://example.org/img/card.png"),
        (
            '<title>Only a title</title><meta name="description" content="Plain meta">',
            "Only a title",
            "Plain meta",
            None,
        ),
        (
            '<meta name="twitter:title" content="Tw"><meta name="twitter:image" content="https://cdn/x.jpg">',
            "Tw",
            "",
            "https://cdn/x.jpg",
        ),
        ("<p>nothing</p>", "https://example.org/page", "", None),
    ],
)
def test_parse_card(html: str, title: str, description: str, image: str | None) -> None:
    card = parse_card("https://example.org/page", html)
    assert (card.title, card.description, card.image_url) == (title, description, image)
    assert card.uri == "https://example.org/page"


def client(routes: dict[str, httpx.Response]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return routes.get(request.url.path, httpx.Response(404))

    return httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)


def test_fetch_card_and_image() -> None:
    routes = {
        "/page": httpx.Response(200, headers={"content-type": "text/html"}, text=PAGE),
        "/img/card.png": httpx.Response(200, headers={"content-type": "image/png"}, content=b"\x89PNG..."),
    }
    with client(routes) as http:
        card = fetch_card("https://example.org/page", client=http)
        assert card.title == "Vote in Rojava"
        assert card.image_url is not None
        assert fetch_image(card.image_url, client=http) == b"\x89PNG..."


@pytest.mark.parametrize(
    ("response", "words"),
    [
        (httpx.Response(404), "HTTP 404"),
        (httpx.Response(500), "HTTP 500"),
        (
            httpx.Response(200, headers={"content-type": "application/pdf"}, content=b"%PDF"),
            "not an HTML page",
        ),
    ],
)
def test_fetch_card_failures(response: httpx.Response, words: str) -> None:
    with client({"/page": response}) as http, pytest.raises(CardError, match=words):
        fetch_card("https://example.org/page", client=http)


def test_fetch_card_network_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as http,
        pytest.raises(CardError, match="ConnectError"),
    ):
        fetch_card("https://example.org/page", client=http)


def test_page_read_is_capped() -> None:
    huge = "<title>Big</title>" + "x" * (MAX_PAGE_BYTES * 3)
    with client({"/page": httpx.Response(200, headers={"content-type": "text/html"}, text=huge)}) as http:
        assert fetch_card("https://example.org/page", client=http).title == "Big"


def test_image_must_be_an_image() -> None:
    routes = {"/i": httpx.Response(200, headers={"content-type": "text/html"}, text="<html>")}
    with client(routes) as http, pytest.raises(CardError, match="not an image"):
        fetch_image("https://example.org/i", client=http)
