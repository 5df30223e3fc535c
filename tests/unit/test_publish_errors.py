"""Error classification: HTTP statuses, rate-limit reset headers, atproto SDK exceptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from atproto_client import exceptions as ex
from atproto_client.models.common import XrpcError
from atproto_client.request import Response

from amplifier.errors import AmplifierError, ExitCode
from amplifier.publish.base import (
    AuthError,
    PartResult,
    PermanentError,
    PublishError,
    RateLimitedError,
    TransientError,
    classify_status,
    find_placeholders,
    parse_reset,
    placeholder,
    ref_index,
)
from amplifier.publish.bluesky_errors import classify

NOW = datetime(2027, 11, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentError),
        (401, AuthError),
        (403, AuthError),
        (404, PermanentError),
        (408, TransientError),
        (422, PermanentError),
        (429, RateLimitedError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
    ],
)
def test_classify_status(status: int, kind: type[PublishError]) -> None:
    error = classify_status(status, "boom")
    assert type(error) is kind
    assert error.status == status
    assert isinstance(error, AmplifierError)


def test_502_is_not_an_auth_failure() -> None:
    assert not isinstance(classify_status(502, "Bad gateway"), AuthError)


def test_exit_codes() -> None:
    assert AuthError("x").exit_code == ExitCode.ACCOUNT
    assert PermanentError("x").exit_code == ExitCode.PUBLISH
    assert isinstance(RateLimitedError("x", reset_at=None), TransientError)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Reset": "2027-11-01T12:05:00.000Z"}, NOW + timedelta(minutes=5)),
        ({"x-ratelimit-reset": "2027-11-01T12:05:00+00:00"}, NOW + timedelta(minutes=5)),
        ({"RateLimit-Reset": str(int((NOW + timedelta(minutes=7)).timestamp()))}, NOW + timedelta(minutes=7)),
        ({"ratelimit-reset": "30"}, NOW + timedelta(seconds=30)),  # delta seconds (draft RateLimit header)
        ({"Retry-After": "120"}, NOW + timedelta(minutes=2)),
        ({"Retry-After": "Mon, 01 Nov 2027 12:10:00 GMT"}, NOW + timedelta(minutes=10)),
        ({}, None),
        ({"X-RateLimit-Reset": "soon"}, None),
    ],
)
def test_parse_reset(headers: dict[str, str], expected: datetime | None) -> None:
    assert parse_reset(headers, now=NOW) == expected


def test_parse_reset_falls_back_to_retry_after_seconds() -> None:
    assert parse_reset({}, now=NOW, retry_after=90) == NOW + timedelta(seconds=90)


def _response(
    status: int, error: str = "", message: str = "", headers: dict[str, str] | None = None
) -> Response:
    return Response(
        success=False,
        status_code=status,
        content=XrpcError(error=error, message=message),
        headers={k.lower(): v for k, v in (headers or {}).items()},
    )


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (
            ex.BadRequestError(_response(400, "InvalidRequest", "Invalid app.bsky.feed.post record")),
            PermanentError,
        ),
        (ex.UnauthorizedError(_response(401, "AuthenticationRequired", "Invalid identifier")), AuthError),
        (ex.BadRequestError(_response(400, "ExpiredToken", "Token has expired")), AuthError),
        (ex.RequestException(_response(500, "InternalServerError")), TransientError),
        (ex.NetworkError(_response(502, "", "Bad Gateway")), TransientError),
        (ex.RequestException(_response(413, "PayloadTooLarge")), PermanentError),
    ],
)
def test_classify_atproto_errors(exc: Exception, kind: type[PublishError]) -> None:
    assert type(classify(exc, now=NOW)) is kind


PDS = "https://pds.example"


@pytest.mark.parametrize(
    ("error", "message", "said"),
    [
        (
            "InvalidRequest",
            "No service configured for app.bsky.feed.getPosts",
            "reading the counts failed: https://pds.example does not serve this query (a PDS without an AppView"
            " behind it?) (HTTP 400: InvalidRequest: No service configured for app.bsky.feed.getPosts)",
        ),
        (
            "InvalidRequest",
            "Could not locate record",
            "reading the counts failed: https://pds.example has no such record"
            " (HTTP 400: InvalidRequest: Could not locate record)",
        ),
        (
            "InvalidRequest",
            "Invalid at-uri",
            "reading the counts failed: https://pds.example refused the request (HTTP 400: InvalidRequest:"
            " Invalid at-uri)",
        ),
    ],
)
def test_a_refused_read_is_worded_for_what_was_read(error: str, message: str, said: str) -> None:
    """A read the bare PDS cannot answer said "the server refused the post", as if a post had been refused."""
    exc = ex.BadRequestError(_response(400, error, message))
    classified = classify(exc, now=NOW, where=PDS, reading="the counts")
    assert type(classified) is PermanentError
    assert str(classified) == said
    assert "the post" in str(classify(exc, now=NOW, where=PDS))  # a write is still about the post


def test_classify_atproto_transport_errors() -> None:
    try:
        try:
            raise httpx.ReadTimeout("read timed out")
        except httpx.ReadTimeout as cause:
            raise ex.InvokeTimeoutError from cause
    except ex.InvokeTimeoutError as exc:
        error = classify(exc, now=NOW)
    assert type(error) is TransientError
    assert "in time" in str(error)

    try:
        try:
            raise httpx.ConnectError("connection refused")
        except httpx.ConnectError as cause:
            raise ex.NetworkError from cause
    except ex.NetworkError as exc:
        error = classify(exc, now=NOW)
    assert type(error) is TransientError
    assert "connection refused" in str(error)


def test_classify_atproto_rate_limit_reads_the_reset_header() -> None:
    reset = int((NOW + timedelta(minutes=3)).timestamp())
    exc = ex.RateLimitExceededError(
        _response(429, "RateLimitExceeded", headers={"RateLimit-Reset": str(reset)})
    )
    error = classify(exc, now=NOW)
    assert isinstance(error, RateLimitedError)
    assert error.reset_at == NOW + timedelta(minutes=3)


def test_error_message_carries_account_post_and_progress() -> None:
    done = {0: PartResult(index=0, id="a")}
    error = TransientError("server error").with_context(done=done, account="bsky-en", post_id="r:bsky-en:x")
    assert str(error) == "bsky-en:r:bsky-en:x: server error (1 part(s) already published)"
    assert error.done == done
    named = AuthError("bsky-en: rejected").with_context(done={}, account="bsky-en", post_id="p")
    assert str(named) == "bsky-en:p: rejected"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"$upload": "/a.png"}, ("$upload", "/a.png")),
        ({"$ref": "part:0"}, ("$ref", "part:0")),
        ({"$card": "https://x"}, ("$card", "https://x")),
        ({"$handle": "a.test"}, ("$handle", "a.test")),
        ({"$link": "bafy"}, None),  # an atproto CID link is not ours
        ({"$type": "blob"}, None),
        ({"$upload": "/a.png", "alt": "x"}, None),
        ("text", None),
    ],
)
def test_placeholder(value: object, expected: tuple[str, str] | None) -> None:
    assert placeholder(value) == expected


def test_find_placeholders_walks_nested_values() -> None:
    record = {"embed": {"images": [{"image": {"$upload": "/a"}}, {"image": {"ref": {"$link": "b"}}}]}}
    assert find_placeholders(record) == [("$upload", "/a")]


@pytest.mark.parametrize("bad", ["part:", "part:x", "0", None])
def test_ref_index_refuses_bad_refs(bad: object) -> None:
    with pytest.raises(PermanentError):
        ref_index(bad)
    assert ref_index("part:12") == 12
