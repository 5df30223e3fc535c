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
* The hot calls (``status_post``, reading a status back) go through a second client over the same session
  (:meth:`MastodonClient.plain_api`) whose answers are the JSON as parsed: Mastodon.py otherwise converts every
  answer into its typed entities (a third of its CPU for a post: nested objects, dates parsed), and those calls
  read four keys of it. See :func:`plain_client_class`.
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
from functools import cache
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
from amplifier.publish.mastodon_video import instance_limits as video_limits
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
    limits.update(video_limits(media))
    limits["version"] = str(data.get("version") or "")
    limits["api_version"] = api_version(data)
    limits["domain"] = str(data.get("domain") or "")
    return limits


#: Mastodon.py's one place that turns an answer into its typed entities (``Mastodon.__try_cast_to_type``).
CAST_HOOK = "_Mastodon__try_cast_to_type"


@cache
def plain_client_class() -> type[Mastodon]:
    """Mastodon.py's client whose answers are left as parsed (dicts and lists of the JSON), for the calls whose
    answer we only read a few keys of.

    Mastodon.py casts every answer through one private method (:data:`CAST_HOOK`); this subclass answers it with
    the value unchanged, which is what the cast itself falls back to for a shape it does not know. Its error
    handling is untouched (an error's JSON is read the same way, a body that is not JSON is still an error). A
    Mastodon.py without that method gets the client as it is (typed answers, slower; ``tests`` notice)."""
    from mastodon import Mastodon

    if not callable(getattr(Mastodon, CAST_HOOK, None)):
        return Mastodon

    def as_parsed(self: Mastodon, value: Any, override_type: Any = None) -> tuple[Any, None]:
        return value, None

    return type("PlainMastodon", (Mastodon,), {CAST_HOOK: as_parsed, "__module__": __name__})


def answer_time(value: object) -> datetime | None:
    """A time in an answer: a datetime (a typed answer) or an ISO 8601 text (a plain one); None if neither."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return aware_time(value) if isinstance(value, datetime) else None


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
        self._plain: Mastodon | None = None
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
        if self._api is None:
            from mastodon import Mastodon

            self._api = self._client(Mastodon)
        return self._api

    def plain_api(self) -> Mastodon:
        """The account's client whose answers are the JSON as parsed (:func:`plain_client_class`), over the same
        session: for ``status_post`` and reading a status, whose answers are read with ``.get``."""
        if self._plain is None:
            self._plain = self._client(plain_client_class())
        return self._plain

    def _client(self, kind: type[Mastodon]) -> Mastodon:
        from mastodon import MastodonVersionError

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
            return kind(mastodon_version=version, version_check_mode="created", **common)
        except MastodonVersionError:
            return kind(version_check_mode="none", **common)

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
        for api in (self._plain, self._api):
            if reset_at is None and api is not None and api.ratelimit_reset:
                reset_at = datetime.fromtimestamp(float(api.ratelimit_reset), tz=UTC)
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
        created_at = answer_time(created)
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
        self._api = self._plain = None
        self._account_id = None
