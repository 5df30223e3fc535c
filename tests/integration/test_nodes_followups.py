"""Follow-up jobs (boosts, pins, deletions) and read-back on several daemons sharing one PostgreSQL ledger: each
runs only on the node holding its account's lease, so every job is written once, every read request for a post is
sent by one node only, and an account's requests across nodes stay within its one budget."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.daemon import readback
from amplifier.delivery import followups
from amplifier.delivery.ratelimit import Budget, RateLimiter, Window
from amplifier.publish.engagement import Engagement, PublishedPart
from amplifier.publish.followups import Target, WriteOutcome
from tests.integration.test_nodes import Node, make_node, url
from tests.unit.test_daemon import FakePublisher, FakeServer, at

__all__ = ["make_node", "url"]  # the fixtures of test_nodes, used here

SCHEDULE = """\
campaign:
  name: Nodes and follow-ups
  timezone: Europe/Berlin
accounts:
ACCOUNTS
rules:
RULES
"""

MESSAGES = """\
sets:
  hello:
    pin: PIN
    delete_after: DELETE
    variants:
      - text:
          en: "Hello from the campaign, {{ account.id }}!"
"""


def account(name: str) -> str:
    return f"  {name}:\n    platform: mastodon\n    instance: https://mastodon.example\n    token_env: T_{name.upper()}\n"


def rule(name: str, when: str, authors: str, boosters: str) -> str:
    return (
        f"  {name}:\n    kind: once\n    at: {when}\n    messages: hello\n    accounts: [{authors}]\n"
        f"    boost: [{boosters}]\n"
    )


def write(folder: Path, accounts: Sequence[str], rules: str, *, pin: bool, delete: str) -> Path:
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    schedule = SCHEDULE.replace("ACCOUNTS\n", "".join(account(name) for name in accounts))
    (folder / "schedule.yaml").write_text(schedule.replace("RULES\n", rules))
    messages = MESSAGES.replace("PIN", "true" if pin else "false").replace("DELETE", delete)
    (folder / "messages" / "hello.yaml").write_text(messages)
    return folder


class Platform(FakeServer):
    """The fake server, with the follow-up writes and the read requests each node sent, in order."""

    def __init__(self, read_delay: float = 0.0) -> None:
        super().__init__()
        self.writes: list[tuple[str, str, str, str, dt.datetime]] = []  # node, kind, account, post, when
        self.reads: list[tuple[str, str, str, dt.datetime]] = []  # node, account, post, when
        self.read_delay = read_delay
        self.now = at("2027-10-20T08:00")


class Writer:
    def __init__(self, node: str, account: str, platform: Platform) -> None:
        self.node, self.account, self.platform = node, account, platform

    def write(self, kind: str, target: Target, when: dt.datetime) -> WriteOutcome:
        with self.platform.lock:
            self.platform.writes.append((self.node, kind, self.account, target.post_id, self.platform.now))
        return WriteOutcome(f"{kind} made", {"by": self.account})

    def is_done(self, kind: str, target: Target, when: dt.datetime) -> bool:
        with self.platform.lock:
            return any(w[1:4] == (kind, self.account, target.post_id) for w in self.platform.writes)


class NodePublisher(FakePublisher):
    """One node's publisher of an account: posts as the fake one, follow-up writes and reads logged by node."""

    def __init__(self, node: str, account: str, platform_name: str, platform: Platform) -> None:
        super().__init__(account, platform_name, platform)
        self.node = node
        self.platform_log = platform

    def followups(self) -> Writer:
        return Writer(self.node, self.account, self.platform_log)

    def read_engagement(self, parts: Sequence[PublishedPart]) -> list[Engagement]:
        with self.platform_log.lock:
            now = self.platform_log.now
            self.platform_log.reads.extend((self.node, self.account, p.post_id, now) for p in parts)
        time.sleep(self.platform_log.read_delay)  # the nodes' passes overlap
        return [Engagement(p.post_id, p.index, now, 1, 0, 0, 0) for p in parts]


def nodes(
    make_node: Callable[..., Node],
    folder: Path,
    platform: Platform,
    count: int,
    budgets: dict[str, Budget] | None,
) -> list[Node]:
    made = []
    for number in range(count):
        name = f"node{number}"

        def publisher(
            account: str, settings: MastodonAccount | BlueskyAccount, name: str = name
        ) -> NodePublisher:
            return NodePublisher(name, account, settings.platform, platform)

        limiter = RateLimiter(budgets) if budgets is not None else None
        made.append(make_node(folder, platform, publisher=publisher, limiter=limiter))
    return made


