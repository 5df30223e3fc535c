"""The record of a Bluesky post part, built from its planned payload: every placeholder resolved (images
uploaded as blobs, link cards fetched, mentions resolved to DIDs, replies pointed at the parts already written),
and the platform's limits checked.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from amplifier.plan.post import CARD, REF, UPLOAD, Part
from amplifier.platforms.bluesky_text import HANDLE, MAX_BYTES, MAX_GRAPHEMES, grapheme_length, utf8_length
from amplifier.publish.base import (
    PartResult,
    PermanentError,
    find_placeholders,
    part_image,
    placeholder,
    ref_index,
)
from amplifier.publish.bluesky_repo import COLLECTION, BlueskyRepo
from amplifier.publish.linkcard import CardError, fetch_card, fetch_image
from amplifier.publish.media import MAX_BLOB_BYTES, ImageError, prepare_image

log = logging.getLogger(__name__)

MAX_IMAGES = 4


class RecordBuilder(BlueskyRepo):
    """Builds the records of a post's parts (see the module docstring)."""

    def _upload_image(self, part: Part, path: str) -> tuple[dict[str, Any], tuple[int, int]]:
        image = part_image(part, path)
        try:
            prepared = prepare_image(self.ctx.image_file(path), image.mime, max_bytes=MAX_BLOB_BYTES)
        except ImageError as exc:
            raise PermanentError(str(exc)) from None
        if prepared.reencoded:
            log.info(
                "%s: %s re-encoded to %d bytes to fit Bluesky's blob limit",
                self.account,
                path,
                len(prepared.data),
            )
        return self._upload_blob(prepared.data, prepared.mime), (prepared.width, prepared.height)

    def _card(self, url: str) -> dict[str, Any] | None:
        """The ``app.bsky.embed.external#external`` for ``url``, or ``None`` (logged) when the page fails."""
        own = self._http is None
        http = self._http or httpx.Client(timeout=self.ctx.card_timeout, follow_redirects=True)
        try:
            card = fetch_card(url, timeout=self.ctx.card_timeout, client=http)
            external: dict[str, Any] = {"uri": card.uri, "title": card.title, "description": card.description}
            if card.image_url:
                try:
                    data = fetch_image(card.image_url, timeout=self.ctx.card_timeout, client=http)
                    thumb = prepare_image(data, max_bytes=MAX_BLOB_BYTES)
                    external["thumb"] = self._upload_blob(thumb.data, thumb.mime)
                except (CardError, ImageError) as exc:
                    log.warning("%s: link card for %s without its image: %s", self.account, url, exc)
            return external
        except CardError as exc:
            log.warning("%s: posting without a link card for %s: %s", self.account, url, exc)
            return None
        finally:
            if own:
                http.close()

    def build_record(self, part: Part, done: Mapping[int, PartResult]) -> dict[str, Any]:
        """The record to write for ``part``, every placeholder resolved (uploads happen here)."""
        record = copy.deepcopy(dict(part.payload))
        record.setdefault("$type", COLLECTION)
        text = str(record.get("text", ""))
        graphemes, size = grapheme_length(text), utf8_length(text)
        if graphemes > MAX_GRAPHEMES or size > MAX_BYTES:
            raise PermanentError(
                f"the text is {graphemes} graphemes / {size} bytes; Bluesky allows {MAX_GRAPHEMES} / {MAX_BYTES}"
            )
        embed = record.get("embed")
        if isinstance(embed, dict):
            etype = embed.get("$type")
            if etype == "app.bsky.embed.images":
                images = embed.get("images") or []
                if len(images) > MAX_IMAGES:
                    raise PermanentError(f"{len(images)} images; Bluesky allows {MAX_IMAGES} per post")
                for entry in images:
                    hit = placeholder(entry.get("image"))
                    if hit is not None and hit[0] == UPLOAD:
                        blob, (width, height) = self._upload_image(part, str(hit[1]))
                        entry["image"] = blob
                        if "aspectRatio" not in entry and width and height:
                            entry["aspectRatio"] = {"width": width, "height": height}
            elif etype == "app.bsky.embed.external":
                hit = placeholder(embed.get("external"))
                if hit is not None and hit[0] == CARD:
                    external = self._card(str(hit[1]))
                    if external is None:
                        del record["embed"]
                    else:
                        embed["external"] = external
        for facet in record.get("facets") or []:
            for feature in facet.get("features") or []:
                hit = placeholder(feature.get("did"))
                if hit is not None and hit[0] == HANDLE:
                    feature["did"] = self.resolve_handle(str(hit[1]))
        reply = record.get("reply")
        if isinstance(reply, dict):
            for key in ("root", "parent"):
                hit = placeholder(reply.get(key))
                if hit is not None and hit[0] == REF:
                    index = ref_index(hit[1])
                    if index not in done or not done[index].uri or not done[index].cid:
                        raise PermanentError(f"part {index} must be published before a reply to it")
                    reply[key] = {"uri": done[index].uri, "cid": done[index].cid}
        left = find_placeholders(record)
        if left:
            raise PermanentError(f"unresolved placeholder(s) in the record: {left}")
        return record
