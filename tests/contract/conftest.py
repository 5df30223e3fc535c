"""The ledger backends the contract tests run against: one factory per implementation.

A backend makes ledgers over one store: :meth:`Backend.open` opens (another connection to) the store of the
test, :meth:`Backend.fresh` a new, empty store (for property tests, one per example). To add an implementation
(MySQL, say), add a branch to the ``backend`` fixture; PostgreSQL runs on the session's throwaway cluster
(``tests/integration/servers/postgres.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from amplifier.delivery.ledger import Ledger, PlanEntry
from amplifier.delivery.ledger.postgres import PostgresLedger
from amplifier.delivery.ledger.sqlite import SqliteLedger
from tests.integration.servers.postgres import PostgresServer

T0 = datetime(2027, 10, 25, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
T2 = T0 + timedelta(minutes=2)


def entry(
    post_id: str = "p",
    due: datetime = T0,
    digest: str = "h1",
    parts: int = 1,
    account: str = "mastodon-en",
    platform: str = "mastodon",
    rule: str = "countdown",
) -> PlanEntry:
    return PlanEntry(
        id=post_id,
        account=account,
        platform=platform,
        rule=rule,
        due_at=due,
        content_hash=digest,
        part_count=parts,
    )


class Backend(Protocol):
    def open(self, now: datetime) -> Ledger:
        """A new connection to this test's store (the same posts as every other connection to it)."""
        ...

    def fresh(self, now: datetime) -> Ledger:
        """A ledger over a new, empty store."""
        ...


@dataclass
class SqliteBackend:
    folder: Path
    _fresh: Iterator[int] = field(default_factory=itertools.count)

    def open(self, now: datetime) -> Ledger:
        return SqliteLedger.open(self.folder / "ledger.sqlite3", now)

    def fresh(self, now: datetime) -> Ledger:
        return SqliteLedger.open(self.folder / f"fresh-{next(self._fresh)}.sqlite3", now)


@dataclass
class PostgresBackend:
    """Databases on the session's throwaway PostgreSQL cluster: one per test, and one per :meth:`fresh`."""

    server: PostgresServer
    name: str
    _fresh: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.url = self.server.create_database(self.name)

    def open(self, now: datetime) -> Ledger:
        return PostgresLedger.open(self.url, now)

    def fresh(self, now: datetime) -> Ledger:
        return PostgresLedger.open(self.server.create_schema(self.name, f"fresh_{next(self._fresh)}"), now)


_databases = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every contract test runs once per implementation of the ledger."""
    if request.param == "sqlite":
        return SqliteBackend(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres")
    return PostgresBackend(server, f"contract_{next(_databases)}")


@pytest.fixture
def ledger(backend: Backend) -> Iterator[Ledger]:
    with backend.open(T0) as opened:
        yield opened
