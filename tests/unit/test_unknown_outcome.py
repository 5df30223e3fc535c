"""Exactly once when a Mastodon status request ends with its outcome unknown (a timeout after the request may
have reached the server): the daemon and ``amplifier send`` keep the post claimed, and only reconciliation
moves it on; a re-send under the same Idempotency-Key happens only within the key's hour counted from the
FIRST unknown attempt, after it the account is searched.

The fake server here models what matters: a status request with a key the server saw less than an hour
after it created that status returns it; after the hour, the same request creates a second status.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from amplifier.campaign.load import Campaign, load_campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.cli.publish import publish_context
from amplifier.daemon.events import EventLog
from amplifier.daemon.loop import Daemon
from amplifier.daemon.scheduler import run_once
from amplifier.daemon.settings import DaemonSettings
from amplifier.delivery.ledger import Ledger, State, open_ledger
from amplifier.delivery.reconcile import reconcile_row
from amplifier.delivery.send import send_posts
from amplifier.plan.planner import find_posts
from amplifier.plan.post import PlannedPost
from amplifier.publish import REGISTRY, PublishContext
from amplifier.publish.base import PartResult, PublishResult, RateLimitedError, TransientError
from amplifier.publish.mastodon import LookupIncomplete, StatusOutcomeUnknown

from .test_daemon import Clock, FakePublisher, FakeServer, at, once, write_campaign

KEY_LIFETIME = dt.timedelta(hours=1)  # post_status_service.rb: setex ... 3_600
SEARCH_MARGIN = dt.timedelta(minutes=10)
T0 = at("2027-10-20T09:00")
POST = "a:masto:2027-10-20T09:00"
RULES = once("a", "2027-10-20T09:00", accounts="[masto]", missed="{action: post, grace: P1D}")


@dataclass
class Status:
    post_id: str
    index: int
    id: str
    created_at: dt.datetime


@dataclass
class KeyedServer:
    """A Mastodon account as the server sees it: its statuses, the keys it remembers, the faults queued."""

    clock: Clock
    statuses: list[Status] = field(default_factory=list)
    # "lost": the request never arrived; "created": the status is created, the answer lost; or an error
    faults: list[str | BaseException] = field(default_factory=list)
    sends: list[dt.datetime] = field(default_factory=list)  # one per status request
    searches: list[dt.datetime] = field(default_factory=list)  # the `since` of each search
    search_faults: list[BaseException] = field(default_factory=list)

    def copies(self, post_id: str = POST) -> int:
        return sum(1 for status in self.statuses if status.post_id == post_id and status.index == 0)

    def post_status(self, post_id: str, index: int) -> tuple[Status, bool]:
        """The status for key (post_id, index): the one the key remembers, else a new one (existed?)."""
        now = self.clock()
        self.sends.append(now)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "lost":
            raise StatusOutcomeUnknown("timed out; the status may have been created all the same")
        if isinstance(fault, BaseException):
            raise fault
        for status in self.statuses:
            if (status.post_id, status.index) == (post_id, index) and now - status.created_at < KEY_LIFETIME:
                found: tuple[Status, bool] = (status, True)
                break
        else:
            status = Status(post_id, index, f"s{len(self.statuses) + 1}", now)
            self.statuses.append(status)
            found = (status, False)
        if fault == "created":
            raise StatusOutcomeUnknown("timed out; the status may have been created all the same")
        return found


class KeyedPublisher:
    platform = "mastodon"

    def __init__(self, account: str, server: KeyedServer) -> None:
        self.account = account
        self.server = server

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        done = dict(resume or {})
        for index in range(len(post.parts)):
            if index not in done:
                status, existed = self.server.post_status(post.id, index)
                done[index] = PartResult(
                    index=index, id=status.id, url=f"https://masto.example/{status.id}", existed=existed
                )
        parts = tuple(done[i] for i in range(len(post.parts)))
        return PublishResult(post.id, self.account, self.platform, parts)

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        return self.find_published(post, since=post.at)

    def find_published(
        self,
        post: PlannedPost,
        *,
        since: dt.datetime,
        known: Mapping[int, PartResult] | None = None,
        taken: Collection[str] = frozenset(),
    ) -> dict[int, PartResult]:
        self.server.searches.append(since)
        if self.server.search_faults:
            raise self.server.search_faults.pop(0)
        known = known or {}
        return {
            s.index: PartResult(index=s.index, id=s.id, url=f"https://masto.example/{s.id}", existed=True)
            for s in self.server.statuses
            if s.post_id == post.id
            and s.index not in known
            and s.created_at >= since - SEARCH_MARGIN
            and s.id not in taken
        }

    def check(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


@dataclass
class World:
    folder: Path
    campaign: Campaign
    ledger: Ledger
    clock: Clock
    server: KeyedServer
    sky: FakeServer
    daemons: list[Daemon] = field(default_factory=list)

    def daemon(self, **settings: Any) -> Daemon:
        def factory(account: str, config: MastodonAccount | BlueskyAccount) -> Any:
            if config.platform == "mastodon":
                return KeyedPublisher(account, self.server)
            return FakePublisher(account, config.platform, self.sky)

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

    def tick(self, daemon: Daemon, when: dt.datetime) -> Any:
        self.clock.now = when
        return daemon.tick(when)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    rules = RULES + once("b", "2027-10-20T09:00", accounts="[sky]", missed="{action: post, grace: P1D}")
    campaign = load_campaign(write_campaign(tmp_path, rules))
    clock = Clock(T0)
    ledger = open_ledger(tmp_path / "state", T0)
    made = World(tmp_path, campaign, ledger, clock, KeyedServer(clock), FakeServer())
    yield made
    for daemon in made.daemons:
        daemon.close()
    ledger.close()


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


# --------------------------------------------------------------------------------------------- reconcile_row


@pytest.mark.parametrize(
    ("first_unknown", "claim", "now", "due_now", "on_server", "expected", "outcome", "searched"),
    [
        # the reviewers' sequence: unknown at T0, re-claimed (and unknown again) at T0+45, looked at T0+90:
        # the key died at T0+60, so the account is searched, whatever the latest claim says
        (0, 45, 90, True, True, State.PUBLISHED, "published", True),
        (0, 45, 90, True, False, State.PLANNED, "released", True),
        # within the key's safe window from the FIRST unknown moment, due now: re-sent under the key
        (0, 45, 49, True, True, State.PLANNED, "released", False),
        # ... but not if it would only be sent later: the key may be gone by then
        (0, 45, 49, False, True, State.PUBLISHED, "published", True),
        # a crash left it claimed (no unknown attempt recorded): the claim is the first moment
        (None, 0, 30, True, False, State.PLANNED, "released", False),
        (None, 0, 55, True, False, State.PLANNED, "released", True),
    ],
)
def test_reconcile_counts_the_key_window_from_the_first_unknown_moment(
    world: World,
    first_unknown: int | None,
    claim: int,
    now: int,
    due_now: bool,
    on_server: bool,
    expected: State,
    outcome: str,
    searched: bool,
) -> None:
    ledger, server = world.ledger, world.server
    daemon = world.daemon()
    daemon.plan(T0)
    post = daemon.posts[POST]
    if first_unknown is not None:
        assert ledger.claim(POST, T0 + minutes(first_unknown), "host:1:first")
        ledger.mark_unknown(POST, "timed out", T0 + minutes(first_unknown), check_at=T0, token="host:1:first")
        ledger.release(POST, T0 + minutes(claim), token="host:1:first")
    assert ledger.claim(POST, T0 + minutes(claim), "host:1:second")
    if first_unknown is not None:
        ledger.mark_unknown(POST, "timed out again", T0 + minutes(claim), check_at=T0, token="host:1:second")
    if on_server:
        server.statuses.append(Status(POST, 0, "s1", T0 + minutes(first_unknown or claim)))

    result = reconcile_row(
        ledger, ledger.get(POST), post, KeyedPublisher("masto", server), T0 + minutes(now), resend_now=due_now
    )

    row = ledger.get(POST)
    assert (result.outcome, row.state) == (outcome, expected)
    first = T0 + minutes(first_unknown if first_unknown is not None else claim)
    assert server.searches == ([first] if searched else [])  # searched from the FIRST unknown moment
    assert server.sends == []  # reconciliation itself never sends
    if outcome == "released" and not searched:
        assert row.unknown_since == first  # still unknown: the sender checks the window again
    if outcome == "released" and searched:
        assert row.unknown_since is None  # proven absent


@pytest.mark.parametrize(
    ("fault", "state", "outcome", "attempts"),
    [
        # the server is down: a failed lookup is no attempt; looked at again after a backoff
        (TransientError("server error (HTTP 502)", status=502), State.CLAIMED, "unknown", 1),
        # the search cannot reach back: failed (counted), with a reason, rather than a duplicate
        (LookupIncomplete("more than 200 statuses since 09:00"), State.FAILED, "failed", 2),
    ],
)
def test_a_search_that_cannot_answer_never_sends(
    world: World, fault: BaseException, state: State, outcome: str, attempts: int
) -> None:
    daemon = world.daemon()
    daemon.plan(T0)
    assert world.ledger.claim(POST, T0, "host:1:x")
    world.ledger.mark_unknown(POST, "timed out", T0, check_at=T0, token="host:1:x")
    world.server.search_faults.append(fault)
    now = T0 + minutes(70)

    result = reconcile_row(
        world.ledger, world.ledger.get(POST), daemon.posts[POST], KeyedPublisher("masto", world.server), now
    )

    row = world.ledger.get(POST)
    assert (result.outcome, row.state, row.attempts) == (outcome, state, attempts)
    assert world.server.sends == []
    if state == State.CLAIMED:
        assert row.unknown_since == T0
        assert row.next_attempt_at == now + minutes(
            30
        )  # waited as long as it has been unknown, at most 30 min
    else:
        assert "outcome unknown" in (row.last_error or "")
        assert "check the account" in (row.last_error or "")


def test_a_search_answered_429_is_not_asked_again_before_the_servers_reset(world: World) -> None:
    """Defect 2: the status search after a 429 with a reset 45 minutes ahead waits for the reset, not for
    the usual recheck (30 minutes here)."""
    daemon = world.daemon()
    daemon.plan(T0)
    assert world.ledger.claim(POST, T0, "host:1:x")
    world.ledger.mark_unknown(POST, "timed out", T0, check_at=T0, token="host:1:x")
    now = T0 + minutes(70)
    world.server.search_faults.append(RateLimitedError("rate limited", reset_at=now + minutes(45)))

    result = reconcile_row(
        world.ledger, world.ledger.get(POST), daemon.posts[POST], KeyedPublisher("masto", world.server), now
    )

    assert result.outcome == "unknown"
    assert result.blocked_until == now + minutes(
        45
    )  # for the daemon to block the account in its rate limiter
    assert world.ledger.get(POST).next_attempt_at == now + minutes(45)
    assert world.server.sends == []


def test_a_row_whose_next_check_is_ahead_is_not_searched_yet(world: World) -> None:
    daemon = world.daemon()
    daemon.plan(T0)
    assert world.ledger.claim(POST, T0, "host:1:x")
    world.ledger.mark_unknown(POST, "timed out", T0, check_at=T0 + minutes(80), token="host:1:x")

    result = reconcile_row(
        world.ledger,
        world.ledger.get(POST),
        daemon.posts[POST],
        KeyedPublisher("masto", world.server),
        T0 + minutes(70),
    )

    assert result.outcome == "unknown"
    assert world.server.searches == []
    assert world.ledger.get(POST).state == State.CLAIMED


# --------------------------------------------------------------------------------------------- the daemon


def test_daemon_timeout_then_re_timeout_then_search_at_t0_plus_90(world: World) -> None:
    """T0: the status is created, the answer lost. T0+45: re-sent under the key (the server returns it), the
    answer lost again. T0+90: the key died at T0+60, so the daemon searches, finds it, sends nothing."""
    daemon = world.daemon(backoff_base=minutes(45), backoff_max=minutes(45))
    daemon.start(T0)
    world.server.faults += ["created", "created"]

    report = world.tick(daemon, T0)
    assert report.unknown == [POST]
    row = world.ledger.get(POST)
    assert (row.state, row.unknown_since, row.next_attempt_at) == (State.CLAIMED, T0, T0 + minutes(45))
    assert daemon.next_wake(T0) == T0 + minutes(45)
    assert world.tick(daemon, T0 + minutes(44)).reconciled == []  # not before its check

    report = world.tick(daemon, T0 + minutes(45))
    assert [r.outcome for r in report.reconciled] == ["released"]
    assert report.unknown == [POST]
    row = world.ledger.get(POST)
    assert (row.state, row.unknown_since, row.claimed_at) == (State.CLAIMED, T0, T0 + minutes(45))

    report = world.tick(daemon, T0 + minutes(90))
    assert [(r.outcome, r.url) for r in report.reconciled] == [("published", "https://masto.example/s1")]
    assert world.server.searches == [T0]
    assert world.server.sends == [T0, T0 + minutes(45)]  # nothing sent at T0+90
    assert world.server.copies() == 1
    row = world.ledger.get(POST)
    assert (row.state, row.unknown_since) == (State.PUBLISHED, None)


def test_daemon_unknown_then_a_long_429_searches_instead_of_re_sending(world: World) -> None:
    daemon = world.daemon(backoff_base=minutes(1), backoff_max=minutes(1))
    daemon.start(T0)
    world.server.faults += ["created", RateLimitedError("rate limited", reset_at=T0 + minutes(120))]

    world.tick(daemon, T0)
    report = world.tick(daemon, T0 + minutes(1))  # within the window: re-sent under the key -> 429
    assert [r.outcome for r in report.reconciled] == ["released"]
    assert report.unknown == [POST]
    row = world.ledger.get(POST)
    assert (row.state, row.unknown_since, row.next_attempt_at) == (State.CLAIMED, T0, T0 + minutes(120))
    assert daemon.next_wake(T0 + minutes(1)) == T0 + minutes(120)

    report = world.tick(daemon, T0 + minutes(120))
    assert [r.outcome for r in report.reconciled] == ["published"]
    assert world.server.sends == [T0, T0 + minutes(1)]
    assert world.server.copies() == 1


def test_daemon_unknown_then_a_pause_past_the_hour_searches_before_sending(world: World) -> None:
    """Released to be re-sent under the key, then everything pauses for two hours: at the resume the key
    may be gone, so the still-unknown planned post is searched first, not sent."""
    daemon = world.daemon(backoff_base=minutes(1), backoff_max=minutes(1))
    daemon.start(T0)
    world.server.faults.append("created")
    world.tick(daemon, T0)
    world.ledger.set_paused(True, "breaking news", T0 + minutes(1))

    assert daemon.next_wake(T0 + minutes(1)) == T0 + minutes(1)  # the check goes on while paused
    report = world.tick(daemon, T0 + minutes(1))
    assert [r.outcome for r in report.reconciled] == ["released"]
    assert report.paused == "breaking news"
    assert daemon.next_wake(T0 + minutes(1)) is None  # nothing to check; nothing is sent while paused
    assert (world.ledger.get(POST).state, world.ledger.get(POST).unknown_since) == (State.PLANNED, T0)

    world.ledger.set_paused(False, None, T0 + minutes(120))
    report = world.tick(daemon, T0 + minutes(120))
    assert [r.outcome for r in report.reconciled] == ["published"]
    assert world.server.sends == [T0]
    assert world.server.searches == [T0]
    assert world.server.copies() == 1


@pytest.mark.parametrize("created", [True, False])
def test_daemon_unknown_then_a_restart_past_the_hour(world: World, created: bool) -> None:
    first = world.daemon()
    first.start(T0)
    world.server.faults.append("created" if created else "lost")
    assert world.tick(first, T0).unknown == [POST]
    first.close()

    later = T0 + minutes(120)
    world.clock.now = later
    report = run_once(world.daemon(), later)

    assert [r.outcome for r in report.reconciled] == ["published" if created else "released"]
    assert world.server.searches == [T0]
    assert world.server.copies() == 1
    assert world.server.sends == ([T0] if created else [T0, later])  # absent: sent once more, only then
    assert world.ledger.get(POST).state == State.PUBLISHED


def test_daemon_an_unknown_post_past_its_window_is_searched_not_expired(world: World) -> None:
    daemon = world.daemon(backoff_base=minutes(1), backoff_max=minutes(1))
    daemon.start(T0)
    world.server.faults.append("created")
    world.tick(daemon, T0)
    world.ledger.set_paused(True, "breaking news", T0)
    world.tick(daemon, T0 + minutes(1))  # released (unknown) while paused
    world.ledger.set_paused(False, None, T0)

    world.tick(daemon, T0 + dt.timedelta(days=2))  # long past the grace of a day

    assert world.ledger.get(POST).state == State.PUBLISHED  # it was out all along
    assert world.server.copies() == 1


def test_daemon_an_unknown_post_holds_back_its_account(world: World) -> None:
    rules = RULES + once("c", "2027-10-20T09:05", accounts="[masto]", missed="{action: post, grace: P1D}")
    world.campaign = load_campaign(write_campaign(world.folder, rules))
    daemon = world.daemon(backoff_base=minutes(30), backoff_max=minutes(30))
    daemon.start(T0)
    world.server.faults.append("lost")
    world.tick(daemon, T0)

    report = world.tick(daemon, T0 + minutes(10))  # the later post is due, but waits
    assert report.published == []
    assert daemon.next_wake(T0 + minutes(10)) == T0 + minutes(30)
    report = world.tick(daemon, T0 + minutes(30))
    assert report.published == [POST, "c:masto:2027-10-20T09:05"]
    assert world.server.copies() == 1


def test_bluesky_timeouts_still_retry_under_the_idempotent_put_record(world: World) -> None:
    daemon = world.daemon()
    daemon.start(T0)
    world.sky.fail("sky", TransientError("timed out"))
    world.server.faults.clear()

    report = world.tick(daemon, T0)

    assert "b:sky:2027-10-20T09:00" in report.retried
    row = world.ledger.get("b:sky:2027-10-20T09:00")
    assert (row.state, row.unknown_since) == (State.PLANNED, None)


# --------------------------------------------------------------------------------------------- amplifier send


def test_send_timeout_then_re_timeout_then_search_at_t0_plus_90(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def factory(account: str, settings: Any, ctx: PublishContext) -> KeyedPublisher:
        return KeyedPublisher(account, world.server)

    monkeypatch.setitem(REGISTRY, "mastodon", factory)
    posts = find_posts(world.campaign, [POST])
    ctx = publish_context(world.campaign, world.folder / "state")
    world.server.faults += ["created", "created"]

    def send_at(when: dt.datetime) -> Any:
        world.clock.now = when
        (outcome,) = send_posts(
            posts, world.campaign, ctx, dry_run=False, ledger=world.ledger, clock=world.clock
        )
        return outcome

    assert isinstance(send_at(T0).error, StatusOutcomeUnknown)
    assert isinstance(send_at(T0 + minutes(45)).error, StatusOutcomeUnknown)  # re-sent under the key
    row = world.ledger.get(POST)
    assert (row.state, row.unknown_since, row.attempts) == (State.CLAIMED, T0, 2)

    outcome = send_at(T0 + minutes(90))

    assert outcome.error is None
    assert outcome.result is not None
    assert outcome.result.url == "https://masto.example/s1"
    assert world.server.sends == [T0, T0 + minutes(45)]
    assert world.server.searches == [T0]
    assert world.server.copies() == 1


def test_send_of_a_released_unknown_post_past_the_hour_searches_first(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon released it to re-send under the key, then stopped; `send` two hours later must search."""
    monkeypatch.setitem(
        REGISTRY, "mastodon", lambda account, settings, ctx: KeyedPublisher(account, world.server)
    )
    daemon = world.daemon()
    daemon.plan(T0)
    assert world.ledger.claim(POST, T0, "host:1:x")
    world.server.statuses.append(Status(POST, 0, "s1", T0))
    world.ledger.mark_unknown(POST, "timed out", T0, check_at=T0, token="host:1:x")
    world.ledger.release(POST, T0 + minutes(1), token="host:1:x")
    world.clock.now = T0 + minutes(120)
    ctx = publish_context(world.campaign, world.folder / "state")

    (outcome,) = send_posts(
        find_posts(world.campaign, [POST]),
        world.campaign,
        ctx,
        dry_run=False,
        ledger=world.ledger,
        clock=world.clock,
    )

    assert outcome.error is None
    assert world.server.sends == []
    assert world.server.copies() == 1
    assert world.ledger.get(POST).state == State.PUBLISHED
