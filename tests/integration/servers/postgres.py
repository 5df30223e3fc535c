"""A throwaway PostgreSQL cluster on loopback, for the shared-ledger tests.

Debian's ``postgresql`` package provides the binaries (``scripts/test`` installs it; :func:`find_binaries` installs
it too when the tests run as root on a machine without it). PostgreSQL refuses to run as root, so the cluster runs
as an unprivileged user (``postgres``, which the package creates) in a private temporary folder, listening on
127.0.0.1 at a free port and on a Unix socket in that folder, with ``trust`` authentication (loopback only, a
throwaway cluster). ``fsync`` is off by default: no test can pull the power, so durability on a machine crash is
PostgreSQL's promise, not something these tests check, and the many small databases the contract tests create
would otherwise cost minutes of disk syncs. A benchmark that measures commit costs starts its cluster with
``fsync=True``.

The server runs behind a small shell wrapper that watches its stdin (like the other loopback servers): when the test
process stops it or dies, the wrapper stops PostgreSQL with a fast shutdown.

Main API::

    server = PostgresServer.start(work_dir)
    url = server.create_database("t1")   # postgresql://postgres@127.0.0.1:PORT/t1
    server.psql("SELECT 1")              # run SQL as the superuser, return stdout
    server.terminate_connections("t1")   # drop every client connection to t1 (fault injection)
    server.stop()
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._process import ServerProcess, ServerStartError

SERVICE_USER = "postgres"


def find_binaries(*, install: bool = True) -> Path:
    """The ``bin`` folder of the newest installed PostgreSQL; installs Debian's package first if missing (as root)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found and install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env, capture_output=True
        )
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise ServerStartError(
            "PostgreSQL is not installed: install Debian's package (apt-get install postgresql); scripts/test does"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demote(user: pwd.struct_passwd | None) -> dict[str, object]:
    """``subprocess`` arguments that run a child as ``user`` (nothing when we are not root)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    process: ServerProcess
    user: pwd.struct_passwd | None

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVICE_USER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, work_dir: Path, *, fsync: bool = False) -> PostgresServer:
        bin_dir = find_binaries()
        user = pwd.getpwnam(SERVICE_USER) if os.geteuid() == 0 else None
        # A folder of its own under the system temp dir: pytest's temp folders are private to root.
        root = Path(tempfile.mkdtemp(prefix="amplifier-pg-"))
        (root / "socket").mkdir()
        if user is not None:
            for path in (root, root / "socket"):
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SERVICE_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            cwd=root,
            **_demote(user),  # type: ignore[arg-type]
        )
        port = _free_port()
        postgres = " ".join(
            [
                str(bin_dir / "postgres"),
                f"-D {root / 'data'}",
                f"-p {port}",
                f"-k {root / 'socket'}",
                "-c listen_addresses=127.0.0.1",
                f"-c fsync={'on' if fsync else 'off'}",
                f"-c synchronous_commit={'on' if fsync else 'off'}",
                f"-c full_page_writes={'on' if fsync else 'off'}",
                "-c max_connections=200",
                "-c shared_buffers=64MB",
            ]
        )
        # The wrapper: PostgreSQL in the background, stopped (fast shutdown) when stdin closes.
        script = f'{postgres} & pid=$!; cat >/dev/null; kill -INT "$pid"; wait "$pid"'
        argv = ["sh", "-c", script]
        if user is not None:
            argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]
        work_dir.mkdir(parents=True, exist_ok=True)
        process = ServerProcess(
            "postgresql",
            argv,
            log_path=work_dir / "postgresql.log",
            env={**os.environ, "LC_ALL": "C"},
            cwd=root,
        )
        server = cls(bin_dir=bin_dir, root=root, port=port, process=process, user=user)
        process.wait_until(server._ready, timeout=30, what="PostgreSQL accepting connections")
        return server

    def _ready(self) -> bool:
        done = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            check=False,
            capture_output=True,
        )
        return done.returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url(database),
            ],
            input=sql,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, database: str, schema: str) -> str:
        """A URL whose connections work in a new, empty ``schema`` of ``database`` (cheaper than a database)."""
        self.psql(f'CREATE SCHEMA "{schema}"', database)
        return f"{self.url(database)}?options=-csearch_path%3D{schema}"

    def terminate_connections(self, database: str) -> int:
        """Drop every client connection to ``database`` (as if the network to the server failed)."""
        out = self.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        return int(out.strip() or 0)

    def stop(self) -> None:
        self.process.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)
