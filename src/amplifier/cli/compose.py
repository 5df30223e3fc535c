"""``amplifier compose``: one ad-hoc text adapted for a platform, or for one account of the campaign.

Without ``--account`` the text is taken as it is and adapted with the platform, language and limit given on the
command line. With ``--account ID`` it is a template rendered with the campaign's variables and adapted with that
account's platform, language and limits, as a planned post of that account would be
(:func:`amplifier.plan.compose.compose_for_account`).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from amplifier.cli.options import apply_common, config_option, format_option, now_option, replies_option
from amplifier.errors import ExitCode, UsageError

MASTODON_LIMIT = 500  # for the help: the default of plan.adapt.Target.max_characters


@click.command(short_help="Adapt one ad-hoc text for a platform or an account: length, thread, payload.")
@click.argument("text")
@click.option(
    "--account",
    default=None,
    metavar="ID",
    help="Render TEXT as a template for this account of the campaign, with its platform, language and limits.",
)
@click.option(
    "--event",
    "event_id",
    default=None,
    metavar="ID",
    help="With --account: the event {{ event.* }} and {{ days_left }} refer to.",
)
@config_option
@now_option
@click.option(
    "--platform", type=click.Choice(["mastodon", "bluesky"]), default=None, help="Without --account."
)
@click.option("--lang", default=None, help="Language tag of the text, without --account (default: en).")
@click.option("--cw", "content_warning", default=None, help="Content warning (Mastodon).")
@click.option(
    "--max-characters",
    type=click.IntRange(min=1),
    default=None,
    help=f"Mastodon instance limit, without --account (default: {MASTODON_LIMIT}).",
)
@click.option("--no-split", is_flag=True, help="Do not split a long text into a thread.")
@click.option(
    "--replies",
    "replies",
    multiple=True,
    metavar="RULE",
    help="Who may reply (Bluesky threadgate): nobody, mentioned, followers, following or a list's at:// URI; "
    "repeatable.",
)
@click.option(
    "--quotes",
    type=click.Choice(["everyone", "followers", "nobody"]),
    default=None,
    help="Who may quote (Mastodon quote_approval_policy; Bluesky postgate).",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    type=click.Choice(["graphic-media", "nudity", "sexual", "porn", "!no-unauthenticated"]),
    help="A Bluesky self-label; repeatable.",
)
@click.option(
    "--video",
    "video_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Attach this video (MP4; MOV or WebM for Mastodon), checked against the platform's limits.",
)
@click.option("--alt", default=None, help="The video's alt text (required with --video).")
@click.option(
    "--boost",
    "boosts",
    multiple=True,
    metavar="ACCOUNT",
    help="With --account: an account of the campaign on the same platform that boosts / reposts it; repeatable.",
)
@click.option(
    "--pin", is_flag=True, help="With --account: pin it on the account's profile until its event ends."
)
@click.option(
    "--delete-after",
    default=None,
    metavar="DURATION",
    help="With --account: delete it this long after its event (or after now without --event), e.g. 1d.",
)
@format_option
@click.pass_context
def compose(
    ctx: click.Context,
    text: str,
    account: str | None,
    event_id: str | None,
    config: Path | None,
    now: str | None,
    platform: str | None,
    lang: str | None,
    content_warning: str | None,
    max_characters: int | None,
    no_split: bool,
    replies: tuple[str, ...],
    quotes: str | None,
    labels: tuple[str, ...],
    video_file: Path | None,
    alt: str | None,
    boosts: tuple[str, ...],
    pin: bool,
    delete_after: str | None,
    fmt: str,
) -> None:
    """Adapt one ad-hoc TEXT: its length as the platform counts it, the thread split, the payload.

    \b
    amplifier compose "Jin, jiyan, azadî!" --platform bluesky --lang ku
    amplifier compose "{{ days_left }} days to {{ event.name }}" --account bluesky-en --event kobane-day"""
    from amplifier.clock import utcnow
    from amplifier.plan.adapt import Adapted

    _check_text(text, "TEXT")
    _check_text(content_warning or "", "--cw")
    controls = _controls(replies, quotes, labels)
    video = _video(video_file, alt)
    adapted: Adapted
    followups: tuple[Any, ...] = ()
    if account is not None:
        given = [name for name, value in (("--platform", platform), ("--lang", lang)) if value is not None]
        if max_characters is not None:
            given.append("--max-characters")
        if given:
            raise UsageError(f"{', '.join(given)}: with --account, the account's own settings are used")
        from amplifier.plan.compose import compose_for_account

        g = apply_common(ctx, config, now)
        composed = compose_for_account(
            g.campaign(),
            account,
            text,
            at=g.now,
            event_id=event_id,
            content_warning=content_warning,
            split=not no_split,
            controls=controls,
            video=video,
        )
        adapted, platform, lang = composed.adapted, composed.platform, composed.lang
        extra: dict[str, Any] = {"account": account, "event": event_id}
        if boosts or pin or delete_after:
            from amplifier.plan.followups import adhoc_followups

            followups = adhoc_followups(
                g.campaign(),
                account,
                g.now,
                event_id,
                boosts=boosts,
                pin=pin,
                delete_after=_duration(delete_after),
            )
            extra["followups"] = [followup.to_json() for followup in followups]
    else:
        if platform is None:
            raise UsageError("--platform: choose mastodon or bluesky (or give --account ID)")
        if event_id is not None:
            raise UsageError("--event: only with --account")
        if boosts or pin or delete_after:
            raise UsageError("--boost, --pin, --delete-after: only with --account")
        from amplifier.plan.adapt import adapt_text

        lang = lang or "en"
        adapted = adapt_text(
            text,
            "mastodon" if platform == "mastodon" else "bluesky",
            lang=lang,
            content_warning=content_warning,
            max_characters=max_characters,
            split=not no_split,
            controls=controls,
            created_at=utcnow(),
            video=video,
        )
        extra = {}
    problems = [*adapted.problems, *_video_problems(video, platform)]
    _show(adapted, platform, lang, extra, fmt, problems, followups)
    if problems:
        for problem in problems:
            click.echo(f"compose: {problem}", err=True)
        sys.exit(ExitCode.INVALID)


def _controls(replies: tuple[str, ...], quotes: str | None, labels: tuple[str, ...]) -> dict[str, Any]:
    """The --replies / --quotes / --label options as Content fields (None: not given)."""
    from amplifier.campaign.controls import quote_policy

    rules = replies_option(replies)
    return {"replies": rules, "quotes": quote_policy(quotes), "labels": tuple(labels) or None}


def _video(file: Path | None, alt: str | None) -> Any:
    """The --video / --alt options as a planned :class:`~amplifier.plan.post.Video` (None without --video)."""
    if file is None:
        if alt is not None:
            raise UsageError("--alt: only with --video")
        return None
    if not alt or not alt.strip():
        raise UsageError("--video: give its alt text with --alt (a video without alt text is not posted)")
    _check_text(alt, "--alt")
    from amplifier.campaign.videos import VideoError, read_video
    from amplifier.plan.post import Video

    try:
        info = read_video(file, str(file))
    except VideoError as exc:
        raise UsageError(f"--video: {exc}") from None
    except OSError as exc:
        raise UsageError(f"--video: {file}: {exc.strerror or exc}") from None
    return Video(str(file.resolve()), alt, info.mime, info.width, info.height, info.seconds, info.size)


def _video_problems(video: Any, platform: str) -> list[str]:
    if video is None or video.size is None:
        return []
    from amplifier.campaign.videos import VideoInfo, platform_problems

    info = VideoInfo(video.mime, video.size, video.seconds, video.width, video.height)
    return platform_problems(info, platform, Path(video.path).name)


def _duration(text: str | None) -> Any:
    """``--delete-after`` as a timedelta (``1d``, ``12h``, ``PT6H``, seconds)."""
    if text is None:
        return None
    from pydantic import TypeAdapter, ValidationError

    from amplifier.campaign.followups import Duration

    try:
        value = TypeAdapter(Duration).validate_python(text)
    except ValidationError:
        raise UsageError(f"--delete-after: {text!r} is not a duration (e.g. 1d, 12h, 30m, PT6H)") from None
    if value < dt.timedelta(0):
        raise UsageError(f"--delete-after: {text!r} must not be negative")
    return value


def _show(
    adapted: Any,
    platform: str,
    lang: str,
    extra: dict[str, Any],
    fmt: str,
    problems: list[str],
    followups: tuple[Any, ...] = (),
) -> None:
    from amplifier.cli.render import console, dump_json

    if fmt == "json":
        parts = [part.to_json() for part in adapted.parts]
        dump_json(
            {
                "version": 1,
                "platform": platform,
                "lang": lang,
                **extra,
                "parts": parts,
                "problems": problems,
            }
        )
        return
    from rich.table import Table
    from rich.text import Text

    from amplifier.cli.terminal import printable

    table = Table(show_lines=True)
    table.add_column("part", justify="right")
    table.add_column("length", justify="right")
    table.add_column("text", overflow="fold", max_width=80)
    for index, part in enumerate(adapted.parts, start=1):
        table.add_row(str(index), f"{part.length}/{part.limit}", Text(printable(part.text)))
    console().print(table)
    from amplifier.plan.gates import controls_line

    line = controls_line(adapted.parts)
    if line:
        console().print(Text(line))
    video = adapted.parts[0].video if adapted.parts else None
    if video is not None:
        from amplifier.plan.videos import video_line

        console().print(Text(printable(video_line(video))))
    if followups:
        from amplifier.plan.followups import describe

        console().print(Text(describe(followups)))


def _check_text(text: str, option: str) -> None:
    """A usage error for text that cannot be posted: bytes that are not UTF-8, NUL, terminal escapes."""
    for index, char in enumerate(text):
        if "\udc80" <= char <= "\udcff":  # how Python keeps an argument's byte that is not UTF-8
            raise UsageError(
                f"{option}: byte 0x{ord(char) - 0xDC00:02x} at character {index + 1} is not UTF-8 text"
            )
        if "\ud800" <= char <= "\udfff" or (char < " " and char not in "\t\n") or "\x7f" <= char <= "\x9f":
            raise UsageError(
                f"{option}: the control character U+{ord(char):04X} at character {index + 1}: remove it"
            )
