"""The ledger's contract: what every implementation of :class:`~amplifier.delivery.ledger.Ledger` does.

Each test that takes ``ledger`` or ``backend`` runs once per backend (see ``conftest.py``: adding a backend is
adding one factory there). The tests of one implementation's storage (files, pragmas, SQLite's locks, crashes
of a writing process) are beside it, in ``tests/unit/test_ledger.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amplifier.delivery.ledger import (
    CANCELLED_REASON,
    TRANSITIONS,
    ClaimMismatch,
    GateChange,
    IllegalTransition,
    Ledger,
    LedgerError,
    PartConflict,
    PlanEntry,
    Row,
    State,
    SyncReport,
    UnknownPost,
    content_hash,
    from_db_time,
    to_db_time,
)
from amplifier.plan.post import Part, PlannedPost
from tests.contract.conftest import T0, T1, T2, Backend, entry


def states(ledger: Ledger, *ids: str) -> list[State]:
    return [ledger.get(post_id).state for post_id in ids]


# -- times ---------------------------------------------------------------------------------------------------


def test_times_are_stored_as_fixed_width_utc_text() -> None:
    berlin = timezone(timedelta(hours=2))
    assert to_db_time(datetime(2027, 10, 25, 12, 0, tzinfo=berlin)) == "2027-10-25T10:00:00.000000+00:00"
    assert to_db_time(datetime(2027, 10, 25, 10, 0, 0, 5, tzinfo=UTC)) == "2027-10-25T10:00:00.000005+00:00"
    assert from_db_time("2027-10-25T10:00:00.000000+00:00") == datetime(2027, 10, 25, 10, tzinfo=UTC)


def test_naive_times_are_refused(ledger: Ledger) -> None:
    naive = datetime(2027, 10, 25, 8, 0)
    with pytest.raises(ValueError, match="aware"):
        ledger.sync_plan([entry()], naive)
    with pytest.raises(ValueError, match="aware"):
        ledger.sync_plan([entry(due=naive)], T0)
    ledger.sync_plan([entry()], T0)
    with pytest.raises(ValueError, match="aware"):
        ledger.claim("p", naive, "tok")
    with pytest.raises(ValueError, match="aware"):
        ledger.due(naive)
    assert ledger.get("p").state is State.PLANNED


def test_a_closed_ledger_keeps_its_data(backend: Backend) -> None:
    with backend.open(T0) as ledger:
        ledger.sync_plan([entry("a"), entry("b")], T0)
        assert ledger.claim("a", T0, "tok")
    with backend.open(T1) as ledger:
        assert states(ledger, "a", "b") == [State.CLAIMED, State.PLANNED]


# -- transitions ---------------------------------------------------------------------------------------------


def put_in(ledger: Ledger, state: State) -> None:
    """A post "p" (2 parts) in ``state``, reached by legal transitions."""
    ledger.sync_plan([entry("p", parts=2), entry("other")], T0)
    if state is State.PLANNED:
        return
    if state is State.CANCELLED:
        ledger.sync_plan([entry("other")], T0)
        return
    if state is State.EXPIRED:
        ledger.mark_expired("p", "missed its window", T0)
        return
    if state is State.SKIPPED:
        ledger.mark_skipped("p", "skipped by hand", T0)
        return
    assert ledger.claim("p", T0, "tok")
    if state is State.CLAIMED:
        return
    if state is State.PUBLISHED:
        ledger.mark_published("p", [{"id": "1"}, {"id": "2"}], T0)
    elif state is State.FAILED:
        ledger.mark_failed("p", "422 Validation failed", T0)
    else:  # pragma: no cover
        raise AssertionError(state)


ACTIONS: dict[str, tuple[Callable[[Ledger], object], State | None]] = {
    "mark_published": (
        lambda ledger: ledger.mark_published("p", [{"id": "a"}, {"id": "b"}], T1),
        State.PUBLISHED,
    ),
    "mark_failed": (lambda ledger: ledger.mark_failed("p", "boom", T1), State.FAILED),
    "schedule_retry": (lambda ledger: ledger.schedule_retry("p", "busy", T2, T1), State.PLANNED),
    "release": (lambda ledger: ledger.release("p", T1), State.PLANNED),
    "mark_expired": (lambda ledger: ledger.mark_expired("p", "late", T1), State.EXPIRED),
    "mark_skipped": (lambda ledger: ledger.mark_skipped("p", "no", T1), State.SKIPPED),
    "record_part": (lambda ledger: ledger.record_part("p", 0, {"id": "a"}, T1), None),  # state unchanged
}

LEGAL_FROM: dict[str, set[State]] = {
    "mark_published": {State.CLAIMED},
    "mark_failed": {State.CLAIMED},
    "schedule_retry": {State.CLAIMED},
    "release": {State.CLAIMED},
    "mark_expired": {State.PLANNED, State.CLAIMED},
    "mark_skipped": {State.PLANNED, State.CLAIMED},
    "record_part": {State.CLAIMED},
}


@pytest.mark.parametrize("start", list(State))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_transition_is_legal_or_refused_without_a_change(
    ledger: Ledger, start: State, action: str
) -> None:
    put_in(ledger, start)
    before = ledger.get("p")
    do, target = ACTIONS[action]

    if start in LEGAL_FROM[action]:
        do(ledger)
        after = ledger.get("p")
        assert after.state is (start if target is None else target)
        assert after.updated_at == T1
        if target is not None:
            assert target in TRANSITIONS[start]  # the documented table agrees
    else:
        with pytest.raises(IllegalTransition, match=rf"post 'p' is {start.value}: cannot ") as caught:
            do(ledger)
        assert caught.value.state is start
        assert ledger.get("p") == before


@pytest.mark.parametrize("start", list(State))
def test_claim_only_takes_a_planned_post(ledger: Ledger, start: State) -> None:
    put_in(ledger, start)
    before = ledger.get("p")

    claimed = ledger.claim("p", T1, "second")

    assert claimed is (start is State.PLANNED)
    after = ledger.get("p")
    if claimed:
        assert (after.state, after.claim_token, after.claimed_at) == (State.CLAIMED, "second", T1)
    else:
        assert after == before


def test_transition_table_has_every_state() -> None:
    assert set(TRANSITIONS) == set(State)
    finished = {State.PUBLISHED, State.FAILED, State.EXPIRED, State.SKIPPED}
    assert all(not TRANSITIONS[state] for state in finished)


@pytest.mark.parametrize(
    "call",
    [
        lambda ledger: ledger.claim("nope", T0, "tok"),
        lambda ledger: ledger.mark_published("nope", [{}], T0),
        lambda ledger: ledger.mark_failed("nope", "x", T0),
        lambda ledger: ledger.schedule_retry("nope", "x", T1, T0),
        lambda ledger: ledger.release("nope", T0),
        lambda ledger: ledger.mark_expired("nope", "x", T0),
        lambda ledger: ledger.mark_skipped("nope", "x", T0),
        lambda ledger: ledger.record_part("nope", 0, {}, T0),
        lambda ledger: ledger.get("nope"),
    ],
)
def test_unknown_posts_are_reported(ledger: Ledger, call: Callable[[Ledger], object]) -> None:
    with pytest.raises(UnknownPost, match="no post 'nope' in the ledger"):
        call(ledger)


def test_publish_records_result_and_time(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p", parts=2)], T0)
    assert ledger.claim("p", T0, "daemon-1")

    ledger.mark_published(
        "p", [{"id": "111", "url": "https://example.social/@a/111"}, {"id": "112"}], T1, token="daemon-1"
    )

    row = ledger.get("p")
    assert row.state is State.PUBLISHED
    assert row.published_at == T1
    assert row.result == ({"id": "111", "url": "https://example.social/@a/111"}, {"id": "112"})
    assert row.parts == {0: row.result[0], 1: row.result[1]}
    assert row.claim_token == "daemon-1"  # who published it stays known
    assert row.attempts == 0
    assert row.last_error is None


@pytest.mark.parametrize(
    ("finish", "state", "attempts"),
    [
        (lambda ledger: ledger.mark_failed("p", "422: text too long", T1), State.FAILED, 1),
        (lambda ledger: ledger.mark_expired("p", "422: text too long", T1), State.EXPIRED, 0),
        (lambda ledger: ledger.mark_skipped("p", "422: text too long", T1), State.SKIPPED, 0),
    ],
)
def test_finishing_with_a_reason_keeps_the_reason_verbatim(
    ledger: Ledger, finish: Callable[[Ledger], None], state: State, attempts: int
) -> None:
    ledger.sync_plan([entry("p")], T0)
    assert ledger.claim("p", T0, "tok")

    finish(ledger)

    row = ledger.get("p")
    assert (row.state, row.last_error, row.attempts) == (state, "422: text too long", attempts)


@pytest.mark.parametrize("reason", ["", "   "])
@pytest.mark.parametrize("method", ["mark_failed", "mark_expired", "mark_skipped"])
def test_a_reason_is_required(ledger: Ledger, method: str, reason: str) -> None:
    ledger.sync_plan([entry("p")], T0)
    assert ledger.claim("p", T0, "tok")
    with pytest.raises(ValueError, match="reason"):
        getattr(ledger, method)("p", reason, T1)
    assert ledger.get("p").state is State.CLAIMED


# -- claims and tokens ---------------------------------------------------------------------------------------


def test_a_claim_needs_a_token(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p")], T0)
    with pytest.raises(ValueError, match="token"):
        ledger.claim("p", T0, "")


@pytest.mark.parametrize(
    "call",
    [
        lambda ledger: ledger.mark_published("p", [{"id": "1"}], T1, token="intruder"),
        lambda ledger: ledger.mark_failed("p", "x", T1, token="intruder"),
        lambda ledger: ledger.schedule_retry("p", "x", T2, T1, token="intruder"),
        lambda ledger: ledger.release("p", T1, token="intruder"),
        lambda ledger: ledger.mark_expired("p", "x", T1, token="intruder"),
        lambda ledger: ledger.mark_skipped("p", "x", T1, token="intruder"),
        lambda ledger: ledger.record_part("p", 0, {"id": "1"}, T1, token="intruder"),
    ],
)
def test_a_stale_claimant_cannot_change_a_post_claimed_by_another(
    ledger: Ledger, call: Callable[[Ledger], object]
) -> None:
    ledger.sync_plan([entry("p")], T0)
    assert ledger.claim("p", T0, "owner")
    before = ledger.get("p")

    with pytest.raises(ClaimMismatch, match="claimed by 'owner', not by 'intruder'"):
        call(ledger)
    assert ledger.get("p") == before


def test_claimed_lists_claims_older_than_an_instant(ledger: Ledger) -> None:
    ledger.sync_plan([entry("a"), entry("b"), entry("c")], T0)
    assert ledger.claim("b", T0, "x")
    assert ledger.claim("a", T1, "y")

    assert [row.id for row in ledger.claimed()] == ["b", "a"]
    assert [row.id for row in ledger.claimed(older_than=T1)] == ["b"]
    assert [row.id for row in ledger.claimed(older_than=T0)] == []


# -- retries and releases ------------------------------------------------------------------------------------


def test_retry_bookkeeping(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p", due=T0)], T0)
    assert ledger.claim("p", T0, "tok")

    ledger.schedule_retry("p", "503 Service Unavailable", T0 + timedelta(minutes=5), T1)

    row = ledger.get("p")
    assert (row.state, row.attempts, row.last_error) == (State.PLANNED, 1, "503 Service Unavailable")
    assert row.next_attempt_at == T0 + timedelta(minutes=5)
    assert (row.claimed_at, row.claim_token) == (None, None)
    assert row.due_at == T0  # the planned time is not the retry time
    assert ledger.due(T0 + timedelta(minutes=4)) == []
    assert [r.id for r in ledger.due(T0 + timedelta(minutes=5))] == ["p"]
    assert ledger.next_due_at() == T0 + timedelta(minutes=5)

    assert ledger.claim("p", T0 + timedelta(minutes=5), "tok")
    ledger.schedule_retry("p", "timeout", T0 + timedelta(minutes=15), T0 + timedelta(minutes=6))
    assert ledger.claim("p", T0 + timedelta(minutes=15), "tok")
    ledger.mark_failed("p", "503 again", T0 + timedelta(minutes=16))

    row = ledger.get("p")
    assert (row.state, row.attempts, row.last_error) == (State.FAILED, 3, "503 again")


def test_release_does_not_count_an_attempt(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p")], T0)
    assert ledger.claim("p", T0, "tok")

    ledger.release("p", T1, token="tok")

    row = ledger.get("p")
    assert (row.state, row.attempts, row.next_attempt_at, row.claim_token) == (State.PLANNED, 0, T0, None)
    assert [r.id for r in ledger.due(T1)] == ["p"]


# -- outcome unknown -----------------------------------------------------------------------------------------


def test_an_unknown_outcome_keeps_the_post_claimed_and_out_of_due(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p", due=T0)], T0)
    assert ledger.claim("p", T0, "tok")

    ledger.mark_unknown("p", "timed out", T1, check_at=T0 + timedelta(minutes=5), token="tok")

    row = ledger.get("p")
    assert (row.state, row.attempts, row.last_error, row.claim_token) == (
        State.CLAIMED,
        1,
        "timed out",
        "tok",
    )
    assert row.unknown_since == T0  # the claim: the earliest the request could have gone out
    assert row.next_attempt_at == T0 + timedelta(minutes=5)
    assert ledger.due(T0 + timedelta(hours=5)) == []  # never re-sent blindly
    assert ledger.next_due_at() is None
    assert ledger.unknown_due(T0 + timedelta(minutes=4)) == []
    assert [r.id for r in ledger.unknown_due(T0 + timedelta(minutes=5))] == ["p"]
    assert ledger.next_check_at() == T0 + timedelta(minutes=5)


def test_unknown_since_keeps_the_first_moment_across_re_claims(ledger: Ledger) -> None:
    """T0 times out, T0+45 (re-sent under the key) times out again: still unknown since T0, not T0+45."""
    ledger.sync_plan([entry("p", due=T0)], T0)
    t45 = T0 + timedelta(minutes=45)
    assert ledger.claim("p", T0, "tok")
    ledger.mark_unknown("p", "timed out", T0 + timedelta(seconds=10), check_at=T1, token="tok")
    ledger.release("p", t45, token="tok")  # to be re-sent under the same Idempotency-Key

    row = ledger.get("p")
    assert (row.state, row.unknown_since) == (State.PLANNED, T0)
    assert ledger.claim("p", t45, "tok2")
    ledger.mark_unknown("p", "timed out again", t45 + timedelta(seconds=10), check_at=t45, token="tok2")

    row = ledger.get("p")
    assert (row.claimed_at, row.unknown_since, row.attempts) == (t45, T0, 2)


def test_a_lookup_that_failed_is_not_an_attempt(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p")], T0)
    assert ledger.claim("p", T0, "tok")
    ledger.mark_unknown("p", "lookup failed: 502", T1, check_at=T2, attempt=False)
    row = ledger.get("p")
    assert (row.attempts, row.unknown_since, row.next_attempt_at) == (0, T0, T2)


@pytest.mark.parametrize(
    ("finish", "state", "unknown_since"),
    [
        ("published", State.PUBLISHED, None),
        ("absent", State.PLANNED, None),  # a lookup proved it is not out
        ("released", State.PLANNED, T0),  # re-sent under the key: still unknown until published
        ("failed", State.FAILED, T0),
    ],
)
def test_what_clears_unknown_since(
    ledger: Ledger, finish: str, state: State, unknown_since: datetime | None
) -> None:
    ledger.sync_plan([entry("p")], T0)
    assert ledger.claim("p", T0, "tok")
    ledger.mark_unknown("p", "timed out", T1, check_at=T1, token="tok")

    if finish == "published":
        ledger.mark_published("p", [{"id": "1"}], T2, token="tok")
    elif finish == "failed":
        ledger.mark_failed("p", "outcome unknown, check the account", T2, token="tok")
    else:
        ledger.release("p", T2, token="tok", absent=finish == "absent")

    row = ledger.get("p")
    assert (row.state, row.unknown_since) == (state, unknown_since)


def test_mark_unknown_needs_the_claim(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p")], T0)
    with pytest.raises(IllegalTransition):
        ledger.mark_unknown("p", "timed out", T1, check_at=T1)
    assert ledger.claim("p", T0, "tok")
    with pytest.raises(ClaimMismatch):
        ledger.mark_unknown("p", "timed out", T1, check_at=T1, token="other")
    with pytest.raises(ValueError, match="reason"):
        ledger.mark_unknown("p", " ", T1, check_at=T1, token="tok")
    assert ledger.get("p").unknown_since is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gaps=st.lists(st.integers(min_value=1, max_value=7200), min_size=1, max_size=8))
def test_unknown_since_is_the_claim_of_the_first_unknown_attempt(backend: Backend, gaps: list[int]) -> None:
    """However many re-claims and unknown outcomes follow, unknown_since stays the first one's claim time."""
    with backend.fresh(T0) as led:
        led.sync_plan([entry("p")], T0)
        now = T0
        for n, gap in enumerate(gaps):
            now += timedelta(seconds=gap)
            assert led.claim("p", now, f"tok{n}")
            led.mark_unknown("p", "timed out", now, check_at=now, token=f"tok{n}")
            assert led.get("p").unknown_since == T0 + timedelta(seconds=gaps[0])
            led.release("p", now, token=f"tok{n}")
        assert led.get("p").attempts == len(gaps)


