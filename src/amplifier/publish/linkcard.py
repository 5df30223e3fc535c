"""Bluesky link cards (``app.bsky.embed.external``) from a page's Open Graph tags.

Bluesky does not build link cards on the server: the client fetches the page, reads ``og:title``,
``og:description`` and ``og:image`` (falling back to ``<title>`` and ``<meta name="description">``) and
uploads the image as the card's thumb. The fetch is short (a timeout, at most :data:`MAX_PAGE_BYTES` of HTML
read, at most :data:`MAX_THUMB_SOURCE_BYTES` of image); when it fails the caller posts without a card and
logs the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

MAX_PAGE_BYTES = 1_000_000
MAX_THUMB_SOURCE_BYTES = 10_000_000
USER_AGENT = "amplifier-linkcard/0.1 (+https://github.com/; Open Graph preview)"


class CardError(Exception):
    """The page (or its image) could not be fetched or read; the message says why."""


@dataclass(frozen=True)
class LinkCard:
    uri: str
    title: str
    description: str
    image_url: str | None = None


def _fetch(client: httpx.Client, url: str, cap: int, accept: str) -> tuple[bytes, str, str]:
    try:
        with client.stream("GET", url, headers={"Accept": accept, "User-Agent": USER_AGENT}) as response:
            if response.status_code >= 400:
                raise CardError(f"{url}: HTTP {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    break
            body = b"".join(chunks)[:cap]
            return body, response.headers.get("content-type", ""), str(response.url)
    except httpx.HTTPError as exc:
        raise CardError(f"{url}: {type(exc).__name__}: {exc}") from exc


def parse_card(url: str, html: bytes | str) -> LinkCard:
    """The card of the page at ``url`` from its HTML."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")

    def meta(*names: str) -> str | None:
        for name in names:
            tag = soup.find("meta", attrs={"property": name}) or soup.find("meta", attrs={"name": name})
            if tag is not None:
                content = tag.get("content")
                if isinstance(content, str) and content.strip():
                    return " ".join(content.split())
        return None

    title = meta("og:title", "twitter:title")
    if title is None and soup.title is not None and soup.title.string:
        title = " ".join(soup.title.string.split())
    description = meta("og:description", "twitter:description", "description") or ""
    image = meta("og:image", "og:image:url", "twitter:image")
    return LinkCard(
        uri=url,  # the link the post points to, even when the page names another canonical URL
        title=title or url,
        description=description,
        image_url=urljoin(url, image) if image else None,
    )


def fetch_card(url: str, *, timeout: float = 5.0, client: httpx.Client | None = None) -> LinkCard:
    """Fetch ``url`` and read its card; :class:`CardError` when the page cannot be had."""
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=True)
    try:
        body, content_type, final_url = _fetch(http, url, MAX_PAGE_BYTES, "text/html,application/xhtml+xml")
        if content_type and "html" not in content_type.lower():
            raise CardError(f"{url}: not an HTML page ({content_type})")
        card = parse_card(final_url, body)
        return LinkCard(uri=url, title=card.title, description=card.description, image_url=card.image_url)
    finally:
        if own:
            http.close()


def fetch_image(url: str, *, timeout: float = 5.0, client: httpx.Client | None = None) -> bytes:
    """The bytes of the card's image (at most :data:`MAX_THUMB_SOURCE_BYTES`)."""
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=True)
    try:
        body, content_type, _ = _fetch(http, url, MAX_THUMB_SOURCE_BYTES + 1, "image/*")
        if len(body) > MAX_THUMB_SOURCE_BYTES:
            raise CardError(f"{url}: image larger than {MAX_THUMB_SOURCE_BYTES} bytes")
        if content_type and not content_type.lower().startswith("image/"):
            raise CardError(f"{url}: not an image ({content_type})")
        return body
    finally:
        if own:
            http.close()
