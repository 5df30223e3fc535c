"""The daemon's logic with in-process fake publishers: missed windows, retries and backoff, rate limits,
pauses, reload, per-account order and concurrency, reconciliation, shutdown."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplifier.campaign.load import load_campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.daemon.events import EventLog
from amplifier.daemon.loop import Daemon
from amplifier.daemon.scheduler import run_once, serve
from amplifier.daemon.settings import DaemonSettings
from amplifier.delivery.ledger import Ledger, State, open_ledger
from amplifier.delivery.reconcile import MASTODON_IDEMPOTENCY_SAFE
from amplifier.plan.post import PlannedPost
from amplifier.publish.base import (
    AuthError,
    PartResult,
    PermanentError,
    PublishError,
    PublishResult,
    RateLimitedError,
    TransientError,
)
from amplifier.publish.mastodon import LookupIncomplete

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC

SCHEDULE = """\
campaign:
  name: Daemon unit tests
  timezone: Europe/Berlin
events:
  day:
    name: {en: The Day}
    date: 2027-11-01
accounts:
  masto:
    platform: mastodon
    instance: https://mastodon.example
    token_env: T_MASTO
  sky:
    platform: bluesky
    handle: campaign.bsky.social
    password_env: T_SKY
rules:
RULES
"""

MESSAGES = """\
sets:
  hello:
    variants:
      - text:
          en: "Hello from the campaign, {{ account.id }}!"
"""

COUNTDOWN = """\
  countdown:
    kind: countdown
    event: day
    days_before: [3, 2, 1]
    at: "10:00"
    messages: hello
"""


def once(name: str, at: str, *, accounts: str = "all", missed: str | None = None) -> str:
    text = f"  {name}:\n    kind: once\n    at: {at}\n    messages: hello\n    accounts: {accounts}\n"
    if missed:
        text += f"    missed: {missed}\n"
    return text


def write_campaign(folder: Path, rules: str) -> Path:
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    (folder / "schedule.yaml").write_text(SCHEDULE.replace("RULES\n", rules))
    (folder / "messages" / "hello.yaml").write_text(MESSAGES)
    return folder / "schedule.yaml"


def at(text: str) -> dt.datetime:
    """A Berlin wall time as an aware instant."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=BERLIN)


# --------------------------------------------------------------------------------------------- fakes


@dataclass
class FakeServer:
    """What the fake platform holds: every part published, and the faults to raise next, per account."""

    published: dict[tuple[str, int], PartResult] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (account, post id) per publish call
    faults: dict[str, list[BaseException]] = field(default_factory=dict)
    searches: list[tuple[str, dt.datetime]] = field(default_factory=list)  # (post id, since) per search
    search_faults: list[BaseException] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, account: str, *errors: BaseException) -> None:
        self.faults.setdefault(account, []).extend(errors)

    def count(self, post_id: str) -> int:
        return sum(1 for key in self.published if key[0] == post_id)


