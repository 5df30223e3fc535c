"""Alert receivers on loopback, started in-process by the tests: an HTTP server that records what Apprise's
``json://`` posts (:class:`HttpReceiver`, can be told to answer an error), and an SMTP server (``aiosmtpd``) that
records the mails of ``mailto://`` (:class:`SmtpReceiver`)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class HttpReceiver:
    """``with HttpReceiver() as rx: ... rx.url("hook") -> json://127.0.0.1:PORT/hook``; ``rx.received``."""

    status: int = 200
    received: list[Received] = field(default_factory=list)

    def __enter__(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # apprise json:// posts
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"raw": raw.decode("utf-8", "replace")}
                receiver.received.append(Received(self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST  # heartbeat pings

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "hook", scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpReceiver:
    """``with SmtpReceiver() as smtp: smtp.url("ops@example.org") -> mailto://...``; ``smtp.messages``."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    def __enter__(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = message_from_bytes(
                    envelope.original_content or envelope.content, policy=policy.default
                )
                assert isinstance(message, EmailMessage)
                receiver.messages.append(message)
                return "250 OK"

        self.port = _free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def url(self, to: str = "ops@example.org", user: str = "amplifier", password: str = "") -> str:
        auth = f"{user}:{password}@" if password else f"{user}@"
        return f"mailto://{auth}127.0.0.1:{self.port}?to={to}&from=amplifier@example.org&secure=no&smtp=127.0.0.1"

    def text(self, message: EmailMessage) -> str:
        body = message.get_body(("plain", "html"))
        return body.get_content() if body is not None else ""
