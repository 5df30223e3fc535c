"""Coordination between the nodes that share one ledger: who plans, who publishes for an account now.

The daemon asks its :class:`Coordinator` two things: "may I write the plan?" (:meth:`Coordinator.may_plan`:
one node at a time, the leader) and "may I publish for this account now?" (:meth:`Coordinator.account`: one
node per account at a time, so each account's posts go out in order and one rate budget holds).

* :class:`LocalCoordinator`: one machine, one SQLite ledger in the state folder: always yes (the daemon's own
  scheduler already runs one pass at a time, and ``amplifier send`` is fenced by the ledger's claims).
* :class:`amplifier.delivery.pg_coordination.PostgresCoordinator`: several nodes on one PostgreSQL ledger:
  the planning lock is a session advisory lock on a dedicated connection of each node, which PostgreSQL
  releases when the connection (or the node) dies; an account is held with a lease in the database (like a
  claim's), so a node that dies, is paused or cut off loses its accounts when the lease passes.

Neither lock is what makes publishing exactly-once: that is the ledger's claims, fenced by tokens
(:meth:`amplifier.delivery.ledger.Ledger.take_over`), and the platforms' keys. The locks keep the order and the
budget, and spare the database two nodes' re-plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Protocol


class Coordinator(Protocol):
    """What the daemon asks before planning and before publishing for an account."""

    @property
    def shared(self) -> bool:
        """Whether other nodes may share the ledger (then the rate budget is read from the ledger)."""
        ...

    @property
    def is_leader(self) -> bool:
        """Whether this node holds the planning lock now."""
        ...

    def may_plan(self) -> bool:
        """Take (or keep) the planning lock: True if this node is the one that writes the plan."""
        ...

    def resign(self) -> None:
        """Give the planning lock up (this node's files are older than the plan's)."""
        ...

    def account(self, account: str, now: datetime) -> AbstractContextManager[bool]:
        """While the block runs, ``account`` is this node's to publish for, if it yields True; False: another
        node publishes for it now (try again later). The hold is a lease, like a claim's (:meth:`extend`)."""
        ...

    def take(self, accounts: Iterable[str], now: datetime, limit: int) -> set[str]:
        """Hold at most ``limit`` of ``accounts`` (the free ones, picked at random) for a pass, in one step:
        :meth:`account` then yields True for them at no cost, until :meth:`release`. The accounts taken."""
        ...

    def release(self, accounts: Iterable[str]) -> None:
        """Let ``accounts`` (taken with :meth:`take`) go, in one step."""
        ...

    def holds(self, account: str, now: datetime) -> bool:
        """Whether ``account`` is still this node's at ``now`` (its lease may have passed while it was paused)."""
        ...

    def extend(self, now: datetime) -> None:
        """This node is alive: the leases of the accounts it holds run on."""
        ...

    def accounts(self) -> list[str]:
        """The accounts this node holds now."""
        ...

    def close(self) -> None: ...


class LocalCoordinator:
    """One node: it always plans, and always may publish (see the module docstring)."""

    shared = False
    is_leader = True

    def may_plan(self) -> bool:
        return True

    def resign(self) -> None:
        return None

    @contextmanager
    def account(self, account: str, now: datetime) -> Iterator[bool]:
        yield True

    def take(self, accounts: Iterable[str], now: datetime, limit: int) -> set[str]:
        return set(accounts)

    def release(self, accounts: Iterable[str]) -> None:
        return None

    def holds(self, account: str, now: datetime) -> bool:
        return True

    def extend(self, now: datetime) -> None:
        return None

    def accounts(self) -> list[str]:
        return []

    def close(self) -> None:
        return None


def open_coordinator(url: str | None, node: str, lease: timedelta) -> Coordinator:
    """The coordinator for the ledger at ``url`` (None: the state folder's SQLite ledger), as node ``node``,
    holding accounts for ``lease`` at a time."""
    if url is None:
        return LocalCoordinator()
    from amplifier.delivery.pg_coordination import PostgresCoordinator

    return PostgresCoordinator(url, node, lease)
