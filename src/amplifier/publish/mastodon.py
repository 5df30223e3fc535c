"""Publishing to Mastodon with Mastodon.py.

* The client, the instance's limits and the classification of every error are
  :class:`~amplifier.publish.mastodon_client.MastodonClient`'s, the base of the publisher.
* Each part is checked against the instance's limits before it is sent (:class:`PermanentError` when over), its
  length counted as the preview counts it (:func:`amplifier.platforms.mastodon_text.status_length`).
* Images are uploaded with ``media_post`` (alt text as ``description``); when the server answers 202 (``url``
  still ``null``) we poll the attachment until it is processed.
* A thread is a chain of replies; every status carries an ``Idempotency-Key`` made from the post id and the
  part index, so a quick retry returns the status already created instead of a second one (Mastodon keeps the
  key for one hour).
* After that hour, :meth:`MastodonPublisher.find_published` tells whether a post is out by looking for it among
  the account's own recent statuses (:mod:`amplifier.publish.mastodon_search`, matching with
  :mod:`amplifier.publish.mastodon_match`).
* ``read_engagement`` reads back the counts of published statuses
  (:mod:`amplifier.publish.mastodon_engagement`); quote controls and the ``bot`` flag are
  :mod:`amplifier.publish.mastodon_controls`'.

Mastodon.py is imported lazily, inside the functions that use it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from amplifier.plan.post import REF, UPLOAD, Part, PlannedPost
from amplifier.platforms.mastodon_text import status_length
from amplifier.publish import mastodon_controls, mastodon_edit, mastodon_followups, mastodon_video
from amplifier.publish.base import (
    AccountInfo,
    PartResult,
    PermanentError,
    PublishError,
    PublishResult,
    TransientError,
    find_placeholders,
    part_image,
    placeholder,
    ref_index,
)
from amplifier.publish.mastodon_client import DEFAULT_LIMITS as DEFAULT_LIMITS  # re-exported
from amplifier.publish.mastodon_client import StatusOutcomeUnknown as StatusOutcomeUnknown  # re-exported
from amplifier.publish.mastodon_client import parse_instance as parse_instance  # re-exported
from amplifier.publish.mastodon_client import status_part
from amplifier.publish.mastodon_engagement import StatusEngagement
from amplifier.publish.mastodon_match import comparable as comparable  # re-exported
from amplifier.publish.mastodon_match import html_to_text as html_to_text  # re-exported
from amplifier.publish.mastodon_search import LOOKUP_PAGES as LOOKUP_PAGES  # re-exported
from amplifier.publish.mastodon_search import LookupIncomplete as LookupIncomplete  # re-exported
from amplifier.publish.mastodon_search import StatusSearch

log = logging.getLogger(__name__)


STATUS_KEYS = frozenset(
    {
        "status",
        "visibility",
        "language",
        "spoiler_text",
        "sensitive",
        "media_ids",
        "in_reply_to_id",
        "quote_approval_policy",
        "quoted_status_id",
    }
)


def idempotency_key(post_id: str, index: int) -> str:
    """The ``Idempotency-Key`` of part ``index`` of ``post_id`` (readable when short, hashed when long)."""
    key = f"amplifier:{post_id}:{index}"
    if len(key) <= 100:
        return key
    return f"amplifier:{hashlib.sha256(post_id.encode()).hexdigest()}:{index}"


class MastodonPublisher(StatusSearch, StatusEngagement):
    """Publishes to one Mastodon account (the client is :class:`MastodonClient`'s)."""

    platform = "mastodon"

    # ------------------------------------------------------------------ parts

    def check_part(self, part: Part, limits: Mapping[str, Any]) -> None:
        """Refuse a part the instance would refuse (length, media count, alt text length)."""
        payload = part.payload
        status = str(payload.get("status", ""))
        spoiler = str(payload.get("spoiler_text") or "")
        length = status_length(status, spoiler, int(limits["characters_reserved_per_url"]))
        if length > int(limits["max_characters"]):
            raise PermanentError(
                f"the status counts {length} characters (with the content warning); the instance "
                f"allows {limits['max_characters']}"
            )
        media = payload.get("media_ids") or []
        if len(media) > int(limits["max_media_attachments"]):
            allowed = limits["max_media_attachments"]
            raise PermanentError(f"{len(media)} images; the instance allows {allowed}")
        for image in part.images:
            if len(image.alt) > int(limits["description_limit"]):
                raise PermanentError(
                    f"the alt text of {Path(image.path).name} has {len(image.alt)} characters; the instance "
                    f"allows {limits['description_limit']}"
                )
        for problem in mastodon_video.check_video(part, limits):
            raise PermanentError(problem)
        unknown = set(payload) - STATUS_KEYS
        if unknown:
            raise PermanentError(f"unknown status parameter(s) in the payload: {sorted(unknown)}")

    def _upload(self, part: Part, path: str) -> str:
        image = part_image(part, path)
        file = self.ctx.image_file(path)
        if not file.is_file():
            raise PermanentError(f"{file}: the image does not exist")
        api = self.api()
        media = self._answer(
            self._call(api.media_post, str(file), mime_type=image.mime, description=image.alt), "id"
        )
        video = part.video is not None and part.video.path == path  # a video takes longer to process
        deadline = time.monotonic() + (self.ctx.video_wait if video else self.ctx.media_wait)
        delay = 0.25
        while media.get("url") is None:  # 202: still processing
            if time.monotonic() > deadline:
                raise TransientError(f"{file.name}: the server did not finish processing the upload in time")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            media = self._answer(self._call(api.media, media["id"]), "id")
        return str(media["id"])

    def build_params(self, part: Part, done: Mapping[int, PartResult]) -> dict[str, Any]:
        """The ``status_post`` arguments for ``part``, placeholders resolved (images uploaded here)."""
        params: dict[str, Any] = dict(part.payload)
        media_ids = []
        for item in params.get("media_ids") or []:
            hit = placeholder(item)
            if hit is None or hit[0] != UPLOAD:
                media_ids.append(item)
                continue
            media_ids.append(self._upload(part, str(hit[1])))
        if media_ids:
            params["media_ids"] = media_ids
        else:
            params.pop("media_ids", None)
        hit = placeholder(params.get("in_reply_to_id"))
        if hit is not None and hit[0] == REF:
            index = ref_index(hit[1])
            if index not in done:
                raise PermanentError(f"part {index} must be published before a reply to it")
            params["in_reply_to_id"] = done[index].id
        left = find_placeholders(params)
        if left:
            raise PermanentError(f"unresolved placeholder(s) in the status: {left}")
        return params

    # ------------------------------------------------------------------ Publisher

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        done: dict[int, PartResult] = dict(resume or {})
        try:
            api = self.plain_api()  # the token first: a missing one is the first thing to report
            limits = self.limits()
            for part in post.parts:
                self.check_part(part, limits)
            for index, part in enumerate(post.parts):
                if index in done:
                    continue
                params = self.build_params(part, done)
                if mastodon_controls.without_unsupported(params, limits):
                    log.warning("%s: %s", self.account, mastodon_controls.NO_QUOTE_CONTROLS)
                key = idempotency_key(post.id, index)
                status = self._answer(
                    self._call(api.status_post, idempotency_key=key, write=True, **params), "id", write=True
                )
                existed = self._created_before_this_request(status.get("created_at"))
                done[index] = status_part(index, status, existed=existed)
        except PublishError as exc:
            raise exc.with_context(done=done, account=self.account, post_id=post.id) from None
        parts = tuple(done[i] for i in range(len(post.parts)))
        return PublishResult(post_id=post.id, account=self.account, platform=self.platform, parts=parts)

    def check(self) -> AccountInfo:
        self.ctx.secrets.get(self.settings.token_env)  # a missing token is the first thing to report
        limits = self.limits(refresh=True)
        api = self.api()
        me = self._answer(self._call(api.account_verify_credentials), "id")
        self._account_id = str(me.get("id"))
        domain = limits.get("domain") or self.base_url.split("://", 1)[-1]
        acct = str(me.get("acct") or me.get("username"))
        return AccountInfo(
            account=self.account,
            platform=self.platform,
            ok=True,
            handle=acct if "@" in acct else f"{acct}@{domain}",
            id=str(me.get("id")),
            url=me.get("url"),
            server=self.base_url,
            limits={k: int(v) for k, v in limits.items() if isinstance(v, int)},
            bot=bool(me.get("bot")),
            warnings=()
            if mastodon_controls.supports_quote_policy(limits)
            else (mastodon_controls.NO_QUOTE_CONTROLS,),
        )

    # ------------------------------------------------------------------ controls (mastodon_controls)

    set_quote_policy = mastodon_controls.set_quote_policy
    automation = mastodon_controls.automation
    disclose_automation = mastodon_controls.disclose_automation
    followups = mastodon_followups.followups  # boost, pin, delete on a published post

    # ------------------------------------------------------------------ edits (mastodon_edit)

    status_source = mastodon_edit.status_source
    edit_status = mastodon_edit.edit_status
