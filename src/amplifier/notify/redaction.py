"""Taking secrets out of a text before it leaves the process (an alert, a log line).

The project-wide :func:`amplifier.redact.redact` does the work (every secret amplifier read, in its plain,
URL-encoded and JSON-escaped forms, and whatever is shaped like a credential: bearer tokens, JWTs,
``password=...``). This stage adds what only it knows: the values it is given (the destinations' and the
heartbeat's URLs and their token-bearing parts, see :func:`url_fragments`) and the password of any URL
(``scheme://user:password@host``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

from amplifier import redact as project

MASK = project.MASK
MIN_SECRET = project.MIN_LENGTH  # shorter values would mask ordinary words

_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s/@]+@")


def url_fragments(url: str) -> list[str]:
    """The parts of a URL that may hold a token on their own (Apprise URLs carry tokens in any part: the password,
    the user, the host of ``tgram://TOKEN/CHAT``, path segments, query values): the password, and every other part
    that looks like a token (8 characters or more, with a digit, not an address), so that plain words such as a
    user name are left alone."""
    try:
        parts = urlsplit(url.strip())
        password = parts.password or ""
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return []
    candidates = [parts.username or "", host if "." not in host else ""]
    candidates += [unquote(segment) for segment in parts.path.split("/")]
    candidates += [value for _key, value in parse_qsl(parts.query)]
    return [password] * bool(password) + [item for item in candidates if _tokenish(item)]


def _tokenish(text: str) -> bool:
    return len(text) >= 8 and any(c.isdigit() for c in text) and not re.fullmatch(r"[\d.:\[\]]+", text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without any of ``secrets`` (longest first), without the password of a URL, and cleaned by
    :func:`amplifier.redact.redact` (every registered secret, everything shaped like one)."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(r"\1:" + MASK + "@", text)
    return project.redact(text)
