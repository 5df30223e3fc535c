"""Child-process entry point: the ``mastodon-mock`` app under uvicorn, with per-path request counting.

Started by ``mastodon.py`` as ``python mastodon_app.py --fd N --database PATH --media DIR --public-url URL``;
not imported by tests. It does what ``mastodon_mock serve`` does (``create_app(config)`` + ``uvicorn``,
``Server:`` header off, public URL derived from the bound address), plus:

* it serves on a listening socket inherited from the parent (``--fd``), so the port is known before the
  child starts and no other process can take it in between;
* an outermost ASGI wrapper counts the HTTP requests per path, faulted ones included (the fault middleware
  sits inside it), leaving out requests carrying ``X-Amplifier-Fixture``; ``GET /__amplifier__/requests``
  returns ``{"counts": {path: n}}`` and ``POST /__amplifier__/reset`` zeroes them;
* it exits when its stdin closes (the parent stopped it, or died).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from mastodon_mock.app import create_app
from mastodon_mock.config import DatabaseConfig, MastodonMockConfig, SeedConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTROL_PREFIX = "/__amplifier__/"
FIXTURE_HEADER = b"x-amplifier-fixture"


class RequestCounter:
    """ASGI wrapper: counts requests per path and serves the two control routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            await self._control(scope, send)
            return
        if not any(name == FIXTURE_HEADER for name, _ in scope["headers"]):
            self.counts[path] += 1
        await self.app(scope, receive, send)

    async def _control(self, scope: Scope, send: Send) -> None:
        route = (scope["method"], scope["path"][len(CONTROL_PREFIX) :])
        body: dict[str, object]
        if route == ("GET", "requests"):
            status, body = 200, {"counts": dict(self.counts)}
        elif route == ("POST", "reset"):
            self.counts.clear()
            status, body = 200, {"ok": True}
        else:
            status, body = 404, {"error": "not found"}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="inherited listening TCP socket")
    parser.add_argument("--database", required=True, help="SQLite file")
    parser.add_argument("--media", required=True, help="folder for uploaded media")
    parser.add_argument("--public-url", required=True, help="http://HOST:PORT the server is reached at")
    args = parser.parse_args(argv)

    scheme, _, domain = args.public_url.partition("://")
    config = MastodonMockConfig(
        domain=domain,
        url_scheme="https" if scheme == "https" else "http",
        database=DatabaseConfig(path=args.database),
        media_storage_path=args.media,
        seed=SeedConfig(),  # no accounts: tests create their own through the API
    )
    app = RequestCounter(create_app(config))

    sock = socket.socket(fileno=args.fd)
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="info", server_header=False, access_log=True, timeout_graceful_shutdown=1
        )
    )

    def exit_when_stdin_closes() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        server.should_exit = True
        # If a request hangs (an injected "hang" fault), a graceful stop can take long: give it 5 seconds.
        threading.Timer(5.0, lambda: os._exit(0)).start()

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