# -- thread parts --------------------------------------------------------------------------------------------


def test_a_retried_thread_resumes_at_the_missing_part(ledger: Ledger) -> None:
    ledger.sync_plan([entry("t", parts=3)], T0)
    assert ledger.claim("t", T0, "tok")
    assert ledger.get("t").next_part == 0

    ledger.record_part("t", 0, {"uri": "at://did:plc:x/app.bsky.feed.post/1", "cid": "bafy1"}, T0)
    ledger.schedule_retry("t", "network error on part 1", T1, T0)

    row = ledger.get("t")
    assert row.parts == {0: {"uri": "at://did:plc:x/app.bsky.feed.post/1", "cid": "bafy1"}}
    assert row.missing_parts == (1, 2)
    assert row.next_part == 1

    assert ledger.claim("t", T1, "tok")
    for index in ledger.get("t").missing_parts:
        ledger.record_part("t", index, {"uri": f"at://x/{index}", "cid": f"bafy{index}"}, T1)
    assert ledger.get("t").next_part is None
    ledger.mark_published("t", None, T1)

    row = ledger.get("t")
    assert row.state is State.PUBLISHED
    assert row.result == (
        {"uri": "at://did:plc:x/app.bsky.feed.post/1", "cid": "bafy1"},
        {"uri": "at://x/1", "cid": "bafy1"},
        {"uri": "at://x/2", "cid": "bafy2"},
    )
    assert row.attempts == 1


