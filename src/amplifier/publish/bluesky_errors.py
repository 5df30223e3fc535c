"""What an atproto call's failure means: an XRPC error answer (its status, error name and message, and the
rate-limit headers), a transport failure, or an unreadable answer, as a classified
:class:`~amplifier.publish.base.PublishError` (see :func:`classify`); and which failures of a login are a
rejection of the credentials (:func:`login_rejected`), the only ones the login guard counts.

The atproto package is imported lazily, inside the functions that use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import httpx

from amplifier.publish.base import (
    AuthError,
    PermanentError,
    PublishError,
    RateLimitedError,
    TransientError,
    classify_status,
    parse_reset,
)
from amplifier.publish.faults import ANSWER_ERRORS, classify_transport


def xrpc_error(exc: BaseException) -> tuple[int | None, str, str, Mapping[str, str]]:
    """(status, error name, message, headers) of an atproto SDK exception."""
    response = getattr(exc, "response", None)
    if response is None:
        cause = exc.__cause__ or exc.__context__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else type(exc).__name__
        return None, "", detail, {}
    content = response.content
    name = getattr(content, "error", None) or ""
    message = getattr(content, "message", None) or ""
    if isinstance(content, dict):
        name = str(content.get("error") or "")
        message = str(content.get("message") or "")
    elif isinstance(content, bytes):
        message = content[:200].decode("utf-8", errors="replace")
    return response.status_code, str(name), str(message), dict(response.headers or {})


def classify(
    exc: BaseException,
    *,
    now: datetime | None = None,
    write: bool = False,
    where: str = "the PDS",
    reading: str | None = None,
) -> PublishError:
    """The :class:`PublishError` for anything an SDK call can raise: an atproto exception (with or without
    an answer), an httpx exception it let through (``RemoteProtocolError``...), or an error reading an
    answer (a truncated or invalid JSON body). ``write``: a lost answer leaves the outcome unknown.
    ``reading``: what a read asked for (``"the record at at://..."``): a refusal is worded for it, not for
    "the post"."""
    from atproto_client import exceptions as ex

    if not isinstance(exc, ex.AtProtocolError) or isinstance(exc, ex.ModelError):
        return classify_transport(exc, write=write, where=where)
    status, name, message, headers = xrpc_error(exc)
    text = ": ".join(x for x in (name, message) if x) or type(exc).__name__
    if status is None:
        if isinstance(exc, ex.RequestErrorBase):  # a transport failure, the httpx exception as __cause__
            return classify_transport(exc, write=write, where=where)
        return TransientError(f"request to {where} failed ({text}); will retry")
    if status == 429:
        retry_after = getattr(exc, "retry_after", None)
        reset_at = parse_reset(headers, now=now, retry_after=retry_after)
        when = f"; retry after {reset_at:%Y-%m-%d %H:%M:%S} UTC" if reset_at else ""
        return RateLimitedError(f"rate limited (HTTP 429: {text}){when}", reset_at=reset_at, status=status)
    if status == 400 and name in {"ExpiredToken", "InvalidToken"}:
        return AuthError(f"the session is no longer valid ({text})", status=status)
    if status == 413:
        return PermanentError(f"the server refused the upload as too large (HTTP 413: {text})", status=status)
    if status == 400 and not name:  # an XRPC error always names itself: this body was cut or garbled
        error = classify_transport(
            ValueError(f"HTTP 400 without an XRPC error: {text}"), write=write, where=where
        )
        error.status = status
        return error
    if reading is not None and 400 <= status < 500 and status not in (401, 403, 408, 409):
        return PermanentError(read_refused(reading, where, status, name, message), status=status)
    return classify_status(status, text)


NOT_SERVED = frozenset({"MethodNotImplemented", "XRPCNotSupported"})  # an endpoint this server lacks


def read_refused(reading: str, where: str, status: int, name: str, message: str) -> str:
    """Why a read was refused, for what was read: a query the PDS does not serve (``app.bsky.*`` needs an
    AppView behind it; a bare PDS answers ``No service configured for ...``), a record that is not there, or
    another refusal."""
    text = ": ".join(x for x in (name, message) if x)
    if message.startswith("No service configured for") or name in NOT_SERVED:
        return (
            f"reading {reading} failed: {where} does not serve this query (a PDS without an AppView behind it?)"
            f" (HTTP {status}: {text})"
        )
    if name == "RecordNotFound" or message == "Could not locate record":
        return f"reading {reading} failed: {where} has no such record (HTTP {status}: {text})"
    return f"reading {reading} failed: {where} refused the request (HTTP {status}: {text})"


def is_session_error(exc: BaseException) -> bool:
    status, name, _, _ = xrpc_error(exc)
    return status == 401 or (status == 400 and name in {"ExpiredToken", "InvalidToken"})


# The XRPC error names of a createSession whose credentials the server rejected.
LOGIN_REJECTED = frozenset(
    {
        "AuthenticationRequired",
        "InvalidPassword",
        "AccountTakedown",
        "AccountDeactivated",
        "AuthFactorTokenRequired",
        "InvalidToken",
        "ExpiredToken",
    }
)


def login_rejected(exc: BaseException) -> bool:
    """Whether a failed ``createSession`` means the credentials were rejected: a 401, or a 400/403 with an
    authentication error. Anything else (5xx, 429, timeouts, drops, garbage) is an outage, not a rejection."""
    status, name, _, _ = xrpc_error(exc)
    return status == 401 or (status in (400, 403) and name in LOGIN_REJECTED)


# What an SDK call can raise besides a classified PublishError.
CALL_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.StreamError,
    httpx.CookieConflict,
    *ANSWER_ERRORS,
)
