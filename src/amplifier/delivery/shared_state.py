"""The state store in the ledger's database, for the nodes of a shared PostgreSQL ledger.

One machine keeps what it learns between runs in its state folder (:class:`~amplifier.publish.state.StateDir`).
Several nodes on one PostgreSQL ledger keep it in that database instead (:class:`LedgerState`, the same
:class:`~amplifier.publish.state.StateStore` interface over the ledger's ``state_*`` operations, tables
``shared_state`` and ``state_locks``), so that what one node learns every node knows:

* a Bluesky session one node refreshed (its refresh token rotates: the refresh runs under the session's lock,
  and a node that waited for it takes the fresh session instead of spending the spent token);
* the login guard (attempts and the fingerprints of rejected secrets: never a secret), and the fingerprints' key,
  so a credential pause one node recorded is resumed by any node once the secret changed;
* the instance limits read from a Mastodon server; the credential pause records;
* the blocks a 429 set (:mod:`amplifier.delivery.ratelimit`): a reset one node got is respected by all;
* each account's uses of its rate budgets that the ledger's posts do not show (:class:`SharedUses`: follow-up
  writes in the posts' budget, read-back requests in the reads' budget, deletions in the deletes' budget), so
  each budget holds across nodes.

The sessions hold tokens: in this mode they are stored in the database, as the state folder stores them on one
machine, and never logged. A lock is a row with a holder and a lease (:data:`LOCK_LEASE`): a node that dies
holding one loses it when the lease passes. :func:`state_store` picks the store where the ledger is opened.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from amplifier.clock import Clock, utcnow
from amplifier.delivery.ledger import Ledger, ledger_url
from amplifier.errors import StateError
from amplifier.publish.base import PublishContext
from amplifier.publish.state import LOCK_WAIT, StateDir, StateStore, dumps, loads, safe_name

LOCK_LEASE = timedelta(seconds=40)  # a lock's life without its holder (a refresh: one request, 30 s at most)


class LedgerState:
    """Documents and locks in the ledger's database (see the module docstring)."""

    def __init__(self, ledger: Ledger, node: str, clock: Clock = utcnow) -> None:
        self.ledger = ledger
        self.node = node
        self.clock = clock

    def read(self, sub: str, name: str) -> bytes | None:
        return self.ledger.state_read(sub, [name]).get(name)

    def read_many(self, sub: str, names: Iterable[str]) -> dict[str, bytes]:
        wanted = sorted(set(names))
        return self.ledger.state_read(sub, wanted) if wanted else {}

    def write(self, sub: str, name: str, data: bytes) -> None:
        self.ledger.state_write(sub, name, data, self.clock())

    def delete(self, sub: str, name: str) -> None:
        self.ledger.state_delete(sub, name)

    def create(self, sub: str, name: str, data: bytes) -> bytes:
        return self.ledger.state_create(sub, name, data, self.clock())

    @contextlib.contextmanager
    def locked(self, sub: str, name: str, *, wait: float = LOCK_WAIT) -> Iterator[None]:
        holder = f"{self.node}:{threading.get_ident()}:{os.urandom(4).hex()}"
        deadline = time.monotonic() + wait
        while True:
            now = self.clock()
            if self.ledger.state_lock(sub, name, holder, now + LOCK_LEASE, now):
                break
            if time.monotonic() >= deadline:
                raise StateError(f"{self.where(sub, name)}: still locked by another node after {wait:.0f} s")
            time.sleep(0.02)
        try:
            yield
        finally:
            self.ledger.state_unlock(sub, name, holder)

    def where(self, sub: str, name: str) -> str:
        return f"{sub}/{name} in the ledger's database ({self.ledger.name})"

    def read_json(self, sub: str, name: str) -> Any:
        return loads(self.read(sub, name))

    def write_json(self, sub: str, name: str, data: Any) -> None:
        self.write(sub, name, dumps(data))


def state_store(
    ledger: Ledger, state_dir: Path, *, shared: bool, node: str, clock: Clock = utcnow
) -> StateStore:
    """Where what amplifier learns between runs is kept: the ledger's database when ``shared`` (several nodes on
    a PostgreSQL ledger), else the state folder ``state_dir``."""
    if shared:
        return LedgerState(ledger, node, clock)
    return StateDir(state_dir)


def share_state(ctx: PublishContext, ledger: Ledger, node: str) -> None:
    """A command that publishes (``send``, ``gate``) with a shared ledger open (``AMPLIFIER_LEDGER``): its
    publishers keep their state in the ledger's database, as the daemons do; else nothing changes."""
    if ledger_url() is not None:
        ctx.state = LedgerState(ledger, node, ctx.clock)


