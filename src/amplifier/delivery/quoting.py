"""A quote post waits for the post it quotes: the quoted post's published result in the ledger fills the quote.

A planned post with a quote (:attr:`~amplifier.plan.post.PlannedPost.quote`, the quoted post's id) carries the
placeholder ``{"$quote": "post"}`` (:mod:`amplifier.plan.quotes`). Before the delivery path claims it,
:func:`quote_ready` reads the quoted post's row:

* published: the placeholder becomes the platform's reference (Mastodon: the status id; Bluesky: the strong ref
  ``{uri, cid}`` of the quoted post's first part), and the post goes out (in a dry run, whose results have no
  platform id, the placeholder stays, showing what it quotes);
* planned or claimed (or not in the ledger yet): the post waits (:data:`QUOTE_WAIT`), nothing is claimed or
  sent; its window still applies, so a quote whose quoted post never comes expires like any late post;
* finished without being published (failed, expired, skipped, cancelled), or published and then retracted
  (``amplifier retract``, ``delete_after``): the post goes out without
  the quote, and the delivery path reports it (``quote-dropped``): a call that stands on its own is better posted
  than lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from amplifier.delivery.ledger import Ledger, State, UnknownPost
from amplifier.plan.post import PlannedPost
from amplifier.plan.quotes import resolve_quote
from amplifier.publish.base import PublishError

QUOTE_WAIT = timedelta(minutes=1)
"""How long a quote post waits before its quoted post is looked at again."""


class QuoteNotReady(PublishError):
    """The post quotes a post that is not published yet: nothing was sent (``amplifier send`` says so)."""

    kind = "waiting"


@dataclass(frozen=True)
class QuoteReady:
    """What :func:`quote_ready` found: the post to send (its quote filled or left out), or the wait."""

    post: PlannedPost
    waiting_for: str | None = None  # the quoted post's id while it is not published
    dropped: str | None = None  # why the quote was left out

    def error(self) -> QuoteNotReady:
        return QuoteNotReady(
            f"{self.post.id} quotes {self.waiting_for}, which is not published yet: it goes out after it "
            f"(`amplifier send {self.waiting_for}` first)",
            account=self.post.account,
            post_id=self.post.id,
        )


def quote_ready(ledger: Ledger, post: PlannedPost) -> QuoteReady:
    """The post as it can be sent now, or whether it must wait for the post it quotes (see the module docstring)."""
    if post.quote is None:
        return QuoteReady(resolve_quote(post, None))
    try:
        row = ledger.get(post.quote)
    except UnknownPost:
        return QuoteReady(post, waiting_for=post.quote)
    if row.state == State.PUBLISHED and post.quote in ledger.retractions([post.quote]):
        # retracted (its deletion planned, running or done): still "published" in the ledger, gone from readers
        return QuoteReady(resolve_quote(post, None), dropped=f"{post.quote} is retracted")
    if row.state == State.PUBLISHED:
        first = (row.result or ({},))[0] or row.parts.get(0) or {}
        mastodon = post.platform == "mastodon"
        if first.get("id") if mastodon else (first.get("uri") and first.get("cid")):
            return QuoteReady(resolve_quote(post, first))
        return QuoteReady(
            post
        )  # a dry run's "published" (no platform id): the placeholder shows what it quotes
    if row.state in (State.PLANNED, State.CLAIMED):
        return QuoteReady(post, waiting_for=post.quote)
    reason = f"{post.quote} is {row.state.value}" + (f" ({row.last_error})" if row.last_error else "")
    return QuoteReady(resolve_quote(post, None), dropped=reason)
