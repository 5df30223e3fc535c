"""Read-back jobs in the daemon's pass: each age read once, posts first, faults retried, deleted = gone."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import ClassVar

import pytest

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.daemon.readback import read_ages, requests_for
from amplifier.delivery.ledger.report import ReadAges
from amplifier.publish.base import PermanentError, RateLimitedError, TransientError
from amplifier.publish.engagement import Engagement, PublishedPart
from tests.unit.test_daemon import COUNTDOWN, FakePublisher, Harness, at, make, once

__all__ = ["make"]  # the fixture

POST = "o:masto:2027-10-20T09:00"
T = at("2027-10-20T09:00")
H = dt.timedelta(hours=1)


class Reader(FakePublisher):
    """The fake platform's counts: ``likes[post id]``; ``read_faults`` raised by the next reads."""

    likes: ClassVar[dict[str, int]] = {}
    deleted: ClassVar[set[str]] = set()
    reads: ClassVar[list[list[str]]] = []
    read_faults: ClassVar[list[BaseException]] = []

    def read_engagement(self, parts: Sequence[PublishedPart]) -> list[Engagement]:
        Reader.reads.append([p.post_id for p in parts])
        if Reader.read_faults:
            raise Reader.read_faults.pop(0)
        now = self.clock()
        return [
            Engagement(p.post_id, p.index, now, gone=True)
            if p.post_id in Reader.deleted
            else Engagement(p.post_id, p.index, now, Reader.likes.get(p.post_id, 0), 0, 0, 0)
            for p in parts
        ]


@pytest.fixture
def reader(make: Callable[..., Harness]) -> Callable[..., Harness]:
    Reader.likes, Reader.deleted, Reader.reads, Reader.read_faults = {}, set(), [], []

    def factory(rules: str, now: dt.datetime) -> Harness:
        harness = make(rules, now)
        server = harness.server

        def publisher(account: str, settings: MastodonAccount | BlueskyAccount) -> Reader:
            made = Reader(account, settings.platform, server)
            made.clock = harness.clock  # type: ignore[attr-defined]
            return made

        harness.daemon.publisher_factory = publisher
        return harness

    return factory


def readings(harness: Harness, post_id: str = POST) -> list[tuple[dt.datetime, int | None, bool]]:
    return [(r.read_at, r.likes, r.gone) for r in harness.ledger.engagement(post_id)]


def test_each_age_is_read_once(reader: Callable[..., Harness]) -> None:
    h = reader(once("o", "2027-10-20T09:00", accounts="[masto]"), T)
    h.run_at(T)
    assert Reader.reads == []  # just published: nothing to read yet
    Reader.likes[POST] = 3
    for minutes in (30, 60, 61, 90, 24 * 60 - 1, 24 * 60, 24 * 60 + 5, 7 * 24 * 60, 7 * 24 * 60 + 1):
        h.run_at(T + dt.timedelta(minutes=minutes))
    assert [when - T for when, _, _ in readings(h)] == [H, 24 * H, 7 * 24 * H]
    assert len(Reader.reads) == 3
    assert [e["likes"] for e in h.log.of("read")] == [3, 3, 3]


def test_a_late_pass_reads_once_for_every_age_it_missed(reader: Callable[..., Harness]) -> None:
    h = reader(once("o", "2027-10-20T09:00", accounts="[masto]"), T)
    h.run_at(T)
    h.run_at(T + 10 * 24 * H)
    h.run_at(T + 10 * 24 * H + H)
    assert len(Reader.reads) == 1


def test_a_deleted_post_is_gone_and_not_asked_for_again(reader: Callable[..., Harness]) -> None:
    h = reader(once("o", "2027-10-20T09:00", accounts="[masto]"), T)
    h.run_at(T)
    Reader.deleted.add(POST)
    h.run_at(T + H)
    h.run_at(T + 24 * H)
    assert readings(h) == [(T + H, None, True), (T + 24 * H, None, True)]
    assert len(Reader.reads) == 1  # the second age is recorded gone without a request
    assert h.log.of("read-failed") == []


def test_a_retracted_post_is_gone_without_asking_the_server(reader: Callable[..., Harness]) -> None:
    from amplifier.delivery.ledger.followups import FollowupJob

    h = reader(once("o", "2027-10-20T09:00", accounts="[masto]"), T)
    h.run_at(T)
    (job,) = h.ledger.retract(POST, by="ana", reason="moved", now=T + H / 2)
    assert isinstance(job, FollowupJob)
    assert h.ledger.claim_followup(job.key, "t", T + H / 2, T + H)
    h.ledger.finish_followup(job.key, "t", "done", "deleted", T + H / 2)
    h.run_at(T + H)
    assert readings(h) == [(T + H, None, True)]
    assert Reader.reads == []
    assert h.log.of("read-failed") == []


