"""Reading back the counts of Bluesky posts: ``app.bsky.feed.getPosts`` through the account's PDS.

The PDS proxies ``app.bsky.*`` queries to its AppView, which alone knows likes, reposts, replies and quotes.
Up to :data:`~amplifier.publish.engagement.GET_POSTS_MAX` URIs a request. A URI missing from the answer is a
post the AppView does not show: deleted, taken down, or not indexed yet. ``com.atproto.repo.getRecord`` on
the PDS tells them apart (only for the missing ones): no record is ``gone``; a record still there is left
out of the answer, to be read again later.

A base of :class:`~amplifier.publish.bluesky.BlueskyPublisher`; the session and the classified calls are
:class:`~amplifier.publish.bluesky_session.BlueskySession`'s. The atproto package is imported lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from amplifier.publish.base import PermanentError
from amplifier.publish.bluesky_session import BlueskySession
from amplifier.publish.engagement import GET_POSTS_MAX, Engagement, PublishedPart, batches, count

log = logging.getLogger(__name__)

POST_COLLECTION = "app.bsky.feed.post"


def split_uri(uri: str) -> tuple[str, str, str]:
    """``(repo, collection, rkey)`` of ``at://repo/collection/rkey``; ``ValueError`` for anything else."""
    if not uri.startswith("at://"):
        raise ValueError(f"not an at:// URI: {uri!r}")
    pieces = uri[5:].split("/")
    if len(pieces) != 3 or not all(pieces):
        raise ValueError(f"not an at://repo/collection/rkey URI: {uri!r}")
    return pieces[0], pieces[1], pieces[2]


class BlueskyEngagement(BlueskySession):
    """``read_engagement`` for the Bluesky publisher (see the module docstring)."""

    def read_engagement(self, parts: Sequence[PublishedPart]) -> list[Engagement]:
        """The counts of ``parts`` (their ``uri`` is required), one ``getPosts`` per 25; see the module."""
        wanted: list[tuple[PublishedPart, str]] = []
        for part in parts:
            where = f"{self.account}: part {part.index} of {part.post_id}"
            if not part.uri:
                raise PermanentError(f"{where} has no at:// URI")
            try:
                split_uri(part.uri)  # refuse garbage before asking anyone
            except ValueError as exc:
                raise PermanentError(f"{where}: {exc}") from None
            wanted.append((part, part.uri))
        readings: list[Engagement] = []
        for batch in batches(wanted, GET_POSTS_MAX):
            views = self._get_posts([uri for _, uri in batch])
            read_at = self.ctx.clock()
            for part, uri in batch:
                view = views.get(uri)
                if view is not None:
                    readings.append(
                        Engagement(
                            post_id=part.post_id,
                            index=part.index,
                            read_at=read_at,
                            likes=count(view.get("likeCount")),
                            reposts=count(view.get("repostCount")),
                            replies=count(view.get("replyCount")),
                            quotes=count(view.get("quoteCount")),
                        )
                    )
                elif self._record_gone(uri):
                    readings.append(Engagement(part.post_id, part.index, self.ctx.clock(), gone=True))
                else:
                    log.info("%s: %s is not in the AppView yet; read it again later", self.account, uri)
        return readings

    def _get_posts(self, uris: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{uri: post view}`` of ``app.bsky.feed.getPosts`` (views of other URIs are ignored)."""

        from atproto_client import models

        def call(client: Any) -> dict[str, dict[str, Any]]:
            response = client.invoke_query(
                "app.bsky.feed.getPosts", params=models.AppBskyFeedGetPosts.Params(uris=list(uris))
            )
            content = response.content
            posts = content["posts"] if isinstance(content, dict) else content.posts
            views: dict[str, dict[str, Any]] = {}
            for post in posts:
                view = dict(post) if isinstance(post, dict) else post.model_dump(by_alias=True)
                uri = view["uri"]
                if not isinstance(uri, str):
                    raise TypeError("a post view without a uri")
                views[uri] = view
            return views

        what = f"the counts of {len(uris)} post(s) (app.bsky.feed.getPosts)"
        result: dict[str, dict[str, Any]] = self._call(call, reading=what)
        return result

    def _record_gone(self, uri: str) -> bool:
        """Whether the record at ``uri`` is no longer in its repository (``RecordNotFound``)."""
        from atproto_client import exceptions as ex
        from atproto_client import models

        from amplifier.publish.bluesky_errors import xrpc_error

        repo, collection, rkey = split_uri(uri)

        def call(client: Any) -> bool:
            try:
                client.invoke_query(
                    "com.atproto.repo.getRecord",
                    params=models.ComAtprotoRepoGetRecord.Params(repo=repo, collection=collection, rkey=rkey),
                )
            except ex.BadRequestError as exc:
                _, name, _, _ = xrpc_error(exc)
                if name == "RecordNotFound":
                    return True
                raise
            return False

        gone: bool = self._call(call, reading=f"the record at {uri}")
        return gone
