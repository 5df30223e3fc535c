"""The one delivery path for every write (delivery/write.py, delivery/outcomes.py): one classification of errors
for posts, follow-up jobs, gate changes and edits, and the behaviours that differed between those writes for no
reason made the same (a refused login, an unknown follow-up, a 429 on a gate change or an edit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from amplifier.delivery.correct import correct_post
from amplifier.delivery.followups import MAX_ATTEMPTS, RETRIES, FollowupRunner
from amplifier.delivery.gate import GateRequest, change_gates
from amplifier.delivery.ledger import Ledger
from amplifier.delivery.ledger.followups import FollowupJob
from amplifier.delivery.outcomes import Attempt, Failure, Outcome, Retries, UnexpectedPublishError, classify
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.write import Writer
from amplifier.errors import CredentialsError, UsageError
from amplifier.publish.base import (
    AuthError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from amplifier.publish.followups import Target
from amplifier.publish.sessions import LoginRefusedError
from tests.unit.test_correct import FakeMastodon, planned
from tests.unit.test_correct import publish as publish_edited
from tests.unit.test_followups_delivery import T0, World
from tests.unit.test_followups_delivery import Writer as FollowupWriter
from tests.unit.test_followups_delivery import ledger as ledger  # the fixture
from tests.unit.test_gates import T0 as GATE_T0
from tests.unit.test_gates import FakeSky
from tests.unit.test_gates import publish as publish_gated

MIN = timedelta(minutes=1)
RESET = T0 + 15 * MIN
DAEMON = Retries(
    backoff=lambda attempt: MIN * attempt, max_attempts=3, rate_limited_max_attempts=5, pause_account=True
)


@pytest.mark.parametrize(
    ("exc", "retries", "attempt", "unknown", "expected"),
    [
        (AuthError("401"), DAEMON, 1, False, (Outcome.PAUSED, T0 + MIN, None)),
        (CredentialsError("no secret"), RETRIES, 1, False, (Outcome.RELEASED, T0 + MIN, None)),
        (PermanentError("422"), DAEMON, 1, True, (Outcome.FAILED, T0, None)),
        (TransientError("503"), DAEMON, 1, False, (Outcome.RETRY, T0 + MIN, None)),
        (TransientError("503"), DAEMON, 3, False, (Outcome.FAILED, T0, None)),
        (TransientError("503"), DAEMON, 3, True, (Outcome.UNKNOWN, T0 + 3 * MIN, None)),
        (
            OutcomeUnknownError("lost"),
            DAEMON,
            2,
            False,
            (Outcome.RETRY, T0 + 2 * MIN, None),
        ),  # not unsure here
        (RateLimitedError("429", reset_at=RESET), DAEMON, 2, False, (Outcome.RETRY, RESET, RESET)),
        (RateLimitedError("429", reset_at=RESET), DAEMON, 5, False, (Outcome.FAILED, T0, RESET)),
        (
            RateLimitedError("429", reset_at=None),
            DAEMON,
            2,
            False,
            (Outcome.RETRY, T0 + 2 * MIN, T0 + 2 * MIN),
        ),
        (RateLimitedError("429", reset_at=RESET), DAEMON, 2, True, (Outcome.UNKNOWN, RESET, RESET)),
        (LoginRefusedError("refused", RESET), DAEMON, 1, False, (Outcome.RETRY, RESET, RESET)),
        (KeyError("sdk"), DAEMON, 1, False, (Outcome.UNKNOWN, T0 + MIN, None)),
        (UsageError("not in the campaign"), Retries(), 1, False, (Outcome.RETRY, T0 + 5 * MIN, None)),
    ],
)
def test_one_classification_of_every_write_error(
    exc: BaseException,
    retries: Retries,
    attempt: int,
    unknown: bool,
    expected: tuple[Outcome, datetime, datetime | None],
) -> None:
    of = Attempt("acc", attempt, unknown, own_time=T0 + 5 * MIN)
    failure = classify(exc, of, now=T0, retries=retries)
    assert (failure.outcome, failure.at, failure.block_until) == expected
    assert failure.raised is exc
    assert isinstance(failure.error, UnexpectedPublishError) == isinstance(exc, KeyError)


def test_a_429_counts_as_an_attempt_only_where_it_has_a_limit() -> None:
    error = RateLimitedError("429", reset_at=RESET)
    assert classify(error, Attempt("acc"), now=T0, retries=DAEMON).counts
    assert not classify(error, Attempt("acc"), now=T0, retries=RETRIES).counts
    assert not classify(error, Attempt("acc", unknown=True), now=T0, retries=RETRIES).counts


@dataclass
class Fake:
    """A write that logs what the path asked of it."""

    unknown: bool = False
    there: bool = False
    error: BaseException | None = None
    log: list[str] = field(default_factory=list)

    def begin(self, now: datetime) -> str | None:
        self.log.append("begin")
        return None

    def attempt(self) -> Attempt:
        return Attempt("acc", unknown=self.unknown)

    def done_before(self) -> bool:
        self.log.append("check")
        return self.there

    def request(self) -> str:
        self.log.append("request")
        if self.error is not None:
            raise self.error
        return "answer"

    def found(self) -> str:
        return "found"

    def done(self, answer: str) -> str:
        return f"done: {answer}"

    def failed(self, failure: Failure) -> str:
        return f"{failure.outcome}: {failure.reason}"


def test_the_path_checks_the_server_only_after_an_unknown_outcome_and_then_sends_nothing() -> None:
    writer = Writer(Retries(), clock=lambda: T0)
    assert writer.carry(Fake()) == "done: answer"
    fresh = Fake()
    writer.carry(fresh)
    assert fresh.log == ["begin", "request"]
    there = Fake(unknown=True, there=True)
    assert writer.carry(there) == "found"
    assert there.log == ["begin", "check"]
    assert writer.carry(Fake(unknown=True)) == "done: answer"


def test_the_path_blocks_the_account_until_a_server_given_reset_for_any_write() -> None:
    limiter = RateLimiter()
    writer = Writer(Retries(), clock=lambda: T0, limiter=limiter)
    answer = writer.carry(Fake(error=RateLimitedError("rate limited", reset_at=RESET)))
    assert answer == "retry: rate limited"
    assert limiter.blocked_until("acc", T0) == RESET


def test_a_follow_up_after_a_refused_login_waits_for_its_time_instead_of_failing(ledger: Ledger) -> None:
    """A login refused for the hour (the login budget spent by an outage) failed a boost for good; a post in the
    same case is retried at the time the refusal gave, its account blocked until then."""
    world = World(ledger)
    world.publish("p")
    ledger.plan_followups([FollowupJob("p", "boost", "masto-de", "mastodon", T0)])
    world.errors.append(LoginRefusedError("no login before 08:30", T0 + 30 * MIN))
    assert world.runner.run_due(T0).deferred == ["p boost by masto-de"]
    (job,) = ledger.followups(["p"])
    assert (job.state, job.next_at, job.attempts) == ("planned", T0 + 30 * MIN, 0)
    assert world.limiter.blocked_until("masto-de", T0) == T0 + 30 * MIN
    assert world.runner.run_due(T0 + 31 * MIN).done == ["p boost by masto-de"]


class CheckFails(FollowupWriter):
    """Its server check fails while errors are left (the server answers 503)."""

    def is_done(self, kind: str, target: Target, when: datetime) -> bool:
        if self.errors:
            raise self.errors.pop(0)
        return super().is_done(kind, target, when)


def test_a_follow_up_whose_outcome_is_unknown_is_never_recorded_failed(ledger: Ledger) -> None:
    """An unknown outcome is never recorded failed while the write may be there (as a post's): after
    MAX_ATTEMPTS faults it is still looked for on the server, and found done."""
    world = World(ledger)
    world.writers["masto-en"] = CheckFails("masto-en", world.log, world.errors)
    world.publish("p")
    ledger.plan_followups([FollowupJob("p", "pin", "masto-en", "mastodon", T0)])
    world.errors.append(OutcomeUnknownError("the answer was lost"))
    world.errors.extend([TransientError("HTTP 503")] * MAX_ATTEMPTS)
    now = T0
    for _ in range(MAX_ATTEMPTS + 1):
        (job,) = ledger.followups(["p"])
        now = max(now, job.next_at or now)
        world.runner.run(job, now)
    (job,) = ledger.followups(["p"])
    assert (job.state, job.unknown, job.attempts) == ("planned", True, MAX_ATTEMPTS + 1)
    assert world.runner.run(job, job.next_at or now) == "done"
    assert ledger.followups(["p"])[0].detail == "found done on the server"


def test_rejected_credentials_pause_the_account_of_a_follow_up_when_the_caller_says_so(
    ledger: Ledger,
) -> None:
    world = World(ledger)
    world.publish("p")
    runner = FollowupRunner(
        ledger, world.publisher, world.limiter, token="daemon-1", retries=Retries(pause_account=True)
    )
    ledger.plan_followups([FollowupJob("p", "boost", "masto-de", "mastodon", T0)])
    world.errors.append(AuthError("the server rejected the credentials (HTTP 401)"))
    assert runner.run_due(T0).deferred == ["p boost by masto-de"]
    assert "HTTP 401" in ledger.paused_accounts()["masto-de"]
    assert runner.run_due(T0 + 60 * MIN).deferred == ["p boost by masto-de"]  # paused: not tried
    assert world.log == [("boost", "masto-de", "p")]


def test_a_rate_limited_gate_change_blocks_the_account_until_the_reset(tmp_path: Any) -> None:
    from amplifier.delivery.ledger import PlanEntry, SqliteLedger

    reset = GATE_T0 + 5 * MIN
    with SqliteLedger.open(tmp_path / "ledger.db", GATE_T0) as gates:
        gates.sync_plan([PlanEntry("s", "sky", "bluesky", "r", GATE_T0, "h", 2)], GATE_T0)
        publish_gated(gates, "s")
        limiter = RateLimiter()
        error = RateLimitedError("rate limited (HTTP 429)", reset_at=reset, status=429)
        with pytest.raises(RateLimitedError):
            change_gates(
                gates, FakeSky(error), "s", GateRequest(replies=()), by="ana", now=GATE_T0, limiter=limiter
            )
        assert limiter.blocked_until("sky", GATE_T0) == reset
        assert gates.gate_changes("s")[0].outcome == "failed"


class LimitedMastodon(FakeMastodon):
    def edit_status(self, status_id: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        raise RateLimitedError("rate limited (HTTP 429)", reset_at=RESET, status=429)


def test_a_rate_limited_edit_is_failed_and_blocks_the_account_until_the_reset(ledger: Ledger) -> None:
    post = planned("u", "mastodon", "Old")
    publish_edited(ledger, post, ["7"])
    limiter = RateLimiter()
    with pytest.raises(RateLimitedError):
        correct_post(
            ledger,
            LimitedMastodon({"7": ("Old", "")}),
            planned("u", "mastodon", "New"),
            by="ana",
            now=lambda: T0,
            limiter=limiter,
        )
    assert limiter.blocked_until("masto", T0) == RESET
    assert [edit.outcome for edit in ledger.edits("u")] == ["failed"]
