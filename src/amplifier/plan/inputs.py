"""What the planner reads of the campaign for a slot, cached per instance: the template context, the hashtags
and whether they are appended, the images and the video of a message set (a base of
:class:`~amplifier.plan.planner.Planner`)."""

from __future__ import annotations

from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import MessageSet
from amplifier.campaign.templates import no_event, uses
from amplifier.plan.context import message_images, shared_context
from amplifier.plan.post import Image, Video
from amplifier.plan.schedule import Slot
from amplifier.plan.videos import planned_video


class SlotInputs:
    """The campaign's inputs to a slot's post, cached: context, hashtags, images, video."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self._images: dict[tuple[str, str], tuple[Image, ...]] = {}
        self._videos: dict[tuple[str, str], Video | None] = {}
        self._inline_tags: dict[str, bool] = {}
        self._shared_context: dict[tuple[Any, ...], dict[str, Any]] = {}

    def _context(self, slot: Slot, lang: str, message_set: MessageSet) -> dict[str, Any]:
        key = (slot.event, slot.account, lang, id(message_set))
        shared = self._shared_context.get(key)
        if shared is None:
            tags = self._tags(message_set)
            shared = self._shared_context[key] = shared_context(
                self.campaign, slot.event, slot.account, lang, tags
            )
        if slot.event is None:  # the rule has no event: using one is an error that names the rule
            return {
                **shared,
                "event": no_event(slot.rule, "event"),
                "days_left": no_event(slot.rule, "days_left"),
                "hours_left": no_event(slot.rule, "hours_left"),
                "now": slot.at,
                "at": slot.at,
            }
        return {
            **shared,
            "days_left": slot.days_left,
            "hours_left": slot.hours_left,
            "now": slot.at,
            "at": slot.at,
        }

    def _tags(self, message_set: MessageSet) -> tuple[str, ...]:
        if message_set.hashtags is not None:
            return tuple(message_set.hashtags.tags)
        return tuple(self.campaign.schedule.campaign.hashtags)

    def _appends_tags(self, set_id: str, message_set: MessageSet) -> bool:
        cached = self._inline_tags.get(set_id)
        if cached is None:
            placement = message_set.hashtags.placement if message_set.hashtags else "append"
            inline = any(uses(text, "hashtags") for _path, text in message_set.texts())
            cached = self._inline_tags[set_id] = placement == "append" and not inline
        return cached

    def _images_for(self, set_id: str, message_set: MessageSet, lang: str) -> tuple[Image, ...]:
        key = (set_id, lang)
        cached = self._images.get(key)
        if cached is None:
            cached = self._images[key] = message_images(self.campaign, message_set, lang)
        return cached

    def _video_for(self, set_id: str, message_set: MessageSet, lang: str) -> Video | None:
        key = (set_id, lang)
        if key not in self._videos:
            self._videos[key] = planned_video(self.campaign.root, message_set.videos[0], lang)
        return self._videos[key]