def tick_together(group: Sequence[Node], when: dt.datetime, platform: Platform) -> None:
    """Every node runs a pass at ``when`` at the same moment, on its own thread."""
    platform.now = when
    barrier = threading.Barrier(len(group))
    errors: list[BaseException] = []

    def run(node: Node) -> None:
        barrier.wait()
        try:
            node.tick(when)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(node,)) for node in group]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_boosts_pins_and_deletions_each_once_over_three_nodes(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    rules = "".join(rule(f"r{n}", f"2027-10-20T09:0{n}", "a1, a2", "b") for n in range(3))
    folder = write(tmp_path / "c", ["a1", "a2", "b"], rules, pin=True, delete="30m")
    platform = Platform()
    group = nodes(make_node, folder, platform, 3, None)
    for minutes in (0, 1, 2, 3, 5, 10, 31, 32, 33, 35, 40):
        tick_together(group, at("2027-10-20T09:00") + dt.timedelta(minutes=minutes), platform)

    made = [write[1:4] for write in platform.writes]
    assert len(made) == len(set(made))  # no job written twice, by one node or two
    posts = [f"r{n}:{a}:2027-10-20T09:0{n}" for n in range(3) for a in ("a1", "a2")]
    for post in posts:
        author = post.split(":")[1]
        assert {(kind, who) for kind, who, post_id in made if post_id == post} == {
            ("boost", "b"),
            ("pin", author),
            ("delete", author),
        }
    jobs = group[0].ledger.followups(posts)
    assert {job.state for job in jobs} == {"done"}
    # Which node writes which job depends on which one takes the leases first: under load one node may take them
    # all, so how the jobs spread is not asserted (each once, whoever writes it, is).


def test_an_accounts_follow_up_writes_stay_within_its_one_budget_across_nodes(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    """The booster may make 2 writes in 3 hours; 4 posts of two authors to boost, three nodes: 2 boosts in all
    (each node alone would have made 2 with a budget of its own)."""
    rules = "".join(rule(f"r{n}", f"2027-10-20T09:0{n}", "a1, a2", "b") for n in range(2))
    folder = write(tmp_path / "c", ["a1", "a2", "b"], rules, pin=False, delete="1d")
    platform = Platform()
    budgets = {"mastodon": Budget((Window(2, dt.timedelta(hours=3)),))}
    group = nodes(make_node, folder, platform, 3, budgets)
    for minutes in (0, 1, 2, 3, 5):
        when = at("2027-10-20T09:00") + dt.timedelta(minutes=minutes)
        for node in group:  # one after the other: each node runs what it finds due
            platform.now = when
            node.tick(when)
        tick_together(group, when + dt.timedelta(seconds=30), platform)

    boosts = [write for write in platform.writes if write[1] == "boost"]
    assert len(boosts) == 2
    assert len(platform.calls) == 4  # the authors' posts, each within its own budget
    jobs = group[0].ledger.followups([f"r{n}:{a}:2027-10-20T09:0{n}" for n in range(2) for a in ("a1", "a2")])
    assert sorted(job.state for job in jobs if job.kind == "boost") == ["done", "done", "planned", "planned"]


def test_each_read_request_is_sent_by_one_node_within_the_accounts_read_budget(
    make_node: Callable[..., Node], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three posts of one account read an hour after publishing by three nodes at once: the first node to take
    the account reads two (its read budget: 2 requests per 5 minutes, across nodes), nobody reads any twice,
    and the third is read once the window passed."""
    monkeypatch.setattr(readback, "READ_BUDGETS", {"mastodon": Budget((Window(2, dt.timedelta(minutes=5)),))})
    rules = "".join(rule(f"r{n}", f"2027-10-20T09:0{n}", "a1", "b") for n in range(3))
    folder = write(tmp_path / "c", ["a1", "b"], rules, pin=False, delete="1d")
    platform = Platform(read_delay=0.2)
    group = nodes(make_node, folder, platform, 3, None)
    for minutes in (0, 1, 2, 3):
        tick_together(group, at("2027-10-20T09:00") + dt.timedelta(minutes=minutes), platform)
    assert platform.reads == []

    for when in ("10:03", "10:03:30", "10:04"):
        tick_together(group, at(f"2027-10-20T{when}"), platform)
    read = [(post, when) for _, account, post, when in platform.reads if account == "a1"]
    assert len(read) == 2  # the account's read budget, across the nodes
    assert len({post for post, _ in read}) == 2

    tick_together(group, at("2027-10-20T10:08:30"), platform)
    posts = [post for _, account, post, _ in platform.reads if account == "a1"]
    assert sorted(posts) == sorted(f"r{n}:a1:2027-10-20T09:0{n}" for n in range(3))  # each once
    from amplifier.delivery.shared_state import READS_BUDGET, SharedUses

    stored = SharedUses(group[0].daemon.shared_uses.store, {READS_BUDGET: dt.timedelta(minutes=5)})  # type: ignore[union-attr]
    uses = stored.load(["a1"], at("2027-10-20T10:08:30"))["a1"]
    assert [(use.budget, use.parts) for use in uses] == [(READS_BUDGET, 1)]  # the last read, every node's


def test_a_node_reads_and_runs_follow_ups_only_for_the_accounts_whose_lease_it_took(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    rules = rule("r0", "2027-10-20T09:00", "a1", "b")
    folder = write(tmp_path / "c", ["a1", "b"], rules, pin=True, delete="1d")
    platform = Platform()
    first, second = nodes(make_node, folder, platform, 2, None)
    for node in (first, second):
        platform.now = at("2027-10-20T09:00")
        node.tick(at("2027-10-20T09:00"))
    assert len(platform.calls) == 1
    assert {(w[1], w[2]) for w in platform.writes} == {("pin", "a1"), ("boost", "b")}

    late = at("2027-10-20T10:01")
    platform.now = late
    held = second.coordinator.take(["a1"], late, 1)  # the second node holds the author now
    assert held == {"a1"}
    first.tick(late)
    assert platform.reads == []  # a1's reads are the second node's
    second.coordinator.release(held)
    first.tick(late)
    assert [(node, post) for node, _, post, _ in platform.reads] == [("node0", "r0:a1:2027-10-20T09:00")]
    assert first.coordinator.accounts() == []  # the leases were let go after the pass


def test_an_accounts_deletions_stay_within_its_one_delete_budget_across_nodes(
    make_node: Callable[..., Node], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deletions: 2 per 30 minutes per account (Mastodon's is 30). The second node counted its deletions before
    the first deleted two of a1's posts; it then leaves the third for later (its own count would let it go)."""
    monkeypatch.setattr(
        followups, "DELETE_BUDGETS", {"mastodon": Budget((Window(2, dt.timedelta(minutes=30)),))}
    )
    rules = rule("early", "2027-10-20T08:50", "a2", "b")
    rules += "".join(rule(f"r{n}", f"2027-10-20T09:0{n}", "a1", "b") for n in range(3))
    folder = write(tmp_path / "c", ["a1", "a2", "b"], rules, pin=False, delete="30m")
    platform = Platform()
    first, second = nodes(make_node, folder, platform, 2, None)
    for when in ("08:50", "09:00", "09:01", "09:02"):
        tick_together([first, second], at(f"2027-10-20T{when}"), platform)
    platform.now = at("2027-10-20T09:20")
    second.tick(at("2027-10-20T09:20"))  # a2's deletion: the second node counts the deletions then
    assert [(w[0], w[1], w[2]) for w in platform.writes if w[1] == "delete"] == [("node1", "delete", "a2")]

    late = at("2027-10-20T09:32")
    platform.now = late
    first.tick(late)
    second.tick(late)
    deleted = [w[3] for w in platform.writes if w[1] == "delete" and w[2] == "a1"]
    assert len(deleted) == 2  # within the budget, across the nodes
    (left,) = {f"r{n}:a1:2027-10-20T09:0{n}" for n in range(3)} - set(deleted)
    assert [job.state for job in first.ledger.followups([left]) if job.kind == "delete"] == ["planned"]

    platform.now = later = at("2027-10-20T10:03")  # the window passed: the third goes
    second.tick(later)
    first.tick(later)
    assert len([w for w in platform.writes if w[1] == "delete" and w[2] == "a1"]) == 3
