"""Every exception Mastodon.py, atproto, httpx and requests can raise becomes a classified PublishError.

Defect 3 of issue 8: ``httpx.RemoteProtocolError`` on ``putRecord`` and a ``ValueError`` from a truncated JSON
body reached the daemon as unknown exceptions (its "bug" path). Here: the classes of the four libraries,
instantiated and raised from inside a publisher's call, and the cases that matter one by one.
"""

from __future__ import annotations

import http.client
import inspect
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import atproto_client.exceptions
import atproto_core.exceptions
import httpx
import mastodon.errors
import pytest
import requests
import requests.exceptions
import urllib3.exceptions

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.publish import PublishContext
from amplifier.publish.base import (
    OutcomeUnknownError,
    PermanentError,
    PublishError,
    RateLimitedError,
    TransientError,
)
from amplifier.publish.bluesky import BlueskyPublisher
from amplifier.publish.bluesky_errors import classify
from amplifier.publish.faults import classify_transport
from amplifier.publish.mastodon import MastodonPublisher, StatusOutcomeUnknown
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

MASTODON_STACK: tuple[ModuleType, ...] = (mastodon.errors, requests.exceptions, urllib3.exceptions)
BLUESKY_STACK: tuple[ModuleType, ...] = (atproto_client.exceptions, atproto_core.exceptions, httpx)


def exception_classes(modules: tuple[ModuleType, ...]) -> list[type[BaseException]]:
    seen: dict[type[BaseException], None] = {}
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            defined_here = cls.__module__.split(".")[0] == module.__name__.split(".")[0]
            if issubclass(cls, BaseException) and not issubclass(cls, Warning) and defined_here:
                seen[cls] = None
    return list(seen)


ARGS: tuple[tuple[Any, ...], ...] = (
    (),
    ("boom",),
    ("boom", "{", 0),  # json.JSONDecodeError(msg, doc, pos)
    (None, "boom"),  # urllib3: (pool or conn, message)
    (None, "/", "boom"),  # urllib3: (pool, url, message)
    ("pds.test", None, "boom"),  # urllib3 NameResolutionError(host, conn, reason)
    (4, 10),  # IncompleteRead(partial, expected)
)


def instance(cls: type[BaseException]) -> BaseException:
    for args in ARGS:
        try:
            return cls(*args)
        except (TypeError, AttributeError, ValueError):
            continue
    if issubclass(cls, httpx.HTTPStatusError):
        request = httpx.Request("GET", "http://pds.test/")
        return cls("boom", request=request, response=httpx.Response(500, request=request))
    return cls.__new__(cls)  # one that cannot be built by hand: not even its str() works


@pytest.fixture
def masto(tmp_path: Path) -> MastodonPublisher:
    settings = MastodonAccount(platform="mastodon", instance="https://masto.test", token_env="T_TOKEN")
    ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"))
    return MastodonPublisher("masto", settings, ctx)


class FakeClient:
    """Stands in for atproto's Client where the publisher only needs a logged-in one."""


@pytest.fixture
def bsky(tmp_path: Path) -> BlueskyPublisher:
    settings = BlueskyAccount(
        platform="bluesky", handle="camp.test", service="https://pds.test", password_env="T_PASSWORD"
    )
    ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"))
    publisher = BlueskyPublisher("bsky", settings, ctx)
    publisher._client = FakeClient()  # type: ignore[assignment]
    return publisher


def raiser(exc: BaseException) -> Any:
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fn


IDS = {"ids": lambda c: f"{c.__module__}.{c.__name__}"}


@pytest.mark.parametrize("cls", exception_classes(MASTODON_STACK), **IDS)  # type: ignore[arg-type]
@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_every_mastodon_stack_exception_reaches_callers_as_a_publish_error(
    cls: type[BaseException], write: bool, masto: MastodonPublisher
) -> None:
    """Raised by Mastodon.py itself, or raised inside it while requests failed (its ``__context__``)."""
    for exc in (instance(cls), wrapped(mastodon.errors.MastodonNetworkError, instance(cls))):
        with pytest.raises(PublishError) as caught:
            masto._call(raiser(exc), write=write)
        assert write or not isinstance(caught.value, OutcomeUnknownError)


@pytest.mark.parametrize("cls", exception_classes(BLUESKY_STACK), **IDS)  # type: ignore[arg-type]
@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_every_bluesky_stack_exception_reaches_callers_as_a_publish_error(
    cls: type[BaseException], write: bool, bsky: BlueskyPublisher
) -> None:
    """Raised by atproto, or by httpx through it (bare, or as the ``__cause__`` of atproto's own)."""
    for exc in (instance(cls), wrapped(atproto_client.exceptions.NetworkError, instance(cls))):
        with pytest.raises(PublishError) as caught:
            bsky._call(raiser(exc), write=write)
        assert write or not isinstance(caught.value, OutcomeUnknownError)