def test_a_429_waits_for_the_reset_it_gave(reader: Callable[..., Harness]) -> None:
    h = reader(once("o", "2027-10-20T09:00", accounts="[masto]"), T)
    h.run_at(T)
    Reader.read_faults.append(RateLimitedError("slow down", reset_at=T + 2 * H))
    h.run_at(T + H)
    h.run_at(T + H + 30 * dt.timedelta(minutes=1))
    assert len(Reader.reads) == 1
    assert readings(h) == []
    h.run_at(T + 2 * H)
    assert [when for when, _, _ in readings(h)] == [T + 2 * H]
    assert h.daemon.limiter.blocked_until("masto", T + H) is None  # posts were never held back by a read


def test_a_transient_fault_backs_off_then_reads(reader: Callable[..., Harness]) -> None:
    h = reader(once("o", "2027-10-20T09:00", accounts="[masto]"), T)
    h.run_at(T)
    Reader.read_faults.append(TransientError("502"))
    h.run_at(T + H)
    h.run_at(T + H + dt.timedelta(seconds=30))  # within the backoff: no request
    assert len(Reader.reads) == 1
    h.run_at(T + H + dt.timedelta(minutes=2))
    assert len(Reader.reads) == 2
    assert len(readings(h)) == 1
    assert h.log.of("read-retry")


def test_a_refused_read_is_logged_and_not_retried_by_the_process(reader: Callable[..., Harness]) -> None:
    h = reader(once("o", "2027-10-20T09:00", accounts="[masto]"), T)
    h.run_at(T)
    Reader.read_faults.append(PermanentError("no such status id"))
    h.run_at(T + H)
    h.run_at(T + 2 * H)
    assert len(Reader.reads) == 1
    assert h.log.of("read-failed")


def test_posts_go_first(reader: Callable[..., Harness]) -> None:
    """An account with a post due (here: held back by a server's block) is not read."""
    rules = once("o", "2027-10-20T09:00", accounts="[masto]") + once(
        "p", "2027-10-20T10:30", accounts="[masto]"
    )
    h = reader(rules, T)
    h.run_at(T)
    h.daemon.limiter.block("masto", T + 3 * H)
    h.run_at(T + 2 * H)  # p is due but blocked: no read for masto
    assert Reader.reads == []
    h.run_at(T + 3 * H)
    assert Reader.reads == [[POST]]


def test_the_event_read_comes_once_after_the_event(reader: Callable[..., Harness]) -> None:
    h = reader(COUNTDOWN, at("2027-10-29T10:00"))
    h.run_at(at("2027-10-29T10:00"))
    post = "countdown:masto:2027-10-29T10:00"
    ages: ReadAges = read_ages(h.daemon.campaign, at("2027-11-03T00:00"))
    after = ages.after["countdown"]
    assert after == at("2027-11-02T00:00") + 24 * H  # the event's day ends at midnight, + 24 h
    h.run_at(at("2027-10-30T12:00"))  # 1 h and 24 h ages in one read
    h.run_at(after - H)
    before = len(Reader.reads)
    h.run_at(after)
    assert [r for r in Reader.reads[before:] if post in r]
    h.run_at(after + H)
    assert sum(post in r for r in Reader.reads) == 2


@pytest.mark.parametrize(("platform", "parts", "requests"), [("mastodon", 3, 3), ("bluesky", 26, 2)])
def test_requests_per_read(platform: str, parts: int, requests: int) -> None:
    assert requests_for(platform, parts) == requests


def test_a_stopping_daemon_starts_no_read(reader: Callable[..., Harness]) -> None:
    h = reader(once("o", "2027-10-20T09:00", accounts="[masto]"), T)
    h.run_at(T)
    h.daemon.stop()
    h.daemon.read_back(T + H)
    assert Reader.reads == []


def test_accounts_are_read_concurrently(reader: Callable[..., Harness]) -> None:
    """Two accounts' reads overlap (each waits for the other at a barrier): read one after the other, a
    thousand accounts' reads would hold the pass for a thousand round trips."""
    barrier = threading.Barrier(2, timeout=5)

    class Meeting(Reader):
        def read_engagement(self, parts: Sequence[PublishedPart]) -> list[Engagement]:
            barrier.wait()
            return super().read_engagement(parts)

    h = reader(once("o", "2027-10-20T09:00", accounts="[masto, sky]"), T)
    h.run_at(T)
    made = h.daemon.publisher_factory

    def meeting(account: str, settings: MastodonAccount | BlueskyAccount) -> Reader:
        publisher = made(account, settings)
        publisher.__class__ = Meeting
        return publisher

    h.daemon.publisher_factory = meeting
    h.daemon._publishers.clear()
    changes = h.daemon.grouped.commits.changes
    h.run_at(T + H)
    assert h.log.of("read-failed") == []
    assert h.daemon.grouped.commits.changes == changes + 2  # the readings stored through the group commit
    assert sorted(post for read in Reader.reads for post in read) == [POST, "o:sky:2027-10-20T09:00"]
