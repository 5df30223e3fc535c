"""The planned posts as an iCalendar file, so a team can see the campaign in their calendar.

One ``VEVENT`` per planned post: ``UID`` is the post's stable id (the same post keeps its UID in every export,
so a calendar that imports the file again updates events instead of duplicating them), ``DTSTART`` is the
post's time in its rule's zone (with a ``VTIMEZONE`` for each zone used), ``SUMMARY`` is the account and the
first words, ``DESCRIPTION`` the full text of every part of the post (and the images' alt texts),
``CATEGORIES`` the platform and the language. The output is a pure function of its inputs: ``DTSTAMP`` is the
``stamp`` given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import icalendar

from amplifier import __version__
from amplifier.plan.post import PlannedPost

PRODID = f"-//amplifier//amplifier {__version__}//EN"
EVENT_DURATION = dt.timedelta(minutes=15)  # long enough to show as a block in a calendar's day view
SUMMARY_WORDS = 8
SUMMARY_CHARS = 60


def summary(post: PlannedPost) -> str:
    """``account: first words…`` of the post's first part."""
    words = (post.parts[0].text if post.parts else "").split()
    kept: list[str] = []
    for word in words[:SUMMARY_WORDS]:
        if kept and len(" ".join([*kept, word])) > SUMMARY_CHARS:
            break
        kept.append(word)
    head = " ".join(kept)
    if len(head) > SUMMARY_CHARS:  # one very long word
        head = head[:SUMMARY_CHARS]
    if len(kept) < len(words) or head != " ".join(kept):
        head += "…"
    return f"{post.account}: {head}" if head else post.account


def description(post: PlannedPost) -> str:
    """The full text of every part, then where and how it goes out."""
    blocks = []
    total = len(post.parts)
    for index, part in enumerate(post.parts, start=1):
        text = part.text if total == 1 else f"[{index}/{total}]\n{part.text}"
        text += "".join(f"\n[image: {image.alt}]" for image in part.images)
        spoiler = part.payload.get("spoiler_text")
        if spoiler:
            text = f"CW: {spoiler}\n{text}"
        blocks.append(text)
    blocks.append(
        f"{post.platform} · {post.account} · {post.lang} · rule {post.rule} · messages {post.message_set}"
        f" · id {post.id}"
    )
    blocks.extend(f"warning: {warning}" for warning in post.warnings)
    return "\n\n".join(blocks)


def posts_calendar(
    posts: Sequence[PlannedPost],
    *,
    campaign_name: str,
    stamp: dt.datetime,
    duration: dt.timedelta = EVENT_DURATION,
) -> bytes:
    """The iCalendar (RFC 5545) text of ``posts``, with ``DTSTAMP`` ``stamp`` (an aware instant)."""
    if stamp.tzinfo is None:
        raise ValueError("stamp must be an aware datetime")
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", campaign_name)
    for post in sorted(posts, key=lambda p: (p.at, p.id)):
        event = icalendar.Event()
        event.add("uid", post.id)
        event.add("dtstamp", stamp.astimezone(dt.UTC))
        event.add("dtstart", post.at)
        event.add("dtend", post.at + duration)
        event.add("summary", summary(post))
        event.add("description", description(post))
        event.add("categories", [post.platform, post.lang])
        event.add("transp", "TRANSPARENT")  # a planned post does not make anyone busy
        calendar.add_component(event)
    if posts:
        first = min(post.at for post in posts).date() - dt.timedelta(days=366)
        last = max(post.at for post in posts).date() + dt.timedelta(days=366)
        calendar.add_missing_timezones(first_date=first, last_date=last)
    data: bytes = calendar.to_ical()
    return data
