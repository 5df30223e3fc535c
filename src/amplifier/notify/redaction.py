"""Taking secrets out of a text before it leaves the process (an alert, a log line).

A stop-gap local to this stage: the project-wide ``amplifier.redact`` takes its place once it exists. Removes
every known secret value (the accounts' tokens and passwords, the destinations' and the heartbeat's URLs and their
token-bearing parts), then what looks like a secret whatever its value: bearer tokens, JWTs, ``password=...`` and
the password of a URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "[redacted]"
MIN_SECRET = 6  # shorter values would mask ordinary words

_SHAPES = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    (
        re.compile(
            r"(?i)((?:password|passwd|token|secret|access_token|app_password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s/@]+@"), r"\1:" + MASK + "@"),
]


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
    """``text`` without any of ``secrets`` (longest first) and without anything shaped like a secret."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text