USES = "uses"  # the state store's folder of the accounts' budget uses (SharedUses)
POSTS_BUDGET = "posts"  # the budget of an account's writes: its posts (in the ledger) and follow-up writes
READS_BUDGET = "reads"  # the budget of its read-back requests
DELETES_BUDGET = "deletes"  # the budget of its follow-up deletions (Mastodon's 30 per 30 minutes)


@dataclass(frozen=True)
class Use:
    """One use of an account's rate budget ``budget`` ("posts", "reads"): ``parts`` parts (or requests) of
    ``platform`` at ``at``, as :meth:`amplifier.delivery.ratelimit.RateLimiter.record` takes them."""

    budget: str
    platform: str
    at: datetime
    parts: int


class SharedUses:
    """Each account's budget uses that the ledger's posts do not show (follow-up writes, read requests), one
    document per account in the nodes' shared store (``uses/<account>.json``), kept for ``keep[budget]`` (the
    budget's longest window). Written by the node that holds the account's lease, under the document's lock; read
    by the next holder before it spends the budget, so the account's budget holds across nodes."""

    def __init__(self, store: StateStore, keep: Mapping[str, timedelta]) -> None:
        self.store = store
        self.keep = dict(keep)
        self._lock = threading.Lock()
        self._pending: dict[str, list[Use]] = {}  # account -> uses made here, not written yet

    def note(self, account: str, use: Use) -> None:
        """This node made ``use`` for ``account`` (thread-safe); written by :meth:`flush`."""
        with self._lock:
            self._pending.setdefault(account, []).append(use)

    def flush(self, accounts: Iterable[str] | None = None) -> int:
        """Write the uses noted for ``accounts`` (None: all) into the shared store; how many were written."""
        with self._lock:
            names = list(self._pending) if accounts is None else [a for a in accounts if a in self._pending]
            pending = {account: self._pending.pop(account) for account in names}
        written = 0
        for account, uses in sorted(pending.items()):
            name = safe_name(account) + ".json"
            newest = max(use.at for use in uses)
            with self.store.locked(USES, name):
                known = _uses(self.store.read_json(USES, name), account)
                kept = [
                    use for use in known + uses if use.at > newest - self.keep.get(use.budget, timedelta(0))
                ]
                kept.sort(key=lambda use: (use.at, use.budget))
                self.store.write_json(USES, name, {"account": account, "uses": [_use_json(u) for u in kept]})
            written += len(uses)
        return written

    def load(self, accounts: Iterable[str], now: datetime) -> dict[str, list[Use]]:
        """The uses of ``accounts`` still in their budget's window at ``now``, every node's, in one read."""
        names = {safe_name(account) + ".json": account for account in accounts}
        found: dict[str, list[Use]] = {account: [] for account in names.values()}
        for name, raw in self.store.read_many(USES, names).items():
            account = names[name]
            found[account] = [
                use
                for use in _uses(loads(raw), account)
                if use.at > now - self.keep.get(use.budget, timedelta(0))
            ]
        return found


def _use_json(use: Use) -> list[object]:
    return [use.budget, use.platform, use.at.isoformat(), use.parts]


def _uses(data: object, account: str) -> list[Use]:
    """The uses in a stored document of ``account`` (none: none, damaged, or another account's)."""
    if not isinstance(data, dict) or data.get("account") != account or not isinstance(data.get("uses"), list):
        return []
    uses = []
    for item in data["uses"]:
        try:
            budget, platform, at, parts = item
            uses.append(Use(str(budget), str(platform), datetime.fromisoformat(str(at)), int(parts)))
        except (TypeError, ValueError):
            continue
    return uses


SHARED = (
    "sessions",
    "logins",
    "keys",
    "limits",
    "pauses",
    "blocks",
)  # what a node's state folder gives the nodes


def copy_state(folder: StateDir, store: StateStore) -> int:
    """``ledger migrate``: the documents of the state folder the nodes share (:data:`SHARED`: the sessions, the
    login guard and the fingerprints' key, so a credential pause recorded before the move is still recognised;
    limits, pause records, blocks) into ``store``, each unless the store has it already. How many were copied."""
    copied = 0
    for sub in SHARED:
        try:
            files = sorted(path for path in (folder.path / sub).iterdir() if path.is_file())
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StateError(f"{folder.path / sub}: cannot read: {exc.strerror}") from exc
        for path in files:
            if path.name.startswith("."):  # locks, temporary files
                continue
            data = folder.read(sub, path.name)
            if data is not None and store.create(sub, path.name, data) == data:
                copied += 1
    return copied