def wrapped(outer: type[BaseException], inner: BaseException) -> BaseException:
    """``outer`` raised while handling ``inner`` (as Mastodon.py does: ``__context__``) and from it (as
    atproto does: ``__cause__``)."""
    try:
        try:
            raise inner
        except BaseException as cause:
            if issubclass(outer, atproto_client.exceptions.RequestErrorBase):
                raise outer() from cause  # atproto: no response, the httpx exception as the cause
            raise outer("Could not complete request: boom") from cause
    except BaseException as exc:
        return exc


def connection_error(reason: BaseException) -> requests.exceptions.ConnectionError:
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason))  # type: ignore[arg-type]


REMOTE_DISCONNECTED = requests.exceptions.ConnectionError(
    urllib3.exceptions.ProtocolError(
        "Connection aborted.", http.client.RemoteDisconnected("Remote end closed connection")
    )
)
NOT_SENT = [
    httpx.ConnectError("refused"),
    httpx.ConnectTimeout("connect timed out"),
    httpx.PoolTimeout("pool"),
    connection_error(urllib3.exceptions.NewConnectionError(None, "refused")),  # type: ignore[arg-type]
    requests.exceptions.ConnectTimeout("connect timed out"),
]
MAY_HAVE_ARRIVED = [
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
    httpx.ReadTimeout("read timed out"),
    httpx.ReadError("reset by peer"),
    httpx.WriteTimeout("write timed out"),
    httpx.DecodingError("bad gzip"),
    ValueError("Unterminated string starting at: line 1 column 8 (char 7)"),
    json.JSONDecodeError("Expecting value", '{"uri": "at://', 14),
    KeyError("cid"),
    REMOTE_DISCONNECTED,
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.ChunkedEncodingError("IncompleteRead"),
    requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0),
]


@pytest.mark.parametrize("exc", NOT_SENT, ids=lambda e: type(e).__name__)
def test_a_request_that_never_left_is_transient_even_for_a_write(exc: BaseException) -> None:
    for error in (
        classify_transport(exc, write=True, where="x"),
        classify(wrapped(atproto_client.exceptions.NetworkError, exc), write=True),
        classify(wrapped(atproto_client.exceptions.InvokeTimeoutError, exc), write=True),
    ):
        assert type(error) is TransientError, error


@pytest.mark.parametrize("exc", MAY_HAVE_ARRIVED, ids=lambda e: type(e).__name__)
def test_a_write_whose_answer_was_lost_or_garbled_has_an_unknown_outcome(exc: BaseException) -> None:
    assert type(classify_transport(exc, write=True, where="x")) is OutcomeUnknownError
    assert type(classify_transport(exc, write=False, where="x")) is TransientError
    assert type(classify(exc, write=True)) is OutcomeUnknownError
    assert type(classify(exc, write=False)) is TransientError


def test_mastodon_status_request_dropped_after_sending_is_a_status_outcome_unknown(
    masto: MastodonPublisher,
) -> None:
    dropped = wrapped(mastodon.errors.MastodonNetworkError, REMOTE_DISCONNECTED)
    with pytest.raises(StatusOutcomeUnknown):
        masto._call(raiser(dropped), write=True)
    refused = wrapped(
        mastodon.errors.MastodonNetworkError,
        connection_error(urllib3.exceptions.NewConnectionError(None, "refused")),  # type: ignore[arg-type]
    )
    with pytest.raises(TransientError) as caught:
        masto._call(raiser(refused), write=True)
    assert not isinstance(caught.value, OutcomeUnknownError)  # never sent: a plain retry
    garbled = mastodon.errors.MastodonAPIError(
        'Could not parse response as JSON, response code was 200, bad json content was b\'{"id": "1\'.',
        "Exception was: Unterminated string",
    )
    with pytest.raises(StatusOutcomeUnknown):
        masto._call(raiser(garbled), write=True)
    with pytest.raises(TransientError) as caught:
        masto._call(raiser(garbled), write=False)
    assert not isinstance(caught.value, OutcomeUnknownError)


def test_a_mastodon_answer_of_the_wrong_shape_is_classified(masto: MastodonPublisher) -> None:
    with pytest.raises(StatusOutcomeUnknown):
        masto._answer({"error": "?"}, "id", write=True)
    with pytest.raises(TransientError):
        masto._answer(["not", "an", "object"], "id")
    assert masto._answer({"id": "5"}, "id") == {"id": "5"}


def test_a_429_on_a_mastodon_lookup_carries_the_servers_reset(masto: MastodonPublisher) -> None:
    masto._last_headers = {"x-ratelimit-reset": "2027-11-01T12:05:00.000Z"}
    with pytest.raises(RateLimitedError) as caught:
        masto._call(raiser(mastodon.errors.MastodonRatelimitError("Hit rate limit.")))
    assert caught.value.reset_at is not None
    assert caught.value.reset_at.isoformat() == "2027-11-01T12:05:00+00:00"


def test_our_configuration_is_permanent() -> None:
    for exc in (
        httpx.InvalidURL("no"),
        requests.exceptions.MissingSchema("no"),
        requests.exceptions.InvalidURL("x"),
    ):
        assert type(classify_transport(exc, write=True, where="x")) is PermanentError
