"""The connection of a Mastodon publisher to its instance: Mastodon.py's client, the instance's limits and
every call classified.

* One ``Mastodon`` client per account, reused, over one ``requests`` session
  (:class:`~amplifier.publish.httpsession.EnvironmentSession`); ``ratelimit_method="throw"`` (the caller
  schedules the retry, nothing sleeps inside a call) and a request timeout.
* The instance's limits come from ``GET /api/v2/instance`` (``configuration.statuses.max_characters``,
  ``characters_reserved_per_url``, ``max_media_attachments``, ``media_attachments.description_limit``) and are
  cached in memory and in the state folder for a day, so a post costs no instance lookup. The version read
  there is passed to Mastodon.py (with ``version_check_mode="created"``, else it would upload to the old
  ``/api/v1/media``).
* Every exception of Mastodon.py and requests is classified (:mod:`amplifier.publish.faults`); a status whose
  answer was lost or garbled is a :class:`StatusOutcomeUnknown`.

:class:`MastodonClient` is the base of the publisher's parts (:mod:`~amplifier.publish.mastodon`,
:mod:`~amplifier.publish.mastodon_search`, :mod:`~amplifier.publish.mastodon_engagement`,
:mod:`~amplifier.publish.mastodon_controls`). Mastodon.py is imported lazily, inside the functions that use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
import urllib3.exceptions

from amplifier.campaign.models import MastodonAccount
from amplifier.publish.base import (
    AuthError,
    OutcomeUnknownError,
    PartResult,
    PermanentError,
    PublishContext,
    PublishError,
    RateLimitedError,
    TransientError,
    classify_status,
    parse_reset,
)
from amplifier.publish.faults import ANSWER_ERRORS, classify_transport
from amplifier.publish.httpsession import EnvironmentSession
from amplifier.publish.mastodon_controls import api_version
from amplifier.publish.mastodon_match import aware_time
from amplifier.publish.sessions import LimitsCache, secret_fingerprint

if TYPE_CHECKING:
    from mastodon import Mastodon

DEFAULT_LIMITS: dict[str, int] = {
    "max_characters": 500,
    "characters_reserved_per_url": 23,
    "max_media_attachments": 4,
    "description_limit": 1500,
}
# A status created this long before our request was already there (best effort: clocks differ).
EXISTED_MARGIN = timedelta(seconds=2)


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
    limits["version"] = str(data.get("version") or "")
    limits["api_version"] = api_version(data)
    limits["domain"] = str(data.get("domain") or "")
    return limits


def _api_error(exc: BaseException) -> tuple[int | None, str]:
    args: tuple[Any, ...] = tuple(exc.args)
    status = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    message = str(args[3]) if len(args) > 3 and args[3] else (str(args[2]) if len(args) > 2 else str(exc))
    return status, message


class StatusOutcomeUnknown(OutcomeUnknownError):
    """Sending a status failed on the network, timed out or got an unreadable answer: the server may have
    created it all the same (the daemon searches the account for it once the Idempotency-Key expired)."""


def status_part(index: int, status: Mapping[str, Any], *, existed: bool) -> PartResult:
    """The :class:`PartResult` of part ``index`` published as ``status`` (an answer with an ``id``)."""
    return PartResult(
        index=index, id=str(status["id"]), url=status.get("url"), uri=status.get("uri"), existed=existed
    )


class MastodonClient:
    """One account's client, limits and classified calls (see the module docstring)."""

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

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self._api = None
        self._account_id = None
