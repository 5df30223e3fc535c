"""Publishing to Bluesky (any AT Protocol PDS) with the ``atproto`` SDK.

* **Exactly once.** Each part is written with ``com.atproto.repo.putRecord`` at a record key derived from
  the post's stable id and the part's index (:func:`record_key`). The record is deterministic too
  (``createdAt`` is the slot time), so writing it again is a no-op that returns the same CID: a retry never
  creates a second post. (``createRecord`` with an existing key answers HTTP 500,
  bluesky-social/atproto#3718, hence ``putRecord``.) ``getRecord`` is only asked when resuming after an
  unknown outcome or when looking up a post, so the steady state is ONE request per text post.
* **Sessions.** The session (access + refresh token) is kept in the state folder (0600) and refreshed by the
  SDK (``on_session_change`` saves the new tokens); a password login happens only when there is no usable
  session, and :class:`~amplifier.publish.sessions.LoginGuard` keeps wrong credentials to a few attempts an hour.
* **Bare PDS.** No AppView is needed to publish: login with ``fetch_bsky_profile=False``, write to the
  session's DID. Reading engagement back (``read_engagement``, :mod:`amplifier.publish.bluesky_engagement`)
  goes through the PDS to its AppView.

The atproto package is imported lazily, inside the functions that use it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import regex

from amplifier.campaign.models import BlueskyAccount
from amplifier.plan.post import CARD, REF, UPLOAD, Part, PlannedPost
from amplifier.platforms.bluesky_text import HANDLE, MAX_BYTES, MAX_GRAPHEMES, grapheme_length, utf8_length
from amplifier.publish import bluesky_controls
from amplifier.publish.base import (
    AccountInfo,
    AuthError,
    PartResult,
    PermanentError,
    PublishContext,
    PublishError,
    PublishResult,
    RateLimitedError,
    TransientError,
    find_placeholders,
    part_image,
    placeholder,
    ref_index,
)
from amplifier.publish.bluesky_controls import (
    missing_gates,
    write_missing_gates,
    write_with_gates,
)
from amplifier.publish.bluesky_engagement import BlueskyEngagement
from amplifier.publish.bluesky_errors import (
    CALL_ERRORS,
    classify,
    is_session_error,
    login_rejected,
    xrpc_error,
)
from amplifier.publish.linkcard import CardError, fetch_card, fetch_image
from amplifier.publish.media import MAX_BLOB_BYTES, ImageError, prepare_image
from amplifier.publish.sessions import LoginGuard, LoginRefusedError, SessionStore

if TYPE_CHECKING:
    from atproto import Client

log = logging.getLogger(__name__)

COLLECTION = "app.bsky.feed.post"
MAX_IMAGES = 4

# ----------------------------------------------------------------------------------------- record keys

TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
TID_PATTERN = regex.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


def encode_tid(micros: int, clock_id: int) -> str:
    """The TID for a timestamp in microseconds since the epoch and a 10-bit clock id."""
    if not 0 <= micros < 1 << 53:
        raise ValueError("a TID timestamp is 53 bits of microseconds")
    if not 0 <= clock_id < 1 << 10:
        raise ValueError("a TID clock id is 10 bits")
    value = (micros << 10) | clock_id
    chars = []
    for _ in range(13):
        chars.append(TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def decode_tid(tid: str) -> tuple[int, int]:
    """``(microseconds, clock_id)`` of a TID."""
    if not TID_PATTERN.match(tid):
        raise ValueError(f"not a TID: {tid!r}")
    value = 0
    for char in tid:
        value = (value << 5) | TID_ALPHABET.index(char)
    return value >> 10, value & 1023


def record_key(post_id: str, index: int, at: datetime) -> str:
    """The deterministic record key (a valid TID) of part ``index`` of post ``post_id``, planned at ``at``.

    A TID is 53 bits of microseconds since the epoch then 10 bits of clock id, in base32-sortable. We take:

    * timestamp = the slot time (whole seconds) + an offset below one second taken from SHA-256(post id)
      + the part index (so a thread's parts sort in order and stay within the slot's second);
    * clock id = 10 more bits of the same hash.

    The key is near the slot time (Bluesky sorts by it) and the same post id always gives the same key,
    while two posts of one account in the same second differ in 30 hash bits.
    """
    digest = hashlib.sha256(post_id.encode("utf-8")).digest()
    offset = int.from_bytes(digest[:4], "big") % 999_000  # leaves room for up to 1000 parts in the second
    clock_id = int.from_bytes(digest[4:6], "big") & 0x3FF
    seconds = int(at.timestamp())
    return encode_tid(seconds * 1_000_000 + offset + index, clock_id)


def public_url(handle_or_did: str, rkey: str) -> str:
    return f"https://bsky.app/profile/{handle_or_did}/post/{rkey}"


# ----------------------------------------------------------------------------------------- publisher


class BlueskyPublisher(BlueskyEngagement):
    """Publishes to one Bluesky account; one SDK client, reused for every post."""

    platform = "bluesky"

    def __init__(
        self,
        account: str,
        settings: BlueskyAccount,
        ctx: PublishContext,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self.account = account
        self.settings = settings
        self.ctx = ctx
        self.service = str(settings.service).rstrip("/")
        self.sessions = SessionStore(ctx.state)
        self.guard = LoginGuard(ctx.state, clock=ctx.clock)
        self._client: Client | None = None
        self._did: str | None = None
        self._handle: str | None = None
        self._from_store = False
        self._dids: dict[str, str] = {}
        self._http = http

    # ------------------------------------------------------------------ session

    def _new_client(self) -> Client:
        from atproto_client.request import Request

        from amplifier.publish.bluesky_session import SessionClient  # refreshed under the session's lock

        client = SessionClient(
            self.service + "/xrpc",
            sessions=self.sessions,
            account=self.account,
            request=Request(timeout=self.ctx.timeout),
        )
        client.on_session_change(self._on_session_change)
        return client

    def _on_session_change(self, event: Any, session: Any) -> None:
        from atproto import SessionEvent

        if event in (SessionEvent.CREATE, SessionEvent.REFRESH):
            self.sessions.save(self.account, session.encode())
        self._did, self._handle = session.did, session.handle

    def _session(self) -> Client:
        """The logged-in client: from the saved session when there is one (no request), else a login."""
        if self._client is not None:
            return self._client
        saved = self.sessions.load(self.account)
        if saved is not None:
            client = self._new_client()
            try:
                client.login(session_string=saved, fetch_bsky_profile=False)
            except Exception as exc:  # a damaged or foreign session file: log in afresh
                log.info("%s: discarding the saved session (%s)", self.account, type(exc).__name__)
                self.sessions.delete(self.account)
            else:
                if (
                    self._handle or ""
                ).lower() == self.settings.handle.lower() or self._did == self.settings.handle:
                    self._client, self._from_store = client, True
                    return client
                log.info("%s: the saved session is for another handle; logging in again", self.account)
                self.sessions.delete(self.account)
        return self._login()

    def _login(self) -> Client:
        from atproto_client import exceptions as ex

        # Read afresh: a corrected password is used at once (and its fingerprint differs from the rejected).
        password = self.ctx.secrets.get(self.settings.password_env, fresh=True).get_secret_value()
        fingerprint = self.guard.fingerprints.of(password)
        try:
            self.guard.check(self.account, password)
        except LoginRefusedError as exc:
            if exc.rejected:  # this very password was rejected: a credential problem
                raise AuthError(str(exc), fingerprint=fingerprint) from None
            # the hour's login budget is spent (an outage): wait, nothing to fix
            raise RateLimitedError(str(exc), reset_at=exc.retry_at) from None
        client = self._new_client()
        try:
            client.login(self.settings.handle, password, fetch_bsky_profile=False)
        except (ex.AtProtocolError, *CALL_ERRORS) as exc:
            if login_rejected(exc):
                self.guard.record(self.account, "rejected", password)
                error = classify(exc, now=self.ctx.clock(), where=self.service)
                raise AuthError(
                    f"{self.account}: {self.service} rejected the login of {self.settings.handle} with the "
                    f"password in {self.settings.password_env} ({error}); fix the password: a new one is "
                    "tried at once, the same one not for a while",
                    status=error.status,
                    fingerprint=fingerprint,
                ) from None
            self.guard.record(self.account, "failed")
            error = classify(exc, now=self.ctx.clock(), where=self.service)
            if isinstance(error, AuthError | PermanentError):  # a 4xx that is no rejection: retry later
                error = TransientError(f"the login failed ({error}); will retry", status=error.status)
            raise error from None
        self.guard.record(self.account, "ok")
        self._client, self._from_store = client, False
        return client

    def _call(self, fn: Any, *args: Any, write: bool = False, **kwargs: Any) -> Any:
        """Run an SDK call; when a saved session turns out dead, log in once and run it again. Whatever the
        SDK or httpx raise becomes a classified :class:`PublishError` (``write``: a lost answer leaves the
        outcome unknown)."""
        from atproto_client import exceptions as ex

        client = self._session()
        try:
            return fn(client, *args, **kwargs)
        except PublishError:
            raise
        except (ex.AtProtocolError, *CALL_ERRORS) as exc:
            if self._from_store and is_session_error(exc):
                if not self._adopt_stored(client):
                    log.info("%s: the saved session was refused; logging in again", self.account)
                    self.sessions.delete(self.account)
                    self.close()
                    self._login()
                client = self._session()
                try:
                    return fn(client, *args, **kwargs)
                except PublishError:
                    raise
                except (ex.AtProtocolError, *CALL_ERRORS) as again:
                    raise self._classify(again, write) from None
            raise self._classify(exc, write) from None

    @staticmethod
    def _adopt_stored(client: Client) -> bool:
        """Another process stored a newer session (it refreshed, or logged in): use it (True)."""
        from amplifier.publish.bluesky_session import SessionClient

        return isinstance(client, SessionClient) and client.adopt_stored()

    def _classify(self, exc: BaseException, write: bool) -> PublishError:
        return classify(exc, now=self.ctx.clock(), write=write, where=self.service)

    @property
    def did(self) -> str:
        self._session()
        if self._did is None:  # pragma: no cover - the SDK always sets a DID with the session
            raise AuthError(f"{self.account}: the session has no DID")
        return self._did

    # ------------------------------------------------------------------ XRPC

    def _procedure(self, nsid: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """A write (``com.atproto.repo.*``) with a JSON body; its answer's content."""
        body = json.dumps(dict(data), ensure_ascii=False).encode("utf-8")

        def call(client: Client) -> dict[str, Any]:
            response = client.invoke_procedure(
                nsid, content=body, headers={"Content-Type": "application/json"}
            )
            return dict(response.content or {})

        result: dict[str, Any] = self._call(call, write=True)
        return result

    def _put_record(
        self, rkey: str, record: Mapping[str, Any], collection: str = COLLECTION
    ) -> dict[str, Any]:
        content = self._procedure(
            "com.atproto.repo.putRecord",
            {"repo": self.did, "collection": collection, "rkey": rkey, "record": record},
        )
        if not content.get("uri") or not content.get("cid"):
            raise ValueError("a putRecord answer without uri and cid")
        return content

    def _get_record(self, rkey: str, collection: str = COLLECTION) -> dict[str, Any] | None:
        from atproto_client import exceptions as ex
        from atproto_client import models

        def call(client: Client) -> dict[str, Any] | None:
            try:
                response = client.invoke_query(
                    "com.atproto.repo.getRecord",
                    params=models.ComAtprotoRepoGetRecord.Params(
                        repo=self.did, collection=collection, rkey=rkey
                    ),
                )
            except ex.BadRequestError as exc:
                _, name, _, _ = xrpc_error(exc)
                if name == "RecordNotFound":
                    return None
                raise
            content = dict(response.content)
            if not content.get("uri") or not content.get("cid"):
                raise ValueError("a getRecord answer without uri and cid")
            return content

        result: dict[str, Any] | None = self._call(call)
        return result

    def _upload_blob(self, data: bytes, mime: str) -> dict[str, Any]:
        def call(client: Client) -> dict[str, Any]:
            response = client.invoke_procedure(
                "com.atproto.repo.uploadBlob", content=data, headers={"Content-Type": mime}
            )
            return dict(response.content["blob"])

        result: dict[str, Any] = self._call(call)
        return result

    def resolve_handle(self, handle: str) -> str:
        """The DID of ``handle`` (cached for the life of the publisher)."""
        handle = handle.lstrip("@").lower()
        if handle not in self._dids:
            from atproto_client import models

            def call(client: Client) -> str:
                response = client.invoke_query(
                    "com.atproto.identity.resolveHandle",
                    params=models.ComAtprotoIdentityResolveHandle.Params(handle=handle),
                )
                return str(response.content["did"])

            try:
                self._dids[handle] = self._call(call)
            except PermanentError as exc:
                raise PermanentError(f"cannot resolve the mention @{handle} to a DID: {exc}") from None
        return self._dids[handle]

    # ------------------------------------------------------------------ records

    def _upload_image(self, part: Part, path: str) -> tuple[dict[str, Any], tuple[int, int]]:
        image = part_image(part, path)
        try:
            prepared = prepare_image(self.ctx.image_file(path), image.mime, max_bytes=MAX_BLOB_BYTES)
        except ImageError as exc:
            raise PermanentError(str(exc)) from None
        if prepared.reencoded:
            log.info(
                "%s: %s re-encoded to %d bytes to fit Bluesky's blob limit",
                self.account,
                path,
                len(prepared.data),
            )
        return self._upload_blob(prepared.data, prepared.mime), (prepared.width, prepared.height)

    def _card(self, url: str) -> dict[str, Any] | None:
        """The ``app.bsky.embed.external#external`` for ``url``, or ``None`` (logged) when the page fails."""
        own = self._http is None
        http = self._http or httpx.Client(timeout=self.ctx.card_timeout, follow_redirects=True)
        try:
            card = fetch_card(url, timeout=self.ctx.card_timeout, client=http)
            external: dict[str, Any] = {"uri": card.uri, "title": card.title, "description": card.description}
            if card.image_url:
                try:
                    data = fetch_image(card.image_url, timeout=self.ctx.card_timeout, client=http)
                    thumb = prepare_image(data, max_bytes=MAX_BLOB_BYTES)
                    external["thumb"] = self._upload_blob(thumb.data, thumb.mime)
                except (CardError, ImageError) as exc:
                    log.warning("%s: link card for %s without its image: %s", self.account, url, exc)
            return external
        except CardError as exc:
            log.warning("%s: posting without a link card for %s: %s", self.account, url, exc)
            return None
        finally:
            if own:
                http.close()

    def build_record(self, part: Part, done: Mapping[int, PartResult]) -> dict[str, Any]:
        """The record to write for ``part``, every placeholder resolved (uploads happen here)."""
        record = copy.deepcopy(dict(part.payload))
        record.setdefault("$type", COLLECTION)
        text = str(record.get("text", ""))
        graphemes, size = grapheme_length(text), utf8_length(text)
        if graphemes > MAX_GRAPHEMES or size > MAX_BYTES:
            raise PermanentError(
                f"the text is {graphemes} graphemes / {size} bytes; Bluesky allows {MAX_GRAPHEMES} / {MAX_BYTES}"
            )
        embed = record.get("embed")
        if isinstance(embed, dict):
            etype = embed.get("$type")
            if etype == "app.bsky.embed.images":
                images = embed.get("images") or []
                if len(images) > MAX_IMAGES:
                    raise PermanentError(f"{len(images)} images; Bluesky allows {MAX_IMAGES} per post")
                for entry in images:
                    hit = placeholder(entry.get("image"))
                    if hit is not None and hit[0] == UPLOAD:
                        blob, (width, height) = self._upload_image(part, str(hit[1]))
                        entry["image"] = blob
                        if "aspectRatio" not in entry and width and height:
                            entry["aspectRatio"] = {"width": width, "height": height}
            elif etype == "app.bsky.embed.external":
                hit = placeholder(embed.get("external"))
                if hit is not None and hit[0] == CARD:
                    external = self._card(str(hit[1]))
                    if external is None:
                        del record["embed"]
                    else:
                        embed["external"] = external
        for facet in record.get("facets") or []:
            for feature in facet.get("features") or []:
                hit = placeholder(feature.get("did"))
                if hit is not None and hit[0] == HANDLE:
                    feature["did"] = self.resolve_handle(str(hit[1]))
        reply = record.get("reply")
        if isinstance(reply, dict):
            for key in ("root", "parent"):
                hit = placeholder(reply.get(key))
                if hit is not None and hit[0] == REF:
                    index = ref_index(hit[1])
                    if index not in done or not done[index].uri or not done[index].cid:
                        raise PermanentError(f"part {index} must be published before a reply to it")
                    reply[key] = {"uri": done[index].uri, "cid": done[index].cid}
        left = find_placeholders(record)
        if left:
            raise PermanentError(f"unresolved placeholder(s) in the record: {left}")
        return record

    def _result(self, index: int, rkey: str, uri: str, cid: str, existed: bool) -> PartResult:
        author = self._handle or self.settings.handle
        return PartResult(
            index=index, id=rkey, url=public_url(author, rkey), uri=uri, cid=cid, existed=existed
        )

    # ------------------------------------------------------------------ Publisher

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        found: dict[int, PartResult] = {}
        for index in range(len(post.parts)):
            rkey = record_key(post.id, index, post.at)
            existing = self._get_record(rkey)
            if existing is None or missing_gates(self, rkey, post.parts[index]):
                break  # a part without its gates is not done: publishing it again writes them
            found[index] = self._result(index, rkey, existing["uri"], existing["cid"], existed=True)
        return found

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        done: dict[int, PartResult] = dict(resume or {})
        unknown = resume is not None  # resuming: a part may have been written by the attempt that failed
        try:
            for index, part in enumerate(post.parts):
                if index in done:
                    continue
                rkey = record_key(post.id, index, post.at)
                if unknown:
                    existing = self._get_record(rkey)
                    if existing is not None:
                        write_missing_gates(self, rkey, part)
                        done[index] = self._result(
                            index, rkey, existing["uri"], existing["cid"], existed=True
                        )
                        continue
                    unknown = False  # later parts reply to this one: they cannot exist yet
                record = self.build_record(part, done)
                if part.gates:
                    uri, cid, existed = write_with_gates(self, rkey, record, part)
                else:
                    out, existed = self._put_record(rkey, record), False
                    uri, cid = str(out["uri"]), str(out["cid"])
                done[index] = self._result(index, rkey, uri, cid, existed=existed)
        except PublishError as exc:
            raise exc.with_context(done=done, account=self.account, post_id=post.id) from None
        parts = tuple(done[i] for i in range(len(post.parts)))
        return PublishResult(post_id=post.id, account=self.account, platform=self.platform, parts=parts)

    def check(self) -> AccountInfo:
        def call(client: Client) -> dict[str, Any]:
            return dict(client.invoke_query("com.atproto.server.getSession").content)

        info: dict[str, Any] = self._call(call)
        return AccountInfo(
            account=self.account,
            platform=self.platform,
            ok=True,
            handle=str(info.get("handle")),
            id=str(info.get("did")),
            url=f"https://bsky.app/profile/{info.get('handle')}",
            server=self.service,
            limits={
                "max_graphemes": MAX_GRAPHEMES,
                "max_bytes": MAX_BYTES,
                "max_images": MAX_IMAGES,
                "max_blob_bytes": MAX_BLOB_BYTES,
            },
            bot=self.automation(),
        )

    # ------------------------------------------------------------------ controls (bluesky_controls)

    def set_gates(self, rkeys: Sequence[str], **change: Any) -> list[str]:
        return bluesky_controls.set_gates(self, rkeys, **change)

    def automation(self) -> bool:
        return bluesky_controls.automation(self)

    def disclose_automation(self) -> bool:
        return bluesky_controls.disclose_automation(self)

    def close(self) -> None:
        if self._client is not None:
            self._client.request.close()
            self._client = None