def test_recording_a_part_again_is_idempotent_but_a_different_result_conflicts(ledger: Ledger) -> None:
    ledger.sync_plan([entry("t", parts=2)], T0)
    assert ledger.claim("t", T0, "tok")
    ledger.record_part("t", 0, {"id": "1", "url": "u"}, T0)

    ledger.record_part("t", 0, {"url": "u", "id": "1"}, T1)  # same result: no-op
    with pytest.raises(PartConflict, match="part 0 of post 't'"):
        ledger.record_part("t", 0, {"id": "2"}, T1)

    assert ledger.get("t").parts == {0: {"id": "1", "url": "u"}}


@pytest.mark.parametrize("index", [-1, 2, 99])
def test_a_part_index_must_exist(ledger: Ledger, index: int) -> None:
    ledger.sync_plan([entry("t", parts=2)], T0)
    assert ledger.claim("t", T0, "tok")
    with pytest.raises(ValueError, match="has 2 part"):
        ledger.record_part("t", index, {"id": "x"}, T0)


def test_publishing_needs_every_part(ledger: Ledger) -> None:
    ledger.sync_plan([entry("t", parts=3)], T0)
    assert ledger.claim("t", T0, "tok")
    ledger.record_part("t", 0, {"id": "1"}, T0)

    with pytest.raises(IllegalTransition, match=r"part\(s\) \[1, 2\] are not recorded"):
        ledger.mark_published("t", None, T1)
    with pytest.raises(ValueError, match="has 3 part"):
        ledger.mark_published("t", [{"id": "1"}, {"id": "2"}], T1)
    assert ledger.get("t").state is State.CLAIMED


