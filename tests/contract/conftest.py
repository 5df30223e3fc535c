"""The ledger backends the contract tests run against: one factory per implementation.

A backend makes ledgers over one store: :meth:`Backend.open` opens (another connection to) the store of the
test, :meth:`Backend.fresh` a new, empty store (for property tests, one per example). To add an implementation
(PostgreSQL, say), add its factory to :data:`BACKENDS`; a backend that needs a server skips when none is
configured.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from amplifier.delivery.ledger import Ledger, PlanEntry
from amplifier.delivery.ledger.sqlite import SqliteLedger

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


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": SqliteBackend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    factory = BACKENDS[request.param]
    return factory(tmp_path)


@pytest.fixture
def ledger(backend: Backend) -> Iterator[Ledger]:
    with backend.open(T0) as opened:
        yield opened
