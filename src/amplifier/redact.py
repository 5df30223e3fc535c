"""Redaction: no secret reaches output, logs, the ledger or an alert, not even one a server echoes back.

Two nets, applied to every text that comes from a server (error bodies, reasons) before it is stored or shown:

* **Known values.** Every secret amplifier reads (account tokens and passwords, see
  :meth:`amplifier.publish.secrets.SecretSources.get`) is registered here with :func:`register`; any occurrence
  of one in a text becomes ``[redacted]``, also in its URL-encoded and JSON-escaped forms.
* **Shapes.** What looks like a credential whoever it belongs to: ``Authorization:`` header values, bearer
  and basic tokens, ``password=`` / ``"password": "..."`` (and token, secret, access_token, refresh_token,
  accessJwt, refreshJwt, appPassword) values, and JWTs.

Ground level: imports nothing from amplifier, so every stage may use it.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "[redacted]"
# Shorter values are not registered: masking every "abc" in every message would hide more than it protects.
MIN_LENGTH = 6

_lock = threading.Lock()
_known: set[str] = set()
# The known values by their first MIN_LENGTH characters, each list longest first (rebuilt after a change): a
# text is checked only for the values whose head it contains, not for every value of every account.
_heads: dict[str, list[str]] | None = None

_KEYS = (
    r"password|passwd|pass|app_?password|secret|client_secret|token|access_?token|refresh_?token"
    r"|access_?jwt|refresh_?jwt|api_?key|authorization"
)
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xyz / Authorization: Basic xyz / "Authorization": "Bearer xyz"
    (re.compile(r"""(?i)(["']?authorization["']?\s*[:=]\s*["']?)[^"'\r\n,}]+"""), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic|dpop)(\s+)[A-Za-z0-9\-._~+/]+=*"), rf"\1\2{MASK}"),
    # "password": "value" (JSON, either quote)
    (re.compile(rf"""(?i)(["'](?:{_KEYS})["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2"""), rf"\1\2{MASK}\2"),
    # password=value (form, query string, log)
    (re.compile(rf"(?i)\b((?:{_KEYS})\s*=\s*)[^\s&,;\"']+"), rf"\1{MASK}"),
    # a JWT: three base64url segments, the first a JSON header ("eyJ")
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
)


def register(secret: str) -> None:
    """Remember ``secret`` so that :func:`redact` masks it wherever it appears (in any text, from now on)."""
    value = secret.strip()
    if len(value) < MIN_LENGTH:
        return
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    global _heads
    with _lock:
        _known.update(form for form in forms if len(form) >= MIN_LENGTH)
        _heads = None


def forget_all() -> None:
    """Forget every registered secret (for tests)."""
    global _heads
    with _lock:
        _known.clear()
        _heads = None


def _known_heads() -> dict[str, list[str]]:
    global _heads
    with _lock:
        if _heads is None:
            heads: dict[str, list[str]] = {}
            for value in sorted(_known, key=len, reverse=True):
                heads.setdefault(value[:MIN_LENGTH], []).append(value)
            _heads = heads
        return _heads


def redact(text: str) -> str:
    """``text`` without any registered secret and without anything shaped like a credential."""
    if not text:
        return text
    heads = _known_heads()
    if heads:
        found = {text[i : i + MIN_LENGTH] for i in range(len(text) - MIN_LENGTH + 1)} & heads.keys()
        # the longest first: a secret containing another
        candidates = sorted((v for head in found for v in heads[head]), key=len, reverse=True)
        for value in candidates:
            if value in text:
                text = text.replace(value, MASK)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text
