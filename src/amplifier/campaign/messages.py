"""``messages/*.yaml`` as validated models: a :class:`MessagesFile` holds message sets, each with its variants (texts
per language and platform, threads), hashtags, images or a video, reply and quote controls, a quote of an earlier post, labels and split settings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from amplifier.campaign.controls import Quotes, Replies, SelfLabel
from amplifier.campaign.fields import Focus, Id, Lang, LocalizedText, Model, no_repeats
from amplifier.campaign.followups import BoostSetting, DeleteAfter


class ImageSpec(Model):
    path: str = Field(description="Image file, relative to the campaign folder")
    alt: LocalizedText = Field(description="Alt text (required), per language")
    focus: tuple[Focus, Focus] | None = Field(default=None, description="Mastodon focal point, x,y in -1..1")


class VideoSpec(Model):
    path: str = Field(
        description="Video file (MP4; MOV or WebM for Mastodon only), relative to the campaign folder"
    )
    alt: LocalizedText = Field(description="Alt text (required), per language")
    captions: dict[Lang, str] = Field(
        default_factory=dict,
        description="Captions per language: WebVTT files (.vtt) relative to the campaign folder. Bluesky shows "
        "them; Mastodon has no captions (validate warns)",
    )


class QuoteSpec(Model):
    """The earlier post of the campaign a post quotes: a rule's post, on the same platform."""

    rule: Id = Field(description="The rule whose post is quoted")
    account: Id | None = Field(
        default=None,
        description="The account whose post is quoted (same platform); not set: the quoting post's own account",
    )
    at: str | None = Field(
        default=None,
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(~\d+)?$",
        description='The occurrence, as in post ids: the rule\'s local wall time "YYYY-MM-DDTHH:MM". Not set: '
        "the rule's latest post before the quoting post",
    )


def _quote(value: Any) -> Any:
    if isinstance(value, str):
        return {"rule": value}
    return value


TextOrThread = str | list[str]
"""One text, or the explicit parts of a thread."""

PerLanguage = dict[Lang, TextOrThread]


class Variant(Model):
    text: PerLanguage = Field(description="The text per language; a list is a thread, one entry per part")
    mastodon: PerLanguage = Field(default_factory=dict, description="Texts used on Mastodon instead")
    bluesky: PerLanguage = Field(default_factory=dict, description="Texts used on Bluesky instead")


class Hashtags(Model):
    tags: list[str] = Field(description="Hashtags, with or without #")
    placement: Literal["append", "none"] = Field(
        default="append",
        description="append: added at the end (unless the text uses {{ hashtags }} inline); none: only inline",
    )

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        out = []
        for tag in tags:
            bare = tag.lstrip("#＃")
            if not bare:
                raise ValueError(f"hashtag {tag!r} is empty: write a word after the #")
            if re.search(r"\s", bare):
                raise ValueError(
                    f"hashtag {tag!r}: write it as one word, without spaces (e.g. Riseup4Rojava)"
                )
            out.append(bare)
        return out


def _hashtags(value: Any) -> Any:
    if isinstance(value, list):
        return {"tags": value}
    return value


class SplitSettings(Model):
    enabled: bool = Field(default=True, description="Split a text too long for a platform into a thread")
    numbering: bool = Field(default=True, description='Add a " 1/3" marker to each part')


class MessageSet(Model):
    description: str | None = None
    hashtags: Annotated[
        Hashtags | None, BeforeValidator(_hashtags, json_schema_input_type=Hashtags | list[str] | None)
    ] = None
    content_warning: LocalizedText | None = Field(default=None, description="Mastodon content warning")
    sensitive: bool | None = Field(
        default=None,
        description="Mark media as sensitive (Mastodon). Not set: sensitive when the set has a content warning "
        "or labels, and images or a video",
    )
    replies: Replies | None = None
    quotes: Quotes | None = None
    labels: list[SelfLabel] | None = Field(
        default=None,
        description="Bluesky self-labels on the post record: graphic-media, nudity, sexual, porn, "
        "!no-unauthenticated. Not set: graphic-media when the set has a content warning and images or a video; [] for none",
    )
    images: list[ImageSpec] = Field(default_factory=list, max_length=4)
    videos: list[VideoSpec] = Field(
        default_factory=list,
        max_length=1,
        description="One video (instead of images), with alt text and optional captions",
    )
    quote: Annotated[
        QuoteSpec | None, BeforeValidator(_quote, json_schema_input_type=str | QuoteSpec | None)
    ] = Field(
        default=None,
        description="Quote an earlier post of the campaign: a rule id, or {rule, account, at}. Bluesky: a "
        "record embed; Mastodon 4.5+: quoted_status_id. The quoted post goes out first",
    )
    link_card: bool = Field(default=False, description="Bluesky: a link card for the first link")
    boost: BoostSetting = None  # follow-ups: campaign/followups.py
    delete_after: DeleteAfter = None
    pin: bool = Field(default=False, description="Pin the post on its account's profile until its event ends")
    split: SplitSettings = Field(default_factory=SplitSettings)
    variants: list[Variant] = Field(min_length=1)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str] | None) -> list[str] | None:
        return None if labels is None else no_repeats(labels, "label")

    @model_validator(mode="after")
    def _images_or_video(self) -> MessageSet:
        if self.images and self.videos:
            raise ValueError(
                "a post carries images or one video, not both: move the video to a message set of its own"
            )
        return self

    def self_labels(self) -> tuple[str, ...]:
        """The Bluesky self-labels: as set, else ``graphic-media`` for a content warning with images."""
        if self.labels is not None:
            return tuple(self.labels)
        return ("graphic-media",) if self.content_warning and (self.images or self.videos) else ()

    def media_sensitive(self) -> bool:
        """Mastodon's ``sensitive``: as set, else for a content warning or a label, with images."""
        if self.sensitive is not None:
            return self.sensitive
        return bool(self.images or self.videos) and bool(self.content_warning or self.self_labels())

    def texts(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Every message text of the set (all variants, languages, platforms, thread parts) with its path."""
        for index, variant in enumerate(self.variants):
            for field_name in ("text", "mastodon", "bluesky"):
                texts: dict[str, TextOrThread] = getattr(variant, field_name)
                for lang, value in texts.items():
                    path: tuple[str | int, ...] = ("variants", index, field_name, lang)
                    if isinstance(value, list):
                        for part_index, part in enumerate(value):
                            yield (*path, part_index), part
                    else:
                        yield path, value

    def templates(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Every template of the set: its texts and its content warnings."""
        yield from self.texts()
        for lang, text in (self.content_warning or {}).items():
            yield ("content_warning", lang), text


class MessagesFile(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, title="amplifier messages file")

    sets: dict[Id, MessageSet]
