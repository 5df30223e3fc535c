"""The planned posts as text for a terminal: one block per post, readable at any width.

A header says once what is shown: the campaign, the number of posts, the window and the one zone every time is
in (the campaign's, or ``--tz``), and the filters. Then each post is a block::

    Sun 2027-10-31 10:00  bluesky-ckb  bluesky  ckb  88/300
    id countdown:bluesky-ckb:2027-10-31T10:00
    │ 1 ڕۆژ ماوە بۆ ڕۆژی جیهانیی کۆبانێ.
    │ #Riseup4Rojava

The text is the text that is posted, wrapped to the terminal's width behind a ``│`` gutter; a word longer than a
line (a long URL) is folded, never cut. A thread shows each part under a ``part 2/3`` line and each part's text
as it is posted (with its ``2/3`` marker when the thread is numbered, without one when it is not). Images show as
their alt text, a content warning and a visibility other than public are said. Control characters of a text
(an escape sequence would drive the terminal) are shown as ``\\x1b``, never sent to the terminal.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from amplifier.plan.followups import describe as describe_followups
from amplifier.plan.gates import controls_line
from amplifier.plan.post import Part, PlannedPost

if TYPE_CHECKING:
    from amplifier.plan.selection import Selection

GUTTER = "│ "
TIME_FORMAT = "%a %Y-%m-%d %H:%M"
# C0 and C1 control characters but newline and tab: never written to a terminal as they are.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with each control character shown as its escape (``\\x1b``); newlines and tabs stay."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def header(campaign_name: str, count: int, selection: Selection) -> list[Text]:
    """The lines above the posts: what is shown, when, in which zone."""
    start, end = (instant.astimezone(selection.zone) for instant in (selection.start, selection.end))
    summary = f"{count} post{'' if count == 1 else 's'} from {start:{TIME_FORMAT}} to {end:{TIME_FORMAT}}"
    how = f"times in {selection.zone.key}"
    if selection.filters:
        how += "; only " + "; ".join(printable(f) for f in selection.filters)
    return [Text(printable(campaign_name), style="bold"), Text(summary), Text(how)]


def post_block(post: PlannedPost, selection: Selection, width: int) -> list[Text]:
    """The lines of one post, none wider than ``width`` cells."""
    when = post.at.astimezone(selection.zone)
    head = Text(f"{when:{TIME_FORMAT}}", style="bold")
    head.append(f"  {printable(post.account)}", style="bold cyan")
    head.append(f"  {post.platform}  {printable(post.lang)}")
    visibility = post.parts[0].payload.get("visibility") if post.parts else None
    if visibility and visibility != "public":
        head.append(f"  {visibility}")
    thread = len(post.parts) > 1
    if thread:
        head.append(f"  thread of {len(post.parts)}")
    elif post.parts:
        head.append("  ").append_text(_length(post.parts[0]))
    lines = [head, Text(f"id {printable(post.id)}", style="dim")]
    controls = controls_line(post.parts)
    if controls:
        lines.extend(_wrapped(Text(printable(controls), style="yellow"), width))
    followups = describe_followups(post.followups, selection.zone)
    if followups:
        lines.extend(_wrapped(Text(printable(followups), style="magenta"), width))
    for index, part in enumerate(post.parts):
        if thread:
            label = Text(f"part {index + 1}/{len(post.parts)}  ", style="dim")
            lines.append(label.append_text(_length(part)))
        lines.extend(_gutter(_part_text(part), width))
    for warning in post.warnings:
        lines.extend(_wrapped(Text(f"! {printable(warning)}", style="bold red"), width))
    return lines


def _length(part: Part) -> Text:
    over = part.length > part.limit
    return Text(f"{part.length}/{part.limit}", style="bold red" if over else "")


def _part_text(part: Part) -> Text:
    text = Text()
    spoiler = part.payload.get("spoiler_text")
    if spoiler:
        text.append(f"CW: {printable(str(spoiler))}\n", style="italic")
    text.append(printable(part.text))  # a Text, never read as rich markup
    for image in part.images:
        text.append(f"\n[image, alt text: {printable(image.alt)}]", style="dim")
    return text


def _gutter(text: Text, width: int) -> list[Text]:
    lines = []
    for line in _wrapped(text, max(width - len(GUTTER), 8)):
        lines.append(Text(GUTTER if line.plain else GUTTER.rstrip(), style="dim").append_text(line))
    return lines


def _wrapped(text: Text, width: int) -> list[Text]:
    """``text`` in lines of at most ``width`` cells: at spaces, and a word longer than a line folded."""
    lines = text.wrap(_MEASURE, width, overflow="fold")
    for line in lines:
        line.rstrip()
    return list(lines)


_MEASURE = Console(file=io.StringIO(), width=80, color_system=None)  # wrap() reads only its tab size


def print_posts(out: Any, posts: Sequence[PlannedPost], campaign_name: str, selection: Selection) -> None:
    """Print the header and one block per post on the rich console ``out``, wrapped to its width."""
    width = max(int(out.width), 20)
    for line in header(campaign_name, len(posts), selection):
        out.print(line, soft_wrap=False, overflow="fold")
    if not posts:
        out.print("No posts planned in this window.", markup=False)
        return
    for post in posts:
        out.print()
        for line in post_block(post, selection, width):
            out.print(line, soft_wrap=False, overflow="fold")
