"""Looking for a post among a Mastodon account's own statuses, when a request's outcome is unknown and the
``Idempotency-Key``'s hour is over (:meth:`StatusSearch.find_published`).

``verify_credentials`` once for the account id, then ``GET /api/v1/accounts/:id/statuses``, 40 a page, newest
first, back to the instant the request could have been made (less a margin for the server's clock), at most
:data:`LOOKUP_PAGES` pages. A status matches a part when its text, content warning, language, images and
``in_reply_to_id`` agree (:mod:`amplifier.publish.mastodon_match`); a status the ledger already gives to another
post is never a match.

A base of :class:`~amplifier.publish.mastodon.MastodonPublisher`; the client and the classified calls are
:class:`~amplifier.publish.mastodon_client.MastodonClient`'s.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from amplifier.plan.post import REF, UPLOAD, Part, PlannedPost
from amplifier.publish.base import (
    PartResult,
    PermanentError,
    PublishError,
    TransientError,
    part_image,
    placeholder,
    ref_index,
)
from amplifier.publish.mastodon_client import MastodonClient, status_part
from amplifier.publish.mastodon_match import (
    aware_time,
    by_closeness,
    comparable,
    html_to_text,
    id_or_none,
    language_matches,
)

# Looking for a post among the account's statuses: statuses a page (the API's maximum), pages at most, and
# how much earlier than the first possible request a status may be stamped (the server's clock is not ours).
LOOKUP_PAGE_SIZE = 40
LOOKUP_PAGES = 5
LOOKUP_MARGIN = timedelta(minutes=10)


class LookupIncomplete(PermanentError):
    """The account's statuses could not be searched far enough back to say whether a post is out."""


class StatusSearch(MastodonClient):
    """The search for a post among the account's statuses (see the module docstring)."""

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        """The parts of ``post`` among the account's statuses since its slot time (less a margin).

        Use :meth:`find_published` when the earliest instant the post could have been sent is known (a post
        sent ahead of its slot with ``amplifier send`` is older than its slot time)."""
        return self.find_published(post, since=post.at)

    def find_published(
        self,
        post: PlannedPost,
        *,
        since: datetime,
        known: Mapping[int, PartResult] | None = None,
        taken: Collection[str] = frozenset(),
    ) -> dict[int, PartResult]:
        """The parts of ``post`` the account published at or after ``since`` (less :data:`LOOKUP_MARGIN`).

        ``known`` are parts already known to be out (their ids anchor the replies of the next parts); they are
        not returned again. ``taken``: status ids the ledger already gives to other posts (any part): never a
        match, however alike the texts. Among several statuses that match (the same text posted twice), the
        one created closest to ``since`` is taken (:func:`by_closeness`). The parts found are the thread's
        first ones up to the first part missing: the thread resumes there. Raises :class:`LookupIncomplete`
        when :data:`LOOKUP_PAGES` pages do not reach back to ``since`` (too much was posted since), and the
        usual classified errors when the server fails.
        """
        known = dict(known or {})
        own = {part.id for part in known.values()}
        excluded = {str(status_id) for status_id in taken} - own
        try:
            window = [s for s in self._statuses_since(since - LOOKUP_MARGIN) if str(s["id"]) not in excluded]
            found = self.match_parts(post, by_closeness(window, since), known)
        except PublishError as exc:
            raise exc.with_context(done={}, account=self.account, post_id=post.id) from None
        return {index: part for index, part in found.items() if index not in known}

    def account_id(self) -> str:
        """The account's id (``verify_credentials``, asked once per publisher)."""
        if self._account_id is None:
            me = self._answer(self._call(self.api().account_verify_credentials), "id")
            self._account_id = str(me["id"])
        return self._account_id

    def _statuses_since(self, start: datetime) -> Iterable[Mapping[str, Any]]:
        """The account's own statuses created at or after ``start``, newest first (reblogs left out)."""
        api = self.api()
        account_id = self.account_id()
        max_id: str | None = None
        for _ in range(LOOKUP_PAGES):
            page = self._call(api.account_statuses, account_id, limit=LOOKUP_PAGE_SIZE, max_id=max_id)
            if not page:
                return
            if not isinstance(page, list):
                raise TransientError(f"{self.base_url}: the account's statuses are not a list; will retry")
            page = [self._answer(status, "id") for status in page]
            for status in page:
                created = aware_time(status.get("created_at"))
                if created is not None and created < start:
                    return
                if status.get("reblog") is None:
                    yield status
            max_id = str(page[-1]["id"])
        raise LookupIncomplete(
            f"more than {LOOKUP_PAGES * LOOKUP_PAGE_SIZE} statuses since {start:%Y-%m-%d %H:%M} UTC: "
            "cannot tell whether the post is among them"
        )

    def match_parts(
        self, post: PlannedPost, statuses: Iterable[Mapping[str, Any]], known: Mapping[int, PartResult]
    ) -> dict[int, PartResult]:
        """Match ``post``'s parts, in order, with ``statuses`` (in order of preference): each part takes the
        first status not taken yet that :meth:`part_matches` it; the first part without one ends the search."""
        candidates = list(statuses)
        found: dict[int, PartResult] = dict(known)
        taken = {part.id for part in known.values()}
        for index, part in enumerate(post.parts):
            if index in found:
                continue
            match = next(
                (
                    status
                    for status in candidates
                    if str(status["id"]) not in taken and self.part_matches(part, status, found)
                ),
                None,
            )
            if match is None:
                break
            taken.add(str(match["id"]))
            found[index] = status_part(index, match, existed=True)
        return found

    def part_matches(self, part: Part, status: Mapping[str, Any], found: Mapping[int, PartResult]) -> bool:
        """Whether ``status`` is ``part`` as published: text, content warning, language, images, and the
        status it replies to (``found`` holds the statuses of the parts before it)."""
        payload = part.payload
        if comparable(html_to_text(str(status.get("content") or ""))) != comparable(
            str(payload.get("status", ""))
        ):
            return False
        if comparable(str(status.get("spoiler_text") or "")) != comparable(
            str(payload.get("spoiler_text") or "")
        ):
            return False
        if not language_matches(payload.get("language"), status.get("language")):
            return False
        if not self._media_matches(part, status.get("media_attachments") or []):
            return False
        wanted = payload.get("in_reply_to_id")
        hit = placeholder(wanted)
        if hit is not None and hit[0] == REF:
            parent = found.get(ref_index(hit[1]))
            if parent is None:
                return False
            wanted = parent.id
        return id_or_none(status.get("in_reply_to_id")) == id_or_none(wanted)

    def _media_matches(self, part: Part, attachments: list[Any]) -> bool:
        media = list(part.payload.get("media_ids") or [])
        if len(media) != len(attachments):
            return False
        for item, attachment in zip(media, attachments, strict=True):
            hit = placeholder(item)
            if hit is None:
                if str(attachment.get("id")) != str(item):
                    return False
                continue
            if hit[0] != UPLOAD:
                return False
            description = attachment.get("description")
            alt = part_image(part, str(hit[1])).alt
            if description is not None and comparable(str(description)) != comparable(alt):
                return False
        return True
