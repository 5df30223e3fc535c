"""The publisher interface, its results and its errors.

A :class:`Publisher` takes a :class:`~amplifier.plan.post.PlannedPost` (its parts, with their payloads and
placeholders) and publishes it to one account, returning where each part went. ``check()`` says who the
account is and which limits its server has; ``close()`` releases the network client.

Errors are classified for the caller, who decides what to do next:

* :class:`TransientError`: network failure, timeout, any 5xx (a 502 too): retry later.
* :class:`RateLimitedError` (a transient error): HTTP 429; ``reset_at`` from the headers: retry then.
* :class:`PermanentError`: 400 / 422 validation, or a part over the server's limits: do not retry.
* :class:`AuthError`: 401 / 403, rejected credentials: stop posting for the account.
* :class:`OutcomeUnknownError` (a transient error): a write whose request may have reached the server (the
  connection dropped after sending, a read timeout, a truncated or invalid answer): the post may be out.

Nothing a server can do (drop, truncate, garbage, any status) reaches a caller as anything but one of these
(:mod:`amplifier.publish.faults` classifies the HTTP stack's exceptions). Every message is redacted
(:func:`amplifier.redact.redact`): a server that echoes a token or a password gets neither into a message.

Every error carries ``done``: the parts of a thread published before it happened, so that
``publish(post, resume=error.done)`` continues the thread instead of starting it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from amplifier.clock import Clock, utcnow
from amplifier.errors import AmplifierError, CredentialsError, ExitCode
from amplifier.plan.post import Image, Part, PlannedPost
from amplifier.publish.state import StateStore
from amplifier.redact import redact

if TYPE_CHECKING:
    from collections.abc import Sequence

    from amplifier.publish.engagement import Engagement, PublishedPart
    from amplifier.publish.secrets import SecretSources


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PartResult:
    """Where one part of a post was published (or, in a dry run, what would be sent)."""

    index: int
    id: str  # Mastodon: the status id; Bluesky: the record key; dry run: ""
    url: str | None = None  # the public web address
    uri: str | None = None  # Bluesky: at://did/app.bsky.feed.post/rkey; Mastodon: the status URI
    cid: str | None = None  # Bluesky: the record's CID
    existed: bool = False  # it was already published before this call
    payload: Mapping[str, Any] | None = None  # dry run: what would be sent

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "index": self.index,
            "id": self.id,
            "url": self.url,
            "uri": self.uri,
            "cid": self.cid,
            "existed": self.existed,
        }
        if self.payload is not None:
            data["payload"] = dict(self.payload)
        return data


@dataclass(frozen=True)
class PostRef:
    """A post as a command's result names it (the first keys of its JSON): publish, gate, correct."""

    post_id: str
    account: str
    platform: str

    def ref_json(self) -> dict[str, Any]:
        return {"id": self.post_id, "account": self.account, "platform": self.platform}


@dataclass(frozen=True)
class PublishResult(PostRef):
    """Where a post (every part of its thread) was published."""

    parts: tuple[PartResult, ...]
    dry_run: bool = False

    @property
    def url(self) -> str | None:
        return self.parts[0].url if self.parts else None

    @property
    def already_published(self) -> bool:
        return bool(self.parts) and all(part.existed for part in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.ref_json(),
            "dry_run": self.dry_run,
            "already_published": self.already_published,
            "url": self.url,
            "parts": [part.to_json() for part in self.parts],
        }


@dataclass(frozen=True)
class AccountInfo:
    """Who an account is on its server and the limits the server announced."""

    account: str
    platform: str
    ok: bool
    handle: str | None = None  # Mastodon acct (user@instance); Bluesky handle
    id: str | None = None  # Mastodon account id; Bluesky DID
    url: str | None = None  # profile page
    server: str | None = None
    limits: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None
    bot: bool | None = None  # the account discloses automation (Mastodon bot flag; Bluesky profile label)
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "platform": self.platform,
            "ok": self.ok,
            "handle": self.handle,
            "id": self.id,
            "url": self.url,
            "server": self.server,
            "limits": dict(self.limits),
            "error": None if self.error is None else redact(self.error),
            "bot": self.bot,
            "warnings": [redact(warning) for warning in self.warnings],
        }


