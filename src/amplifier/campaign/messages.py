"""``messages/*.yaml`` as validated models: a :class:`MessagesFile` holds message sets, each with its variants (texts
per language and platform, threads), hashtags, images, reply and quote controls, labels and split settings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from amplifier.campaign.controls import Quotes, Replies, SelfLabel
from amplifier.campaign.fields import Focus, Id, Lang, LocalizedText, Model
from amplifier.campaign.followups import BoostSetting, DeleteAfter


class ImageSpec(Model):
    path: str = Field(description="Image file, relative to the campaign folder")
    alt: LocalizedText = Field(description="Alt text (required), per language")
    focus: tuple[Focus, Focus] | None = Field(default=None, description="Mastodon focal point, x,y in -1..1")


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
        "or labels, and images",
    )
    replies: Replies | None = None
    quotes: Quotes | None = None
    labels: list[SelfLabel] | None = Field(
        default=None,
        description="Bluesky self-labels on the post record: graphic-media, nudity, sexual, porn, "
        "!no-unauthenticated. Not set: graphic-media when the set has a content warning and images; [] for none",
    )
    images: list[ImageSpec] = Field(default_factory=list, max_length=4)
    link_card: bool = Field(default=False, description="Bluesky: a link card for the first link")
    boost: BoostSetting = None  # follow-ups: campaign/followups.py
    delete_after: DeleteAfter = None
    pin: bool = Field(default=False, description="Pin the post on its account's profile until its event ends")
    split: SplitSettings = Field(default_factory=SplitSettings)
    variants: list[Variant] = Field(min_length=1)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            twice = sorted({label for label in labels if labels.count(label) > 1})
            if twice:
                raise ValueError(f"label listed twice: {', '.join(twice)}")
        return labels

    def self_labels(self) -> tuple[str, ...]:
        """The Bluesky self-labels: as set, else ``graphic-media`` for a content warning with images."""
        if self.labels is not None:
            return tuple(self.labels)
        return ("graphic-media",) if self.content_warning and self.images else ()

    def media_sensitive(self) -> bool:
        """Mastodon's ``sensitive``: as set, else for a content warning or a label, with images."""
        if self.sensitive is not None:
            return self.sensitive
        return bool(self.images) and bool(self.content_warning or self.self_labels())

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