def test_publishing_with_a_result_that_contradicts_a_recorded_part_changes_nothing(ledger: Ledger) -> None:
    ledger.sync_plan([entry("t", parts=2)], T0)
    assert ledger.claim("t", T0, "tok")
    ledger.record_part("t", 0, {"id": "1"}, T0)

    with pytest.raises(PartConflict):
        ledger.mark_published("t", [{"id": "other"}, {"id": "2"}], T1)

    row = ledger.get("t")
    assert (row.state, row.parts) == (State.CLAIMED, {0: {"id": "1"}})  # part 1 was rolled back too


def test_row_part_helpers() -> None:
    row = Row(
        id="x",
        account="a",
        platform="bluesky",
        rule="r",
        due_at=T0,
        content_hash="h",
        part_count=4,
        state=State.CLAIMED,
        attempts=0,
        next_attempt_at=T0,
        last_error=None,
        claimed_at=T0,
        claim_token="t",
        published_at=None,
        result=None,
        created_at=T0,
        updated_at=T0,
        parts={0: {}, 2: {}},
    )
    assert row.missing_parts == (1, 3)
    assert row.next_part == 1


# -- sync_plan -----------------------------------------------------------------------------------------------


def test_sync_inserts_new_posts_as_planned(ledger: Ledger) -> None:
    report = ledger.sync_plan([entry("b", due=T1), entry("a", due=T0, parts=3)], T0)

    assert report == SyncReport(inserted=("b", "a"))
    row = ledger.get("a")
    assert (row.state, row.attempts, row.part_count, row.content_hash) == (State.PLANNED, 0, 3, "h1")
    assert (row.due_at, row.next_attempt_at, row.created_at, row.updated_at) == (T0, T0, T0, T0)
    assert (row.account, row.platform, row.rule) == ("mastodon-en", "mastodon", "countdown")


def test_sync_of_the_same_plan_changes_nothing(ledger: Ledger) -> None:
    plan = [entry("a"), entry("b", due=T1)]
    ledger.sync_plan(plan, T0)
    before = [ledger.get("a"), ledger.get("b")]

    assert ledger.sync_plan(plan, T2) == SyncReport(unchanged=2)
    assert [ledger.get("a"), ledger.get("b")] == before


@pytest.mark.parametrize(
    "changed",
    [
        entry("p", due=T2),
        entry("p", digest="h2"),
        entry("p", parts=2),
        entry("p", account="mastodon-de"),
        entry("p", rule="other-rule"),
        entry("p", platform="bluesky"),
    ],
)
def test_sync_updates_a_changed_planned_post(ledger: Ledger, changed: PlanEntry) -> None:
    ledger.sync_plan([entry("p")], T0)

    assert ledger.sync_plan([changed], T1) == SyncReport(updated=("p",))

    row = ledger.get("p")
    assert (row.due_at, row.content_hash, row.part_count, row.account, row.rule, row.platform) == (
        changed.due_at,
        changed.content_hash,
        changed.part_count,
        changed.account,
        changed.rule,
        changed.platform,
    )
    assert (row.state, row.next_attempt_at, row.created_at, row.updated_at) == (
        State.PLANNED,
        changed.due_at,
        T0,
        T1,
    )


