"""Publishing to Bluesky (any AT Protocol PDS) with the ``atproto`` SDK.

* **Exactly once.** Each part is written with ``com.atproto.repo.putRecord`` at a record key derived from
  the post's stable id and the part's index (:func:`~amplifier.publish.bluesky_tid.record_key`). The record is
  deterministic too (``createdAt`` is the slot time), so writing it again is a no-op that returns the same CID: a
  retry never creates a second post. (``createRecord`` with an existing key answers HTTP 500,
  bluesky-social/atproto#3718, hence ``putRecord``.) ``getRecord`` is only asked when resuming after an
  unknown outcome or when looking up a post, so the steady state is ONE request per text post.
* The publisher is built in layers, one concept each: the session and classified calls
  (:mod:`~amplifier.publish.bluesky_session`), the repository's records and blobs
  (:mod:`~amplifier.publish.bluesky_repo`), the records built from the plan
  (:mod:`~amplifier.publish.bluesky_records`), reading engagement back through the PDS to its AppView
  (:mod:`~amplifier.publish.bluesky_engagement`), reply/quote gates and the automation label
  (:mod:`~amplifier.publish.bluesky_controls`).

The atproto package is imported lazily, inside the functions that use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from amplifier.plan.post import PlannedPost
from amplifier.platforms.bluesky_text import MAX_BYTES, MAX_GRAPHEMES
from amplifier.publish import bluesky_controls, bluesky_followups
from amplifier.publish.base import AccountInfo, PartResult, PublishError, PublishResult
from amplifier.publish.bluesky_controls import missing_gates, write_missing_gates, write_with_gates
from amplifier.publish.bluesky_engagement import BlueskyEngagement
from amplifier.publish.bluesky_records import MAX_IMAGES as MAX_IMAGES  # re-exported
from amplifier.publish.bluesky_records import RecordBuilder
from amplifier.publish.bluesky_repo import COLLECTION as COLLECTION  # re-exported
from amplifier.publish.bluesky_tid import TID_PATTERN as TID_PATTERN  # re-exported
from amplifier.publish.bluesky_tid import decode_tid as decode_tid  # re-exported
from amplifier.publish.bluesky_tid import encode_tid as encode_tid  # re-exported
from amplifier.publish.bluesky_tid import public_url, record_key
from amplifier.publish.media import MAX_BLOB_BYTES

if TYPE_CHECKING:
    from atproto import Client


class BlueskyPublisher(RecordBuilder, BlueskyEngagement):
    """Publishes to one Bluesky account; one SDK client, reused for every post."""

    platform = "bluesky"

    def _result(self, index: int, rkey: str, uri: str, cid: str, existed: bool) -> PartResult:
        author = self._handle or self.settings.handle
        return PartResult(
            index=index, id=rkey, url=public_url(author, rkey), uri=uri, cid=cid, existed=existed
        )

    # ------------------------------------------------------------------ Publisher

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        found: dict[int, PartResult] = {}
        for index in range(len(post.parts)):
            rkey = record_key(post.id, index, post.at)
            existing = self._get_record(rkey)
            if existing is None or missing_gates(self, rkey, post.parts[index]):
                break  # a part without its gates is not done: publishing it again writes them
            found[index] = self._result(index, rkey, existing["uri"], existing["cid"], existed=True)
        return found

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        done: dict[int, PartResult] = dict(resume or {})
        unknown = resume is not None  # resuming: a part may have been written by the attempt that failed
        try:
            for index, part in enumerate(post.parts):
                if index in done:
                    continue
                rkey = record_key(post.id, index, post.at)
                if unknown:
                    existing = self._get_record(rkey)
                    if existing is not None:
                        write_missing_gates(self, rkey, part)
                        done[index] = self._result(
                            index, rkey, existing["uri"], existing["cid"], existed=True
                        )
                        continue
                    unknown = False  # later parts reply to this one: they cannot exist yet
                record = self.build_record(part, done)
                if part.gates:
                    uri, cid, existed = write_with_gates(self, rkey, record, part)
                else:
                    out, existed = self._put_record(rkey, record), False
                    uri, cid = str(out["uri"]), str(out["cid"])
                done[index] = self._result(index, rkey, uri, cid, existed=existed)
        except PublishError as exc:
            raise exc.with_context(done=done, account=self.account, post_id=post.id) from None
        parts = tuple(done[i] for i in range(len(post.parts)))
        return PublishResult(post_id=post.id, account=self.account, platform=self.platform, parts=parts)

    def check(self) -> AccountInfo:
        def call(client: Client) -> dict[str, Any]:
            return dict(client.invoke_query("com.atproto.server.getSession").content)

        info: dict[str, Any] = self._call(call, reading="the session (com.atproto.server.getSession)")
        return AccountInfo(
            account=self.account,
            platform=self.platform,
            ok=True,
            handle=str(info.get("handle")),
            id=str(info.get("did")),
            url=f"https://bsky.app/profile/{info.get('handle')}",
            server=self.service,
            limits={
                "max_graphemes": MAX_GRAPHEMES,
                "max_bytes": MAX_BYTES,
                "max_images": MAX_IMAGES,
                "max_blob_bytes": MAX_BLOB_BYTES,
            },
            bot=self.automation(),
        )

    # ------------------------------------------------------------------ controls (bluesky_controls)

    set_gates = bluesky_controls.set_gates
    automation = bluesky_controls.automation
    disclose_automation = bluesky_controls.disclose_automation
    followups = bluesky_followups.followups  # repost, pin, delete on a published post
