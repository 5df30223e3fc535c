"""A fault-injecting HTTP proxy on loopback, in front of the reference Bluesky PDS.

The publisher talks to the proxy (``proxy.url`` as the account's service); the proxy forwards every request to
the PDS and hands the answer back, unless a fault rule matches the request's XRPC method::

    proxy = FaultProxy.start(pds.url)
    proxy.inject("com.atproto.repo.putRecord", "drop_after")          # the PDS writes, the client sees a drop
    proxy.inject("com.atproto.repo.putRecord", "truncate")            # a JSON body cut in half
    proxy.inject("com.atproto.repo.getRecord", "status", status=429,
                 headers={"RateLimit-Reset": "1900000000"})           # answered by the proxy, not forwarded
    proxy.inject("com.atproto.server.createSession", "status", status=503, times=5)
    proxy.inject("com.atproto.server.createSession", "echo", status=401)  # echoes the request's secrets
    proxy.count("com.atproto.repo.putRecord"); proxy.log   # [(monotonic time, method, what happened)]
    proxy.stop()

Actions: ``drop_before`` (close without forwarding), ``drop_after`` (forward, then close without answering:
the server acted), ``truncate`` (forward, then answer the first half of the body with a matching
Content-Length, so the client reads a complete but invalid JSON body), ``status`` (answer ``status`` with
``headers`` and ``body`` without forwarding), ``echo`` (answer ``status`` with a body that repeats the
request's ``Authorization`` header and body, as a careless server does). Each rule applies ``times`` times
(None: until :meth:`clear`).

After a login the atproto SDK switches to the PDS endpoint of the account's DID document, which names the
PDS itself: the proxy rewrites the PDS's address into its own in every JSON answer, or the client would
bypass it after ``createSession``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
    "host",
    "accept-encoding",
}


@dataclass
class Rule:
    method: str
    action: str
    times: int | None = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class FaultProxy:
    """See the module docstring. Thread-safe; one instance per test (cheap to start)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self.log: list[tuple[float, str, str]] = []
        self._client = httpx.Client(base_url=self.upstream, timeout=30.0)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @classmethod
    def start(cls, upstream: str) -> FaultProxy:
        proxy = cls(upstream)
        proxy._thread.start()
        return proxy

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    # ------------------------------------------------------------------ control

    def inject(
        self,
        method: str,
        action: str,
        *,
        times: int | None = 1,
        status: int = 503,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | dict[str, Any] = b"",
    ) -> None:
        if action not in {"drop_before", "drop_after", "truncate", "status", "echo"}:
            raise ValueError(f"unknown action {action!r}")
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        with self._lock:
            self._rules.append(Rule(method, action, times, status, dict(headers or {}), body))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def count(self, method: str, what: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, m, w in self.log if m == method and (what is None or w == what))

    def times(self, method: str) -> list[float]:
        """When each request for ``method`` arrived (``time.monotonic()``)."""
        with self._lock:
            return [t for t, m, _ in self.log if m == method]

    def _take(self, method: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.method == method:
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule
        return None

    def _note(self, method: str, what: str) -> None:
        with self._lock:
            self.log.append((time.monotonic(), method, what))

    # ------------------------------------------------------------------ serving

    def _forward(self, command: str, path: str, headers: Mapping[str, str], body: bytes) -> httpx.Response:
        forwarded = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
        forwarded["accept-encoding"] = "identity"
        return self._client.request(command, path, headers=forwarded, content=body or None)

    def _rewrite(self, response: httpx.Response) -> bytes:
        body = response.content
        if "json" in response.headers.get("content-type", ""):
            body = body.replace(self.upstream.encode(), self.url.encode())
            localhost = self.upstream.replace("127.0.0.1", "localhost").encode()
            body = body.replace(localhost, self.url.encode())
        return body

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                method = self.path.split("?", 1)[0].removeprefix("/xrpc/")
                rule = proxy._take(method)
                action = rule.action if rule else "forward"
                proxy._note(method, action)
                if rule is not None and rule.action == "drop_before":
                    self._drop()
                    return
                if rule is not None and rule.action in ("status", "echo"):
                    payload = rule.body
                    if rule.action == "echo":  # in both fields: Mastodon.py shows "error", atproto both
                        echo = (
                            "Invalid credentials; you sent "
                            f"Authorization: {self.headers.get('Authorization', '')} "
                            f"with {body.decode('utf-8', 'replace')}"
                        )
                        payload = json.dumps({"error": echo, "message": echo}).encode()
                    self._answer(rule.status, {"Content-Type": "application/json", **rule.headers}, payload)
                    return
                response = proxy._forward(self.command, self.path, dict(self.headers.items()), body)
                if rule is not None and rule.action == "drop_after":
                    self._drop()
                    return
                answer = proxy._rewrite(response)
                if rule is not None and rule.action == "truncate":
                    answer = answer[: max(1, len(answer) // 2)]
                headers = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
                self._answer(response.status_code, headers, answer)

            def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = _serve
            do_POST = _serve

        return Handler
