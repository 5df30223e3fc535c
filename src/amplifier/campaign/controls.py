"""Who may reply to and quote a post, and its Bluesky self-labels: the settings an account or a message set carries."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from amplifier.campaign.fields import no_repeats

LIST_URI_PATTERN = r"^at://[A-Za-z0-9:._%-]+/app\.bsky\.graph\.list/[A-Za-z0-9._~:-]{1,512}$"
REPLY_RULE_NAMES = ("nobody", "mentioned", "followers", "following")


def _reply_rule(value: Any) -> Any:
    if isinstance(value, str) and value not in REPLY_RULE_NAMES and not re.match(LIST_URI_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a reply rule: use nobody, mentioned, followers, following, or the at:// URI of a "
            "Bluesky list (at://did:plc:.../app.bsky.graph.list/...)"
        )
    return value


ReplyRule = Annotated[
    Literal["nobody", "mentioned", "followers", "following"]
    | Annotated[str, Field(pattern=LIST_URI_PATTERN)],
    BeforeValidator(_reply_rule),
    Field(
        description="nobody, mentioned (the accounts the post mentions), followers, following, or the at:// URI "
        "of a Bluesky list (at://did:plc:.../app.bsky.graph.list/...)"
    ),
]
MAX_REPLY_RULES = 5


def _reply_rules(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    return value


def _check_reply_rules(rules: list[str]) -> list[str]:
    if "nobody" in rules and len(rules) > 1:
        raise ValueError("`nobody` cannot be combined with other reply rules: write `replies: nobody` alone")
    no_repeats(rules, "reply rule")
    if len(rules) > MAX_REPLY_RULES:
        raise ValueError(f"{len(rules)} reply rules; Bluesky allows at most {MAX_REPLY_RULES}")
    return rules


Replies = Annotated[
    list[ReplyRule],
    BeforeValidator(_reply_rules, json_schema_input_type=str | list[str]),
    AfterValidator(_check_reply_rules),
    Field(
        description="Who may reply. Bluesky: a threadgate on the post (on a thread's first post); `nobody` or [] "
        "lets nobody reply; up to 5 rules. Not set: everybody. Mastodon has no reply control (see docs/messages.md)"
    ),
]
Quotes = Annotated[
    Literal["everyone", "followers", "nobody"] | bool,
    Field(
        description="Who may quote the post: true/everyone, followers, false/nobody. Mastodon 4.5+: "
        "quote_approval_policy public/followers/nobody. Bluesky: a postgate that turns quoting off for "
        "false/nobody and for followers (Bluesky has no followers-only quoting)"
    ),
]
SelfLabel = Literal["graphic-media", "nudity", "sexual", "porn", "!no-unauthenticated"]


def quote_policy(value: bool | str | None) -> str | None:
    """The Mastodon ``quote_approval_policy`` of a ``quotes`` setting (``None``: not set)."""
    if value is None:
        return None
    if value is True or value == "everyone":
        return "public"
    if value is False or value == "nobody":
        return "nobody"
    return "followers"


def parse_replies(values: Iterable[str]) -> tuple[str, ...]:
    """Reply rules given one word each (a command line's ``--replies``), checked as a message set's ``replies`` is;
    a :class:`ValueError` in plain words."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return tuple(TypeAdapter(Replies).validate_python(list(values)))
    except ValidationError as exc:
        raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
