"""Bluesky videos through the video service (``video.bsky.app``), as the Bluesky app uploads them.

1. ``com.atproto.server.getServiceAuth`` on the account's PDS for a token to the video service (``aud`` its
   ``did:web``, ``lxm`` ``app.bsky.video.getUploadLimits``); ``app.bsky.video.getUploadLimits`` with it. An
   account that cannot upload now (its daily videos or bytes are spent) is refused before any byte is sent.
2. A second service token, ``aud`` the PDS's own service DID (from ``com.atproto.server.describeServer``),
   ``lxm`` ``com.atproto.repo.uploadBlob``: the token the video service uses to write the transcoded video to the
   account's PDS.
3. ``app.bsky.video.uploadVideo?did=&name=`` with the bytes and that token; then ``app.bsky.video.getJobStatus``
   until ``JOB_STATE_COMPLETED`` (its ``blob`` goes into the embed) or ``JOB_STATE_FAILED``.

Errors are classified :class:`~amplifier.publish.base.PublishError`: a failed job or a refused request (4xx) is
permanent, limits spent are a rate limit, a 5xx, a lost connection or a job that does not finish within
``video_wait`` is transient. The service's own words are passed on, redacted. Tokens never reach a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from amplifier.publish.base import (
    AuthError,
    PermanentError,
    RateLimitedError,
    TransientError,
    classify_status,
)
from amplifier.publish.faults import classify_transport
from amplifier.redact import redact

if TYPE_CHECKING:
    from atproto import Client

    from amplifier.publish.bluesky_repo import BlueskyRepo

UPLOAD_BLOB = "com.atproto.repo.uploadBlob"
GET_LIMITS = "app.bsky.video.getUploadLimits"
TOKEN_LIFETIME = timedelta(minutes=30)  # as the Bluesky app: the service writes the blob after transcoding
POLL_INTERVAL = 1.5  # seconds between getJobStatus calls


def service_did(url: str) -> str:
    """The ``did:web`` of a service at ``url`` (a port is percent-encoded, as did:web asks)."""
    return "did:web:" + quote(urlsplit(url).netloc, safe="")


class VideoService:
    """Uploads one account's videos through the video service at ``url`` (see the module docstring)."""

    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(self, pub: BlueskyRepo, url: str) -> None:
        self.pub = pub
        self.url = url.rstrip("/")

    def _token(self, aud: str, lxm: str) -> str:
        expires = int((self.pub.ctx.clock() + TOKEN_LIFETIME).timestamp())

        def call(client: Client) -> str:
            from atproto_client import models

            params = models.ComAtprotoServerGetServiceAuth.Params(aud=aud, lxm=lxm, exp=expires)
            response = client.invoke_query("com.atproto.server.getServiceAuth", params=params)
            return str(response.content["token"])

        token: str = self.pub._call(call)
        return token

    def _pds_did(self) -> str:
        def call(client: Client) -> str:
            return str(client.invoke_query("com.atproto.server.describeServer").content["did"])

        did: str = self.pub._call(call)
        return did

    def _request(self, http: httpx.Client, method: str, nsid: str, **kwargs: Any) -> dict[str, Any]:
        where = f"the video service {self.url} ({nsid})"
        try:
            response = http.request(method, f"{self.url}/xrpc/{nsid}", **kwargs)
        except httpx.HTTPError as exc:
            raise classify_transport(exc, write=False, where=where) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.status_code >= 400 and not _has_job(body):  # a 409 may name the job of the same video
            words = redact(str(body.get("message") or body.get("error") or response.reason_phrase))
            error = classify_status(response.status_code, f"{where}: {words}")
            if isinstance(error, AuthError):  # the service token, not the account's password
                error = PermanentError(
                    f"{where} refused the service token (HTTP {response.status_code}): {words}",
                    status=response.status_code,
                )
            raise error
        return body

    def _limits(self, http: httpx.Client, size: int) -> None:
        token = self._token(service_did(self.url), GET_LIMITS)
        limits = self._request(http, "GET", GET_LIMITS, headers={"Authorization": f"Bearer {token}"})
        remaining = limits.get("remainingDailyBytes")
        words = redact(str(limits.get("message") or limits.get("error") or ""))
        if limits.get("canUpload") is False:
            raise RateLimitedError(
                f"the video service {self.url} takes no more videos from this account now"
                + (f": {words}" if words else ""),
                reset_at=None,
            )
        if isinstance(remaining, int) and size > remaining:
            raise RateLimitedError(
                f"the video is {size} bytes but the video service {self.url} takes only {remaining} more "
                "bytes from this account today",
                reset_at=None,
            )

    def upload(self, data: bytes, name: str, mime: str) -> dict[str, Any]:
        """The blob of the video ``data``, transcoded by the service and stored on the account's PDS."""
        with httpx.Client(timeout=self.pub.ctx.timeout) as http:
            self._limits(http, len(data))
            token = self._token(self._pds_did(), UPLOAD_BLOB)
            answer = self._request(
                http,
                "POST",
                "app.bsky.video.uploadVideo",
                params={"did": self.pub.did, "name": name},
                content=data,
                headers={"Authorization": f"Bearer {token}", "Content-Type": mime},
            )
            return self._wait(http, _job(answer, self.url))

    def _wait(self, http: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + self.pub.ctx.video_wait
        while True:
            state = job.get("state")
            if state == "JOB_STATE_COMPLETED" and isinstance(job.get("blob"), dict):
                return dict(job["blob"])
            if state == "JOB_STATE_FAILED":
                words = redact(str(job.get("message") or job.get("error") or "no reason given"))
                raise PermanentError(f"the video service {self.url} could not process the video: {words}")
            if time.monotonic() >= deadline:
                raise TransientError(
                    f"the video service {self.url} did not finish the video within "
                    f"{self.pub.ctx.video_wait:g} s (last state {state}); will retry"
                )
            self.sleep(POLL_INTERVAL)
            answer = self._request(
                http, "GET", "app.bsky.video.getJobStatus", params={"jobId": str(job.get("jobId"))}
            )
            job = _job(answer, self.url)


def _has_job(answer: dict[str, Any]) -> bool:
    job = answer.get("jobStatus", answer)
    return isinstance(job, dict) and bool(job.get("jobId"))


def _job(answer: dict[str, Any], url: str) -> dict[str, Any]:
    """The ``app.bsky.video.defs#jobStatus`` of an answer: wrapped as the lexicon says (``{"jobStatus": ...}``)
    or bare, as the service has been seen to answer ``uploadVideo``."""
    job = answer.get("jobStatus", answer)
    if not isinstance(job, dict) or not job.get("jobId"):
        raise TransientError(f"the video service {url} answered without a job status; will retry")
    return job
