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
    """The iCalendar (RFC 5545) text of ``posts``, with ``DTSTAMP`` ``stamp`` (an aware instant).

    icalendar builds the calendar's properties and its ``VTIMEZONE`` components; the ``VEVENT`` lines, all of the
    same few shapes, are written here, byte for byte as icalendar writes them (its property order, TEXT escaping
    and folding; ``tests/unit/test_ics.py`` compares the two), at a small fraction of its cost per event.
    """
    if stamp.tzinfo is None:
        raise ValueError("stamp must be an aware datetime")
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", campaign_name)
    ordered = sorted(posts, key=lambda p: (p.at, p.id))
    zones: dict[object, PlannedPost] = {}
    for post in ordered:
        zones.setdefault(post.at.tzinfo, post)
    for post in zones.values():  # one stand-in event per zone, for add_missing_timezones to see
        calendar.add_component(_event(post, stamp, duration))
    if posts:
        first = ordered[0].at.date() - dt.timedelta(days=366)
        last = max(post.at for post in posts).date() + dt.timedelta(days=366)
        calendar.add_missing_timezones(first_date=first, last_date=last)
    calendar.subcomponents = [c for c in calendar.subcomponents if c.name != "VEVENT"]
    head: bytes = calendar.to_ical()
    end = b"END:VCALENDAR\r\n"
    if not head.endswith(end):  # pragma: no cover - icalendar always closes the calendar so
        raise ValueError("unexpected calendar text from icalendar")
    writer = _EventWriter(stamp, duration)
    return b"".join([head[: -len(end)], *(writer.event(post) for post in ordered), end])


def _event(post: PlannedPost, stamp: dt.datetime, duration: dt.timedelta) -> icalendar.Event:
    """The event of one post, built with icalendar (the reference :class:`_EventWriter` matches)."""
    event = icalendar.Event()
    event.add("uid", post.id)
    event.add("dtstamp", stamp.astimezone(dt.UTC))
    event.add("dtstart", post.at)
    event.add("dtend", post.at + duration)
    event.add("summary", summary(post))
    event.add("description", description(post))
    event.add("categories", [post.platform, post.lang])
    event.add("transp", "TRANSPARENT")  # a planned post does not make anyone busy
    return event


class _EventWriter:
    """``VEVENT`` text as :func:`_event` + ``to_ical`` gives it: the date-time lines are icalendar's own (taken once
    per zone from an event it wrote), the TEXT values escaped and the lines folded as icalendar does."""

    def __init__(self, stamp: dt.datetime, duration: dt.timedelta) -> None:
        self.duration = duration
        self.stamp = stamp
        self.dtstamp = _lines(_event_lines(stamp.astimezone(dt.UTC), stamp, duration), "DTSTAMP")
        self._zones: dict[object, tuple[str, str, str, str]] = {}

    def _when(self, at: dt.datetime) -> bytes:
        shape = self._zones.get(at.tzinfo)
        if (
            shape is None
        ):  # "DTSTART;TZID=Europe/Berlin:" + wall time + "": icalendar's, from one event it wrote
            lines = _event_lines(at, self.stamp, self.duration)
            shape = self._zones[at.tzinfo] = (
                *_shape(_lines(lines, "DTSTART"), at),
                *_shape(_lines(lines, "DTEND"), at + self.duration),
            )
        start_head, start_tail, end_head, end_tail = shape
        return (
            f"{start_head}{at:%Y%m%dT%H%M%S}{start_tail}\r\n"
            f"{end_head}{at + self.duration:%Y%m%dT%H%M%S}{end_tail}\r\n"
        ).encode()

    def event(self, post: PlannedPost) -> bytes:
        return b"".join(
            (
                b"BEGIN:VEVENT\r\n",
                fold("SUMMARY:" + escape(summary(post))),
                self._when(post.at),
                self.dtstamp.encode() + b"\r\n",
                fold("UID:" + escape(post.id)),
                fold(f"CATEGORIES:{escape(post.platform)},{escape(post.lang)}"),
                fold("DESCRIPTION:" + escape(description(post))),
                b"TRANSP:TRANSPARENT\r\nEND:VEVENT\r\n",
            )
        )


def _event_lines(at: dt.datetime, stamp: dt.datetime, duration: dt.timedelta) -> list[str]:
    event = icalendar.Event()
    event.add("dtstamp", stamp.astimezone(dt.UTC))
    event.add("dtstart", at)
    event.add("dtend", at + duration)
    text: bytes = event.to_ical()
    return text.decode().split("\r\n")


def _lines(lines: list[str], name: str) -> str:
    return next(line for line in lines if line.split(":")[0].split(";")[0] == name)


def _shape(line: str, at: dt.datetime) -> tuple[str, str]:
    """``line`` as head + ``at``'s wall time + tail."""
    wall = f"{at:%Y%m%dT%H%M%S}"
    head, found, tail = line.rpartition(wall)
    if not found or ":" in tail:
        raise ValueError(f"unexpected date-time line from icalendar: {line!r}")
    return head, tail


def escape(text: str) -> str:
    """RFC 5545 TEXT escaping, as icalendar's ``vText`` does it (same replacements, same order)."""
    return (
        text.replace("\\N", "\n")
        .replace("\\", "\\\\")
        .replace(";", r"\;")
        .replace(",", r"\,")
        .replace("\r\n", r"\n")
        .replace("\n", r"\n")
        .replace("\r", r"\n")
    )


FOLD = 75  # icalendar starts a new line before a character that would bring a line to 75 octets


def fold(line: str) -> bytes:
    """One content line, folded as icalendar folds it (lines under :data:`FOLD` octets, never inside a UTF-8
    character, and a backslash or caret that ends a line moved to the next), with its CRLF."""
    data = line.encode()
    if len(data) < FOLD:
        return data + b"\r\n"
    out = []
    pos = 0
    size = len(data)
    while size - pos >= FOLD:
        cut = pos + FOLD - 1
        while data[cut] & 0xC0 == 0x80:  # inside a character: cut before it
            cut -= 1
        if data[cut - 1] in b"\\^" and cut - 1 > pos:
            cut -= 1
        out.append(data[pos:cut])
        pos = cut
    out.append(data[pos:])
    return b"\r\n ".join(out) + b"\r\n"