def test_sync_keeps_the_backoff_of_a_post_waiting_for_a_retry(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p", due=T0)], T0)
    assert ledger.claim("p", T0, "tok")
    backoff = T0 + timedelta(minutes=30)
    ledger.schedule_retry("p", "503", backoff, T0)

    ledger.sync_plan([entry("p", due=T1, digest="h2")], T1)
    assert ledger.get("p").next_attempt_at == backoff  # moved earlier: the backoff still holds
    later = T0 + timedelta(hours=2)
    ledger.sync_plan([entry("p", due=later, digest="h2")], T1)
    row = ledger.get("p")
    assert (row.next_attempt_at, row.attempts, row.last_error) == (later, 1, "503")


def test_sync_cancels_planned_posts_that_left_the_plan(ledger: Ledger) -> None:
    ledger.sync_plan([entry("a"), entry("b")], T0)

    report = ledger.sync_plan([entry("a")], T1)

    assert report == SyncReport(cancelled=("b",), unchanged=1)
    row = ledger.get("b")
    assert (row.state, row.last_error, row.updated_at) == (State.CANCELLED, CANCELLED_REASON, T1)
    assert [r.id for r in ledger.due(T1)] == ["a"]


def test_sync_revives_a_cancelled_post_that_is_back(ledger: Ledger) -> None:
    ledger.sync_plan([entry("a"), entry("b")], T0)
    ledger.sync_plan([entry("a")], T0)

    report = ledger.sync_plan([entry("a"), entry("b", digest="h2")], T1)

    assert report == SyncReport(revived=("b",), unchanged=1)
    row = ledger.get("b")
    assert (row.state, row.last_error, row.content_hash) == (State.PLANNED, None, "h2")
    assert ledger.sync_plan([entry("a"), entry("b", digest="h2")], T1) == SyncReport(unchanged=2)


@pytest.mark.parametrize(
    "finished", [State.PUBLISHED, State.FAILED, State.EXPIRED, State.SKIPPED, State.CLAIMED]
)
def test_sync_never_touches_claimed_or_finished_posts(ledger: Ledger, finished: State) -> None:
    put_in(ledger, finished)
    before = ledger.get("p")

    same = ledger.sync_plan([entry("p", parts=2), entry("other")], T1)
    changed = ledger.sync_plan([entry("p", parts=2, digest="new", due=T2), entry("other")], T1)
    dropped = ledger.sync_plan([entry("other")], T1)

    assert same == SyncReport(unchanged=2)
    assert changed == SyncReport(ignored=("p",), unchanged=1)
    if finished is State.CLAIMED:
        assert dropped == SyncReport(ignored=("p",), unchanged=1)
    else:
        assert dropped == SyncReport(unchanged=1)  # history is not the plan's business
    assert ledger.get("p") == before


def test_sync_never_changes_or_cancels_a_thread_with_published_parts(ledger: Ledger) -> None:
    ledger.sync_plan([entry("t", parts=2)], T0)
    assert ledger.claim("t", T0, "tok")
    ledger.record_part("t", 0, {"id": "1"}, T0)
    ledger.schedule_retry("t", "503", T1, T0)
    before = ledger.get("t")

    assert ledger.sync_plan([entry("t", parts=2, digest="new")], T1) == SyncReport(ignored=("t",))
    assert ledger.sync_plan([], T1) == SyncReport(ignored=("t",))
    assert ledger.get("t") == before


def test_sync_cancels_only_within_its_window(ledger: Ledger) -> None:
    days = [T0 + timedelta(days=n) for n in range(5)]
    ledger.sync_plan([entry(f"d{n}", due=day) for n, day in enumerate(days)], T0)

    report = ledger.sync_plan([entry("d2", due=days[2])], T0, start=days[1], end=days[3])

    assert report == SyncReport(cancelled=("d1",), unchanged=1)
    assert states(ledger, "d0", "d1", "d2", "d3", "d4") == [
        State.PLANNED,
        State.CANCELLED,
        State.PLANNED,
        State.PLANNED,
        State.PLANNED,
    ]
    assert ledger.sync_plan([], T0, start=days[4]).cancelled == ("d4",)
    assert ledger.sync_plan([], T0, end=days[1]).cancelled == ("d0",)


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ([entry("a"), entry("a", digest="h2")], "holds the id 'a' twice"),
        ([entry("")], "non-empty id"),
        ([entry("a", parts=0)], "part_count must be at least 1"),
    ],
)
def test_sync_refuses_a_bad_plan_and_changes_nothing(
    ledger: Ledger, plan: list[PlanEntry], message: str
) -> None:
    ledger.sync_plan([entry("z")], T0)
    with pytest.raises(ValueError, match=message):
        ledger.sync_plan(plan, T1)
    assert ledger.counts_by_state()[State.PLANNED] == 1
    assert ledger.get("z").state is State.PLANNED


def test_sync_accepts_any_iterable(ledger: Ledger) -> None:
    report = ledger.sync_plan((entry(f"g{n}") for n in range(3)), T0)
    assert report.inserted == ("g0", "g1", "g2")


def test_sync_of_50000_entries_inserts_keeps_and_updates_them(ledger: Ledger) -> None:
    """A re-plan at campaign scale is right (its speed is measured by ``bench/bench_ledger.py``, not timed here)."""
    plan = [entry(f"rule:acct:{n:06d}", due=T0 + timedelta(minutes=n)) for n in range(50_000)]

    inserted = ledger.sync_plan(plan, T0)
    same = ledger.sync_plan(plan, T0)
    changed_plan = [entry(e.id, due=e.due_at, digest="h2") for e in plan[:25_000]]
    changed = ledger.sync_plan(changed_plan, T1)

    assert len(inserted.inserted) == 50_000
    assert same.unchanged == 50_000
    assert (len(changed.updated), len(changed.cancelled)) == (25_000, 25_000)


