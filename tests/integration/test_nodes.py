"""Several daemons on one PostgreSQL ledger (in one process, each with its own connections, clock and token):
one leader writes the plan, older files never overwrite it, one node per account at a time with the budget
read from the ledger, and a node paused past its lease records nothing over the node that took its post over."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.daemon.events import EventLog
from amplifier.daemon.loop import Daemon
from amplifier.daemon.settings import DaemonSettings
from amplifier.delivery.coordination import Coordinator
from amplifier.delivery.ledger import State
from amplifier.delivery.ledger.postgres import PostgresLedger
from amplifier.delivery.pg_coordination import PostgresCoordinator
from amplifier.delivery.ratelimit import Budget, RateLimiter, Window
from amplifier.delivery.reconcile import claim_token
from amplifier.plan.post import PlannedPost
from amplifier.publish.base import PartResult, PublishResult
from tests.integration.servers.postgres import PostgresServer
from tests.unit.test_daemon import Clock, FakePublisher, FakeServer, at, once, write_campaign

_databases = itertools.count()
LEASE = dt.timedelta(seconds=8)
START = at("2027-10-20T08:00")


@dataclass
class Node:
    daemon: Daemon
    ledger: PostgresLedger
    coordinator: Coordinator
    clock: Clock
    log: EventLog

    def tick(self, when: dt.datetime) -> None:
        self.clock.now = when
        self.daemon.tick(when)

    def events(self, name: str) -> list[dict[str, object]]:
        return [event for event in self.log.events if event.get("event") == name]


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    return postgres.create_database(f"nodes_{next(_databases)}")


@pytest.fixture
def make_node(url: str, tmp_path: Path) -> Iterator[Callable[..., Node]]:
    made: list[Node] = []

    def make(
        folder: Path,
        server: FakeServer,
        *,
        publisher: Callable[[str, MastodonAccount | BlueskyAccount], object] | None = None,
        limiter: RateLimiter | None = None,
        start: bool = True,
    ) -> Node:
        clock = Clock(START)
        ledger = PostgresLedger.open(url, START)
        token = claim_token("daemon")
        coordinator = PostgresCoordinator(url, token, LEASE)
        log = EventLog(None, clock=clock, keep=True)

        def fake(account: str, settings: MastodonAccount | BlueskyAccount) -> FakePublisher:
            return FakePublisher(account, settings.platform, server)

        daemon = Daemon(
            load_campaign(folder / "schedule.yaml"),
            ledger,
            publisher or fake,  # type: ignore[arg-type]
            clock=clock,
            log=log,
            settings=DaemonSettings(claim_lease=LEASE),
            rng=random.Random(1),
            environ={},
            limiter=limiter,
            coordinator=coordinator,
            token=token,
        )
        if start:
            daemon.start(START)
        node = Node(daemon, ledger, coordinator, clock, log)
        made.append(node)
        return node

    yield make
    for node in made:
        node.daemon.close()
        node.coordinator.close()
        node.ledger.close()


RULES = once("a", "2027-10-20T09:00") + once("b", "2027-10-20T09:05")


def campaign(tmp_path: Path, name: str, rules: str = RULES, *, mtime: float | None = None) -> Path:
    folder = tmp_path / name
    write_campaign(folder, rules)
    if mtime is not None:
        for path in folder.rglob("*.yaml"):
            os.utime(path, (mtime, mtime))
    return folder


def test_one_leader_writes_the_plan_and_another_takes_over_when_it_dies(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    folder = campaign(tmp_path, "c")
    server = FakeServer()
    first = make_node(folder, server)
    second = make_node(folder, server)

    assert first.coordinator.is_leader
    assert not second.coordinator.is_leader
    source = first.ledger.plan_source()
    assert source is not None
    assert source.node == first.daemon.token
    assert any("following" in str(e["state"]) for e in second.events("plan role"))
    assert not second.daemon.take_lead(START)

    first.coordinator.close()  # the leader's lock connection dies with it

    # The server releases the lock once the dead connection's backend is gone (a moment later); a follower
    # asks every watch interval.
    deadline = time.monotonic() + 10
    while not second.daemon.take_lead(START):
        assert time.monotonic() < deadline, "no follower took the lead"
        time.sleep(0.05)
    source = second.ledger.plan_source()
    assert source is not None
    assert source.node == second.daemon.token


def test_a_node_with_older_files_does_not_overwrite_the_plan_nor_post_its_text(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    new = campaign(tmp_path, "new", RULES + once("c", "2027-10-20T09:10"), mtime=2_000_000_000)
    (new / "messages" / "hello.yaml").write_text(
        (new / "messages" / "hello.yaml").read_text().replace("Hello from", "Greetings from")
    )
    os.utime(new / "messages" / "hello.yaml", (2_000_000_000, 2_000_000_000))
    old = campaign(tmp_path, "old", mtime=1_000_000_000)
    server = FakeServer()
    leader = make_node(new, server)
    planned = {row.id for row in leader.ledger.export_rows()}
    leader.coordinator.close()

    stale = make_node(old, server)  # leads (once the lock is free), but its files are older
    deadline = time.monotonic() + 10
    while not any("not overwritten" in str(e["state"]) for e in stale.events("plan role")):
        assert time.monotonic() < deadline, stale.log.events
        time.sleep(0.05)
        stale.daemon.plan(START)

    assert not stale.coordinator.is_leader  # it gave the lead up
    notes = [str(e["state"]) for e in stale.events("plan role")]
    assert any("newer campaign files" in note and "not overwritten" in note for note in notes)
    assert {row.id for row in stale.ledger.export_rows()} == planned
    assert all(row.state == State.PLANNED for row in stale.ledger.export_rows())

    stale.tick(at("2027-10-20T09:11"))  # its text differs from the plan's: nothing goes out from it
    assert server.published == {}
    assert stale.events("held")


def test_one_node_per_account_at_a_time(make_node: Callable[..., Node], tmp_path: Path) -> None:
    folder = campaign(tmp_path, "c")
    server = FakeServer()
    first = make_node(folder, server)
    second = make_node(folder, server)

    with first.coordinator.account("masto", at("2027-10-20T09:06")) as mine:
        assert mine
        second.tick(at("2027-10-20T09:06"))  # masto is first's now: only sky's posts go out
        assert {post_id for post_id, _ in server.published} == {
            "a:sky:2027-10-20T09:00",
            "b:sky:2027-10-20T09:05",
        }
        assert [e["account"] for e in second.events("held")] == ["masto"]
        assert second.daemon.next_wake(at("2027-10-20T09:06")) is not None
    second.tick(at("2027-10-20T09:08"))
    assert server.count("a:masto:2027-10-20T09:00") == server.count("b:masto:2027-10-20T09:05") == 1


def test_the_rate_budget_counts_every_nodes_posts(make_node: Callable[..., Node], tmp_path: Path) -> None:
    folder = campaign(
        tmp_path,
        "c",
        once("a", "2027-10-20T09:00", accounts="[masto]") + once("b", "2027-10-20T09:05", accounts="[masto]"),
    )
    server = FakeServer()
    one_an_hour = {"mastodon": Budget((Window(1, dt.timedelta(hours=1)),), cost_per_part=1)}
    first = make_node(folder, server, limiter=RateLimiter(one_an_hour))
    second = make_node(folder, server, limiter=RateLimiter(one_an_hour))

    first.tick(at("2027-10-20T09:01"))
    assert server.count("a:masto:2027-10-20T09:00") == 1
    second.tick(at("2027-10-20T09:06"))  # the budget is spent, by the other node

    assert server.count("b:masto:2027-10-20T09:05") == 0
    assert [e["id"] for e in second.events("deferred")] == ["b:masto:2027-10-20T09:05"]


class Paused:
    """A publisher that stops (as a SIGSTOPped node would) before its request, until it is let go; then acts as
    a platform with idempotency keys: a post that is out already is returned, not made twice."""

    def __init__(self, account: str, platform: str, server: FakeServer) -> None:
        self.inner = FakePublisher(account, platform, server)
        self.server = server
        self.platform = platform
        self.stopped = threading.Event()
        self.go = threading.Event()

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        self.stopped.set()
        assert self.go.wait(30)
        with self.server.lock:
            found = self.server.published.get((post.id, 0))
        if found is not None:
            part = PartResult(index=0, id=found.id, url=found.url, existed=True)
            return PublishResult(post.id, post.account, post.platform, (part,))
        return self.inner.publish(post, resume=resume)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_node_paused_past_its_lease_records_nothing_over_the_node_that_took_over(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    folder = campaign(tmp_path, "c", once("a", "2027-10-20T09:00", accounts="[sky]"))
    server = FakeServer()
    paused = Paused("sky", "bluesky", server)

    def stopping(account: str, settings: MastodonAccount | BlueskyAccount) -> Paused:
        return paused

    first = make_node(folder, server, publisher=stopping)
    second = make_node(folder, server)
    post_id = "a:sky:2027-10-20T09:00"
    worker = threading.Thread(target=first.tick, args=(at("2027-10-20T09:00"),))
    worker.start()
    try:
        assert paused.stopped.wait(30), first.log.events
        row = second.ledger.get(post_id)
        assert (row.claim_token, row.lease_until) == (first.daemon.token, at("2027-10-20T09:00") + LEASE)

        second.tick(at("2027-10-20T09:00") + LEASE + dt.timedelta(seconds=1))  # the lease passed

        row = second.ledger.get(post_id)
        assert row.state == State.PUBLISHED
        assert row.claim_token == second.daemon.token
    finally:
        paused.go.set()
        worker.join(30)
    row = second.ledger.get(post_id)
    assert row.state == State.PUBLISHED
    assert row.claim_token == second.daemon.token
    assert server.count(post_id) == 1
    errors = [str(e.get("reason")) for e in first.events("error")]
    assert any("claimed by" in reason or "is published" in reason for reason in errors), errors


def test_a_copied_campaign_folder_in_git_gives_the_commit_as_revision(tmp_path: Path) -> None:
    from amplifier.daemon.nodes import campaign_source

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    folder = campaign(tmp_path, "c")
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": "2027-10-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2027-10-01T00:00:00Z",
    }
    import subprocess

    for args in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"],
    ):
        subprocess.run(["git", "-C", str(folder), *args], check=True, env=env, capture_output=True)
    loaded = load_campaign(folder / "schedule.yaml")
    source = campaign_source(loaded, loaded.files, "n")
    assert source.revision.startswith("git:")
    assert source.revised_at == dt.datetime(2027, 10, 1, tzinfo=dt.UTC)
    copy = shutil.copytree(folder, tmp_path / "copy")
    other = load_campaign(Path(copy) / "schedule.yaml")
    assert campaign_source(other, other.files, "m").content_hash == source.content_hash


def test_an_account_is_one_nodes_until_its_lease_passes(url: str) -> None:
    PostgresLedger.open(url, START).close()  # the schema
    now = START
    first, second = PostgresCoordinator(url, "node-1", LEASE), PostgresCoordinator(url, "node-2", LEASE)
    try:
        with first.account("masto", now) as mine:
            assert mine
            assert first.holds("masto", now)
            with first.account("masto", now) as again:
                assert not again  # never two of one node's threads
            with second.account("masto", now + LEASE - dt.timedelta(seconds=1)) as theirs:
                assert not theirs
            first.extend(now + dt.timedelta(seconds=5))  # alive: runs to now + 5 s + LEASE
            with second.account("masto", now + LEASE + dt.timedelta(seconds=1)) as theirs:
                assert not theirs
            # Paused past its lease: the account is the other node's, and the first knows it.
            late = now + dt.timedelta(seconds=5) + LEASE
            with second.account("masto", late) as theirs:
                assert theirs
                assert not first.holds("masto", late)
            with second.account("sky", now) as other:
                assert other  # accounts are independent
        with second.account("masto", now) as theirs:
            assert theirs  # released by the first at the end of its block
    finally:
        first.close()
        second.close()


def test_status_shows_each_node_its_heartbeat_and_what_it_holds(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    from zoneinfo import ZoneInfo

    from amplifier.daemon.status import collect_status

    folder = campaign(tmp_path, "c")
    server = FakeServer()
    first = make_node(folder, server)
    second = make_node(folder, server)
    now = at("2027-10-20T09:00")
    with first.coordinator.account("masto", now) as mine:
        assert mine
        first.daemon.extend_leases(now)
    second.daemon.extend_leases(now + dt.timedelta(seconds=1))

    status = collect_status(first.ledger, now, ZoneInfo("UTC"), tmp_path / "state", {"masto": "mastodon"})

    nodes = {node["node"]: node for node in status["nodes"]}
    assert nodes[first.daemon.token]["leader"] is True
    assert nodes[first.daemon.token]["holds"] == ["account masto"]
    assert nodes[first.daemon.token]["pid"] == os.getpid()
    assert nodes[second.daemon.token]["leader"] is False
    assert [node["node"] for node in status["nodes"]] == [second.daemon.token, first.daemon.token]
