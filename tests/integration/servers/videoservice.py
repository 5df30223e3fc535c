"""A stand-in for Bluesky's video service (``video.bsky.app``) on loopback, started in-process by the tests.

It does with the service tokens what the real service does, and nothing it cannot prove:

* ``app.bsky.video.getUploadLimits`` needs a Bearer token whose claims name this service (``aud`` its did:web,
  ``lxm`` the method); it answers :attr:`VideoService.limits` (the tests set ``canUpload`` / bytes / message).
* ``app.bsky.video.uploadVideo?did=&name=`` takes the bytes and forwards them unchanged (no transcoding) to the
  PDS's ``com.atproto.repo.uploadBlob`` with the Bearer token it received: the REAL PDS checks that token (its
  signature by the account's key, ``aud`` the PDS's service DID, ``lxm`` uploadBlob, not expired). A refusal makes
  the job fail with the PDS's message; :attr:`fail_with` makes every job fail with that message.
* ``app.bsky.video.getJobStatus?jobId=``: ``JOB_STATE_ENCODING`` on the first ask, then the final state with the
  blob the PDS returned (the lexicon's ``app.bsky.video.defs#jobStatus``).

The claims are read, not verified (the stand-in has no DID resolver); the PDS verifies the upload token.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT (unverified)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


@dataclass
class VideoService:
    """``with VideoService(pds_url) as svc: ... svc.url``; ``svc.calls`` (method, claims or None)."""

    pds_url: str
    limits: dict[str, Any] = field(
        default_factory=lambda: {"canUpload": True, "remainingDailyVideos": 25, "remainingDailyBytes": 10**8}
    )
    fail_with: str | None = None
    calls: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def did(self) -> str:
        return "did:web:" + quote(f"localhost:{self.port}", safe="")

    def __enter__(self) -> VideoService:
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _token(self) -> tuple[str, dict[str, Any]] | None:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Bearer "):
                    return None
                token = header.removeprefix("Bearer ")
                return token, claims(token)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                nsid = url.path.removeprefix("/xrpc/")
                if nsid == "app.bsky.video.getUploadLimits":
                    got = self._token()
                    svc.calls.append((nsid, got[1] if got else None))
                    if got is None or got[1].get("aud") != svc.did or got[1].get("lxm") != nsid:
                        self._answer(401, {"error": "AuthRequired", "message": "bad service token"})
                        return
                    self._answer(200, svc.limits)
                elif nsid == "app.bsky.video.getJobStatus":
                    svc.calls.append((nsid, None))
                    job = svc.jobs.get(query.get("jobId", ""))
                    if job is None:
                        self._answer(400, {"error": "InvalidRequest", "message": "no such job"})
                        return
                    final = job.pop("final", None)
                    self._answer(200, {"jobStatus": dict(job)})
                    if final is not None:
                        job.clear()
                        job.update(final)
                else:
                    self._answer(404, {"error": "MethodNotImplemented", "message": nsid})

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                nsid = url.path.removeprefix("/xrpc/")
                got = self._token()
                svc.calls.append((nsid, got[1] if got else None))
                if nsid != "app.bsky.video.uploadVideo" or got is None:
                    self._answer(401, {"error": "AuthRequired", "message": "no service token"})
                    return
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                job_id = f"job{len(svc.jobs) + 1}"
                job: dict[str, Any] = {
                    "jobId": job_id,
                    "did": query.get("did", ""),
                    "state": "JOB_STATE_ENCODING",
                }
                if svc.fail_with is not None:
                    final = {**job, "state": "JOB_STATE_FAILED", "error": "failed", "message": svc.fail_with}
                else:
                    stored = httpx.post(
                        f"{svc.pds_url}/xrpc/com.atproto.repo.uploadBlob",
                        content=data,
                        headers={"Authorization": f"Bearer {got[0]}", "Content-Type": "video/mp4"},
                    )
                    if stored.status_code == 200:
                        final = {**job, "state": "JOB_STATE_COMPLETED", "blob": stored.json()["blob"]}
                    else:
                        message = stored.json().get("message", stored.text)
                        final = {**job, "state": "JOB_STATE_FAILED", "error": "upload", "message": message}
                svc.jobs[job_id] = {**job, "final": final}
                self._answer(200, {"jobStatus": {**job, "state": "JOB_STATE_CREATED"}})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"  # did:web allows a port for localhost only