# A model of the ledger for the property test: plans come and go, some posts get published on the way.
PLAN_IDS = [f"p{n}" for n in range(6)]
plans = st.dictionaries(
    st.sampled_from(PLAN_IDS), st.tuples(st.integers(0, 3), st.sampled_from(["h1", "h2"]))
)
steps = st.lists(
    st.one_of(st.tuples(st.just("sync"), plans), st.tuples(st.just("publish"), st.sampled_from(PLAN_IDS)))
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_sync_plan_matches_a_model(backend: Backend, steps: list[tuple[str, object]]) -> None:
    model: dict[str, tuple[State, tuple[int, str]]] = {}
    with backend.fresh(T0) as ledger:
        for kind, arg in steps:
            if kind == "sync":
                assert isinstance(arg, dict)
                plan = [entry(pid, due=T0 + timedelta(hours=h), digest=d) for pid, (h, d) in arg.items()]
                ledger.sync_plan(plan, T1)
                for pid, (state, content) in list(model.items()):
                    if pid not in arg and state is State.PLANNED:
                        model[pid] = (State.CANCELLED, content)
                for pid, content in arg.items():
                    state, old = model.get(pid, (State.PLANNED, content))
                    model[pid] = (
                        (State.PLANNED, content)
                        if state in (State.PLANNED, State.CANCELLED)
                        else (state, old)
                    )
            else:
                assert isinstance(arg, str)
                claimed = ledger.claim(arg, T1, "tok") if arg in model else False
                assert claimed is (model.get(arg, (None,))[0] is State.PLANNED)
                if claimed:
                    ledger.mark_published(arg, [{"id": arg}], T1)
                    model[arg] = (State.PUBLISHED, model[arg][1])
            for pid, (state, (hours, digest)) in model.items():
                row = ledger.get(pid)
                assert (row.state, row.due_at, row.content_hash) == (
                    state,
                    T0 + timedelta(hours=hours),
                    digest,
                )
            counts = ledger.counts_by_state()
            assert sum(counts.values()) == len(model)


# -- due, next_due_at, history, counts -----------------------------------------------------------------------


def test_due_orders_by_due_time_then_id_and_honours_the_limit(ledger: Ledger) -> None:
    ledger.sync_plan(
        [entry("c", due=T0), entry("a", due=T1), entry("b", due=T0), entry("later", due=T2)],
        T0,
    )

    assert [row.id for row in ledger.due(T1)] == ["b", "c", "a"]
    assert [row.id for row in ledger.due(T1, limit=2)] == ["b", "c"]
    assert [row.id for row in ledger.due(T0 - timedelta(seconds=1))] == []
    assert ledger.next_due_at() == T0


def test_due_skips_claimed_and_finished_posts(ledger: Ledger) -> None:
    ledger.sync_plan([entry("a"), entry("b"), entry("c")], T0)
    assert ledger.claim("a", T0, "tok")
    ledger.mark_skipped("b", "duplicate", T0)

    assert [row.id for row in ledger.due(T2)] == ["c"]


def test_next_due_at_is_none_without_planned_posts(ledger: Ledger) -> None:
    assert ledger.next_due_at() is None
    ledger.sync_plan([entry("a")], T0)
    assert ledger.claim("a", T0, "tok")
    assert ledger.next_due_at() is None


def test_history_selects_by_due_window_account_and_state(ledger: Ledger) -> None:
    ledger.sync_plan(
        [
            entry("m1", due=T0, account="mastodon-en"),
            entry("b1", due=T0, account="bluesky-en", platform="bluesky"),
            entry("m2", due=T1, account="mastodon-en"),
            entry("m3", due=T2, account="mastodon-en"),
        ],
        T0,
    )
    assert ledger.claim("m1", T0, "tok")
    ledger.mark_published("m1", [{"id": "1"}], T0)

    assert [row.id for row in ledger.history(T0, T2)] == ["b1", "m1", "m2"]
    assert [row.id for row in ledger.history(T0, T2, account="mastodon-en")] == ["m1", "m2"]
    assert [row.id for row in ledger.history(T0, T2 + timedelta(minutes=1), states=[State.PLANNED])] == [
        "b1",
        "m2",
        "m3",
    ]
    assert [row.id for row in ledger.history(T0, T2, states={State.PUBLISHED, State.FAILED})] == ["m1"]
    assert ledger.history(T0, T2, states=[]) == []
    assert ledger.history(T1, T1) == []


def test_counts_by_state_lists_every_state(ledger: Ledger) -> None:
    assert ledger.counts_by_state() == dict.fromkeys(State, 0)
    ledger.sync_plan([entry("a"), entry("b"), entry("c")], T0)
    assert ledger.claim("a", T0, "tok")
    ledger.mark_expired("b", "late", T0)

    assert ledger.counts_by_state() == {
        **dict.fromkeys(State, 0),
        State.PLANNED: 1,
        State.CLAIMED: 1,
        State.EXPIRED: 1,
    }


# -- pauses --------------------------------------------------------------------------------------------------


def test_a_paused_account_is_neither_due_nor_claimable(ledger: Ledger) -> None:
    ledger.sync_plan([entry("m", account="mastodon-en"), entry("b", account="bluesky-en", due=T1)], T0)

    ledger.pause_account("mastodon-en", "401 from the server", T0)

    assert ledger.paused_accounts() == {"mastodon-en": "401 from the server"}
    assert [row.id for row in ledger.due(T2)] == ["b"]
    assert ledger.next_due_at() == T1
    assert ledger.claim("m", T0, "tok") is False
    assert ledger.get("m").state is State.PLANNED

    ledger.pause_account("mastodon-en", "still 401", T1)
    assert ledger.paused_accounts() == {"mastodon-en": "still 401"}

    assert ledger.resume_account("mastodon-en") is True
    assert ledger.resume_account("mastodon-en") is False
    assert ledger.paused_accounts() == {}
    assert ledger.claim("m", T0, "tok") is True


def test_the_global_pause_stops_everything(ledger: Ledger) -> None:
    ledger.sync_plan([entry("a"), entry("b")], T0)
    assert (ledger.is_paused(), ledger.pause_reason()) == (False, None)

    ledger.set_paused(True, "campaign on hold", T0)

    assert (ledger.is_paused(), ledger.pause_reason()) == (True, "campaign on hold")
    assert ledger.due(T2) == []
    assert ledger.next_due_at() is None
    assert ledger.claim("a", T0, "tok") is False

    ledger.set_paused(False, None, T1)

    assert (ledger.is_paused(), ledger.pause_reason()) == (False, None)
    assert ledger.claim("a", T1, "tok") is True


def test_a_pause_needs_a_reason(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="reason"):
        ledger.set_paused(True, None, T0)
    with pytest.raises(ValueError, match="reason"):
        ledger.pause_account("a", "", T0)
    assert not ledger.is_paused()
    assert ledger.paused_accounts() == {}


def test_a_pause_set_by_another_process_stops_claims_at_once(backend: Backend) -> None:
    with backend.open(T0) as daemon, backend.open(T0) as cli:
        daemon.sync_plan([entry("a")], T0)
        cli.pause_account("mastodon-en", "operator", T0)
        assert daemon.claim("a", T0, "daemon") is False


# -- PlanEntry from a PlannedPost ----------------------------------------------------------------------------


def planned_post(*texts: str) -> PlannedPost:
    return PlannedPost(
        id="kobane-countdown:kobane-day:mastodon-en:2027-10-25T10:00",
        at=datetime(2027, 10, 25, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        rule="kobane-countdown",
        account="mastodon-en",
        platform="mastodon",
        lang="en",
        parts=tuple(
            Part(text=text, length=len(text), limit=500, payload={"status": text, "visibility": "public"})
            for text in texts
        ),
        message_set="countdown",
        variant=0,
    )


def test_plan_entry_from_a_planned_post() -> None:
    post = planned_post("One day to go.", "Join us.")

    got = PlanEntry.from_post(post)

    assert got == PlanEntry(
        id="kobane-countdown:kobane-day:mastodon-en:2027-10-25T10:00",
        account="mastodon-en",
        platform="mastodon",
        rule="kobane-countdown",
        due_at=post.at,
        content_hash=content_hash(post),
        part_count=2,
    )
    assert len(got.content_hash) == 64


def test_content_hash_tells_a_changed_text() -> None:
    assert content_hash(planned_post("a", "b")) == content_hash(planned_post("a", "b"))
    assert content_hash(planned_post("a", "b")) != content_hash(planned_post("a", "c"))
    assert content_hash(planned_post("a", "b")) != content_hash(planned_post("ab"))


def test_a_due_time_in_another_zone_is_stored_in_utc(ledger: Ledger) -> None:
    ledger.sync_plan([PlanEntry.from_post(planned_post("x"))], T0)
    row = ledger.get("kobane-countdown:kobane-day:mastodon-en:2027-10-25T10:00")
    assert row.due_at == datetime(2027, 10, 25, 10, 0, tzinfo=UTC)
    assert row.due_at.utcoffset() == timedelta(0)


# -- concurrency ---------------------------------------------------------------------------------------------


def test_two_connections_never_claim_one_post(backend: Backend) -> None:
    ids = [f"p{n:03d}" for n in range(200)]
    with backend.open(T0) as first, backend.open(T0) as second:
        first.sync_plan([entry(pid) for pid in ids], T0)
        won: dict[str, list[str]] = {"first": [], "second": []}
        barrier = threading.Barrier(2)

        def grab(name: str, ledger: Ledger) -> None:
            barrier.wait()
            for pid in ids:
                if ledger.claim(pid, T0, name):
                    won[name].append(pid)

        threads = [
            threading.Thread(target=grab, args=("first", first)),
            threading.Thread(target=grab, args=("second", second)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert set(won["first"]).isdisjoint(won["second"])
        assert sorted(won["first"] + won["second"]) == ids
        for name, taken in won.items():
            assert {first.get(pid).claim_token for pid in taken} <= {name}


def test_threads_may_share_one_ledger(ledger: Ledger) -> None:
    ids = [f"p{n:03d}" for n in range(100)]
    ledger.sync_plan([entry(pid) for pid in ids], T0)
    won: list[tuple[str, str]] = []
    lock = threading.Lock()

    def grab(name: str) -> None:
        for pid in ids:
            if ledger.claim(pid, T0, name):
                with lock:
                    won.append((pid, name))

    threads = [threading.Thread(target=grab, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(pid for pid, _ in won) == ids


# --------------------------------------------------------------------------------------------- moving a ledger


def _busy_ledger(ledger: Ledger) -> None:
    """Posts in every state a move must carry: published threads, failures, claims, unknown outcomes, pauses."""
    ledger.sync_plan([entry(f"p{n}", T0 + timedelta(minutes=n), parts=2) for n in range(7)], T0)
    ledger.claim("p0", T0, "node-a:1:x")
    ledger.mark_published("p0", [{"id": "1", "url": "u1"}, {"id": "2", "url": "u2"}], T1, token="node-a:1:x")
    ledger.claim("p1", T0, "node-a:1:x")
    ledger.record_part("p1", 0, {"id": "3", "uri": "at://x/3"}, T1, token="node-a:1:x")
    ledger.schedule_retry("p1", "server error 502", T2, T1, token="node-a:1:x")
    ledger.claim("p2", T0, "node-a:1:x")
    ledger.mark_failed("p2", "rejected: too long", T1, token="node-a:1:x")
    ledger.mark_expired("p3", "missed its window", T1)
    ledger.claim("p4", T0, "node-a:1:x")
    ledger.mark_unknown("p4", "timed out", T1, check_at=T2, token="node-a:1:x")
    ledger.claim("p5", T1, "node-b:2:y")
    ledger.pause_account("bluesky-ku", "credentials rejected", T1)


def test_export_and_import_carry_every_post_exactly(backend: Backend) -> None:
    with backend.open(T0) as source, backend.fresh(T0) as target:
        _busy_ledger(source)
        assert target.import_rows(source.export_rows()) == 7
        assert list(target.export_rows()) == list(source.export_rows())
        assert target.get("p1").next_part == 1
        assert target.unknown_due(T2)[0].id == "p4"


def test_import_refuses_an_id_the_ledger_has_and_changes_nothing(backend: Backend) -> None:
    with backend.open(T0) as source, backend.fresh(T0) as target:
        _busy_ledger(source)
        target.sync_plan([entry("p9", T0)], T0)
        target.import_rows(row for row in source.export_rows() if row.id == "p0")
        with pytest.raises(LedgerError, match="'p0'"):
            target.import_rows(source.export_rows())
        assert sorted(row.id for row in target.export_rows()) == ["p0", "p9"]


def test_export_reads_in_batches_in_due_order(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    import amplifier.delivery.ledger.sql_records as records

    monkeypatch.setattr(records, "EXPORT_BATCH", 3)  # the one implementation both backends run
    with backend.open(T0) as ledger:
        ledger.sync_plan([entry(f"p{n:02d}", T0 + timedelta(minutes=n % 4)) for n in range(10)], T0)
        ids = [row.id for row in ledger.export_rows()]
    assert ids == [row for _, row in sorted((n % 4, f"p{n:02d}") for n in range(10))]


def test_remote_ids_are_every_recorded_part_of_the_accounts_other_posts(ledger: Ledger) -> None:
    ledger.sync_plan(
        [
            entry("a", parts=2),
            entry("b", due=T1),
            entry("c", due=T1, parts=2),
            entry("other", account="mastodon-de"),
        ],
        T0,
    )
    for post_id in ("a", "c", "other"):
        assert ledger.claim(post_id, T1, "tok")
    ledger.mark_published("a", [{"id": "10"}, {"id": "11"}], T1)
    ledger.record_part("c", 0, {"id": "30"}, T1)  # a thread cut short: its first part counts too
    ledger.mark_published("other", [{"id": "99"}], T1)

    assert ledger.remote_ids("mastodon-en") == {"10", "11", "30"}
    assert ledger.remote_ids("mastodon-en", except_post="c") == {"10", "11"}
    assert ledger.remote_ids("mastodon-de") == {"99"}
    assert ledger.remote_ids("nobody") == frozenset()


# -- operator actions on published posts ------------------------------------------------------------------


def test_gate_changes_are_recorded_per_post_oldest_first_and_seen_by_another_connection(
    backend: Backend,
) -> None:
    with backend.open(T0) as ledger, backend.open(T0) as other:
        ledger.sync_plan([entry("p"), entry("q", account="bluesky-en", platform="bluesky")], T0)
        later = GateChange(
            "q", "bluesky-en", "ana@laptop", T2, "nobody", "nobody", "done", "threadgate on 3k"
        )
        first = GateChange(
            "p", "mastodon-en", "ana@laptop", T1, None, "nobody", "done", "status 1: quotes nobody"
        )
        failed = GateChange(
            "p", "mastodon-en", "bo", T2, "nobody", None, "failed", "token=abcdefabcdefabcdefabcdef rejected"
        )
        ledger.record_gate_change(later)
        ledger.record_gate_change(first)
        ledger.record_gate_change(failed)

        assert other.gate_changes("q") == [later]
        mine = other.gate_changes("p")
        assert mine[0] == first
        assert (mine[1].by, mine[1].at, mine[1].replies, mine[1].quotes, mine[1].outcome) == (
            "bo",
            T2,
            "nobody",
            None,
            "failed",
        )
        assert "abcdefabcdefabcdefabcdef" not in mine[1].detail  # redacted like every stored reason
        assert [change.post_id for change in other.gate_changes()] == ["p", "q", "p"]


def test_a_gate_change_needs_a_known_post_an_outcome_and_an_aware_time(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p")], T0)
    with pytest.raises(UnknownPost):
        ledger.record_gate_change(GateChange("nope", "a", "me", T0, "nobody", None, "done", ""))
    with pytest.raises(ValueError, match="outcome"):
        ledger.record_gate_change(GateChange("p", "a", "me", T0, "nobody", None, "maybe", ""))
    with pytest.raises(ValueError, match="aware"):
        ledger.record_gate_change(
            GateChange("p", "a", "me", datetime(2027, 1, 1), "nobody", None, "done", "")
        )
    assert ledger.gate_changes() == []


def test_a_group_keeps_each_change_atomic_and_commits_them_together(backend: Backend) -> None:
    ledger = backend.open(T0)
    ledger.sync_plan([entry("a"), entry("b"), entry("c", parts=2)], T0)
    assert ledger.claim("c", T0, "daemon-1")
    ledger.record_part("c", 1, {"id": "2"}, T0)

    results = ledger.group(
        [
            lambda: ledger.claim("a", T1, "daemon-1"),
            lambda: ledger.claim("nope", T1, "daemon-1"),
            # part 0 is written, then part 1 conflicts: the change leaves nothing behind
            lambda: ledger.mark_published("c", [{"id": "1"}, {"id": "other"}], T1, token="daemon-1"),
            lambda: ledger.claim("b", T1, "daemon-1"),
            lambda: ledger.claim("b", T1, "daemon-1"),
        ]
    )

    assert results[0] is True
    assert isinstance(results[1], UnknownPost)
    assert isinstance(results[2], PartConflict)
    assert results[3:] == [True, False]
    ledger.close()
    reopened = backend.open(T0)  # committed: another connection sees every change that stood
    assert states(reopened, "a", "b", "c") == [State.CLAIMED, State.CLAIMED, State.CLAIMED]
    assert reopened.get("c").parts == {1: {"id": "2"}}
    reopened.close()


def test_an_empty_group_changes_nothing(ledger: Ledger) -> None:
    assert ledger.group([]) == []
