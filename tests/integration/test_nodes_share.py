"""A pass's accounts taken in one step (PostgresCoordinator.take): each node its share, never an account
another node holds, the lease it wrote answering ``holds`` without a query, released in one step."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.clock import utcnow
from amplifier.daemon.events import EventLog
from amplifier.daemon.loop import Daemon
from amplifier.daemon.nodes import SHARE_WAIT, NodesMixin, owners
from amplifier.daemon.scheduler import serve
from amplifier.daemon.settings import DaemonSettings
from amplifier.delivery.ledger import LedgerError, PlanEntry
from amplifier.delivery.ledger.postgres import PostgresLedger
from amplifier.delivery.pg_coordination import PostgresCoordinator
from tests.integration.servers.postgres import PostgresServer
from tests.integration.test_nodes import Node, campaign, make_node, url
from tests.unit.test_daemon import BERLIN, FakePublisher, FakeServer, at, once

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


class _Taker(NodesMixin):
    """The part of a daemon that takes a pass's accounts, on a real coordinator and ledger; what it asked for."""

    def __init__(self, ledger: PostgresLedger, coordinator: PostgresCoordinator, accounts: list[str]) -> None:
        self.ledger, self.coordinator, self.token = ledger, coordinator, coordinator.node
        self.campaign = SimpleNamespace(schedule=SimpleNamespace(accounts=dict.fromkeys(accounts)))  # type: ignore[assignment]
        self.settings = DaemonSettings(claim_lease=LEASE)
        self.log = EventLog(None, keep=True)
        self._held, self._plan_note = {}, None
        self.asked: list[set[str]] = []
        take = coordinator.take

        def asking(accounts: Iterable[str], now: dt.datetime, limit: int) -> set[str]:
            self.asked.append(set(accounts))
            return take(accounts, now, limit)

        coordinator.take = asking  # type: ignore[method-assign]

    def refresh_budgets(self, accounts: set[str], now: dt.datetime, *, only: str | None = None) -> set[str]:
        return set(accounts)


def test_the_nodes_of_a_burst_split_its_accounts_without_asking_for_one_twice(
    postgres: PostgresServer,
) -> None:
    """A burst of 60 accounts due at one instant, three nodes passing at once: each asks only for the accounts
    it owns, so together they take every account at the first pass (before, each asked for its share out of
    all of them at random: two nodes' picks collided, and the accounts nobody got waited for a later pass)."""
    url = postgres.create_database(f"share_{next(_databases)}")
    ledger = PostgresLedger.open(url, NOW)
    names = [f"n{n}:{n}:z" for n in range(3)]
    for name in names:
        ledger.beat_node(name, NOW, leader=False, holds=[])
    accounts = [f"acct{n:02d}" for n in range(60)]
    ledger.sync_plan(
        [PlanEntry(f"r:{a}:2027-10-20T09:00", a, "mastodon", "r", NOW, "h", 1) for a in accounts], NOW
    )
    queues = {row.account: [row] for row in ledger.due(NOW)}
    nodes = [
        _Taker(PostgresLedger.open(url, NOW), PostgresCoordinator(url, name, LEASE), accounts)
        for name in names
    ]
    barrier = threading.Barrier(len(nodes))
    taken: dict[str, set[str]] = {}

    def take(node: _Taker) -> None:
        barrier.wait()
        taken[node.token] = set(node.take_accounts(queues, NOW))

    try:
        threads = [threading.Thread(target=take, args=(node,)) for node in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        asked = [node.asked[0] for node in nodes]
        assert all(len(node.asked) == 1 for node in nodes)  # one step each
        assert set().union(*asked) == set(accounts)
        assert sum(len(one) for one in asked) == len(accounts)  # no account asked for by two nodes
        assert [taken[node.token] for node in nodes] == asked  # so each got all it asked for
        assert [len(one) for one in asked] == [20, 20, 20]  # the campaign's accounts dealt out in turn
        assert not any(node.log.events for node in nodes)  # nobody was refused an account ("held")
        assert all(until == NOW + SHARE_WAIT for node in nodes for until in node._held.values())
        assert owners(accounts, accounts, names) == owners(
            accounts, reversed(accounts), list(reversed(names))
        )
    finally:
        for node in nodes:
            node.coordinator.close()
            node.ledger.close()
        ledger.close()


def test_a_follower_started_before_the_plan_wakes_for_the_posts_the_leader_plans(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """A follower that starts (and arms its wake) before the leader has written the plan finds nothing due; when
    the plan comes, its watch sees a post due before its next wake and arms again (before, it slept until its
    hourly re-plan, and its share of every burst waited for the other nodes)."""
    url = postgres.create_database(f"share_{next(_databases)}")
    minute = dt.datetime.now(BERLIN).strftime("%Y-%m-%dT%H:%M")
    folder = campaign(tmp_path, "c", once("a", minute))
    server = FakeServer()
    made: list[tuple[Daemon, PostgresLedger, PostgresCoordinator]] = []

    def node(name: str) -> Daemon:
        ledger, coordinator = PostgresLedger.open(url, utcnow()), PostgresCoordinator(url, name, LEASE)
        daemon = Daemon(
            load_campaign(folder / "schedule.yaml"),
            ledger,
            lambda account, settings: FakePublisher(account, settings.platform, server),  # type: ignore[arg-type]
            clock=utcnow,
            log=EventLog(None, keep=True),
            settings=DaemonSettings(claim_lease=LEASE),
            environ={},
            coordinator=coordinator,
            token=name,
        )
        made.append((daemon, ledger, coordinator))
        return daemon

    leader_lock = PostgresCoordinator(url, "leader:1:x", LEASE)
    assert leader_lock.may_plan()  # the leader is another node: the follower plans nothing
    follower, stop = node("follower:2:y"), threading.Event()
    follower.start(utcnow())
    serving = threading.Thread(target=serve, args=(follower, stop))
    serving.start()
    try:
        while not any(event.get("event") == "started" for event in follower.log.events):
            time.sleep(0.05)
        assert follower.ledger.next_due_at() is None  # no plan yet
        leader_lock.resign()
        leader = node("leader:3:z")
        leader.start(utcnow())  # writes the plan (and never passes: the follower publishes)
        assert follower.ledger.next_due_at() is not None
        deadline = time.monotonic() + 30
        while not (server.count(f"a:masto:{minute}") and server.count(f"a:sky:{minute}")):
            assert time.monotonic() < deadline, "the follower never published the leader's plan"
            time.sleep(0.1)
    finally:
        stop.set()
        serving.join(timeout=60)
        leader_lock.close()
        for daemon, ledger, coordinator in made:
            daemon.close()
            coordinator.close()
            ledger.close()
