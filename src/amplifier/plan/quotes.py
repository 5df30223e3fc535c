"""Quote posts: which earlier post a planned post quotes, and where the quote goes in each platform's payload.

A message set's ``quote:`` names a rule (and optionally an account and an occurrence, see
:class:`~amplifier.campaign.models.QuoteSpec`); for each planned post of the set this module finds the quoted
post's id (``rule:account:YYYY-MM-DDTHH:MM``): the named occurrence, or the rule's latest occurrence before the
quoting post. The quoted post must be earlier than the quoting one: a quote of a later post (or of itself, or two
posts quoting each other) is a cycle the delivery could never resolve, and an error.

The payload carries the placeholder ``{"$quote": "post"}`` (the post named by :attr:`PlannedPost.quote`), on the
first part of a thread only:

* Mastodon: ``quoted_status_id`` (Mastodon 4.5+; left out on an older instance by the publisher).
* Bluesky: ``embed`` ``app.bsky.embed.record`` ``{record: strongRef}``, or ``app.bsky.embed.recordWithMedia``
  ``{record: {record: strongRef}, media: <the images or link card embed>}`` when the part has media.

The delivery path resolves the placeholder from the quoted post's published result in the ledger
(:func:`resolve_quote`); until the quoted post is published the quoting post waits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from amplifier.campaign.models import QuoteSpec, ScheduleFile
from amplifier.plan.post import Part, PlannedPost
from amplifier.plan.schedule import Occurrence, Slot, occurrences_between, rule_zone, slot_id

QUOTE = "$quote"
QUOTE_REF: dict[str, str] = {QUOTE: "post"}
RECORD = "app.bsky.embed.record"
RECORD_WITH_MEDIA = "app.bsky.embed.recordWithMedia"
_SPANS = (dt.timedelta(days=2), dt.timedelta(days=40), dt.timedelta(days=800))


class QuoteError(ValueError):
    """The quoted post does not exist or is not earlier (the message is for people)."""


def quoted_post(schedule: ScheduleFile, slot: Slot, spec: QuoteSpec) -> str:
    """The id of the post that ``slot``'s post quotes; :class:`QuoteError` when there is none."""
    rule = schedule.rules[spec.rule]
    account = spec.account or slot.account
    if spec.at is not None:
        occ = _named(schedule, spec.rule, spec.at)
        if occ is None:
            raise QuoteError(f"rule {spec.rule!r} has no post at {spec.at} (local time) to quote")
        quoted = slot_id(spec.rule, account, occ.key)
        if occ.at >= slot.at:
            raise QuoteError(
                f"{slot.id} quotes {quoted}, which is not earlier: a post can only quote an earlier post "
                "(a quote of a later post, or two posts quoting each other, would wait forever)"
            )
        return quoted
    occ = _latest_before(schedule, spec.rule, slot.at)
    if occ is None:
        raise QuoteError(
            f"{slot.id} quotes rule {spec.rule!r}, which has no post before it"
            + (" (set quote.at to the occurrence to quote)" if getattr(rule, "kind", "") != "once" else "")
        )
    return slot_id(spec.rule, account, occ.key)


def _named(schedule: ScheduleFile, rule_id: str, key: str) -> Occurrence | None:
    rule = schedule.rules[rule_id]
    try:
        day = dt.date.fromisoformat(key[:10])
    except ValueError:
        return None
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), tzinfo=rule_zone(schedule, rule))
    for occ in occurrences_between(schedule, rule, start, start + dt.timedelta(days=3)):
        if occ.key == key:
            return occ
    return None


def _latest_before(schedule: ScheduleFile, rule_id: str, at: dt.datetime) -> Occurrence | None:
    """The rule's last occurrence strictly before ``at`` (looked for in widening windows back from ``at``)."""
    rule = schedule.rules[rule_id]
    for span in (*_SPANS, None):
        start = None if span is None else at - span
        last = None
        for occ in occurrences_between(schedule, rule, start, at):
            last = occ
        if last is not None:
            return last
    return None


# --------------------------------------------------------------------------------------------- payloads


def mastodon_quote(payload: dict[str, Any]) -> None:
    payload["quoted_status_id"] = dict(QUOTE_REF)


def bluesky_quote(record: dict[str, Any]) -> None:
    """The record embed, around the part's media embed (images, a link card) if it has one."""
    quote = {"$type": RECORD, "record": dict(QUOTE_REF)}
    media = record.get("embed")
    record["embed"] = (
        quote if media is None else {"$type": RECORD_WITH_MEDIA, "record": quote, "media": media}
    )


def resolve_quote(post: PlannedPost, quoted: Mapping[str, Any] | None) -> PlannedPost:
    """``post`` with its ``{"$quote": "post"}`` placeholders replaced from the quoted post's first published part
    (``quoted``: a :class:`~amplifier.publish.base.PartResult` as JSON), or the quote left out (``None``: there
    is nothing to quote, e.g. the quoted post failed). A post without a quote is returned as it is."""
    if not any(_has_quote(part.payload) for part in post.parts):
        return post
    if quoted is None:
        value: Any = None
    elif post.platform == "mastodon":
        value = str(quoted["id"])
    else:
        value = {"uri": quoted["uri"], "cid": quoted["cid"]}
    parts = tuple(_resolve_part(part, value) for part in post.parts)
    return replace(post, parts=parts)


def _has_quote(value: Any) -> bool:
    if value == QUOTE_REF:
        return True
    if isinstance(value, dict):
        return any(_has_quote(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_quote(item) for item in value)
    return False


def _resolve_part(part: Part, value: Any) -> Part:
    payload = dict(part.payload)
    if payload.get("quoted_status_id") == QUOTE_REF:
        if value is None:
            del payload["quoted_status_id"]
        else:
            payload["quoted_status_id"] = value
    embed = payload.get("embed")
    if isinstance(embed, dict) and embed.get("$type") == RECORD and embed.get("record") == QUOTE_REF:
        if value is None:
            del payload["embed"]
        else:
            payload["embed"] = {"$type": RECORD, "record": value}
    elif isinstance(embed, dict) and embed.get("$type") == RECORD_WITH_MEDIA:
        if value is None:
            payload["embed"] = embed["media"]
        else:
            payload["embed"] = {**embed, "record": {"$type": RECORD, "record": value}}
    return replace(part, payload=payload)


def quote_line(post: PlannedPost) -> str:
    """What a preview shows of the quote: ``quotes: call:main:2027-10-01T10:00`` ("" for none)."""
    return f"quotes: {post.quote}" if post.quote else ""
