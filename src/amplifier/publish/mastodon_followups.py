"""Mastodon follow-up writes (see :mod:`amplifier.publish.followups`).

* **Boost**: ``POST /api/v1/statuses/:id/reblog`` by the boosting account. A status of another instance is first
  found on the booster's own instance by its URL (``GET /api/v2/search?resolve=true``); on the same instance its
  id is used as it is. Reblogging a status already reblogged returns the same reblog (Mastodon's
  ``ReblogService``), so a repeat is a no-op; ``reblogged`` on the status tells whether it is done. Undone with
  ``POST .../unreblog``.
* **Pin**: ``POST /api/v1/statuses/:id/pin`` by the author, after reading ``pinned`` on the status (pinning twice
  is a 422 on Mastodon). Unpin: ``POST .../unpin`` while the status is still pinned.
* **Delete**: ``DELETE /api/v1/statuses/:id`` for each part, last first; a 404 is a part already gone. Mastodon
  allows 30 deletes per 30 minutes per account: the delivery path keeps within that budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from amplifier.publish.base import PermanentError, PublishError, TransientError
from amplifier.publish.followups import Target, WriteKind, WriteOutcome
from amplifier.publish.mastodon_engagement import GONE_STATUSES

if TYPE_CHECKING:
    from amplifier.publish.mastodon import MastodonPublisher


class MastodonFollowups:
    """The follow-up writes of one Mastodon account."""

    def __init__(self, pub: MastodonPublisher) -> None:
        self.pub = pub
        self.account = pub.account
        self._local: dict[str, str] = {}  # status URL -> its id on this account's instance

    # ------------------------------------------------------------------ the protocol

    def write(self, kind: WriteKind, target: Target, when: datetime) -> WriteOutcome:
        pub, api = self.pub, self.pub.api()
        if kind == "delete":
            gone = 0
            for part in reversed(target.parts):
                if self._delete(part.id):
                    gone += 1
            return WriteOutcome(
                f"deleted {len(target.parts) - gone} status(es)" + (f"; {gone} already gone" if gone else ""),
                {"deleted": len(target.parts)},
            )
        try:
            status_id = self._status_id(target)
            if kind in ("unboost", "unpin"):
                self._status(status_id)
        except PublishError as exc:
            if kind in ("unboost", "unpin") and exc.status in GONE_STATUSES:
                return WriteOutcome("the status is gone (and its boosts and pin with it)")
            raise
        if kind == "boost":
            answer = pub._answer(pub._call(api.status_reblog, status_id, write=True), "id", write=True)
            return WriteOutcome(f"boosted status {status_id}", {"id": str(answer["id"])})
        if kind == "unboost":
            pub._call(api.status_unreblog, status_id, write=True)
            return WriteOutcome(f"boost of status {status_id} undone")
        if kind == "pin":
            if self._status(status_id).get("pinned"):
                return WriteOutcome(f"status {status_id} already pinned")
            pub._call(api.status_pin, status_id, write=True)
            return WriteOutcome(f"pinned status {status_id}")
        if kind == "unpin":
            if not self._status(status_id).get("pinned"):
                return WriteOutcome(f"status {status_id} is not pinned: left as it is")
            pub._call(api.status_unpin, status_id, write=True)
            return WriteOutcome(f"unpinned status {status_id}")
        raise PermanentError(f"unknown follow-up {kind!r}")  # pragma: no cover - WriteKind is closed

    def is_done(self, kind: WriteKind, target: Target, when: datetime) -> bool:
        if kind == "delete":
            return all(self._gone(part.id) for part in target.parts)
        try:
            status = self._status(self._status_id(target))
        except PublishError as exc:
            if kind in ("unboost", "unpin") and exc.status in GONE_STATUSES:
                return True  # the status is gone, and its boosts and pin with it
            raise
        if kind == "boost":
            return bool(status.get("reblogged"))
        if kind == "unboost":
            return not status.get("reblogged")
        if kind == "pin":
            return bool(status.get("pinned"))
        return not status.get("pinned")

    # ------------------------------------------------------------------ helpers

    def _status(self, status_id: str) -> Mapping[str, Any]:
        pub = self.pub
        return pub._answer(pub._call(pub.api().status, status_id), "id")

    def _gone(self, status_id: str) -> bool:
        """Whether the status is gone (read it)."""
        return _gone_instead(self._status, status_id)

    def _delete(self, status_id: str) -> bool:
        """Delete one status; whether it was already gone."""
        pub = self.pub
        return _gone_instead(lambda status: pub._call(pub.api().status_delete, status, write=True), status_id)

    def _status_id(self, target: Target) -> str:
        """The id of the post's first status on this account's instance."""
        root = target.root
        if target.server is None or target.server.rstrip("/") == self.pub.base_url:
            return root.id
        if not root.url:
            raise PermanentError(
                f"{target.post_id}: the ledger has no URL of the status to find it elsewhere"
            )
        if root.url not in self._local:
            pub = self.pub
            answer = pub._call(pub.api().search_v2, root.url, resolve=True, result_type="statuses")
            statuses = (answer or {}).get("statuses") or [] if isinstance(answer, Mapping) else []
            if not statuses or not statuses[0].get("id"):
                raise TransientError(f"{pub.base_url} does not know {root.url} yet; will retry")
            self._local[root.url] = str(statuses[0]["id"])
        return self._local[root.url]


def followups(pub: MastodonPublisher) -> MastodonFollowups:
    """The follow-up writes of ``pub``'s account: the publisher's ``followups()``."""
    return MastodonFollowups(pub)


def _gone_instead(call: Callable[[str], object], status_id: str) -> bool:
    """``call(status_id)``; True when the server answered that the status is gone (404, 410) instead."""
    try:
        call(status_id)
    except PublishError as exc:
        if exc.status in GONE_STATUSES:
            return True
        raise
    return False
