"""A pass's accounts taken in one step (PostgresCoordinator.take): each node its share, never an account
another node holds, the lease it wrote answering ``holds`` without a query, released in one step."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amplifier.delivery.ledger import LedgerError
from amplifier.delivery.ledger.postgres import PostgresLedger
from amplifier.delivery.pg_coordination import PostgresCoordinator
from tests.integration.servers.postgres import PostgresServer
from tests.integration.test_nodes import Node, campaign, make_node, url
from tests.unit.test_daemon import FakeServer, at

__all__ = ["make_node", "url"]  # the fixtures of test_nodes, used here

_databases = itertools.count()
LEASE = dt.timedelta(seconds=8)
NOW = dt.datetime(2027, 10, 20, 9, 0, tzinfo=dt.UTC)
ACCOUNTS = [f"a{n}" for n in range(7)]


@pytest.fixture
def pair(postgres: PostgresServer) -> Iterator[tuple[PostgresCoordinator, PostgresCoordinator]]:
    url = postgres.create_database(f"share_{next(_databases)}")
    PostgresLedger.open(url, NOW).close()  # the schema
    first, second = PostgresCoordinator(url, "n1:1:x", LEASE), PostgresCoordinator(url, "n2:2:y", LEASE)
    yield first, second
    first.close()
    second.close()


def test_each_node_takes_its_share_and_never_another_nodes_account(
    pair: tuple[PostgresCoordinator, PostgresCoordinator],
) -> None:
    first, second = pair
    mine = first.take(ACCOUNTS, NOW, 4)
    assert len(mine) == 4
    theirs = second.take(ACCOUNTS, NOW, 4)
    assert theirs == set(ACCOUNTS) - mine  # only the 3 left were free
    assert all(first.holds(a, NOW) for a in mine)
    assert not any(first.holds(a, NOW) for a in theirs)
    assert first.accounts() == sorted(mine)
    account = sorted(mine)[0]
    with first.account(account, NOW) as held:  # taken for the pass: yes, at no cost
        assert held
    with second.account(account, NOW) as held:
        assert not held
    assert first.holds(account, NOW)  # the pass's block does not release it: release() does

    first.release(mine)
    assert first.accounts() == []
    assert not first.holds(account, NOW)
    assert second.take(ACCOUNTS, NOW, 7) == mine


def test_a_lease_that_passed_is_anyones_and_its_old_holder_knows(
    pair: tuple[PostgresCoordinator, PostgresCoordinator],
) -> None:
    first, second = pair
    mine = first.take(ACCOUNTS, NOW, 7)
    assert mine == set(ACCOUNTS)
    first.extend(NOW + dt.timedelta(seconds=2))  # alive: the leases run on to NOW + 10 s
    later = NOW + LEASE + dt.timedelta(seconds=1)
    assert second.take(ACCOUNTS, later, 7) == set()
    assert first.holds("a0", later)
    gone = NOW + dt.timedelta(seconds=11)  # then the first node stalls: its leases pass
    assert not first.holds("a0", gone)
    assert second.take(ACCOUNTS, gone, 7) == set(ACCOUNTS)
    first.release(mine)  # too late: deletes nothing of the second's
    with first.account("a0", gone) as held:
        assert not held


def test_a_failed_pass_lets_its_accounts_go(
    make_node: Callable[..., Node], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that fails after taking its accounts (the ledger went away) releases them: the lease job would
    otherwise extend them for as long as the node lives, and no other node would publish for them."""
    folder = campaign(tmp_path, "c")
    server = FakeServer()
    first, second = make_node(folder, server), make_node(folder, server)

    def gone(*args: object, **kwargs: object) -> None:
        raise LedgerError("the database went away")

    monkeypatch.setattr(first.ledger, "history", gone)
    with pytest.raises(LedgerError):
        first.tick(at("2027-10-20T09:06"))
    assert first.coordinator.accounts() == []
    first.daemon.extend_leases(at("2027-10-20T09:06"))
    second.tick(at("2027-10-20T09:06"))
    assert server.count("a:masto:2027-10-20T09:00") == server.count("a:sky:2027-10-20T09:00") == 1