# --------------------------------------------------------------------------------------------- errors


class PublishError(AmplifierError):
    """A post could not be published; ``done`` holds the parts that were."""

    exit_code = ExitCode.PUBLISH
    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        done: Mapping[int, PartResult] | None = None,
        account: str | None = None,
        post_id: str | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.status = status
        self.done: dict[int, PartResult] = dict(done or {})
        self.account = account
        self.post_id = post_id

    def with_context(self, *, done: Mapping[int, PartResult], account: str, post_id: str) -> PublishError:
        """Attach the thread's progress and where it happened (returns ``self``)."""
        self.done = dict(done)
        self.account = account
        self.post_id = post_id
        return self

    def __str__(self) -> str:
        message = super().__str__()
        if self.account and self.post_id and message.startswith(f"{self.account}: "):
            message = message[len(self.account) + 2 :]  # said once, with the post id, below
        where = ":".join(x for x in (self.account, self.post_id) if x)
        prefix = f"{where}: " if where and not message.startswith(where) else ""
        progress = f" ({len(self.done)} part(s) already published)" if self.done else ""
        return redact(f"{prefix}{message}{progress}")


class TransientError(PublishError):
    """Network failure, timeout or a server error (5xx, including 502): retry later."""

    kind = "transient"


class RateLimitedError(TransientError):
    """The server asked us to wait (429): retry at ``reset_at``."""

    kind = "rate_limited"

    def __init__(self, message: str, *, reset_at: datetime | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reset_at = reset_at


class OutcomeUnknownError(TransientError):
    """A write may have reached the server, and no answer says what it did (the connection dropped after the
    request was sent, a read timeout, a truncated or invalid answer): the post may be out. Retry only where
    a retry cannot make a second copy (a Bluesky record key, a Mastodon Idempotency-Key within its hour);
    else look first."""

    kind = "unknown"


class PermanentError(PublishError):
    """The server (or our check of its limits) refused the post as invalid: do not retry, fix it."""

    kind = "permanent"


class AuthError(PublishError, CredentialsError):
    """The credentials were rejected (401/403) or a login is refused: stop posting for this account.

    ``fingerprint``: the keyed fingerprint of the rejected secret (never the secret), when known; store it
    with the pause and compare with :func:`amplifier.publish.sessions.secret_changed` to resume the account
    as soon as its secret is replaced."""

    exit_code = ExitCode.ACCOUNT
    kind = "auth"

    def __init__(self, message: str, *, fingerprint: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.fingerprint = fingerprint


def classify_status(status: int, message: str, **kwargs: Any) -> PublishError:
    """The error for an HTTP error status (other than 429, which needs its headers)."""
    if status in (401, 403):
        return AuthError(
            f"the server rejected the credentials (HTTP {status}): {message}", status=status, **kwargs
        )
    if status == 429:
        return RateLimitedError(f"rate limited (HTTP 429): {message}", reset_at=None, status=status, **kwargs)
    if status >= 500 or status in (408, 409):
        return TransientError(f"server error (HTTP {status}): {message}; will retry", status=status, **kwargs)
    return PermanentError(f"the server refused the post (HTTP {status}): {message}", status=status, **kwargs)


def parse_reset(
    headers: Mapping[str, str], *, now: datetime | None = None, retry_after: float | None = None
) -> datetime | None:
    """When a rate limit resets, from the response headers (case-insensitive names).

    ``X-RateLimit-Reset`` (Mastodon: ISO 8601, sometimes epoch seconds), ``RateLimit-Reset`` (Bluesky: epoch
    seconds), ``Retry-After`` (seconds or an HTTP date) or a ``retry_after`` in seconds, in that order.
    """
    now = now or utcnow()
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    for name in ("x-ratelimit-reset", "ratelimit-reset"):
        value = lower.get(name)
        if not value:
            continue
        parsed = _parse_instant(value, now)
        if parsed is not None:
            return parsed
    value = lower.get("retry-after")
    if value:
        try:
            return now + timedelta(seconds=max(float(value), 0.0))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return when if when.tzinfo else when.replace(tzinfo=UTC)
    if retry_after is not None:
        return now + timedelta(seconds=max(retry_after, 0.0))
    return None


def _parse_instant(value: str, now: datetime) -> datetime | None:
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if number > 10**9:  # an epoch timestamp
            return datetime.fromtimestamp(number, tz=UTC)
        return now + timedelta(seconds=max(number, 0.0))  # delta-seconds (draft RateLimit headers)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------- interface


class Publisher(Protocol):
    """Publishes planned posts to one account."""

    account: str
    platform: str

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        """Publish every part of ``post`` not already in ``resume``; a :class:`PublishError` on failure."""
        ...

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        """The parts of ``post`` already on the server (where the platform can tell without posting)."""
        ...

    def read_engagement(self, parts: Sequence[PublishedPart]) -> list[Engagement]:
        """The counts (likes, reposts, replies, quotes) of published ``parts`` now, one reading per part read;
        a part deleted on the server reads as ``gone``. See :mod:`amplifier.publish.engagement`."""
        ...

    def check(self) -> AccountInfo:
        """Who the account is and its server's limits; raises :class:`AuthError` / :class:`TransientError`."""
        ...

    def close(self) -> None: ...


@dataclass
class PublishContext:
    """What every publisher needs from outside: secrets, the state store (the state folder; the ledger's database
    for the nodes of a shared ledger), the clock and timeouts."""

    secrets: SecretSources
    state: StateStore
    clock: Clock = utcnow
    timeout: float = 30.0  # seconds, per HTTP request
    card_timeout: float = 5.0  # seconds, fetching a page for a link card
    media_wait: float = 60.0  # seconds to wait for the server to process an uploaded image
    video_wait: float = (
        600.0  # seconds to wait for an uploaded video to be processed (Mastodon, video service)
    )
    base_dir: Path | None = None  # relative image paths are resolved against this folder

    def image_file(self, path: str) -> Path:
        """The file of an image named in a payload: a relative path is taken from :attr:`base_dir`."""
        file = Path(path)
        if not file.is_absolute() and self.base_dir is not None:
            file = self.base_dir / file
        return file


# --------------------------------------------------------------------------------------------- placeholders


def part_image(part: Part, path: str) -> Image:
    """The image of ``part`` (its alt text, its type) that the payload's ``{"$upload": path}`` uploads."""
    for image in part.images:
        if image.path == path:
            return image
    if part.video is not None and part.video.path == path:
        return part.video.as_image()
    raise PermanentError(f"the payload uploads {path} but the part lists no such image")


def ref_index(ref: object) -> int:
    """The part number of a ``{"$ref": "part:N"}`` placeholder's value."""
    if isinstance(ref, str) and ref.startswith("part:") and ref[5:].isdigit():
        return int(ref[5:])
    raise PermanentError(f"unknown reference {ref!r} in the post's payload (expected part:N)")


PLACEHOLDERS = frozenset({"$upload", "$ref", "$card", "$handle", "$quote"})


def placeholder(value: object) -> tuple[str, Any] | None:
    """``("$upload", path)`` for ``{"$upload": path}`` (and the other placeholders), else ``None``."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), *_ = value.items()
        if key in PLACEHOLDERS:
            return key, inner
    return None


def find_placeholders(value: object) -> list[tuple[str, Any]]:
    """Every placeholder left anywhere in ``value`` (to refuse sending one unresolved)."""
    found: list[tuple[str, Any]] = []
    hit = placeholder(value)
    if hit is not None:
        found.append(hit)
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(find_placeholders(item))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(find_placeholders(item))
    return found
