"""The planned post: what the preview shows and what a publisher sends.

A :class:`PlannedPost` has a stable ``id`` (the same rule, account and occurrence always give the same id) and one
:class:`Part` per post of a thread. Each part's ``payload`` is exactly what would be sent:

* Mastodon: the parameters of ``POST /api/v1/statuses`` (``status``, ``visibility``, ``language``, and when set
  ``spoiler_text``, ``sensitive``, ``media_ids``, ``in_reply_to_id``, ``quote_approval_policy``).
* Bluesky: the ``app.bsky.feed.post`` record (``$type``, ``text``, ``createdAt``, ``langs``, and when set
  ``facets``, ``embed``, ``reply``, ``labels``). A part's ``gates`` are the ``app.bsky.feed.threadgate`` /
  ``app.bsky.feed.postgate`` records written at the part's own record key, in the same commit.

Values that only exist at publishing time are placeholders, single-key objects that a publisher resolves:

* ``{"$upload": "<path>"}``: the uploaded image at that path (its image part's ``images`` entry carries the alt
  text). Mastodon: an element of ``media_ids``. Bluesky: the ``image`` blob of an ``app.bsky.embed.images#image``.
* ``{"$ref": "part:N"}``: the published part N of this post. Mastodon: ``in_reply_to_id``. Bluesky: a strong ref
  (``uri`` + ``cid``) in ``reply.root`` / ``reply.parent``. In a gate record, ``post``: the part's at:// URI.
* ``{"$card": "<url>"}``: the Bluesky link card (``app.bsky.embed.external#external``) built from the page's
  Open Graph tags at publishing time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

Platform = Literal["mastodon", "bluesky"]
PLATFORMS: tuple[Platform, ...] = ("mastodon", "bluesky")

UPLOAD = "$upload"
REF = "$ref"
CARD = "$card"


@dataclass(frozen=True)
class Image:
    """An image to attach, with its alt text (required) in the post's language."""

    path: str  # absolute path on disk
    alt: str
    mime: str
    width: int | None = None
    height: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "alt": self.alt, "mime": self.mime}
        if self.width and self.height:
            data["aspect_ratio"] = {"width": self.width, "height": self.height}
        return data


@dataclass(frozen=True)
class Part:
    """One post of a thread, adapted to its platform."""

    text: str
    length: int  # as the platform counts it (Mastodon: with the content warning)
    limit: int
    payload: dict[str, Any]
    images: tuple[Image, ...] = ()
    gates: tuple[dict[str, Any], ...] = ()  # Bluesky: threadgate / postgate records written with the post

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "length": self.length,
            "limit": self.limit,
            "payload": self.payload,
        }
        if self.images:
            data["images"] = [image.to_json() for image in self.images]
        if self.gates:
            data["gates"] = list(self.gates)
        return data


FollowupKind = Literal["boost", "pin", "unpin", "delete", "unboost"]


@dataclass(frozen=True)
class Followup:
    """A write planned on the post once it is published (see :mod:`amplifier.plan.followups`): by ``account``,
    at ``at``, or (``at`` None) ``delay`` after the post is published."""

    kind: FollowupKind
    account: str
    at: datetime | None = None
    delay: timedelta = timedelta(0)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "account": self.account}
        if self.at is not None:
            data["at"] = self.at.isoformat()
        else:
            data["after_published"] = int(self.delay.total_seconds())
        return data


@dataclass(frozen=True)
class PlannedPost:
    """One post (or thread) planned for one account at one instant."""

    id: str
    at: datetime  # aware, in the rule's timezone
    rule: str
    account: str
    platform: Platform
    lang: str
    parts: tuple[Part, ...]
    message_set: str
    variant: int
    event: str | None = None
    warnings: tuple[str, ...] = field(default=())
    followups: tuple[Followup, ...] = field(default=())

    def to_json(self, parts_cache: dict[int, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        """``parts_cache`` lets posts that share one parts tuple (same text on many accounts) share its JSON form."""
        parts = parts_cache.get(id(self.parts)) if parts_cache is not None else None
        if parts is None:
            parts = [part.to_json() for part in self.parts]
            if parts_cache is not None:
                parts_cache[id(self.parts)] = parts
        data: dict[str, Any] = {
            "id": self.id,
            "at": self.at.isoformat(),
            "rule": self.rule,
            "account": self.account,
            "platform": self.platform,
            "lang": self.lang,
            "event": self.event,
            "message_set": self.message_set,
            "variant": self.variant,
            "parts": parts,
        }
        if self.warnings:
            data["warnings"] = list(self.warnings)
        if self.followups:
            data["followups"] = [followup.to_json() for followup in self.followups]
        return data
