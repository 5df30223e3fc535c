"""A small Bluesky network with the reference AppView, on loopback: PLC, PDS and ``@atproto/bsky``.

What it is
    One Node process (``appview_server.mjs``) runs an in-memory PLC directory (``@did-plc/server``), the
    reference PDS (``@atproto/pds`` 0.5.35, dev mode, rate limits off) and the reference AppView
    (``@atproto/bsky`` 0.0.280) on a PostgreSQL database, the way ``@atproto/dev-env``'s ``TestNetwork``
    starts them (versions as dev-env 0.6.7 pins them). The AppView subscribes to the PDS's firehose
    (``com.atproto.sync.subscribeRepos``) and indexes every record written there; the PDS proxies every
    ``app.bsky.*`` query (getPosts, getProfile, getPostThread...) to the AppView, as bsky.social does.

    Not dev-env itself: its ``TestNetwork`` also needs Redis (not on npm) and starts ozone (moderation) and
    bsync (mutes, bookmarks), which the tests here do not need; its ``TestNetworkNoAppView`` has no AppView.
    So ``appview_server.mjs`` does what dev-env's ``TestBsky.create`` and ``mockResolvers`` do, with bsync
    pointed at nowhere. Handles are ``<prefix><6 hex>.test`` and resolve through the PDS.

    Indexing is asynchronous: after writing, call :meth:`AppViewNetwork.sync` (dev-env's ``processAll``),
    which returns once the AppView has indexed everything the PDS has sequenced.

Install (once per machine)
    ``npm ci`` of ``appview/package.json`` + ``appview/package-lock.json`` into
    ``<cache>/appview-bsky-<bsky version>-pds-<pds version>-node<major>-<lock digest>`` (same cache root,
    lock and marker as the PDS, see :mod:`.pds`): 623 packages, about 35-60 s; no native build (``sharp``
    and ``better-sqlite3`` 13 ship prebuilt binaries). PostgreSQL comes from the ``postgres`` fixture (a
    throwaway cluster; one database per network). A start takes about 4 s.

Fixture API (``appview``, session scope, see ``tests/integration/conftest.py``; mark tests ``appview``)
    ``appview.url``                        the PDS: ``Client(appview.url + "/xrpc")``, the account's service
    ``appview.appview_url`` / ``appview_did``   the AppView itself
    ``appview.create_account(prefix)``     -> :class:`~.pds.Account` (tokens kept, no login used)
    ``appview.sync()``                     wait until the AppView has indexed every write so far
    ``appview.like(actor, uri, cid)`` / ``repost(...)`` / ``reply(actor, parent, text, root=)`` /
    ``quote(actor, uri, cid, text)``       another account's interaction, written to its repo on the PDS;
                                           each returns ``{"uri", "cid"}``
    ``appview.put_record(actor, coll, rkey, record)`` / ``delete_record(actor, coll, rkey)``
    ``appview.get_posts(uris, viewer=)``   ``app.bsky.feed.getPosts`` through the PDS (the proxy)
    ``appview.get_profile(actor, viewer=)``  ``app.bsky.actor.getProfile`` through the PDS
    ``appview.get_post_thread(uri, viewer=)``  ``app.bsky.feed.getPostThread`` through the PDS
    ``appview.log_path``                   the Node process's log

Shared by the session like the other servers: a fresh account per test, never expect an empty network.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ._process import FIXTURE_HEADERS, ServerProcess, http_ok
from .pds import (
    PDS_VERSION,
    Account,
    Announce,
    _handle_for,
    _node_major,
    install_package,
    node_env,
    node_executable,
)

HERE = Path(__file__).resolve().parent
PACKAGE_DIR = HERE / "appview"
PACKAGE_JSON = PACKAGE_DIR / "package.json"
PACKAGE_LOCK = PACKAGE_DIR / "package-lock.json"
SERVER_SCRIPT = HERE / "appview_server.mjs"

BSKY_VERSION = "0.0.280"
START_TIMEOUT = 90.0


def install_key() -> str:
    digest = hashlib.sha256(PACKAGE_JSON.read_bytes() + PACKAGE_LOCK.read_bytes()).hexdigest()[:12]
    return f"appview-bsky-{BSKY_VERSION}-pds-{PDS_VERSION}-node{_node_major()}-{digest}"


def ensure_installed(announce: Announce = print) -> Path:
    """Install PLC + PDS + AppView into the cache if needed and return the install folder."""
    return install_package(
        PACKAGE_JSON,
        PACKAGE_LOCK,
        key=install_key(),
        what=f"@atproto/bsky {BSKY_VERSION} + @atproto/pds {PDS_VERSION} + @did-plc/server",
        announce=announce,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AppViewNetwork:
    """A running PLC + PDS + AppView. Use :meth:`start`, then :meth:`stop` (or the ``appview`` fixture)."""

    def __init__(self, process: ServerProcess, info: dict[str, Any], bypass_key: str) -> None:
        self._process = process
        self.url: str = info["pds_url"]
        self.plc_url: str = info["plc_url"]
        self.appview_url: str = info["appview_url"]
        self.appview_did: str = info["appview_did"]
        self._control_url: str = info["control_url"]
        self._http = httpx.Client(
            base_url=self.url, timeout=30.0, headers={**FIXTURE_HEADERS, "x-ratelimit-bypass": bypass_key}
        )

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    @classmethod
    def start(
        cls, *, install_dir: Path, work_dir: Path, database_url: str, timeout: float = START_TIMEOUT
    ) -> AppViewNetwork:
        """Start the network with the AppView on ``database_url`` (an empty PostgreSQL database)."""
        work_dir.mkdir(parents=True, exist_ok=True)
        ready_file = work_dir / "ready.json"
        bypass_key = secrets.token_hex(16)
        env = node_env()
        env.update(
            {
                "AMP_APPVIEW_INSTALL_DIR": str(install_dir),
                "AMP_APPVIEW_DATA_DIR": str(work_dir / "data"),
                "AMP_APPVIEW_READY_FILE": str(ready_file),
                "AMP_APPVIEW_DB_URL": database_url,
                "AMP_PDS_ADMIN_PASSWORD": secrets.token_hex(16),
                "AMP_PDS_RATE_LIMIT_BYPASS_KEY": bypass_key,
                "LOG_ENABLED": "true",
                "LOG_LEVEL": "warn",
                "NODE_ENV": "development",
                "NODE_NO_WARNINGS": "1",
            }
        )
        process = ServerProcess(
            "AppView network",
            [str(node_executable()), str(SERVER_SCRIPT)],
            log_path=work_dir / "appview.log",
            env=env,
            cwd=work_dir,
        )
        try:
            process.wait_until(ready_file.exists, timeout=timeout, what="ready file")
            info = json.loads(ready_file.read_text(encoding="utf-8"))
            process.wait_until(
                lambda: http_ok(f"{info['pds_url']}/xrpc/_health"), timeout=timeout, what="PDS"
            )
            process.wait_until(
                lambda: http_ok(f"{info['appview_url']}/xrpc/_health"), timeout=timeout, what="AppView"
            )
        except BaseException:
            process.stop()
            raise
        return cls(process, info, bypass_key)

    def stop(self) -> None:
        self._http.close()
        self._process.stop()

    # -- indexing ----------------------------------------------------------------------------------------

    def sync(self) -> None:
        """Return once the AppView has indexed everything the PDS has sequenced so far."""
        response = httpx.post(f"{self._control_url}/sync", timeout=30.0)
        if response.status_code != 200:
            raise RuntimeError(f"AppView sync failed: {response.text[:500]}")

    # -- accounts and their records --------------------------------------------------------------------

    def create_account(self, handle_prefix: str = "user") -> Account:
        handle = _handle_for(handle_prefix)
        password = secrets.token_urlsafe(18)
        body = self._xrpc(
            "POST",
            "com.atproto.server.createAccount",
            json={"handle": handle, "email": f"{handle}@example.test", "password": password},
        )
        return Account(
            did=body["did"],
            handle=body["handle"],
            password=password,
            access_jwt=body["accessJwt"],
            refresh_jwt=body["refreshJwt"],
        )

    def create_record(self, actor: Account, collection: str, record: dict[str, Any]) -> dict[str, str]:
        """``com.atproto.repo.createRecord`` in ``actor``'s repo -> ``{"uri", "cid"}``."""
        record = {"$type": collection, "createdAt": _now(), **record}
        body = self._xrpc(
            "POST",
            "com.atproto.repo.createRecord",
            actor=actor,
            json={"repo": actor.did, "collection": collection, "record": record},
        )
        return {"uri": body["uri"], "cid": body["cid"]}

    def put_record(
        self, actor: Account, collection: str, rkey: str, record: dict[str, Any]
    ) -> dict[str, str]:
        body = self._xrpc(
            "POST",
            "com.atproto.repo.putRecord",
            actor=actor,
            json={"repo": actor.did, "collection": collection, "rkey": rkey, "record": record},
        )
        return {"uri": body["uri"], "cid": body["cid"]}

    def delete_record(self, actor: Account, collection: str, rkey: str) -> None:
        self._xrpc(
            "POST",
            "com.atproto.repo.deleteRecord",
            actor=actor,
            json={"repo": actor.did, "collection": collection, "rkey": rkey},
        )

    def like(self, actor: Account, uri: str, cid: str) -> dict[str, str]:
        return self.create_record(actor, "app.bsky.feed.like", {"subject": {"uri": uri, "cid": cid}})

    def repost(self, actor: Account, uri: str, cid: str) -> dict[str, str]:
        return self.create_record(actor, "app.bsky.feed.repost", {"subject": {"uri": uri, "cid": cid}})

    def reply(
        self, actor: Account, parent: dict[str, str], text: str, *, root: dict[str, str] | None = None
    ) -> dict[str, str]:
        ref = {"uri": parent["uri"], "cid": parent["cid"]}
        top = {"uri": root["uri"], "cid": root["cid"]} if root else ref
        return self.create_record(
            actor, "app.bsky.feed.post", {"text": text, "reply": {"root": top, "parent": ref}}
        )

    def quote(self, actor: Account, uri: str, cid: str, text: str) -> dict[str, str]:
        embed = {"$type": "app.bsky.embed.record", "record": {"uri": uri, "cid": cid}}
        return self.create_record(actor, "app.bsky.feed.post", {"text": text, "embed": embed})

    # -- reads through the PDS's AppView proxy -------------------------------------------------------------

    def get_posts(self, uris: Sequence[str], *, viewer: Account) -> list[dict[str, Any]]:
        posts: list[dict[str, Any]] = self._xrpc(
            "GET", "app.bsky.feed.getPosts", actor=viewer, params=[("uris", u) for u in uris]
        )["posts"]
        return posts

    def get_profile(self, actor: str, *, viewer: Account) -> dict[str, Any]:
        profile: dict[str, Any] = self._xrpc(
            "GET", "app.bsky.actor.getProfile", actor=viewer, params={"actor": actor}
        )
        return profile

    def get_post_thread(self, uri: str, *, viewer: Account) -> dict[str, Any]:
        thread: dict[str, Any] = self._xrpc(
            "GET", "app.bsky.feed.getPostThread", actor=viewer, params={"uri": uri}
        )["thread"]
        return thread

    def _xrpc(self, method: str, nsid: str, *, actor: Account | None = None, **kwargs: Any) -> Any:
        headers = {"authorization": f"Bearer {actor.access_jwt}"} if actor is not None else {}
        response = self._http.request(method, f"/xrpc/{nsid}", headers=headers, **kwargs)
        if not response.is_success:
            raise RuntimeError(f"{nsid} failed: HTTP {response.status_code} {response.text[:500]}")
        return response.json() if response.content else {}


__all__ = ["BSKY_VERSION", "AppViewNetwork", "ensure_installed", "install_key"]
