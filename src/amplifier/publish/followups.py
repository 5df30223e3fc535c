"""Follow-up writes on a published post: boost / unboost, pin / unpin, delete (issue 13).

A publisher that can make them has ``followups()``, which answers a :class:`FollowupWriter` for its account
(:mod:`amplifier.publish.mastodon_followups`, :mod:`amplifier.publish.bluesky_followups`). Both methods take the
:class:`Target` (the published post, as the ledger recorded it) and ``when`` (the job's due time, stable across
retries):

* :meth:`FollowupWriter.write` makes the write. Every write is safe to repeat: a Bluesky repost is written with
  ``putRecord`` at a record key derived from the post id and the reposting account (:func:`repost_key`) with a
  deterministic record, so a repeat is a no-op; deletes answer "already gone" as done; a Mastodon reblog of a
  status already reblogged returns the same reblog; a pin is checked before it is repeated; a Bluesky profile is
  written with ``swapRecord`` so a profile changed meanwhile is never overwritten.
* :meth:`FollowupWriter.is_done` reads the server: whether the write is there (a boost, a pin) or the post is gone
  (a delete). The delivery path asks it after an unknown outcome, before it writes again.

Errors are the publishers' classified :class:`~amplifier.publish.base.PublishError` classes.

* ``boost`` / ``unboost``: by the boosting account, of the post's first part (a thread is boosted by its root).
* ``pin`` / ``unpin``: by the author, the first part. Unpin only removes the pin when the post is still the pinned
  one (Bluesky keeps one ``pinnedPost`` on the profile; Mastodon unpins that status only).
* ``delete``: by the author, every part of a thread, last first; on Bluesky with the parts' threadgate and postgate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

WriteKind = Literal["boost", "unboost", "pin", "unpin", "delete"]
WRITE_KINDS: tuple[WriteKind, ...] = ("boost", "unboost", "pin", "unpin", "delete")


@dataclass(frozen=True)
class TargetPart:
    """One published part: ``id`` the Mastodon status id or the Bluesky record key; ``uri`` / ``cid`` Bluesky's
    strong reference; ``url`` the public address (Mastodon: how another instance finds the status)."""

    index: int
    id: str
    url: str | None = None
    uri: str | None = None
    cid: str | None = None


@dataclass(frozen=True)
class Target:
    """The published post a follow-up acts on."""

    post_id: str
    author: str
    parts: tuple[TargetPart, ...]
    server: str | None = (
        None  # Mastodon: the author's instance base URL (a booster elsewhere resolves the URL)
    )

    @property
    def root(self) -> TargetPart:
        return self.parts[0]

    @classmethod
    def from_result(
        cls, post_id: str, author: str, result: list[dict[str, Any]], server: str | None = None
    ) -> Target:
        """From the ledger's ``result`` (one :meth:`PartResult.to_json` per part)."""
        parts = tuple(
            TargetPart(
                index=int(part.get("index", index)),
                id=str(part.get("id") or ""),
                url=part.get("url"),
                uri=part.get("uri"),
                cid=part.get("cid"),
            )
            for index, part in enumerate(result)
        )
        return cls(post_id, author, parts, server)


@dataclass(frozen=True)
class WriteOutcome:
    """What a follow-up write did, for the ledger: ``detail`` in words, ``record`` where it went (a reblog's id,
    a repost's uri...)."""

    detail: str
    record: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class FollowupWriter(Protocol):
    account: str

    def write(self, kind: WriteKind, target: Target, when: datetime) -> WriteOutcome: ...

    def is_done(self, kind: WriteKind, target: Target, when: datetime) -> bool: ...


@runtime_checkable
class WritesFollowups(Protocol):
    def followups(self) -> FollowupWriter: ...


def repost_key(post_id: str, account: str, root_rkey: str) -> str:
    """The Bluesky record key (a TID) of ``account``'s repost of post ``post_id`` whose first part is at record key
    ``root_rkey``: the same post and account always give the same key (near the post's own time), whenever the
    repost is written or deleted."""
    from datetime import UTC

    from amplifier.publish.bluesky_tid import decode_tid, record_key

    micros, _clock = decode_tid(root_rkey)
    at = datetime.fromtimestamp(micros // 1_000_000, tz=UTC)
    return record_key(f"{post_id}\x00repost\x00{account}", 0, at)
