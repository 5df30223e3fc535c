"""What goes wrong on the wire, classified: every exception the HTTP stack can raise as a :class:`PublishError`.

The SDKs wrap some transport failures and let others through: atproto turns ``httpx.TimeoutException`` and
``httpx.NetworkError`` into its own ``InvokeTimeoutError`` / ``NetworkError`` (the httpx exception as
``__cause__``) but lets ``httpx.RemoteProtocolError`` ("Server disconnected without sending a response"), a
decoding error or a ``ValueError`` from a truncated JSON body through; Mastodon.py turns every ``requests``
exception into ``MastodonNetworkError`` (the original as ``__context__``) and an unreadable body into
``MastodonAPIError``. :func:`classify_transport` looks at the innermost exception and answers:

* the request never left (connection refused, DNS, connect timeout, pool timeout, a proxy or TLS failure
  before sending): :class:`TransientError`, retry later;
* the request may have reached the server and the answer was lost or unreadable (the connection dropped
  after sending, read or write timeout, a truncated or chunked-encoding error, invalid JSON, an answer of
  the wrong shape): :class:`OutcomeUnknownError` for a write (the post may be out), :class:`TransientError`
  for a read;
* our own configuration is wrong (an invalid URL or scheme): :class:`PermanentError`.

:data:`ANSWER_ERRORS` are the exceptions that reading a broken or unexpected answer raises (``json`` and
pydantic raise ``ValueError``; a field missing or of the wrong type raises ``KeyError`` / ``TypeError`` /
``IndexError`` / ``AttributeError``); callers catch them only around the code that reads an answer.
"""

from __future__ import annotations

import httpx
import requests
import urllib3.exceptions

from amplifier.publish.base import OutcomeUnknownError, PermanentError, PublishError, TransientError

# Reading an answer that is truncated, not JSON, or JSON of another shape than documented.
ANSWER_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    UnicodeError,
)

# The request certainly did not reach the server.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    requests.exceptions.ConnectTimeout,
    requests.exceptions.ProxyError,
    requests.exceptions.SSLError,
    urllib3.exceptions.NewConnectionError,  # NameResolutionError, refused
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.ProxyError,
    urllib3.exceptions.SSLError,
    ConnectionRefusedError,
)
# Our configuration, not the server: retrying cannot help.
_CONFIG = (
    httpx.InvalidURL,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidHeader,
    urllib3.exceptions.LocationValueError,
)
_REFUSED = (
    httpx.ConnectError,
    urllib3.exceptions.NewConnectionError,  # a subclass of urllib3's ConnectTimeoutError, yet a refusal
    ConnectionRefusedError,
)
_TRANSPORT = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.StreamError,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)
_TIMEOUTS = (
    httpx.TimeoutException,
    requests.exceptions.Timeout,
    urllib3.exceptions.TimeoutError,
    TimeoutError,
)


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions behind it (``__cause__``, else ``__context__``, and urllib3's ``reason``
    inside a ``MaxRetryError`` or the first argument of a requests ``ConnectionError``), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 12:
        seen.append(current)
        inner = current.__cause__ or current.__context__
        if inner is None and isinstance(current, urllib3.exceptions.MaxRetryError):
            reason = current.reason
            inner = reason if isinstance(reason, BaseException) else None
        if inner is None and isinstance(current, requests.exceptions.RequestException) and current.args:
            first = current.args[0]
            inner = first if isinstance(first, BaseException) else None
        current = inner
    return seen


def _text(exc: BaseException) -> str:
    """``str(exc)``, or nothing when that fails (some urllib3 exceptions cannot say what they are)."""
    try:
        return str(exc).strip()
    except Exception:
        return ""


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` is (or wraps) a failure of the HTTP stack rather than an answer of the server."""
    return any(isinstance(item, _TRANSPORT) for item in chain(exc))


def classify_transport(exc: BaseException, *, write: bool, where: str) -> PublishError:
    """The :class:`PublishError` for a transport failure or an unreadable answer (see the module docstring).

    ``write``: the request creates something (a post), so an answer lost after sending leaves the outcome
    unknown. ``where``: the server or the request, for the message."""
    items = chain(exc)
    innermost = items[-1]
    text = _text(innermost)
    name = f"{type(innermost).__name__}: {text[:200]}" if text else type(innermost).__name__
    if any(isinstance(item, _CONFIG) for item in items):
        return PermanentError(f"cannot send a request to {where}: {name}: {innermost}")
    if any(isinstance(item, _NOT_SENT) for item in items):
        refused = any(isinstance(i, _REFUSED) for i in items)
        timed_out = not refused and any(isinstance(i, _TIMEOUTS) for i in items)
        detail = "timed out connecting" if timed_out else "cannot connect"
        return TransientError(f"{detail} to {where} ({name}); will retry")
    if any(isinstance(item, _TIMEOUTS) for item in items):
        what = "timed out: no answer in time"
    elif is_transport_error(exc):
        what = f"the connection failed ({name})"
    else:
        what = f"an invalid answer ({name})"
    if write:
        return OutcomeUnknownError(f"{what} from {where} after the request was sent; the post may be out")
    return TransientError(f"{what} from {where}; will retry")
