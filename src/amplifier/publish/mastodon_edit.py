"""Editing a published Mastodon status (``amplifier correct``): ``PUT /api/v1/statuses/:id``.

* :func:`status_source` reads what the status says now (``GET /api/v1/statuses/:id/source``: its plain text and
  content warning, as typed), so a correction compares with the server, not with what we think we sent.
* :func:`edit_status` replaces its text, content warning and ``sensitive`` flag (Mastodon.py ``status_update``).
  The media stay: their ids are sent again (an edit without ``media_ids`` removes them on a real server), with
  their alt text as it is. The quote policy is sent again where the instance has one (Mastodon 4.5+).

Bluesky has no edits: a record changed in place is not shown as edited and breaks the replies and quotes that
point at its CID; a correction there is ``amplifier retract`` then ``amplifier send``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from amplifier.publish import mastodon_controls

if TYPE_CHECKING:
    from amplifier.publish.mastodon import MastodonPublisher


def status_source(pub: MastodonPublisher, status_id: str) -> tuple[str, str]:
    """The status's text and content warning as the server has them now."""
    api = pub.api()
    source = pub._answer(pub._call(api.status_source, status_id), "id")
    return str(source.get("text") or ""), str(source.get("spoiler_text") or "")


def edit_status(pub: MastodonPublisher, status_id: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Replace the text (and content warning, sensitive flag, quote policy) of ``status_id`` with those of the
    planned part's ``payload``; its media stay. Returns the edited status."""
    api = pub.api()
    current = pub._answer(pub._call(api.status, status_id), "id")
    media = [str(item["id"]) for item in current.get("media_attachments") or [] if item.get("id")]
    params: dict[str, Any] = {
        "status": str(payload.get("status", "")),
        "spoiler_text": str(payload.get("spoiler_text") or ""),
        "sensitive": bool(payload.get("sensitive")),
    }
    if media:
        params["media_ids"] = media
    policy = payload.get(mastodon_controls.QUOTE_KEY)
    if policy is not None and mastodon_controls.supports_quote_policy(pub.limits()):
        params[mastodon_controls.QUOTE_KEY] = policy
    return pub._answer(pub._call(api.status_update, status_id, write=True, **params), "id", write=True)
