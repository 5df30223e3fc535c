"""The one delivery path under faults the publishers did not classify, and under 429s on reconciliation lookups.

* an exception that is not an AmplifierError (an SDK's, httpx's) from a publish is an unknown outcome: counted,
  backed off, reconciled at its check; never an immediate reconcile-and-resend loop (issue 8, defect 3);
* a 429 from a lookup (a Mastodon search, a Bluesky getRecord) blocks the account until the reset the server
  gave: no request for it, lookups included, goes out before (defect 2);
* a lookup that raises anything at start-up never stops the daemon: it is tried again later, and the other
  accounts post (defect 4).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.cli.publish import publish_context
from amplifier.daemon.events import EventLog
from amplifier.daemon.loop import Daemon
from amplifier.daemon.scheduler import run_once
from amplifier.daemon.settings import DaemonSettings
from amplifier.delivery.deliver import UnexpectedPublishError
from amplifier.delivery.ledger import State, open_ledger
from amplifier.delivery.send import send_posts
from amplifier.plan.planner import find_posts
from amplifier.plan.post import PlannedPost
from amplifier.publish import REGISTRY, PublishContext
from amplifier.publish.base import PartResult, RateLimitedError

from .test_daemon import Clock, FakePublisher, FakeServer, once, write_campaign
from .test_unknown_outcome import POST, RULES, T0, KeyedPublisher, KeyedServer, World, minutes

SKY_POST = "b:sky:2027-10-20T09:00"


class Disconnected(Exception):
    """What httpx raises when a server drops the connection (``RemoteProtocolError``), as an unknown class."""


class SkyPublisher(FakePublisher):
    """A Bluesky publisher whose ``getRecord`` lookups fail as queued, and which counts them."""

    def __init__(self, account: str, server: FakeServer, lookups: list[dt.datetime], clock: Clock) -> None:
        super().__init__(account, "bluesky", server)
        self.lookups = lookups
        self.clock = clock

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        self.lookups.append(self.clock())
        if self.server.search_faults:
            raise self.server.search_faults.pop(0)
        return super().lookup(post)


class Faults(World):
    lookups: list[dt.datetime]

    def daemon(self, **settings: Any) -> Daemon:
        def factory(account: str, config: MastodonAccount | BlueskyAccount) -> Any:
            if config.platform == "mastodon":
                return KeyedPublisher(account, self.server)
            return SkyPublisher(account, self.sky, self.lookups, self.clock)

        daemon = Daemon(
            self.campaign,
            self.ledger,
            factory,
            clock=self.clock,
            log=EventLog(None, clock=self.clock, keep=True),
            settings=DaemonSettings(**{"jitter": 0.0, **settings}),
            state_dir=self.folder / "state",
            rng=random.Random(3),
            environ={},
        )
        self.daemons.append(daemon)
        return daemon


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Faults]:
    rules = RULES + once("b", "2027-10-20T09:00", accounts="[sky]", missed="{action: post, grace: P1D}")
    campaign = load_campaign(write_campaign(tmp_path, rules))
    clock = Clock(T0)
    ledger = open_ledger(tmp_path / "state", T0)
    made = Faults(tmp_path, campaign, ledger, clock, KeyedServer(clock), FakeServer())
    made.lookups = []
    yield made
    for daemon in made.daemons:
        daemon.close()
    ledger.close()


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


# --------------------------------------------------------------------------------------------- defect 3


def test_daemon_an_unclassified_exception_is_an_unknown_outcome_backed_off_not_a_resend_loop(
    world: Faults,
) -> None:
    world.server.faults += [Disconnected("Server disconnected without sending a response")] * 10
    daemon = world.daemon()
    daemon.plan(T0)

    for n in range(11):  # a pass every second, as a daemon woken at once would run them
        world.tick(daemon, T0 + seconds(n))

    assert world.server.sends == [T0]  # one request; the next only at its check
    row = world.ledger.get(POST)
    assert (row.state, row.attempts, row.unknown_since) == (State.CLAIMED, 1, T0)
    assert row.next_attempt_at == T0 + seconds(30)  # the backoff of the first attempt
    assert "Disconnected: Server disconnected" in (row.last_error or "")
    assert [event["event"] for event in daemon.log.events if event.get("id") == POST] == ["unknown"]

    world.tick(daemon, T0 + seconds(30))  # its check: within the key's window, re-sent under the key
    world.tick(daemon, T0 + seconds(30))
    assert world.server.sends == [T0, T0 + seconds(30)]
    assert world.ledger.get(POST).attempts == 2


def test_daemon_an_unclassified_exception_on_bluesky_is_checked_by_lookup_before_a_resend(
    world: Faults,
) -> None:
    world.sky.fail("sky", Disconnected("Server disconnected"), ValueError("truncated JSON"))
    daemon = world.daemon()
    daemon.plan(T0)

    for n in range(5):
        world.tick(daemon, T0 + seconds(n))
    assert world.sky.calls == [("sky", SKY_POST)]
    row = world.ledger.get(SKY_POST)
    assert (row.state, row.attempts) == (State.CLAIMED, 1)

    world.tick(daemon, T0 + seconds(30))  # looked up (not there), released, sent: the second fault
    world.tick(daemon, T0 + seconds(30))
    assert world.lookups == [T0 + seconds(30)]
    assert world.sky.calls == [("sky", SKY_POST)] * 2
    row = world.ledger.get(SKY_POST)
    assert (row.state, row.attempts, row.next_attempt_at) == (State.CLAIMED, 2, T0 + seconds(90))

    world.tick(daemon, T0 + seconds(90))
    world.tick(daemon, T0 + seconds(90))
    assert world.ledger.get(SKY_POST).state == State.PUBLISHED
    assert world.sky.count(SKY_POST) == 1


def test_send_an_unclassified_exception_is_an_unknown_outcome(
    world: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    def factory(account: str, settings: Any, ctx: PublishContext) -> KeyedPublisher:
        return KeyedPublisher(account, world.server)

    monkeypatch.setitem(REGISTRY, "mastodon", factory)
    world.server.faults.append(ValueError("Expecting value: line 1 column 9 (char 8)"))
    ctx = publish_context(world.campaign, world.folder / "state")

    (outcome,) = send_posts(
        find_posts(world.campaign, [POST]),
        world.campaign,
        ctx,
        dry_run=False,
        ledger=world.ledger,
        clock=world.clock,
    )

    assert isinstance(outcome.error, UnexpectedPublishError)
    assert outcome.status == "failed"
    assert "ValueError" in str(outcome.error)
    row = world.ledger.get(POST)
    assert (row.state, row.attempts, row.unknown_since) == (State.CLAIMED, 1, T0)
    assert world.server.sends == [T0]


# --------------------------------------------------------------------------------------------- defect 2


def test_a_429_on_the_mastodon_search_blocks_the_account_until_its_reset(world: Faults) -> None:
    world.server.faults.append("lost")  # sent at T0, the answer lost: unknown
    daemon = world.daemon()
    daemon.plan(T0)
    world.tick(daemon, T0)
    reset = T0 + minutes(90 + 120)
    world.server.search_faults.append(RateLimitedError("rate limited (HTTP 429)", reset_at=reset))

    world.tick(daemon, T0 + minutes(90))  # past the key's hour: searched, and the search is rate limited
    assert world.server.searches == [T0]
    assert daemon.limiter.blocked_until("masto", T0 + minutes(90)) == reset
    assert world.ledger.get(POST).next_attempt_at == reset

    for later in (120, 150, 180, 209):  # not one request before the reset, a search neither
        world.tick(daemon, T0 + minutes(later))
        assert daemon.next_wake(T0 + minutes(later)) == reset
    assert world.server.searches == [T0]
    assert world.server.sends == [T0]

    world.tick(daemon, reset)  # at the reset: searched (not there), then sent once
    world.tick(daemon, reset)
    assert world.server.searches == [T0, T0]
    assert world.server.copies() == 1
    assert world.ledger.get(POST).state == State.PUBLISHED


def test_a_429_on_a_bluesky_start_up_lookup_is_waited_out(world: Faults) -> None:
    daemon = world.daemon()
    daemon.plan(T0)
    assert world.ledger.claim(SKY_POST, T0, "otherhost:1:daemon-x")  # a crash left it claimed
    reset = T0 + minutes(20)
    world.sky.search_faults.append(RateLimitedError("rate limited (HTTP 429)", reset_at=reset))
    world.clock.now = T0 + minutes(1)

    run_once(daemon, T0 + minutes(1))

    assert world.lookups == [T0 + minutes(1)]
    assert daemon.limiter.blocked_until("sky", T0 + minutes(1)) == reset
    row = world.ledger.get(SKY_POST)
    assert (row.state, row.next_attempt_at) == (State.CLAIMED, reset)
    for later in (2, 5, 10, 19):
        world.tick(daemon, T0 + minutes(later))
    assert world.lookups == [T0 + minutes(1)]  # no getRecord before the reset

    world.tick(daemon, reset)
    world.tick(daemon, reset)
    assert world.lookups == [T0 + minutes(1), reset]
    assert world.ledger.get(SKY_POST).state == State.PUBLISHED


# --------------------------------------------------------------------------------------------- defect 4


@pytest.mark.parametrize("account", ["masto", "sky"])
def test_a_start_up_lookup_that_raises_never_stops_the_daemon(world: Faults, account: str) -> None:
    daemon = world.daemon()
    daemon.plan(T0)
    claimed, other = (POST, SKY_POST) if account == "masto" else (SKY_POST, POST)
    assert world.ledger.claim(claimed, T0, "otherhost:1:daemon-x")  # a crash left it claimed
    now = T0 + minutes(55)  # past the key's safe window: Mastodon is searched, Bluesky looked up
    faults = world.server.search_faults if account == "masto" else world.sky.search_faults
    faults.append(Disconnected("Server disconnected without sending a response"))
    world.clock.now = now

    report = run_once(daemon, now)  # does not raise

    assert [(r.post_id, r.outcome) for r in report.reconciled] == [(claimed, "unknown")]
    assert other in report.published  # the other account posts
    row = world.ledger.get(claimed)
    assert row.state == State.CLAIMED
    assert row.next_attempt_at > now  # looked at again later, with a backoff
    assert "Disconnected" in (row.last_error or "")

    world.tick(daemon, row.next_attempt_at)  # the retry: the lookup answers, the post goes out once
    world.tick(daemon, row.next_attempt_at)
    assert world.ledger.get(claimed).state == State.PUBLISHED
