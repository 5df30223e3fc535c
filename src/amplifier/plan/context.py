"""What a message is rendered with and adapted for, for one account: the template variables that do not change
from one occurrence to the next (:func:`shared_context`), the account's platform and limits (:func:`account_target`)
and the message's images (:func:`message_images`). The planner and ``compose --account`` both build them here, so
an ad-hoc text is rendered and adapted as a planned post is.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
from collections.abc import Sequence
from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import Account, MastodonAccount, MessageSet, quote_policy
from amplifier.plan.adapt import Target
from amplifier.plan.post import Image
from amplifier.plan.schedule import event_start


def account_target(account: Account) -> Target:
    """What adapting a text for ``account`` needs: its platform, and a Mastodon instance's limits."""
    if isinstance(account, MastodonAccount):
        return Target(
            "mastodon",
            visibility=account.visibility,
            max_characters=account.max_characters,
            url_length=account.characters_reserved_per_url,
        )
    return Target("bluesky")


def account_controls(message_set: MessageSet | None, account: Account) -> dict[str, Any]:
    """The reply / quote controls and self-labels of ``message_set`` on ``account`` (the set's own setting wins
    over the account's default), as :class:`~amplifier.plan.adapt.Content` fields; only what the platform has:
    Mastodon has quote controls only, Bluesky replies, quotes and labels."""
    quotes = (
        message_set.quotes if message_set is not None and message_set.quotes is not None else account.quotes
    )
    controls: dict[str, Any] = {"quotes": quote_policy(quotes)}
    if isinstance(account, MastodonAccount):
        return controls
    replies = message_set.replies if message_set is not None and message_set.replies is not None else None
    replies = replies if replies is not None else account.replies
    controls["replies"] = tuple(replies) if replies is not None else None
    controls["labels"] = message_set.self_labels() if message_set is not None else ()
    return controls


def shared_context(
    campaign: Campaign, event_id: str | None, account_id: str, lang: str, tags: Sequence[str]
) -> dict[str, Any]:
    """The template variables that do not change from one occurrence to the next: ``event``, ``account``,
    ``lang``, ``hashtags``, ``campaign`` (the others are ``days_left``, ``hours_left``, ``now`` and ``at``)."""
    account = campaign.account(account_id)
    event: dict[str, Any] | None = None
    if event_id is not None:
        ev = campaign.schedule.events[event_id]
        event = {
            "id": event_id,
            "name": ev.name.get(lang) or ev.name.get("*", ""),
            "date": ev.date.date() if isinstance(ev.date, dt.datetime) else ev.date,
            "start": event_start(campaign.schedule, ev),
            "url": str(ev.url) if ev.url else "",
        }
    return {
        "event": event,
        "account": {
            "id": account_id,
            "platform": account.platform,
            "handle": getattr(account, "handle", None),
            "instance": str(getattr(account, "instance", "")) or None,
        },
        "lang": lang,
        "hashtags": " ".join("#" + tag for tag in tags),
        "campaign": {"name": campaign.name},
    }


def message_images(campaign: Campaign, message_set: MessageSet, lang: str) -> tuple[Image, ...]:
    """The images of ``message_set`` with their alt text in ``lang``, their type and (when readable) their size."""
    images = []
    for spec in message_set.images:
        path = (campaign.root / spec.path).resolve()
        width = height = None
        try:
            from PIL import Image as PILImage

            with PILImage.open(path) as img:
                width, height = img.size
        except (OSError, ImportError):
            pass  # a missing file is reported by the campaign checks
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        alt = spec.alt.get(lang) or spec.alt.get("*", "")
        images.append(Image(str(path), alt, mime, width, height))
    return tuple(images)
