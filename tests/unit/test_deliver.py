"""The one delivery path's outcome table: what each error does to the ledger, with the daemon's rules (backoff,
paused accounts) and with send's (the post keeps its time), on a real ledger."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amplifier.delivery.deliver import Delivery, Outcome, Retries, UnexpectedPublishError
from amplifier.delivery.ledger import Ledger, PlanEntry, State, open_ledger
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.plan.post import Part, PlannedPost
from amplifier.publish.base import (
    AccountInfo,
    AuthError,
    PartResult,
    PermanentError,
    PublishResult,
    RateLimitedError,
    TransientError,
)
from amplifier.publish.mastodon import StatusOutcomeUnknown

DUE = datetime(2027, 10, 25, 10, 0, tzinfo=UTC)
NOW = DUE + timedelta(minutes=1)
RESET = NOW + timedelta(minutes=10)
BACKOFF = timedelta(seconds=30)
POST = PlannedPost(
    id="r:masto:2027-10-25T10:00",
    at=DUE,
    rule="r",
    account="masto",
    platform="mastodon",
    lang="en",
    parts=(Part(text="hi", length=2, limit=500, payload={"status": "hi"}),),
    message_set="m",
    variant=0,
)


@dataclass
class Stub:
    """A publisher that raises the queued errors, then publishes."""

    errors: list[BaseException] = field(default_factory=list)
    account: str = "masto"
    platform: str = "mastodon"

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        if self.errors:
            raise self.errors.pop(0)
        return PublishResult(post.id, post.account, post.platform, (PartResult(0, "1", url="https://m/1"),))

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        return {}

    def check(self) -> AccountInfo:
        raise NotImplementedError

    def close(self) -> None:
        pass


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(tmp_path, DUE) as opened:
        opened.sync_plan([PlanEntry.from_post(POST)], DUE)
        yield opened


DAEMON = Retries(backoff=lambda attempt: BACKOFF * attempt, max_attempts=3, pause_account=True)
SEND = Retries()


def deliver(
    ledger: Ledger, retries: Retries, *errors: BaseException, attempts: int = 0
) -> tuple[Any, RateLimiter]:
    for n in range(attempts):  # earlier attempts that failed
        assert ledger.claim(POST.id, NOW, "earlier")
        ledger.schedule_retry(POST.id, f"attempt {n + 1}", DUE, NOW, token="earlier")
    limiter = RateLimiter()
    stub = Stub(list(errors))
    path = Delivery(
        ledger, lambda account: stub, token="tok", retries=retries, clock=lambda: NOW, limiter=limiter
    )
    return path.deliver(ledger.get(POST.id), POST), limiter


@pytest.mark.parametrize(
    ("error", "retries", "outcome", "state", "attempts", "next_at", "blocked"),
    [
        (None, DAEMON, Outcome.PUBLISHED, State.PUBLISHED, 0, DUE, None),
        (PermanentError("422"), DAEMON, Outcome.FAILED, State.FAILED, 1, DUE, None),
        (PermanentError("422"), SEND, Outcome.FAILED, State.FAILED, 1, DUE, None),
        (TransientError("502"), DAEMON, Outcome.RETRY, State.PLANNED, 1, NOW + BACKOFF, None),
        (
            TransientError("502"),
            SEND,
            Outcome.RETRY,
            State.PLANNED,
            1,
            DUE,
            None,
        ),  # the daemon sends it on time
        (RateLimitedError("429", reset_at=RESET), DAEMON, Outcome.RETRY, State.PLANNED, 1, RESET, RESET),
        (RateLimitedError("429", reset_at=RESET), SEND, Outcome.RETRY, State.PLANNED, 1, RESET, RESET),
        (
            RateLimitedError("429", reset_at=None),
            DAEMON,
            Outcome.RETRY,
            State.PLANNED,
            1,
            NOW + BACKOFF,
            NOW + BACKOFF,
        ),
        (AuthError("401"), DAEMON, Outcome.PAUSED, State.PLANNED, 0, DUE, None),
        (AuthError("401"), SEND, Outcome.RELEASED, State.PLANNED, 0, DUE, None),
        (StatusOutcomeUnknown("timed out"), DAEMON, Outcome.UNKNOWN, State.CLAIMED, 1, NOW + BACKOFF, None),
        (StatusOutcomeUnknown("timed out"), SEND, Outcome.UNKNOWN, State.CLAIMED, 1, NOW + BACKOFF, None),
        (ValueError("truncated JSON"), DAEMON, Outcome.UNKNOWN, State.CLAIMED, 1, NOW + BACKOFF, None),
        (ConnectionResetError("dropped"), SEND, Outcome.UNKNOWN, State.CLAIMED, 1, NOW + BACKOFF, None),
    ],
)
def test_each_error_moves_the_post_as_the_rules_say(
    ledger: Ledger,
    error: BaseException | None,
    retries: Retries,
    outcome: Outcome,
    state: State,
    attempts: int,
    next_at: datetime,
    blocked: datetime | None,
) -> None:
    done, limiter = deliver(ledger, retries, *([error] if error else []))

    row = ledger.get(POST.id)
    assert done.outcome is outcome
    assert (row.state, row.attempts, row.next_attempt_at) == (state, attempts, next_at)
    assert limiter.blocked_until("masto", NOW) == blocked
    assert (row.unknown_since == NOW) is (outcome is Outcome.UNKNOWN)
    assert ("masto" in ledger.paused_accounts()) is (outcome is Outcome.PAUSED)
    if error is not None:
        assert done.error is not None
        if isinstance(done.error, UnexpectedPublishError):
            assert type(error).__name__ in str(done.error)
        else:
            assert done.error is error


def test_the_daemon_gives_up_after_max_attempts_and_send_never_does(ledger: Ledger) -> None:
    done, _ = deliver(ledger, DAEMON, TransientError("502"), attempts=2)
    assert done.outcome is Outcome.FAILED
    row = ledger.get(POST.id)
    assert (row.state, row.attempts) == (State.FAILED, 3)
    assert (row.last_error or "").endswith("(gave up after 3 attempts)")


def test_send_keeps_retrying_at_the_posts_time(tmp_path: Path) -> None:
    with open_ledger(tmp_path, DUE) as ledger:
        ledger.sync_plan([PlanEntry.from_post(POST)], DUE)
        done, _ = deliver(ledger, SEND, TransientError("502"), attempts=5)
        assert done.outcome is Outcome.RETRY
        assert (ledger.get(POST.id).state, ledger.get(POST.id).attempts) == (State.PLANNED, 6)


def test_a_post_claimed_elsewhere_is_not_sent(ledger: Ledger) -> None:
    assert ledger.claim(POST.id, NOW, "someone-else")
    stub = Stub()
    path = Delivery(ledger, lambda account: stub, token="tok", retries=DAEMON, clock=lambda: NOW)

    assert path.deliver(ledger.get(POST.id), POST).outcome is Outcome.NOT_CLAIMED
    assert ledger.get(POST.id).claim_token == "someone-else"


def test_a_stopping_caller_releases_the_claim_unsent(ledger: Ledger) -> None:
    stub = Stub([AssertionError("must not publish")])
    path = Delivery(
        ledger, lambda account: stub, token="tok", retries=DAEMON, clock=lambda: NOW, stopping=lambda: True
    )

    assert path.deliver(ledger.get(POST.id), POST).outcome is Outcome.RELEASED
    row = ledger.get(POST.id)
    assert (row.state, row.attempts) == (State.PLANNED, 0)
