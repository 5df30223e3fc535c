"""Reading back what reached people: the engagement counts of published posts.

A publisher's ``read_engagement(parts)`` takes parts it published (:class:`PublishedPart`: the post id, the
part's index and where it went) and answers one :class:`Engagement` per part it could read, with the instant
of the reading:

* **Mastodon**: ``GET /api/v1/statuses/:id``, one request per part: ``favourites_count`` (likes),
  ``reblogs_count`` (reposts), ``replies_count``, ``quotes_count`` (Mastodon 4.5+; ``None`` when the server
  does not say).
* **Bluesky**: ``app.bsky.feed.getPosts`` through the account's PDS (which proxies it to the AppView), up to
  :data:`GET_POSTS_MAX` URIs a request: ``likeCount``, ``repostCount``, ``replyCount``, ``quoteCount``.

A part deleted or retracted on the server is a reading with ``gone=True`` (and no counts), not an error.
A Bluesky post the AppView does not know while its record is still in the account's repository (not indexed
yet) is left out of the answer: read it again later. Failures are classified like every request
(:mod:`amplifier.publish.faults`): :class:`~amplifier.publish.base.RateLimitedError` with the server's reset,
:class:`~amplifier.publish.base.TransientError`, :class:`~amplifier.publish.base.AuthError`... A read is
never a write: a lost answer is a transient error, never an unknown outcome. An error loses the readings of
the call it ends; a caller that wants to keep progress across a rate limit passes fewer parts per call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

#: The most URIs ``app.bsky.feed.getPosts`` takes in one request (its lexicon's ``maxLength``).
GET_POSTS_MAX = 25


class Counted:
    """The four counts a reading, a post's total or a report's card carries (``None``: not counted there):
    ``likes`` (Mastodon favourites, Bluesky likes), ``reposts`` (reblogs / reposts), ``replies``, ``quotes``."""

    __slots__ = ()
    likes: int | None
    reposts: int | None
    replies: int | None
    quotes: int | None

    @property
    def total(self) -> int:
        """Likes + reposts + replies + quotes (what is known)."""
        return sum(x or 0 for x in (self.likes, self.reposts, self.replies, self.quotes))

    def counts_json(self) -> dict[str, int | None]:
        return {"likes": self.likes, "reposts": self.reposts, "replies": self.replies, "quotes": self.quotes}


@dataclass(frozen=True)
class PublishedPart:
    """One published part to read: ``id`` is the Mastodon status id or the Bluesky record key; ``uri`` the
    Bluesky ``at://`` URI (needed there; Mastodon ignores it)."""

    post_id: str
    index: int
    id: str
    uri: str | None = None


@dataclass(frozen=True)
class Engagement(Counted):
    """The counts of one part at one instant (``read_at``, aware UTC).

    ``likes``: Mastodon favourites, Bluesky likes; ``reposts``: reblogs / reposts; ``quotes`` is ``None``
    where the server does not count them. ``gone``: the post was deleted on the server (all counts ``None``).
    """

    post_id: str
    index: int
    read_at: datetime
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    quotes: int | None = None
    gone: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "post_id": self.post_id,
            "index": self.index,
            "read_at": self.read_at.isoformat(),
            **self.counts_json(),
            "gone": self.gone,
        }


def count(value: object) -> int | None:
    """A count from an answer: a non-negative int, else ``None`` (missing, null, garbage)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


T = TypeVar("T")


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
