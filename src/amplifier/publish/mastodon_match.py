"""How a Mastodon status is recognised as a part of a post: its ``content`` HTML turned back into the text it
was made from, both reduced to what survives Mastodon's rendering, and, of several statuses alike, the one made
closest to the moment the post could first have been sent.

Pure functions, no network: :class:`~amplifier.publish.mastodon.MastodonPublisher` uses them to search the
account's statuses after an unknown outcome.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

_VOID = frozenset({"br", "img", "hr", "wbr"})  # elements without an end tag


class _ContentText(HTMLParser):
    """Plain text of a status's ``content`` HTML (see :func:`html_to_text`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._link: tuple[str | None, list[str]] | None = None  # (href of a web link, its text)
        self._skip = 0  # inside a quote post's fallback paragraph (<p class="quote-inline">): not our text

    def _emit(self, text: str) -> None:
        if self._skip:
            return
        if self._link is not None:
            self._link[1].append(text)
        else:
            self.out.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip:
            self._skip += tag not in _VOID
            return
        if tag == "p" and "quote-inline" in (dict(attrs).get("class") or "").split():
            self._skip = 1  # Mastodon 4.5 adds "RE: <link>" to a quote post's content for older clients
            return
        if tag == "br":
            self._emit("\n")
        elif tag == "p":
            if self.out and self._link is None:
                self.out.append("\n\n")
        elif tag == "a" and self._link is None:
            attributes = dict(attrs)
            classes = (attributes.get("class") or "").split()
            # A mention or a hashtag shows what was typed (``@user``, ``#tag``); a web link shows a shortened
            # URL while its ``href`` is the URL that was typed.
            href = None if "mention" in classes or "hashtag" in classes else attributes.get("href")
            self._link = (href, [])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._skip:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            self._skip -= 1
            return
        if tag == "a" and self._link is not None:
            href, shown = self._link
            self._link = None
            self.out.append(href if href else "".join(shown))

    def handle_data(self, data: str) -> None:
        self._emit(data)

    def text(self) -> str:
        if self._link is not None:  # an unclosed link
            href, shown = self._link
            self._link = None
            self.out.append(href if href else "".join(shown))
        return "".join(self.out).strip()


def html_to_text(content: str) -> str:
    """A status's ``content`` HTML as the plain text it was made from, as far as it can be told.

    Mastodon renders a plain-text status as ``<p>`` paragraphs (a blank line in the text) with ``<br />``
    line breaks, HTML-escaped, with links, hashtags and mentions as ``<a>``: a web link's visible text may be
    shortened (``<span class="ellipsis">``) but its ``href`` is the URL as typed, so links become their
    ``href``; mentions and hashtags keep their visible text (``@user``, ``#tag``). The fallback paragraph
    Mastodon 4.5 adds to a quote post (``<p class="quote-inline">RE: <a ...></a></p>``) is not part of it."""
    parser = _ContentText()
    parser.feed(content)
    parser.close()
    return parser.text()


_REMOTE_MENTION = re.compile(r"(?<![\w@])@(\w[\w.-]*)@[\w-]+(?:\.[\w-]+)+")
# Light markup a server may turn into HTML (mastodon-mock renders **bold**, *italic*, `code`, ~~strike~~).
_MARKUP = re.compile(r"[*~`]")
_SPACE = re.compile(r"\s+")


def comparable(text: str) -> str:
    """``text`` reduced to what survives Mastodon's rendering, for comparing a part with a status.

    NFC; a mention ``@user@domain`` as ``@user`` (Mastodon shows a known account by its username only);
    emphasis markers (``*``, ``~``, a backtick) dropped; any run of white space (a paragraph or a line break)
    as one space; case folded."""
    text = unicodedata.normalize("NFC", text)
    text = _REMOTE_MENTION.sub(r"@\1", text)
    text = _MARKUP.sub("", text)
    return _SPACE.sub(" ", text).strip().casefold()


def language_matches(wanted: object, got: object) -> bool:
    """The same language (primary subtag, any case); a side that says nothing does not disagree."""
    if not wanted or not got:
        return True
    return str(wanted).split("-")[0].lower() == str(got).split("-")[0].lower()


def aware_time(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def by_closeness(statuses: Iterable[Mapping[str, Any]], since: datetime) -> list[Mapping[str, Any]]:
    """``statuses`` ordered by how close their ``created_at`` is to ``since`` (the first moment the post
    could have been sent), then oldest first: of two identical statuses a minute apart, the one made by the
    request sent at ``since`` comes first, whichever is older and whatever the clocks' offset."""

    def key(status: Mapping[str, Any]) -> tuple[float, float, str]:
        created = aware_time(status.get("created_at"))
        if created is None:
            return (float("inf"), 0.0, str(status.get("id")))
        return (abs((created - since).total_seconds()), created.timestamp(), str(status.get("id")))

    return sorted(statuses, key=key)


def id_or_none(value: object) -> str | None:
    return None if value is None else str(value)
