"""Reading back the counts of Mastodon statuses: ``GET /api/v1/statuses/:id``, one request per part.

``favourites_count`` (likes), ``reblogs_count`` (reposts), ``replies_count`` and ``quotes_count`` (Mastodon
4.5+; ``None`` where the server has no such field). A status the server answers 404 or 410 for was deleted
(by us, a moderator, or with its account): a reading with ``gone=True``, not an error.

A base of :class:`~amplifier.publish.mastodon.MastodonPublisher`; the client and the classified calls are
:class:`~amplifier.publish.mastodon_client.MastodonClient`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from amplifier.publish.base import PermanentError, PublishError
from amplifier.publish.engagement import Engagement, PublishedPart, count
from amplifier.publish.mastodon_client import MastodonClient

#: The statuses a server answers for a deleted status.
GONE_STATUSES = frozenset({404, 410})


class StatusEngagement(MastodonClient):
    """``read_engagement`` for the Mastodon publisher (see the module docstring)."""

    def read_engagement(self, parts: Sequence[PublishedPart]) -> list[Engagement]:
        """The counts of ``parts`` (their ``id`` is the status id), in order; see the module docstring."""
        readings: list[Engagement] = []
        for part in parts:
            if not part.id:
                raise PermanentError(f"{self.account}: part {part.index} of {part.post_id} has no status id")
            try:
                status = self._answer(self._call(self.plain_api().status, part.id), "id")
            except PublishError as exc:
                if exc.status in GONE_STATUSES:
                    readings.append(Engagement(part.post_id, part.index, self.ctx.clock(), gone=True))
                    continue
                raise
            readings.append(
                Engagement(
                    post_id=part.post_id,
                    index=part.index,
                    read_at=self.ctx.clock(),
                    likes=count(status.get("favourites_count")),
                    reposts=count(status.get("reblogs_count")),
                    replies=count(status.get("replies_count")),
                    quotes=count(status.get("quotes_count")),
                )
            )
        return readings
