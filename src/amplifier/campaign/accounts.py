"""The accounts of ``schedule.yaml``: a Mastodon or a Bluesky account, told apart by ``platform``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, HttpUrl

from amplifier.campaign.controls import Quotes, Replies
from amplifier.campaign.fields import EnvName, Lang, Model, TimeZoneName


class MastodonAccount(Model):
    platform: Literal["mastodon"]
    instance: HttpUrl = Field(description="The instance's base URL, e.g. https://mastodon.social")
    language: Lang | None = Field(default=None, description="The language of this account's posts")
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    token_env: EnvName = Field(description="Environment variable holding the account's access token")
    max_characters: int = Field(
        default=500,
        ge=1,
        description="The instance's post length limit (read from the instance when publishing)",
    )
    characters_reserved_per_url: int = Field(default=23, ge=1)
    quotes: Quotes | None = Field(
        default=None, description="Default quote control of this account's posts (a message set's own wins)"
    )
    timezone: TimeZoneName | None = Field(
        default=None, description="Zone the preview shows this account's times in"
    )


def _off(value: Any) -> Any:
    """``none``, ``off``, ``false`` (or YAML's null/false) switch a service off."""
    if value is None or value is False:
        return None
    if isinstance(value, str) and value.strip().lower() in ("none", "off", "false", "no"):
        return None
    return value


VIDEO_SERVICE = HttpUrl("https://video.bsky.app")


class BlueskyAccount(Model):
    platform: Literal["bluesky"]
    handle: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z0-9-]+$")] = Field(
        description="The account's handle, e.g. riseup4rojava.bsky.social"
    )
    service: HttpUrl = Field(
        default=HttpUrl("https://bsky.social"),
        description="The PDS or entryway to log in to; a self-hosted PDS's URL works too",
    )
    video_service: Annotated[HttpUrl | None, BeforeValidator(_off)] = Field(
        default=VIDEO_SERVICE,
        description="The video service that transcodes this account's videos (as the Bluesky app does); "
        "none or off: upload videos to the PDS directly",
    )
    language: Lang | None = Field(default=None, description="The language of this account's posts")
    password_env: EnvName = Field(description="Environment variable holding an app password")
    replies: Replies | None = Field(
        default=None, description="Default reply control of this account's posts (a message set's own wins)"
    )
    quotes: Quotes | None = Field(
        default=None, description="Default quote control of this account's posts (a message set's own wins)"
    )
    timezone: TimeZoneName | None = Field(
        default=None, description="Zone the preview shows this account's times in"
    )


Account = Annotated[MastodonAccount | BlueskyAccount, Field(discriminator="platform")]
