"""Bluesky follow-up writes (see :mod:`amplifier.publish.followups`).

* **Repost**: an ``app.bsky.feed.repost`` record ``{subject: {uri, cid}, createdAt}`` in the reposting account's
  repository, written with ``putRecord`` at :func:`~amplifier.publish.followups.repost_key` with ``createdAt`` the
  job's due time: the same record at the same key, so a repeat is a no-op and ``getRecord`` tells whether it is
  there. Undone with ``deleteRecord``.
* **Pin**: the profile record (``app.bsky.actor.profile``/``self``) gets ``pinnedPost`` (the root's strong ref),
  written with ``swapRecord`` (the CID read just before) so a profile edited meanwhile is read again, never
  overwritten. Unpin removes ``pinnedPost`` only while it is still this post.
* **Delete**: ``deleteRecord`` of each part's post, threadgate and postgate (all at the part's record key), last
  part first. Deleting a record that is not there succeeds: a repeat is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from amplifier.plan.gates import POSTGATE, THREADGATE
from amplifier.publish.base import PermanentError, PublishError, TransientError
from amplifier.publish.bluesky_controls import PROFILE
from amplifier.publish.followups import Target, WriteKind, WriteOutcome, repost_key

if TYPE_CHECKING:
    from amplifier.publish.bluesky import BlueskyPublisher

REPOST = "app.bsky.feed.repost"
SWAP_TRIES = 3


class BlueskyFollowups:
    """The follow-up writes of one Bluesky account."""

    def __init__(self, pub: BlueskyPublisher) -> None:
        self.pub = pub
        self.account = pub.account

    # ------------------------------------------------------------------ the protocol

    def write(self, kind: WriteKind, target: Target, when: datetime) -> WriteOutcome:
        if kind == "boost":
            return self._repost(target, when)
        if kind == "unboost":
            rkey = repost_key(target.post_id, self.account, target.root.id)
            self._delete(REPOST, rkey)
            return WriteOutcome(f"repost {rkey} deleted")
        if kind == "pin":
            return self._pin(target)
        if kind == "unpin":
            return self._unpin(target)
        if kind == "delete":
            return self._delete_post(target)
        raise PermanentError(f"unknown follow-up {kind!r}")  # pragma: no cover - WriteKind is closed

    def is_done(self, kind: WriteKind, target: Target, when: datetime) -> bool:
        pub = self.pub
        if kind in ("boost", "unboost"):
            there = (
                pub._get_record(repost_key(target.post_id, self.account, target.root.id), REPOST) is not None
            )
            return there if kind == "boost" else not there
        if kind in ("pin", "unpin"):
            pinned = _pinned_uri(self._profile())
            return pinned == target.root.uri if kind == "pin" else pinned != target.root.uri
        return all(pub._get_record(part.id) is None for part in target.parts)

    # ------------------------------------------------------------------ writes

    def _repost(self, target: Target, when: datetime) -> WriteOutcome:
        root = target.root
        if not root.uri or not root.cid:
            raise PermanentError(f"{target.post_id}: the ledger has no uri and cid of the post to repost")
        rkey = repost_key(target.post_id, self.account, target.root.id)
        record = {
            "$type": REPOST,
            "subject": {"uri": root.uri, "cid": root.cid},
            "createdAt": _iso(when),
        }
        out = self.pub._put_record(rkey, record, REPOST)
        return WriteOutcome(f"reposted as {rkey}", {"uri": out["uri"], "cid": out["cid"]})

    def _delete(self, collection: str, rkey: str) -> None:
        self.pub._procedure(
            "com.atproto.repo.deleteRecord", {"repo": self.pub.did, "collection": collection, "rkey": rkey}
        )

    def _delete_post(self, target: Target) -> WriteOutcome:
        for part in reversed(target.parts):
            for collection in (THREADGATE, POSTGATE, "app.bsky.feed.post"):
                self._delete(collection, part.id)
        return WriteOutcome(f"deleted {len(target.parts)} post(s) and their gates")

    def _profile(self) -> dict[str, Any] | None:
        return self.pub._get_record("self", PROFILE)

    def _pin(self, target: Target) -> WriteOutcome:
        root = target.root
        if not root.uri or not root.cid:
            raise PermanentError(f"{target.post_id}: the ledger has no uri and cid of the post to pin")
        pinned = {"uri": root.uri, "cid": root.cid}
        return self._swap_profile(lambda value: {**value, "pinnedPost": pinned}, "pinned")

    def _unpin(self, target: Target) -> WriteOutcome:
        def change(value: dict[str, Any]) -> dict[str, Any] | None:
            if _pinned_uri({"value": value}) != target.root.uri:
                return None  # another post is pinned now (or none): leave the profile as it is
            return {key: item for key, item in value.items() if key != "pinnedPost"}

        return self._swap_profile(change, "unpinned")

    def _swap_profile(
        self, change: Callable[[dict[str, Any]], dict[str, Any] | None], done: str
    ) -> WriteOutcome:
        """Apply ``change`` to the profile record with ``swapRecord``; read again when it changed meanwhile."""
        last: PublishError | None = None
        for _ in range(SWAP_TRIES):
            profile = self._profile()
            value: dict[str, Any] = dict((profile or {}).get("value") or {"$type": PROFILE})
            value.setdefault("$type", PROFILE)
            new = change(value)
            if new is None:
                return WriteOutcome("not the pinned post any more: left as it is")
            if new == value:
                return WriteOutcome(f"already {done}")
            data: dict[str, Any] = {
                "repo": self.pub.did,
                "collection": PROFILE,
                "rkey": "self",
                "record": new,
            }
            if profile is not None and profile.get("cid"):
                data["swapRecord"] = profile["cid"]
            try:
                out = self.pub._procedure("com.atproto.repo.putRecord", data)
            except PermanentError as exc:
                if "InvalidSwap" not in str(exc):
                    raise
                last = exc  # the profile changed between the read and the write: read it again
                continue
            return WriteOutcome(done, {"uri": out.get("uri"), "cid": out.get("cid")})
        raise TransientError(f"the profile kept changing while it was {done}: {last}; will retry")


def _pinned_uri(profile: Mapping[str, Any] | None) -> str | None:
    pinned = ((profile or {}).get("value") or {}).get("pinnedPost")
    return str(pinned.get("uri")) if isinstance(pinned, Mapping) and pinned.get("uri") else None


def _iso(when: datetime) -> str:
    instant = when.astimezone(UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def followups(pub: BlueskyPublisher) -> BlueskyFollowups:
    """The follow-up writes of ``pub``'s account: the publisher's ``followups()``."""
    return BlueskyFollowups(pub)