class FakePublisher:
    def __init__(self, account: str, platform: str, server: FakeServer) -> None:
        self.account = account
        self.platform = platform
        self.server = server
        self.closed = False

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        with self.server.lock:
            self.server.calls.append((self.account, post.id))
            faults = self.server.faults.get(self.account)
            fault = faults.pop(0) if faults else None
        if self.server.delay:
            time.sleep(self.server.delay)
        if fault is not None:
            raise fault
        done = dict(resume or {})
        for index in range(len(post.parts)):
            if index not in done:
                part = PartResult(index=index, id=f"{post.id}#{index}", url=f"https://example.test/{index}")
                with self.server.lock:
                    assert (post.id, index) not in self.server.published, "published twice"
                    self.server.published[(post.id, index)] = part
                done[index] = part
        return PublishResult(
            post.id, self.account, self.platform, tuple(done[i] for i in range(len(post.parts)))
        )

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        if self.platform == "mastodon":
            return {}
        return self._found(post, {})

    def find_published(
        self,
        post: PlannedPost,
        *,
        since: dt.datetime,
        known: Mapping[int, PartResult] | None = None,
        taken: Collection[str] = frozenset(),
    ) -> dict[int, PartResult]:
        """Mastodon: the search among the account's statuses (everything on the fake server counts)."""
        assert self.platform == "mastodon", "only Mastodon is searched"
        with self.server.lock:
            self.server.searches.append((post.id, since))
            if self.server.search_faults:
                raise self.server.search_faults.pop(0)
        return self._found(post, known or {})

    def _found(self, post: PlannedPost, known: Mapping[int, PartResult]) -> dict[int, PartResult]:
        with self.server.lock:
            return {
                index: PartResult(index=index, id=part.id, url=part.url, existed=True)
                for (post_id, index), part in self.server.published.items()
                if post_id == post.id and index not in known
            }

    def check(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Harness:
    daemon: Daemon
    ledger: Ledger
    server: FakeServer
    clock: Clock
    log: EventLog
    folder: Path

    def run_at(self, when: dt.datetime) -> Any:
        self.clock.now = when
        return self.daemon.tick(when)

    def state(self, post_id: str) -> State:
        return self.ledger.get(post_id).state


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def factory(rules: str, now: dt.datetime, **overrides: Any) -> Harness:
        folder = tmp_path / f"campaign{len(made)}"
        campaign = load_campaign(write_campaign(folder, rules))
        ledger = open_ledger(folder / "state", now)
        server = FakeServer()
        clock = Clock(now)
        log = EventLog(None, clock=clock, keep=True)

        def publisher(account: str, settings: MastodonAccount | BlueskyAccount) -> FakePublisher:
            return FakePublisher(account, settings.platform, server)

        daemon = Daemon(
            campaign,
            ledger,
            publisher,
            clock=clock,
            log=log,
            settings=DaemonSettings(**overrides),
            state_dir=folder / "state",
            rng=random.Random(7),
            environ={},
        )
        daemon.start(now)
        harness = Harness(daemon, ledger, server, clock, log, folder)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        harness.daemon.close()
        harness.ledger.close()


# --------------------------------------------------------------------------------------------- missed windows


@pytest.mark.parametrize(
    ("rules", "post_id", "now", "expected"),
    [
        # countdown, no `missed`: late on its own day (in the event's calendar) is fine, the next day is not
        (COUNTDOWN, "countdown:masto:2027-10-29T10:00", "2027-10-29T10:00", State.PUBLISHED),
        (COUNTDOWN, "countdown:masto:2027-10-29T10:00", "2027-10-29T23:50", State.PUBLISHED),
        (COUNTDOWN, "countdown:masto:2027-10-29T10:00", "2027-10-30T00:10", State.EXPIRED),
        # 2027-10-31 is the 25-hour day when Berlin leaves summer time: the day ends at 23:00 UTC
        (COUNTDOWN, "countdown:masto:2027-10-31T10:00", "2027-10-31T23:55", State.PUBLISHED),
        (COUNTDOWN, "countdown:masto:2027-10-31T10:00", "2027-11-01T00:05", State.EXPIRED),
        # once / recurring, no `missed`: one hour of grace
        (once("o", "2027-10-20T09:00"), "o:masto:2027-10-20T09:00", "2027-10-20T09:59", State.PUBLISHED),
        (once("o", "2027-10-20T09:00"), "o:masto:2027-10-20T09:00", "2027-10-20T10:01", State.EXPIRED),
        # missed: expire -> on time only (10 minutes)
        (
            once("o", "2027-10-20T09:00", missed="{action: expire}"),
            "o:masto:2027-10-20T09:00",
            "2027-10-20T09:09",
            State.PUBLISHED,
        ),
        (
            once("o", "2027-10-20T09:00", missed="{action: expire}"),
            "o:masto:2027-10-20T09:00",
            "2027-10-20T09:20",
            State.EXPIRED,
        ),
        # missed: post within a grace of 6 hours
        (
            once("o", "2027-10-20T09:00", missed="{action: post, grace: PT6H}"),
            "o:masto:2027-10-20T09:00",
            "2027-10-20T14:30",
            State.PUBLISHED,
        ),
        (
            once("o", "2027-10-20T09:00", missed="{action: post, grace: PT6H}"),
            "o:masto:2027-10-20T09:00",
            "2027-10-20T15:30",
            State.EXPIRED,
        ),
    ],
)
def test_missed_window(
    make: Callable[..., Harness], rules: str, post_id: str, now: str, expected: State
) -> None:
    due = at(post_id.split(":", 2)[2])
    harness = make(rules, due - dt.timedelta(hours=1))  # planned, then amplifier was down until `now`
    report = harness.run_at(at(now))
    assert harness.state(post_id) == expected
    if expected == State.EXPIRED:
        assert post_id in report.expired
        assert "missed its window" in (harness.ledger.get(post_id).last_error or "")
        assert harness.server.count(post_id) == 0
    else:
        assert harness.server.count(post_id) == 1


def test_a_missed_post_planned_before_the_downtime_expires_with_its_reason(
    make: Callable[..., Harness],
) -> None:
    harness = make(COUNTDOWN, at("2027-10-28T12:00"))
    # The daemon planned the window, then was down for two days.
    harness.run_at(at("2027-10-30T12:00"))
    row = harness.ledger.get("countdown:masto:2027-10-29T10:00")
    assert row.state == State.EXPIRED
    assert "countdown post is only posted late on its own day" in (row.last_error or "")
    # 10:00 in Berlin (summer time) is 08:00 UTC; its day ends at midnight in Berlin, 22:00 UTC
    assert "due 2027-10-29 08:00 UTC, not out by 2027-10-29 22:00 UTC" in (row.last_error or "")
    assert harness.state("countdown:masto:2027-10-30T10:00") == State.PUBLISHED


def test_the_machine_timezone_never_matters(
    make: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Pacific/Auckland")
    time.tzset()
    try:
        harness = make(COUNTDOWN, at("2027-10-29T09:59"))
        harness.run_at(at("2027-10-29T09:59"))
        assert harness.server.calls == []
        harness.run_at(at("2027-10-29T10:00"))
        assert sorted(harness.server.calls) == [
            ("masto", "countdown:masto:2027-10-29T10:00"),
            ("sky", "countdown:sky:2027-10-29T10:00"),
        ]
        assert harness.daemon.next_wake(at("2027-10-29T10:00")) == at("2027-10-30T10:00")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


# --------------------------------------------------------------------------------------------- retries


def test_transient_errors_back_off_then_publish_once(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    harness = make(once("o", "2027-10-20T09:00", accounts="[masto]"), start)
    harness.server.fail("masto", TransientError("HTTP 502"), TransientError("timed out"))
    post_id = "o:masto:2027-10-20T09:00"

    harness.run_at(start)
    first = harness.ledger.get(post_id)
    assert first.state == State.PLANNED
    assert first.attempts == 1
    assert dt.timedelta(seconds=24) <= first.next_attempt_at - start <= dt.timedelta(seconds=36)
    harness.run_at(start + dt.timedelta(seconds=10))  # too early: nothing is sent
    assert len(harness.server.calls) == 1

    harness.run_at(first.next_attempt_at)
    second = harness.ledger.get(post_id)
    assert second.attempts == 2
    assert (
        dt.timedelta(seconds=48) <= second.next_attempt_at - first.next_attempt_at <= dt.timedelta(seconds=72)
    )

    harness.run_at(second.next_attempt_at)
    assert harness.state(post_id) == State.PUBLISHED
    assert harness.server.count(post_id) == 1
    assert [e["attempt"] for e in harness.log.of("retry")] == [1, 2]


def test_transient_errors_fail_visibly_after_max_attempts(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    harness = make(once("o", "2027-10-20T09:00", accounts="[masto]"), start, max_attempts=3)
    harness.server.fail("masto", *(TransientError(f"HTTP 503 #{n}") for n in range(5)))
    post_id = "o:masto:2027-10-20T09:00"
    for _ in range(3):
        harness.run_at(max(harness.clock.now, harness.ledger.get(post_id).next_attempt_at))
    row = harness.ledger.get(post_id)
    assert row.state == State.FAILED
    assert row.attempts == 3
    assert "HTTP 503 #2" in (row.last_error or "")
    assert "gave up after 3 attempts" in (row.last_error or "")
    assert harness.daemon.failures == 1
    assert len(harness.server.calls) == 3


def test_a_retry_past_the_window_expires(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    harness = make(once("o", "2027-10-20T09:00", accounts="[masto]", missed="{action: expire}"), start)
    reset = start + dt.timedelta(hours=2)
    harness.server.fail("masto", RateLimitedError("429", reset_at=reset))
    harness.run_at(start)
    harness.run_at(reset)
    row = harness.ledger.get("o:masto:2027-10-20T09:00")
    assert row.state == State.EXPIRED
    assert len(harness.server.calls) == 1


@settings(max_examples=200, deadline=None)
@given(attempt=st.integers(min_value=1, max_value=40), seed=st.integers(min_value=0, max_value=2**32))
def test_backoff_is_exponential_capped_and_jittered(attempt: int, seed: int) -> None:
    config = DaemonSettings()
    wait = config.backoff(attempt, random.Random(seed))
    raw = min(config.backoff_base * 2 ** (attempt - 1), config.backoff_max)
    assert raw * (1 - config.jitter) <= wait <= raw * (1 + config.jitter)


# ----------------------------------------------------------------------------------- rate limits, auth


def test_429_waits_for_the_reset_and_holds_the_account_back(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    rules = once("a", "2027-10-20T09:00") + once("b", "2027-10-20T09:01")
    harness = make(rules, start)
    reset = start + dt.timedelta(minutes=20)
    harness.server.fail("masto", RateLimitedError("rate limited", reset_at=reset))

    harness.run_at(start + dt.timedelta(minutes=2))
    assert harness.ledger.get("a:masto:2027-10-20T09:00").next_attempt_at == reset
    # the other account goes on
    assert harness.state("a:sky:2027-10-20T09:00") == State.PUBLISHED
    assert harness.state("b:sky:2027-10-20T09:01") == State.PUBLISHED
    calls_before = len(harness.server.calls)
    harness.run_at(reset - dt.timedelta(seconds=1))
    assert len(harness.server.calls) == calls_before  # nothing before the reset, not even the later post
    assert harness.daemon.next_wake(reset - dt.timedelta(seconds=1)) == reset

    harness.run_at(reset)
    assert harness.state("a:masto:2027-10-20T09:00") == State.PUBLISHED
    assert harness.state("b:masto:2027-10-20T09:01") == State.PUBLISHED
    masto_calls = [post for account, post in harness.server.calls if account == "masto"]
    assert masto_calls == ["a:masto:2027-10-20T09:00", "a:masto:2027-10-20T09:00", "b:masto:2027-10-20T09:01"]


def test_the_client_side_limit_defers_without_claiming(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    harness = make(once("a", "2027-10-20T09:00", accounts="[masto]"), start)
    for n in range(300):
        harness.daemon.limiter.record("masto", "mastodon", 1, start - dt.timedelta(hours=2, minutes=n % 60))
    report = harness.run_at(start)
    assert report.deferred == ["a:masto:2027-10-20T09:00"]
    row = harness.ledger.get("a:masto:2027-10-20T09:00")
    assert row.state == State.PLANNED
    assert row.attempts == 0
    wake = harness.daemon.next_wake(start)
    assert wake == start - dt.timedelta(hours=2, minutes=59) + dt.timedelta(hours=3)
    harness.run_at(wake)
    assert harness.state("a:masto:2027-10-20T09:00") == State.PUBLISHED


def test_rejected_credentials_pause_the_account_and_others_go_on(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    harness = make(once("a", "2027-10-20T09:00") + once("b", "2027-10-20T09:01"), start)
    harness.server.fail("sky", AuthError("the server rejected the credentials (HTTP 401)"))
    harness.run_at(start + dt.timedelta(minutes=5))
    assert harness.ledger.paused_accounts() == {"sky": "the server rejected the credentials (HTTP 401)"}
    assert harness.state("a:sky:2027-10-20T09:00") == State.PLANNED  # released, not lost
    assert harness.state("a:masto:2027-10-20T09:00") == State.PUBLISHED
    assert harness.state("b:masto:2027-10-20T09:01") == State.PUBLISHED
    assert harness.log.of("paused")[0]["account"] == "sky"
    harness.ledger.resume_account("sky")
    harness.run_at(start + dt.timedelta(minutes=10))
    assert harness.state("a:sky:2027-10-20T09:00") == State.PUBLISHED
    assert harness.state("b:sky:2027-10-20T09:01") == State.PUBLISHED


def test_a_permanent_error_fails_at_once(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    harness = make(once("a", "2027-10-20T09:00", accounts="[masto]"), start)
    harness.server.fail("masto", PermanentError("the server refused the post (HTTP 422): too long"))
    report = harness.run_at(start)
    assert report.failed == ["a:masto:2027-10-20T09:00"]
    row = harness.ledger.get("a:masto:2027-10-20T09:00")
    assert row.state == State.FAILED
    assert "HTTP 422" in (row.last_error or "")


def test_parts_published_before_an_error_are_kept_and_resumed(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    harness = make(once("a", "2027-10-20T09:00", accounts="[masto]"), start)
    post_id = "a:masto:2027-10-20T09:00"
    part0 = PartResult(index=0, id="x0", url="https://example.test/x0")
    error: PublishError = TransientError("HTTP 502")
    error.done = {0: part0}
    harness.server.fail("masto", error)
    harness.run_at(start)
    row = harness.ledger.get(post_id)
    assert row.parts == {0: part0.to_json()}
    harness.run_at(row.next_attempt_at)
    row = harness.ledger.get(post_id)
    assert row.state == State.PUBLISHED
    assert row.result is not None
    assert row.result[0]["id"] == "x0"
    assert harness.server.count(post_id) == 0  # part 0 was not sent again


# ---------------------------------------------------------------------------------- order, concurrency


def test_each_account_in_order_accounts_concurrently(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    rules = "".join(once(f"r{n}", f"2027-10-20T09:0{n}") for n in range(4))
    harness = make(rules, start)
    harness.server.delay = 0.15
    began = time.monotonic()
    harness.run_at(start + dt.timedelta(minutes=5))
    elapsed = time.monotonic() - began
    for account in ("masto", "sky"):
        calls = [post for acc, post in harness.server.calls if acc == account]
        assert calls == [f"r{n}:{account}:2027-10-20T09:0{n}" for n in range(4)]
    assert elapsed < 4 * 0.15 * 2 * 0.9  # the two accounts overlapped


def test_a_post_waiting_for_a_retry_holds_back_the_accounts_later_posts(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    harness = make(
        once("a", "2027-10-20T09:00", accounts="[masto]") + once("b", "2027-10-20T09:01", accounts="[masto]"),
        start,
        backoff_base=dt.timedelta(minutes=5),
    )
    harness.server.fail("masto", TransientError("HTTP 500"))
    harness.run_at(start)
    retry_at = harness.ledger.get("a:masto:2027-10-20T09:00").next_attempt_at
    harness.run_at(start + dt.timedelta(minutes=1))
    assert harness.state("b:masto:2027-10-20T09:01") == State.PLANNED
    harness.run_at(max(retry_at, start + dt.timedelta(minutes=1)))
    assert [post for _, post in harness.server.calls] == [
        "a:masto:2027-10-20T09:00",
        "a:masto:2027-10-20T09:00",
        "b:masto:2027-10-20T09:01",
    ]


# --------------------------------------------------------------------------------------------- pauses


@pytest.mark.parametrize("switch", ["ledger", "file"])
def test_the_pause_switch_stops_all_posting(make: Callable[..., Harness], switch: str) -> None:
    start = at("2027-10-20T09:00")
    harness = make(once("a", "2027-10-20T09:00"), start)
    pause_file = harness.folder / "state" / "PAUSE"
    if switch == "ledger":
        harness.ledger.set_paused(True, "breaking news", start)
    else:
        pause_file.write_text("")
    report = harness.run_at(start)
    assert report.paused
    assert harness.server.calls == []
    assert harness.daemon.next_wake(start) is None
    assert harness.daemon.watch(start)  # the pause is noticed: re-arm
    assert harness.log.of("paused")
    if switch == "ledger":
        harness.ledger.set_paused(False, None, start)
    else:
        pause_file.unlink()
    assert harness.daemon.watch(start)
    assert harness.log.of("resumed")
    harness.run_at(start + dt.timedelta(minutes=1))
    assert len(harness.server.published) == 2


@pytest.mark.parametrize("notify", [True, False], ids=["notified", "polled"])
def test_serve_rearms_only_when_a_watch_sees_a_change(
    make: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch, notify: bool
) -> None:
    """No busy work while idle: a look at the files and switches re-arms the batch only on a reload or a pause
    change. Notified (inotify), there is no look at all until something changes; polled (no notifications),
    the frequent look changes nothing."""
    start = at("2027-10-20T08:00")
    harness = make(once("a", "2027-10-20T09:00"), start, watch_interval=0.02, notify_files=notify)
    daemon = harness.daemon
    counts = {"watch": 0, "next_wake": 0}
    real_watch, real_next_wake = daemon.watch, daemon.next_wake

    def watch(now: dt.datetime) -> bool:
        counts["watch"] += 1
        return real_watch(now)

    def next_wake(now: dt.datetime) -> dt.datetime | None:
        counts["next_wake"] += 1
        return real_next_wake(now)

    monkeypatch.setattr(daemon, "watch", watch)
    monkeypatch.setattr(daemon, "next_wake", next_wake)
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(target=serve, args=(daemon, stop), kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(10)
        armed, watched = counts["next_wake"], counts["watch"]
        if notify:
            assert daemon.watcher is not None
            assert daemon.watcher.active
            time.sleep(0.5)  # 25 poll intervals: notified, nothing looks
            assert counts["watch"] == watched
        else:
            assert daemon.watcher is None
            deadline = time.monotonic() + 10
            while counts["watch"] < watched + 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert counts["watch"] >= watched + 5
        assert counts["next_wake"] == armed  # nothing changed: no re-arm
        with open_ledger(harness.folder / "state", start) as other:  # `amplifier pause`, another process
            other.set_paused(True, "breaking news", start)
        deadline = time.monotonic() + 10
        while counts["next_wake"] == armed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert counts["next_wake"] > armed  # the pause is noticed: re-armed
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert harness.log.of("paused")


def test_the_hourly_replan_renders_off_the_lock_the_pass_needs(
    make: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the re-plan renders the window, the jobs that hold the lock (the pass, the watch) go on."""
    start = at("2027-10-20T08:00")
    harness = make(
        once("a", "2027-10-20T09:00"),
        start,
        watch_interval=0.02,
        replan_interval=dt.timedelta(seconds=0.1),
        notify_files=False,  # the polled look stands for the jobs that take the lock
    )
    daemon = harness.daemon
    rendering, release = threading.Event(), threading.Event()
    watches: list[float] = []
    applied: list[int] = []
    real_prepare, real_watch, real_apply = daemon.prepare, daemon.watch, daemon.apply_plan

    def prepare(now: dt.datetime, campaign: Any = None) -> Any:
        rendering.set()
        assert release.wait(10)
        return real_prepare(now, campaign)

    def watch(now: dt.datetime) -> bool:
        watches.append(time.monotonic())
        return real_watch(now)

    def apply_plan(prepared: Any, now: dt.datetime) -> Any:
        applied.append(len(prepared.posts))
        return real_apply(prepared, now)

    monkeypatch.setattr(daemon, "prepare", prepare)
    monkeypatch.setattr(daemon, "watch", watch)
    monkeypatch.setattr(daemon, "apply_plan", apply_plan)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(daemon, stop))
    thread.start()
    try:
        assert rendering.wait(10)
        seen = len(watches)
        deadline = time.monotonic() + 10
        while len(watches) < seen + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(watches) >= seen + 3  # the lock was free while the window rendered
        release.set()
        deadline = time.monotonic() + 10
        while not applied and time.monotonic() < deadline:
            time.sleep(0.01)
        assert applied[0] == 2  # then the rendered window was synced, under the lock
    finally:
        release.set()
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


# --------------------------------------------------------------------------------------------- reload


def test_reload_keeps_the_last_valid_campaign_and_replans_on_a_valid_edit(
    make: Callable[..., Harness],
) -> None:
    start = at("2027-10-20T08:00")
    rules = once("a", "2027-10-20T09:00") + once("b", "2027-10-20T10:00")
    harness = make(rules, start)
    harness.run_at(at("2027-10-20T09:00"))
    assert harness.state("a:masto:2027-10-20T09:00") == State.PUBLISHED
    schedule = harness.folder / "schedule.yaml"

    schedule.write_text(schedule.read_text().replace("  b:\n    kind: once", "  b:\n    kind: onse\n  : ["))
    assert harness.daemon.watch(at("2027-10-20T09:10"))
    problems = [e["problem"] for e in harness.log.of("reload invalid") if "problem" in e]
    assert problems
    assert all(":" in p and "schedule.yaml:" in p for p in problems)
    assert "b" in harness.daemon.campaign.schedule.rules  # the last valid campaign runs on
    harness.run_at(at("2027-10-20T10:00"))
    assert harness.state("b:sky:2027-10-20T10:00") == State.PUBLISHED

    # A valid edit: rule c added, rule a (published) and b (published) removed; d planned then removed.
    valid = SCHEDULE.replace("RULES\n", once("c", "2027-10-20T11:00") + once("d", "2027-10-20T12:00"))
    schedule.write_text(valid)
    assert harness.daemon.watch(at("2027-10-20T10:05"))
    assert harness.log.of("reload ok")
    assert harness.state("c:masto:2027-10-20T11:00") == State.PLANNED
    schedule.write_text(SCHEDULE.replace("RULES\n", once("c", "2027-10-20T11:00") + "\n"))
    assert harness.daemon.watch(at("2027-10-20T10:06"))
    assert harness.state("d:masto:2027-10-20T12:00") == State.CANCELLED
    assert harness.state("a:masto:2027-10-20T09:00") == State.PUBLISHED
    harness.run_at(at("2027-10-20T12:30"))
    assert harness.server.count("a:masto:2027-10-20T09:00") == 1
    assert harness.server.count("d:masto:2027-10-20T12:00") == 0
    assert harness.state("c:masto:2027-10-20T11:00") == State.EXPIRED  # 90 minutes late: past the grace


def test_an_edit_that_lands_while_a_reload_reads_the_files_is_reloaded_next(
    make: Callable[..., Harness],
) -> None:
    start = at("2027-10-20T08:00")
    harness = make(once("a", "2027-10-20T09:00") + once("b", "2027-10-20T10:00"), start)
    daemon = harness.daemon
    schedule = harness.folder / "schedule.yaml"
    messages = harness.folder / "messages" / "hello.yaml"
    loads: list[Path] = []

    def loader(path: Path) -> Any:
        campaign = load_campaign(path)
        loads.append(path)
        if len(loads) == 1:  # the operator saves the message file just after the load read it
            messages.write_text(MESSAGES.replace("Hello from", "Greetings from"))
        return campaign

    daemon.loader = loader
    schedule.write_text(schedule.read_text().replace("2027-10-20T10:00", "2027-10-20T10:30"))
    assert daemon.watch(start)
    assert harness.state("b:masto:2027-10-20T10:30") == State.PLANNED
    assert daemon.watch(start + dt.timedelta(seconds=2))  # the second edit is not lost
    assert len(loads) == 2
    harness.run_at(at("2027-10-20T09:00"))
    assert harness.server.published  # sent with the text of the last edit
    assert "Greetings from" in daemon.posts["a:masto:2027-10-20T09:00"].parts[0].text
    assert not daemon.watch(start + dt.timedelta(seconds=4))  # and nothing more to load


def test_a_broken_message_file_is_reported_with_its_location(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T08:00")
    harness = make(once("a", "2027-10-20T09:00"), start)
    (harness.folder / "messages" / "hello.yaml").write_text(
        MESSAGES.replace("{{ account.id }}", "{{ account.id }")
    )
    assert harness.daemon.watch(start)
    problems = [e["problem"] for e in harness.log.of("reload invalid") if "problem" in e]
    assert any("messages/hello.yaml:5:15: template syntax error" in p for p in problems), problems
    harness.run_at(at("2027-10-20T09:00"))
    assert harness.state("a:masto:2027-10-20T09:00") == State.PUBLISHED


# --------------------------------------------------------------------------------------------- reconciliation


OLD_CLAIM = MASTODON_IDEMPOTENCY_SAFE + dt.timedelta(minutes=1)
LOOKUP_INCOMPLETE = LookupIncomplete("more than 200 statuses since 2027-10-20 06:00 UTC")


@pytest.mark.parametrize(
    ("account", "on_server", "claim_age", "due_in", "fault", "expected", "sends", "searches"),
    [
        # Bluesky: getRecord at the deterministic key answers, whatever the claim's age
        ("sky", True, dt.timedelta(minutes=1), dt.timedelta(0), None, State.PUBLISHED, 0, 0),
        ("sky", False, dt.timedelta(days=1), dt.timedelta(0), None, State.PUBLISHED, 1, 0),
        # Mastodon, young claim, due now: re-sent at once under the same Idempotency-Key, nothing searched
        ("masto", False, dt.timedelta(minutes=5), dt.timedelta(0), None, State.PUBLISHED, 1, 0),
        # Mastodon, young claim of a post due later (the key may expire before it is sent): searched
        ("masto", False, dt.timedelta(minutes=5), dt.timedelta(hours=3), None, State.PLANNED, 0, 1),
        ("masto", True, dt.timedelta(minutes=5), dt.timedelta(hours=3), None, State.PUBLISHED, 0, 1),
        # Mastodon, claim older than the key: searched; found -> published, not found -> sent again once
        ("masto", True, OLD_CLAIM, dt.timedelta(0), None, State.PUBLISHED, 0, 1),
        ("masto", False, OLD_CLAIM, dt.timedelta(0), None, State.PUBLISHED, 1, 1),
        ("masto", False, dt.timedelta(hours=30), dt.timedelta(0), None, State.PUBLISHED, 1, 1),
        # the search cannot reach back to the claim: failed, with a reason, rather than a duplicate
        ("masto", False, OLD_CLAIM, dt.timedelta(0), LOOKUP_INCOMPLETE, State.FAILED, 0, 1),
        # the server is down: the outcome stays unknown (claimed, asked again after a backoff, not by the
        # pass that follows at once), nothing is sent
        ("masto", False, OLD_CLAIM, dt.timedelta(0), TransientError("HTTP 502"), State.CLAIMED, 0, 1),
    ],
)
def test_startup_reconciles_claimed_posts(
    tmp_path: Path,
    account: str,
    on_server: bool,
    claim_age: dt.timedelta,
    due_in: dt.timedelta,
    fault: BaseException | None,
    expected: State,
    sends: int,
    searches: int,
) -> None:
    due = at("2027-10-20T09:00")
    now = due - due_in
    campaign = load_campaign(
        write_campaign(tmp_path, once("a", "2027-10-20T09:00", missed="{action: post, grace: P3D}"))
    )
    post_id = f"a:{account}:2027-10-20T09:00"
    server = FakeServer()
    if fault is not None:
        server.search_faults.extend([fault] * 3)
    if on_server:
        server.published[(post_id, 0)] = PartResult(index=0, id="r0", url="https://example.test/r0")

    def publisher(name: str, settings: MastodonAccount | BlueskyAccount) -> FakePublisher:
        return FakePublisher(name, settings.platform, server)

    claimed_at = now - claim_age
    with open_ledger(tmp_path, claimed_at) as ledger:
        first = Daemon(campaign, ledger, publisher, clock=Clock(claimed_at), environ={})
        first.plan(claimed_at)
        assert ledger.claim(post_id, claimed_at, "crashed-process")
        first.close()
        clock = Clock(now)
        daemon = Daemon(campaign, ledger, publisher, clock=clock, log=EventLog(None, keep=True), environ={})
        report = run_once(daemon, now)
        daemon.close()
        assert {r.post_id for r in report.reconciled} == {post_id}
        row = ledger.get(post_id)
        assert row.state == expected
        assert len([c for c in server.calls if c[1] == post_id]) == sends
        assert server.searches == [(post_id, claimed_at)] * searches  # searched from the claim on
        assert server.count(post_id) == 1 or (expected == State.PLANNED and not on_server) or fault
        if on_server and expected == State.PUBLISHED:
            assert row.result is not None
            assert row.result[0]["id"] == "r0"
        if expected == State.FAILED:
            assert "outcome unknown" in (row.last_error or "")
            assert "check the account" in (row.last_error or "")


def test_reconcile_resumes_a_thread_after_the_parts_found(tmp_path: Path) -> None:
    """A thread cut short more than an hour ago: the search finds the parts that are out, the rest follow."""
    messages = MESSAGES.replace(
        '"Hello from the campaign, {{ account.id }}!"',
        "\"{{ 'Hello from the campaign. ' * 60 }}\"",
    )
    write_campaign(tmp_path, once("a", "2027-10-20T09:00", accounts="[masto]"))
    (tmp_path / "messages" / "hello.yaml").write_text(messages)
    campaign = load_campaign(tmp_path / "schedule.yaml")
    post_id = "a:masto:2027-10-20T09:00"
    server = FakeServer()
    now = at("2027-10-20T09:30")
    claimed_at = now - OLD_CLAIM

    def publisher(name: str, settings: MastodonAccount | BlueskyAccount) -> FakePublisher:
        return FakePublisher(name, settings.platform, server)

    with open_ledger(tmp_path, claimed_at) as ledger:
        first = Daemon(campaign, ledger, publisher, clock=Clock(claimed_at), environ={})
        first.plan(claimed_at)
        part_count = ledger.get(post_id).part_count
        assert part_count >= 3
        assert ledger.claim(post_id, claimed_at, "crashed-process")
        first.close()
        server.published[(post_id, 0)] = PartResult(index=0, id="s0", url="https://example.test/s0")
        server.published[(post_id, 1)] = PartResult(index=1, id="s1", url="https://example.test/s1")
        daemon = Daemon(campaign, ledger, publisher, clock=Clock(now), environ={})
        report = run_once(daemon, now)
        daemon.close()
        assert [r.outcome for r in report.reconciled] == ["resumed"]
        row = ledger.get(post_id)
        assert row.state == State.PUBLISHED
        assert row.result is not None
        assert [part["id"] for part in row.result[:2]] == ["s0", "s1"]
        assert server.count(post_id) == part_count  # every part once


def test_reconcile_leaves_a_claim_of_a_running_process_alone(tmp_path: Path) -> None:
    """``amplifier send`` holds the claim (its process runs): the daemon neither reconciles nor sends it."""
    import os
    import socket

    now = at("2027-10-20T09:00")
    campaign = load_campaign(write_campaign(tmp_path, once("a", "2027-10-20T09:00", accounts="[masto]")))
    post_id = "a:masto:2027-10-20T09:00"
    server = FakeServer()

    def publisher(name: str, settings: MastodonAccount | BlueskyAccount) -> FakePublisher:
        return FakePublisher(name, settings.platform, server)

    with open_ledger(tmp_path, now) as ledger:
        daemon = Daemon(campaign, ledger, publisher, clock=Clock(now), environ={})
        daemon.plan(now)
        # the test process itself stands for the running `send` (another pid than the daemon's would be)
        parent = os.getppid()
        assert ledger.claim(post_id, now, f"{socket.gethostname()}:{parent}:send-1234")
        report = daemon.tick(now)
        assert report.reconciled == []
        assert ledger.get(post_id).state == State.CLAIMED
        # once that process is gone (or the claim is old), the claim is reconciled
        later = now + dt.timedelta(minutes=31)
        report = daemon.tick(later)
        daemon.close()
        assert [r.post_id for r in report.reconciled] == [post_id]


def test_the_daemon_claims_under_a_token_that_names_this_process(make: Callable[..., Harness]) -> None:
    import os
    import socket

    from amplifier.delivery.reconcile import claim_holder

    harness = make(once("a", "2027-10-20T09:00", accounts="[masto]"), at("2027-10-20T08:00"))
    assert claim_holder(harness.daemon.token) == (socket.gethostname(), os.getpid())
    assert ":daemon-" in harness.daemon.token


def test_shutdown_releases_what_was_claimed_but_not_sent(make: Callable[..., Harness]) -> None:
    start = at("2027-10-20T09:00")
    harness = make(once("a", "2027-10-20T09:00", accounts="[masto]"), start)
    harness.daemon.stop()
    row = harness.ledger.get("a:masto:2027-10-20T09:00")
    # A worker that claims after the stop was requested releases at once.
    report = harness.daemon._run_account([row])
    assert report.released == []
    assert harness.server.calls == []
    assert harness.state("a:masto:2027-10-20T09:00") == State.PLANNED


# --------------------------------------------------------------------------------------------- logs


def test_log_lines_are_one_per_event_text_or_json(tmp_path: Path) -> None:
    import io
    import json

    when = dt.datetime(2027, 10, 20, 7, 0, tzinfo=UTC)
    text = io.StringIO()
    EventLog(text, "text", Clock(when)).emit("posted", id="a:b:c", url="https://x.test/1", reason="two words")
    assert text.getvalue() == '2027-10-20T07:00:00Z posted id=a:b:c url=https://x.test/1 reason="two words"\n'
    raw = io.StringIO()
    EventLog(raw, "json", Clock(when)).emit("retry", attempt=2, at=when)
    assert json.loads(raw.getvalue()) == {
        "time": "2027-10-20T07:00:00Z",
        "event": "retry",
        "attempt": 2,
        "at": "2027-10-20T07:00:00Z",
    }


def test_the_daemon_never_expires_a_post_another_node_claimed_meanwhile(make: Callable[..., Harness]) -> None:
    """The daemon claims a post before it expires it: a stale view of a post another node took is refused
    (before: ``mark_expired`` without a token finished the other node's claim under it)."""
    rules = once("o", "2027-10-20T09:00", missed="{action: expire}")
    harness = make(rules, at("2027-10-20T08:00"))
    post_id = "o:masto:2027-10-20T09:00"
    stale = harness.ledger.get(post_id)
    assert harness.ledger.claim(post_id, at("2027-10-20T09:30"), "other-host:1:daemon-x")
    harness.clock.now = at("2027-10-20T09:30")

    from amplifier.daemon.events import TickReport

    assert harness.daemon._process(stale, TickReport()) == "not claimed"
    row = harness.ledger.get(post_id)
    assert (row.state, row.claim_token) == (State.CLAIMED, "other-host:1:daemon-x")


def test_run_once_extends_the_leases_of_its_claims_while_it_publishes(make: Callable[..., Harness]) -> None:
    """``run --once`` has no scheduler: a thread extends its claims' leases, so a publish slower than the lease
    is not taken over by another process while it is on its way."""
    lease = dt.timedelta(seconds=0.2)
    harness = make(
        once("o", "2027-10-20T09:00", accounts="[masto]"), at("2027-10-20T08:00"), claim_lease=lease
    )
    post_id = "o:masto:2027-10-20T09:00"
    harness.server.delay = 1.0
    harness.clock.now = at("2027-10-20T09:00")
    worker = threading.Thread(target=run_once, args=(harness.daemon, harness.clock.now))
    worker.start()
    deadline = time.monotonic() + 10
    while harness.ledger.get(post_id).state != State.CLAIMED:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    harness.clock.now += dt.timedelta(seconds=5)  # the publish takes long: the lease runs on with it
    time.sleep(0.5)
    row = harness.ledger.get(post_id)
    worker.join(10)
    assert row.lease_until is not None
    assert row.lease_until >= at("2027-10-20T09:00:05") + lease
    assert harness.ledger.get(post_id).state == State.PUBLISHED
