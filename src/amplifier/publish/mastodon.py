"""Publishing to Mastodon with Mastodon.py.

* One ``Mastodon`` client per account, reused; ``ratelimit_method="throw"`` (the caller schedules the retry,
  nothing sleeps inside a call) and a request timeout.
* The instance's limits come from ``GET /api/v2/instance`` (``configuration.statuses.max_characters``,
  ``characters_reserved_per_url``, ``max_media_attachments``, ``media_attachments.description_limit``) and are
  cached in memory and in the state folder for a day, so a post costs no instance lookup. The version read
  there is passed to Mastodon.py (with ``version_check_mode="created"``, else it would upload to the old
  ``/api/v1/media``).
* Each part is checked against those limits before it is sent (:class:`PermanentError` when over), its length
  counted as the preview counts it (:func:`amplifier.platforms.mastodon_text.status_length`).
* Images are uploaded with ``media_post`` (alt text as ``description``); when the server answers 202 (``url``
  still ``null``) we poll the attachment until it is processed.
* A thread is a chain of replies; every status carries an ``Idempotency-Key`` made from the post id and the
  part index, so a quick retry returns the status already created instead of a second one (Mastodon keeps the
  key for one hour).
* After that hour, :meth:`MastodonPublisher.find_published` tells whether a post is out by looking for it among
  the account's own recent statuses (:mod:`amplifier.publish.mastodon_search`, matching with
  :mod:`amplifier.publish.mastodon_match`).
* ``read_engagement`` reads back the counts of published statuses
  (:mod:`amplifier.publish.mastodon_engagement`).
* Every exception of Mastodon.py and requests is classified (:mod:`amplifier.publish.faults`); a status whose
  answer was lost or garbled is a :class:`StatusOutcomeUnknown`.

Mastodon.py is imported lazily, inside the functions that use it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import urllib3.exceptions

from amplifier.campaign.models import MastodonAccount
from amplifier.plan.post import REF, UPLOAD, Part, PlannedPost
from amplifier.platforms.mastodon_text import status_length
from amplifier.publish import mastodon_controls, mastodon_edit, mastodon_video
from amplifier.publish.base import (
    AccountInfo,
    AuthError,
    OutcomeUnknownError,
    PartResult,
    PermanentError,
    PublishContext,
    PublishError,
    PublishResult,
    RateLimitedError,
    TransientError,
    classify_status,
    find_placeholders,
    parse_reset,
    part_image,
    placeholder,
    ref_index,
)
from amplifier.publish.faults import ANSWER_ERRORS, classify_transport
from amplifier.publish.httpsession import EnvironmentSession
from amplifier.publish.mastodon_engagement import StatusEngagement
from amplifier.publish.mastodon_match import aware_time
from amplifier.publish.mastodon_match import comparable as comparable  # re-exported
from amplifier.publish.mastodon_match import html_to_text as html_to_text  # re-exported
from amplifier.publish.mastodon_search import LOOKUP_PAGES as LOOKUP_PAGES  # re-exported
from amplifier.publish.mastodon_search import LookupIncomplete as LookupIncomplete  # re-exported
from amplifier.publish.mastodon_search import StatusSearch
from amplifier.publish.sessions import LimitsCache, secret_fingerprint

if TYPE_CHECKING:
    from mastodon import Mastodon

log = logging.getLogger(__name__)

DEFAULT_LIMITS: dict[str, int] = {
    "max_characters": 500,
    "characters_reserved_per_url": 23,
    "max_media_attachments": 4,
    "description_limit": 1500,
}
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
# A status created this long before our request was already there (best effort: clocks differ).
EXISTED_MARGIN = timedelta(seconds=2)


def idempotency_key(post_id: str, index: int) -> str:
    """The ``Idempotency-Key`` of part ``index`` of ``post_id`` (readable when short, hashed when long)."""
    key = f"amplifier:{post_id}:{index}"
    if len(key) <= 100:
        return key
    return f"amplifier:{hashlib.sha256(post_id.encode()).hexdigest()}:{index}"


def parse_instance(data: Mapping[str, Any]) -> dict[str, Any]:
    """The limits (and version) in a ``GET /api/v2/instance`` answer; defaults where the server is silent."""
    config = data.get("configuration") or {}
    statuses = config.get("statuses") or {}
    media = config.get("media_attachments") or {}
    limits: dict[str, Any] = dict(DEFAULT_LIMITS)
    for key, value in (
        ("max_characters", statuses.get("max_characters")),
        ("characters_reserved_per_url", statuses.get("characters_reserved_per_url")),
        ("max_media_attachments", statuses.get("max_media_attachments")),
        ("description_limit", media.get("description_limit")),
        ("image_size_limit", media.get("image_size_limit")),
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits[key] = value
    limits.update(mastodon_video.instance_limits(media))
    limits["version"] = str(data.get("version") or "")
    limits["api_version"] = mastodon_controls.api_version(data)
    limits["domain"] = str(data.get("domain") or "")
    return limits


def _api_error(exc: BaseException) -> tuple[int | None, str]:
    args: tuple[Any, ...] = tuple(exc.args)
    status = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    message = str(args[3]) if len(args) > 3 and args[3] else (str(args[2]) if len(args) > 2 else str(exc))
    return status, message


# --------------------------------------------------------------------------------------------- finding a post


class StatusOutcomeUnknown(OutcomeUnknownError):
    """Sending a status failed on the network, timed out or got an unreadable answer: the server may have
    created it all the same (the daemon searches the account for it once the Idempotency-Key expired)."""


class MastodonPublisher(StatusSearch, StatusEngagement):
    """Publishes to one Mastodon account."""

    platform = "mastodon"

    def __init__(self, account: str, settings: MastodonAccount, ctx: PublishContext) -> None:
        self.account = account
        self.settings = settings
        self.ctx = ctx
        self.base_url = str(settings.instance).rstrip("/")
        self.limits_cache = LimitsCache(ctx.state, clock=ctx.clock)
        self._api: Mastodon | None = None
        self._session: requests.Session | None = None
        self._last_headers: dict[str, str] = {}
        self._account_id: str | None = None

    # ------------------------------------------------------------------ client

    def _requests_session(self) -> requests.Session:
        if self._session is None:
            session = EnvironmentSession()
            session.hooks["response"].append(self._remember_headers)
            self._session = session
        return self._session

    def _remember_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_headers = dict(response.headers)

    def limits(self, *, refresh: bool = False) -> dict[str, Any]:
        """The instance's limits: cached (memory, then state folder, one day), else read from the server."""
        key = f"mastodon-{self.base_url}"
        if not refresh:
            cached = self.limits_cache.get(key)
            if cached is not None:
                return cached
        try:
            response = self._requests_session().get(
                self.base_url + "/api/v2/instance",
                timeout=self.ctx.timeout,
                headers={"Accept": "application/json"},
            )
        except requests.RequestException as exc:
            where = f"{self.base_url}/api/v2/instance"
            raise classify_transport(exc, write=False, where=where) from None
        if response.status_code == 429:
            reset_at = parse_reset(response.headers, now=self.ctx.clock())
            message = "rate limited reading the instance's limits"
            raise RateLimitedError(message, reset_at=reset_at, status=429)
        if response.status_code >= 400:
            raise classify_status(response.status_code, f"GET /api/v2/instance: {response.text[:200]}")
        try:
            data = response.json()
        except (ValueError, requests.RequestException):
            raise TransientError(f"{self.base_url}/api/v2/instance did not answer JSON") from None
        if not isinstance(data, dict):
            raise TransientError(f"{self.base_url}/api/v2/instance did not answer a JSON object")
        limits = parse_instance(data)
        self.limits_cache.put(key, limits)
        return limits

    def api(self) -> Mastodon:
        """The account's client (built once; the instance's version comes from the cached limits)."""
        if self._api is not None:
            return self._api
        from mastodon import Mastodon, MastodonVersionError

        token = self.ctx.secrets.get(self.settings.token_env).get_secret_value()
        version = str(self.limits().get("version") or "")
        common: dict[str, Any] = {
            "api_base_url": self.base_url,
            "access_token": token,
            "ratelimit_method": "throw",
            "request_timeout": self.ctx.timeout,
            "session": self._requests_session(),
            "user_agent": "amplifier",
        }
        try:
            if not version:
                raise MastodonVersionError("no version")
            self._api = Mastodon(mastodon_version=version, version_check_mode="created", **common)
        except MastodonVersionError:
            self._api = Mastodon(version_check_mode="none", **common)
        return self._api

    def _call(self, fn: Any, *args: Any, write: bool = False, **kwargs: Any) -> Any:
        """Run a Mastodon.py call, turning every exception it (or requests under it) can raise into a
        classified :class:`PublishError`. ``write``: the call creates something (a status), so an answer lost
        after the request was sent is :class:`StatusOutcomeUnknown`."""
        from mastodon import (
            MastodonAPIError,
            MastodonError,
            MastodonIllegalArgumentError,
            MastodonIOError,
            MastodonNetworkError,
            MastodonRatelimitError,
            MastodonVersionError,
        )

        try:
            return fn(*args, **kwargs)
        except MastodonRatelimitError:
            raise self._rate_limited() from None
        except MastodonNetworkError as exc:  # every requests exception, the original as __context__
            raise self._unknown_if_write(classify_transport(exc, write=write, where=self.base_url)) from None
        except MastodonAPIError as exc:
            status, message = _api_error(exc)
            if status is None:  # an answer that is not JSON (a truncated body, a proxy's HTML page)
                error = classify_transport(ValueError(message), write=write, where=self.base_url)
                raise self._unknown_if_write(error) from None
            if status == 429:  # wait/pace modes can surface a 429 this way
                raise self._rate_limited() from None
            error = classify_status(status, message)
            if isinstance(error, AuthError):
                token = self.ctx.secrets.get(self.settings.token_env).get_secret_value()
                error = AuthError(
                    f"{self.base_url} rejected the access token in {self.settings.token_env} (HTTP {status}: "
                    f"{message}); stop posting for this account until it is replaced",
                    status=status,
                    fingerprint=secret_fingerprint(self.ctx.state, token),
                )
            raise error from None
        except (
            MastodonIllegalArgumentError,
            MastodonIOError,
            MastodonVersionError,
        ) as exc:  # our files, args
            raise PermanentError(f"{type(exc).__name__}: {exc}") from None
        except MastodonError as exc:  # any other library error
            kind = StatusOutcomeUnknown if write else TransientError
            raise kind(f"{type(exc).__name__} from {self.base_url}: {exc}") from None
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
        ) as exc:  # Mastodon.py wraps them today
            raise self._unknown_if_write(classify_transport(exc, write=write, where=self.base_url)) from None
        except ANSWER_ERRORS as exc:  # Mastodon.py reading an answer of an unexpected shape
            error = classify_transport(exc, write=write, where=self.base_url)
            raise self._unknown_if_write(error) from None

    def _rate_limited(self) -> RateLimitedError:
        """The 429 just answered, with the reset the server gave (``X-RateLimit-Reset``, ``Retry-After``)."""
        reset_at = parse_reset(self._last_headers, now=self.ctx.clock())
        if reset_at is None and self._api is not None and self._api.ratelimit_reset:
            reset_at = datetime.fromtimestamp(float(self._api.ratelimit_reset), tz=UTC)
        when = f"; retry after {reset_at:%Y-%m-%d %H:%M:%S} UTC" if reset_at else ""
        return RateLimitedError(f"rate limited (HTTP 429){when}", reset_at=reset_at, status=429)

    @staticmethod
    def _unknown_if_write(error: PublishError) -> PublishError:
        """A status whose outcome is unknown is a :class:`StatusOutcomeUnknown` (the daemon searches for it)."""
        if isinstance(error, OutcomeUnknownError) and not isinstance(error, StatusOutcomeUnknown):
            return StatusOutcomeUnknown(str(error))
        return error

    def _answer(self, answer: Any, *keys: str, write: bool = False) -> Mapping[str, Any]:
        """``answer`` if it is an object with ``keys`` (an id...), else the classified error of a garbled
        answer (outcome unknown for a write)."""
        if isinstance(answer, Mapping) and all(answer.get(key) not in (None, "") for key in keys):
            return answer
        error = classify_transport(
            ValueError(f"an answer without {', '.join(keys) or 'an object'}"),
            write=write,
            where=self.base_url,
        )
        raise self._unknown_if_write(error)

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

    def _created_before_this_request(self, created: object) -> bool:
        """Whether the status answered was already there (the Idempotency-Key returned an old one).

        Best effort: its ``created_at`` is compared with the server's own ``Date`` header of the answer (any
        case: servers send ``date``; so
        clocks do not matter), with a margin for slow requests; a repeat within seconds looks new."""
        created_at = aware_time(created) if isinstance(created, datetime) else None
        if created_at is None:
            return False
        try:
            date = next((v for k, v in self._last_headers.items() if k.lower() == "date"), "")
            answered = aware_time(parsedate_to_datetime(date))
        except (TypeError, ValueError):
            answered = None
        return created_at < (answered or self.ctx.clock()) - EXISTED_MARGIN

    # ------------------------------------------------------------------ Publisher

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        done: dict[int, PartResult] = dict(resume or {})
        try:
            api = self.api()  # the token first: a missing one is the first thing to report
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
                done[index] = PartResult(
                    index=index,
                    id=str(status["id"]),
                    url=status.get("url"),
                    uri=status.get("uri"),
                    existed=existed,
                )
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

    def set_quote_policy(self, status_ids: Sequence[str], policy: str) -> list[str]:
        return mastodon_controls.set_quote_policy(self, status_ids, policy)

    def automation(self) -> bool:
        return mastodon_controls.automation(self)

    def disclose_automation(self) -> bool:
        return mastodon_controls.disclose_automation(self)

    # ------------------------------------------------------------------ edits (mastodon_edit)

    def status_source(self, status_id: str) -> tuple[str, str]:
        return mastodon_edit.status_source(self, status_id)

    def edit_status(self, status_id: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        return mastodon_edit.edit_status(self, status_id, payload)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self._api = None
        self._account_id = None
