"""A Mastodon API server (``mastodon-mock``) on loopback, with request counting and fault injection.

What it is
    The FastAPI app of the PyPI package ``mastodon-mock`` (0.6.1) under uvicorn in a child process
    (``mastodon_app.py``), on a free loopback port, with its SQLite file and media in a temp folder. It
    starts with no accounts. It is a mock, not Mastodon; what matters to our publishers:

    * ``GET /api/v2/instance`` (and v1) advertise ``configuration.statuses.max_characters = 500`` and
      ``max_media_attachments = 4``; ``POST /api/v1/statuses`` enforces both with a 422
      (``Validation failed: Text is too long ...``). It counts ``len(text)`` in code points: unlike
      Mastodon it does not count a URL as 23 characters nor a mention by its local part.
    * ``POST /api/v1/statuses`` honours ``Idempotency-Key`` per account: a repeated key returns the first
      status (same id) and creates nothing (Mastodon keeps keys for 1 hour; the mock forever).
    * Faults come from its control plane ``/api/v1/_mock/faults`` (see :meth:`MastodonServer.inject`).

Fixture API (``mastodon_server``, session scope, see ``tests/integration/conftest.py``)
    ``mastodon_server.url``                             ``http://127.0.0.1:PORT``
    ``mastodon_server.create_account(username)``        -> :class:`MastodonAccount`
        ``(account_id, access_token)``,
        made through the real API (app registration, client-credentials token, ``POST /api/v1/accounts``);
        the token works with ``Mastodon(api_base_url=url, access_token=token)``. Usernames must be unique
        in the session: pass a distinctive one, or none for a fresh ``user_<6 hex>``.
    ``mastodon_server.statuses(account)``               -> the account's statuses (raw JSON, newest first)
    ``mastodon_server.get_status(status_id, token)``    -> the status JSON or ``None``
    ``mastodon_server.instance()``                      -> ``GET /api/v2/instance`` JSON
    ``mastodon_server.request_count(path_prefix=None)`` -> requests received from the code under test
        (``"/api/v1/statuses"`` counts posts; faulted requests count, fixture helpers do not)
    ``mastodon_server.request_counts()`` / ``reset_request_counts()``
    ``mastodon_server.inject(status=..., times=1, path=..., method=..., headers=..., delay=..., hang=...)``
    ``mastodon_server.clear_faults()`` / ``faults()``
    ``mastodon_server.log_path``                        uvicorn's log (one access line per request)

The server is shared by the session: use fresh accounts per test, reset counts before measuring, and
``clear_faults()`` after injecting (the ``mastodon_faults`` fixture does it for you).
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from ._process import FIXTURE_HEADERS, ServerProcess, http_ok

HERE = Path(__file__).resolve().parent
APP_SCRIPT = HERE / "mastodon_app.py"
START_TIMEOUT = 30.0

FAULTS_PATH = "/api/v1/_mock/faults"


class MastodonAccount(NamedTuple):
    """``(account_id, access_token)``; the token is left out of ``repr``."""

    account_id: str
    access_token: str

    def __repr__(self) -> str:
        return f"MastodonAccount(account_id={self.account_id!r}, access_token=<hidden>)"


@dataclass(frozen=True)
class Fault:
    """A fault rule as the mock reports it."""

    id: str
    raw: dict[str, Any]


class MastodonServer:
    """A running ``mastodon-mock``: :meth:`start`, then :meth:`stop` (or the ``mastodon_server`` fixture)."""

    def __init__(self, process: ServerProcess, url: str) -> None:
        self._process = process
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=30.0, headers=FIXTURE_HEADERS)

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    @classmethod
    def start(cls, *, work_dir: Path, timeout: float = START_TIMEOUT) -> MastodonServer:
        """Start the server with its data in ``work_dir``; return once ``/health`` answers."""
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "media").mkdir(exist_ok=True)
        # Bind here and hand the listening socket to the child: the port is ours from now on.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        try:
            process = ServerProcess(
                "mastodon-mock",
                [
                    sys.executable,
                    str(APP_SCRIPT),
                    f"--fd={listener.fileno()}",
                    f"--database={work_dir / 'mastodon.sqlite3'}",
                    f"--media={work_dir / 'media'}",
                    f"--public-url={url}",
                ],
                log_path=work_dir / "mastodon.log",
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                cwd=work_dir,
                pass_fds=[listener.fileno()],
            )
        finally:
            listener.close()  # the child holds its own copy
        try:
            process.wait_until(lambda: http_ok(f"{url}/health"), timeout=timeout, what="health")
        except BaseException:
            process.stop()
            raise
        return cls(process, url)

    def stop(self) -> None:
        self._http.close()
        self._process.stop()

    # -- accounts and reads (not counted in request_count) --------------------------------------------

    @staticmethod
    def unique_username(prefix: str = "user") -> str:
        """``<prefix>_<6 hex>``, a username no other call returns."""
        return f"{prefix}_{secrets.token_hex(3)}"

    def create_account(self, username: str | None = None) -> MastodonAccount:
        """Sign up ``username`` the way a Mastodon client does; return its id and a user token.

        ``None`` picks a fresh name (:meth:`unique_username`). A name already taken is an error.

        ``POST /api/v1/apps`` -> ``POST /oauth/token`` (client_credentials) -> ``POST /api/v1/accounts``
        with the app token -> ``GET /api/v1/accounts/verify_credentials`` for the id. The token has the
        scopes ``read write follow push``.
        """
        if username is None:
            username = self.unique_username()
        app = self._checked(
            self._http.post(
                "/api/v1/apps",
                data={
                    "client_name": "amplifier-integration-tests",
                    "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
                    "scopes": "read write follow push",
                },
            ),
            "register app",
        )
        app_token = self._checked(
            self._http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": app["client_id"],
                    "client_secret": app["client_secret"],
                    "scope": "read write follow push",
                },
            ),
            "app token",
        )["access_token"]
        user_token: str = self._checked(
            self._http.post(
                "/api/v1/accounts",
                data={
                    "username": username,
                    "email": f"{username}@example.test",
                    "password": secrets.token_urlsafe(18),
                    "agreement": "true",
                    "locale": "en",
                },
                headers=_bearer(app_token),
            ),
            f"sign up {username!r}",
        )["access_token"]
        me = self._checked(
            self._http.get("/api/v1/accounts/verify_credentials", headers=_bearer(user_token)),
            "verify_credentials",
        )
        return MastodonAccount(account_id=str(me["id"]), access_token=user_token)

    def statuses(self, account: MastodonAccount) -> list[dict[str, Any]]:
        """Every status of ``account`` (all visibilities, seen as the account itself), newest first."""
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"limit": 40}
        while True:
            page = self._checked(
                self._http.get(
                    f"/api/v1/accounts/{account.account_id}/statuses",
                    params=params,
                    headers=_bearer(account.access_token),
                ),
                "account statuses",
            )
            if not page:
                return found
            found.extend(page)
            params = {"limit": 40, "max_id": page[-1]["id"]}

    def get_status(self, status_id: str, access_token: str | None = None) -> dict[str, Any] | None:
        """``GET /api/v1/statuses/:id`` (as the owner if a token is given); ``None`` on 404."""
        response = self._http.get(
            f"/api/v1/statuses/{status_id}", headers=_bearer(access_token) if access_token else {}
        )
        if response.status_code == 404:
            return None
        status: dict[str, Any] = self._checked(response, "get status")
        return status

    def instance(self) -> dict[str, Any]:
        """``GET /api/v2/instance``."""
        info: dict[str, Any] = self._checked(self._http.get("/api/v2/instance"), "instance")
        return info

    # -- request counting ------------------------------------------------------------------------------

    def request_counts(self) -> dict[str, int]:
        """Requests received per URL path since start or the last reset (fixture helpers left out)."""
        response = self._http.get("/__amplifier__/requests")
        counts: dict[str, int] = self._checked(response, "request counts")["counts"]
        return counts

    def request_count(self, path_prefix: str | None = None) -> int:
        """Requests whose URL path starts with ``path_prefix`` (all if ``None``)."""
        counts = self.request_counts()
        return sum(n for p, n in counts.items() if path_prefix is None or p.startswith(path_prefix))

    def reset_request_counts(self) -> None:
        self._checked(self._http.post("/__amplifier__/reset"), "reset request counts")

    # -- fault injection -------------------------------------------------------------------------------

    def inject(
        self,
        status: int | None = None,
        *,
        times: int | None = 1,
        path: str | None = None,
        path_regex: str | None = None,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        delay: float = 0.0,
        hang: bool = False,
        ratelimit_reset_in: float = 300.0,
    ) -> str:
        """Make the next ``times`` matching requests fail; return the rule id.

        A request matches when its method is ``method`` (any if ``None``) and its path equals ``path``
        (``fnmatch`` glob if it has a ``*``) or matches ``path_regex``; with neither, every path matches.
        ``times=None`` fires until :meth:`clear_faults`. Rules are checked in the order they were added.

        Effects (mapped onto the mock's rule types):

        * ``status=500|502|503|422|401|...`` -> that status with a Mastodon-shaped ``{"error": ...}`` body
          (or ``body``), plus ``headers``; the request never reaches the app.
        * ``status=429`` -> the mock's ``ratelimit`` effect: 429 with ``X-RateLimit-Limit: 300``,
          ``X-RateLimit-Remaining: 0``, ``Retry-After`` and ``X-RateLimit-Reset`` set, like Mastodon, to
          an ISO 8601 instant ``ratelimit_reset_in`` seconds from now (``headers`` override any of them).
        * ``delay`` (seconds) -> wait before the effect; with no ``status``, the request then proceeds
          normally (latency only).
        * ``hang=True`` -> hold the request without answering for ``max(delay, 30)`` seconds (the client
          sees a read timeout if its timeout is shorter), then let it through to the app.

        A request whose client gave up during a delay or hang is dropped by the mock: it creates nothing
        (a real server may still finish it). Faulted requests count in :meth:`request_count`.
        """
        effect: dict[str, Any]
        delay_ms = round(delay * 1000)
        if hang:
            if status is not None:
                raise ValueError("hang=True and status are exclusive")
            effect = {"type": "timeout", "delay_ms": delay_ms}
        elif status is None:
            if delay <= 0:
                raise ValueError("inject() needs status, delay or hang")
            effect = {"type": "latency", "delay_ms": delay_ms}
        elif status == 429:
            reset = datetime.now(UTC) + timedelta(seconds=ratelimit_reset_in)
            effect_headers = {
                "X-RateLimit-Reset": reset.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "Retry-After": str(max(0, round(ratelimit_reset_in))),
                **(headers or {}),
            }
            effect = {"type": "ratelimit", "status": 429, "headers": effect_headers, "delay_ms": delay_ms}
        else:
            effect = {"type": "status", "status": status, "headers": headers or {}, "delay_ms": delay_ms}
        if body is not None and effect["type"] in ("status", "ratelimit"):
            effect["body"] = body
        match: dict[str, Any] = {}
        if method is not None:
            match["methods"] = [method.upper()]
        if path is not None:
            match["path"] = path
        if path_regex is not None:
            match["path_regex"] = path_regex
        rule = self._checked(
            self._http.post(FAULTS_PATH, json={"match": match, "effect": effect, "count": times}), "add fault"
        )
        rule_id: str = rule["id"]
        return rule_id

    def faults(self) -> list[Fault]:
        """The active rules, with their remaining budgets (``raw["remaining"]``)."""
        return [Fault(id=r["id"], raw=r) for r in self._checked(self._http.get(FAULTS_PATH), "list faults")]

    def clear_faults(self) -> None:
        self._checked(self._http.delete(FAULTS_PATH), "clear faults")

    # -- plumbing --------------------------------------------------------------------------------------

    @staticmethod
    def _checked(response: httpx.Response, what: str) -> Any:
        if not response.is_success:
            raise RuntimeError(
                f"mastodon-mock {what} failed: HTTP {response.status_code} {response.text[:500]}"
            )
        return response.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


__all__ = ["Fault", "MastodonAccount", "MastodonServer"]
