"""Where amplifier keeps what it learns between runs: one interface, :class:`StateStore`, two places.

* :class:`StateDir`, the state folder (here): one machine. Chosen by ``--state DIR``, else the environment
  variable ``AMPLIFIER_STATE``, else ``.amplifier-state`` beside the campaign's ``schedule.yaml``; created with
  mode 0700, every file written atomically (a temporary file in the same folder, then ``replace``) with mode
  0600, because some of them hold session tokens.
* the ledger's database, when several nodes share a PostgreSQL ledger
  (:class:`amplifier.delivery.shared_state.LedgerState`): what one node learns (a Bluesky session it refreshed,
  a rejected login, an instance's limits, a 429's reset) every node knows.

Which one is chosen where the ledger is opened (:func:`amplifier.delivery.shared_state.state_store`). The
stores hold documents (bytes, usually JSON) by folder (``sub``) and name: the Bluesky sessions, the login guard,
the fingerprints' key, the instance limits, the credential pauses and the server-given blocks
(:mod:`amplifier.publish.sessions` and their users). :meth:`StateStore.locked` is a lock across processes (and
nodes) around one document: a Bluesky session is refreshed under it, so two nodes never both spend its
rotating refresh token.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from amplifier.errors import StateError

STATE_ENV = "AMPLIFIER_STATE"
DEFAULT_STATE_NAME = ".amplifier-state"
LOCK_WAIT = 45.0  # seconds: the longest a lock is waited for (a refresh is one HTTP request, 30 s at most)


def resolve_state_dir(
    config: Path | None, state: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The state folder: ``state`` (``--state``), else ``$AMPLIFIER_STATE``, else beside ``config``."""
    if state is not None:
        return state
    env = os.environ if environ is None else environ
    from_env = env.get(STATE_ENV, "").strip()
    if from_env:
        return Path(from_env)
    if config is None:
        return Path.cwd() / DEFAULT_STATE_NAME
    return config.parent / DEFAULT_STATE_NAME


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(key: str) -> str:
    """A file name for ``key``: ``key`` itself when safe, else a readable part plus a short hash."""
    cleaned = _SAFE.sub("_", key)
    if cleaned == key and key not in {"", ".", ".."}:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{cleaned.strip('.')[:48]}-{digest}"


@runtime_checkable
class StateStore(Protocol):
    """Documents by folder (``sub``) and name; private (they may hold session tokens), each write atomic."""

    def read(self, sub: str, name: str) -> bytes | None:
        """The document, None when there is none."""
        ...

    def read_many(self, sub: str, names: Iterable[str]) -> dict[str, bytes]:
        """The documents of ``names`` that exist, by name (one query in the database)."""
        ...

    def write(self, sub: str, name: str, data: bytes) -> object:
        """Replace the document, atomically."""
        ...

    def delete(self, sub: str, name: str) -> None:
        """Remove the document (none: nothing to do)."""
        ...

    def create(self, sub: str, name: str, data: bytes) -> bytes:
        """Write ``data`` unless the document exists: what is stored afterwards (whoever wrote it first)."""
        ...

    def locked(
        self, sub: str, name: str, *, wait: float = LOCK_WAIT
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the document's lock (across threads, processes and, in the database, nodes) for the block;
        raise :class:`StateError` after ``wait`` seconds without it."""
        ...

    def where(self, sub: str, name: str) -> str:
        """Where the document is, for a message (a path, or the database's table)."""
        ...

    def read_json(self, sub: str, name: str) -> Any:
        """The document as JSON; None when there is none or it is damaged (a damaged cache is none)."""
        ...

    def write_json(self, sub: str, name: str, data: Any) -> object: ...


def loads(raw: bytes | None) -> Any:
    """A stored JSON document (see :meth:`StateStore.read_json`)."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None  # a damaged cache file is the same as none


def dumps(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, indent=1).encode()


@dataclass(frozen=True)
class StateDir:
    """The state folder; files are private (0600) and written atomically."""

    path: Path

    def ensure(self, sub: str | None = None) -> Path:
        folder = self.path if sub is None else self.path / sub
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.path, 0o700)
            if sub is not None:
                folder.mkdir(mode=0o700, exist_ok=True)
                os.chmod(folder, 0o700)
        except OSError as exc:
            raise StateError(f"{folder}: cannot create the state folder: {exc.strerror}") from exc
        return folder

    def write(self, sub: str, name: str, data: bytes) -> Path:
        """Write ``data`` to ``sub/name`` atomically, mode 0600."""
        folder = self.ensure(sub)
        target = folder / name
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise StateError(f"{target}: cannot write: {exc.strerror}") from exc
        return target

    def read(self, sub: str, name: str) -> bytes | None:
        target = self.path / sub / name
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{target}: cannot read: {exc.strerror}") from exc

    def delete(self, sub: str, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / sub / name).unlink()

    def read_many(self, sub: str, names: Iterable[str]) -> dict[str, bytes]:
        found = {name: self.read(sub, name) for name in names}
        return {name: data for name, data in found.items() if data is not None}

    def create(self, sub: str, name: str, data: bytes) -> bytes:
        """Write ``data`` unless the file exists (a hard link of a private temporary file: atomic, and it fails
        when the file exists); what the file holds afterwards."""
        folder = self.ensure(sub)
        target = folder / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, target)
        except OSError as exc:
            raise StateError(f"{target}: cannot write: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        stored = self.read(sub, name)
        if stored is None:
            raise StateError(f"{target}: cannot read the file just written")
        return stored

    @contextlib.contextmanager
    def locked(self, sub: str, name: str, *, wait: float = LOCK_WAIT) -> Iterator[None]:
        """An exclusive ``flock`` on ``sub/.name.lock`` (each call opens the file: threads exclude each other
        too); released when the block ends or the process dies."""
        folder = self.ensure(sub)
        path = folder / f".{name}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"{path}: cannot open the lock: {exc.strerror}") from exc
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise StateError(f"{path}: cannot lock: {exc.strerror}") from exc
                    if time.monotonic() >= deadline:
                        raise StateError(
                            f"{path}: still locked by another process after {wait:.0f} s"
                        ) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # releases the lock

    def where(self, sub: str, name: str) -> str:
        return str(self.path / sub / name)

    def read_json(self, sub: str, name: str) -> Any:
        return loads(self.read(sub, name))

    def write_json(self, sub: str, name: str, data: Any) -> Path:
        return self.write(sub, name, dumps(data))
