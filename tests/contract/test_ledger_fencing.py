"""The ledger's fencing and leases (both backends): a claim taken over from its holder is the new holder's alone.

A node that was paused (SIGSTOP, a long GC, a partition) past its claim's lease may wake up with the answer of a
request it sent before: the post may since have been taken over by another node, reconciled and claimed again.
Whatever the old holder then asks of the ledger with its token raises :class:`ClaimMismatch`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from amplifier.delivery.ledger import ClaimMismatch, IllegalTransition, Ledger, State, UnknownPost
from tests.contract.conftest import T0, T1, T2, Backend, entry

OLD = "host-a:100:daemon-aaaa"
NEW = "host-b:200:daemon-bbbb"
PART = {"id": "1", "url": "https://example.test/1"}


def claimed(ledger: Ledger, *, parts: int = 1, lease: timedelta | None = timedelta(seconds=8)) -> None:
    ledger.sync_plan([entry(parts=parts)], T0)
    assert ledger.claim("p", T0, OLD, lease_until=None if lease is None else T0 + lease)


def test_a_claim_records_its_lease(ledger: Ledger) -> None:
    claimed(ledger)
    row = ledger.get("p")
    assert (row.state, row.claim_token, row.lease_until) == (State.CLAIMED, OLD, T0 + timedelta(seconds=8))
    ledger.sync_plan([entry("q")], T0)
    assert ledger.claim("q", T0, NEW)
    assert ledger.get("q").lease_until is None


def test_take_over_swaps_the_token_and_keeps_when_the_attempt_began(ledger: Ledger) -> None:
    claimed(ledger)
    ledger.mark_unknown("p", "timed out", T1, check_at=T1, token=OLD)
    before = ledger.get("p")

    assert ledger.take_over("p", OLD, NEW, T2, lease_until=T2 + timedelta(seconds=8))

    row = ledger.get("p")
    assert (row.state, row.claim_token, row.lease_until) == (State.CLAIMED, NEW, T2 + timedelta(seconds=8))
    assert (row.claimed_at, row.unknown_since, row.attempts) == (
        before.claimed_at,
        before.unknown_since,
        before.attempts,
    )


ACTIONS: dict[str, Callable[[Ledger, str], object]] = {
    "record_part": lambda ledger, token: ledger.record_part("p", 0, PART, T2, token=token),
    "mark_published": lambda ledger, token: ledger.mark_published("p", [PART, PART], T2, token=token),
    "mark_failed": lambda ledger, token: ledger.mark_failed("p", "gone", T2, token=token),
    "schedule_retry": lambda ledger, token: ledger.schedule_retry("p", "again", T2, T2, token=token),
    "release": lambda ledger, token: ledger.release("p", T2, token=token),
    "mark_unknown": lambda ledger, token: ledger.mark_unknown("p", "lost", T2, check_at=T2, token=token),
    "mark_expired": lambda ledger, token: ledger.mark_expired("p", "late", T2, token=token),
    "mark_skipped": lambda ledger, token: ledger.mark_skipped("p", "off", T2, token=token),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_after_a_take_over_the_old_holder_can_record_nothing(ledger: Ledger, action: str) -> None:
    claimed(ledger, parts=2)
    assert ledger.take_over("p", OLD, NEW, T1)

    with pytest.raises(ClaimMismatch):
        ACTIONS[action](ledger, OLD)

    row = ledger.get("p")
    assert (row.state, row.claim_token, dict(row.parts)) == (State.CLAIMED, NEW, {})
    ACTIONS[action](ledger, NEW)  # the new holder can


def test_an_old_holder_that_wakes_after_the_post_was_released_and_retaken_is_refused(ledger: Ledger) -> None:
    claimed(ledger)
    assert ledger.take_over("p", OLD, NEW, T1)
    ledger.release("p", T1, token=NEW, absent=True)
    with pytest.raises(IllegalTransition):
        ledger.mark_published("p", [PART], T2, token=OLD)
    assert ledger.claim("p", T2, "host-c:300:daemon-cccc")
    with pytest.raises(ClaimMismatch):
        ledger.mark_published("p", [PART], T2, token=OLD)
    assert ledger.get("p").state == State.CLAIMED


def test_take_over_is_a_compare_and_swap(ledger: Ledger) -> None:
    claimed(ledger)
    assert not ledger.take_over("p", "host-x:1:someone-else", NEW, T1)
    assert ledger.get("p").claim_token == OLD
    assert ledger.take_over("p", OLD, NEW, T1)
    assert not ledger.take_over("p", OLD, "host-c:300:daemon-cccc", T1)  # the old token is gone
    assert ledger.get("p").claim_token == NEW
    ledger.sync_plan([entry("p"), entry("planned")], T0)
    assert not ledger.take_over("planned", OLD, NEW, T1)  # nothing to take over
    assert ledger.get("planned").state == State.PLANNED
    with pytest.raises(UnknownPost):
        ledger.take_over("nope", OLD, NEW, T1)
    with pytest.raises(ValueError, match="non-empty"):
        ledger.take_over("p", NEW, "", T1)


def _race(ledgers: list[Ledger], holder: str, tokens: list[str]) -> list[str]:
    """Each ledger (a connection of its own) takes the claim of ``holder`` over at once: who won."""
    barrier = threading.Barrier(len(ledgers))
    won: list[str] = []
    lock = threading.Lock()

    def grab(ledger: Ledger, token: str) -> None:
        barrier.wait()
        if ledger.take_over("p", holder, token, T1):
            with lock:
                won.append(token)

    threads = [threading.Thread(target=grab, args=pair) for pair in zip(ledgers, tokens, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won


def test_two_nodes_taking_over_one_claim_at_once_one_wins(backend: Backend) -> None:
    with backend.open(T0) as setup:
        claimed(setup)
    for attempt in range(5):
        with backend.open(T0) as first:
            holder = first.get("p").claim_token
        assert holder is not None
        ledgers = [backend.open(T0) for _ in range(3)]
        won = _race(ledgers, holder, [f"host-{n}:{n}:t-{attempt}-{n}" for n in range(3)])
        for ledger in ledgers:
            ledger.close()
        assert len(won) == 1
        with backend.open(T0) as check:
            assert check.get("p").claim_token == won[0]


def test_extend_lease_runs_on_the_holders_claims_only_and_never_shortens(ledger: Ledger) -> None:
    ledger.sync_plan([entry("a"), entry("b"), entry("c")], T0)
    assert ledger.claim("a", T0, OLD, lease_until=T1)
    assert ledger.claim("b", T0, OLD)  # without a lease: gains one
    assert ledger.claim("c", T0, NEW, lease_until=T1)

    assert ledger.extend_lease(OLD, T2, T1) == 2
    assert [ledger.get(post_id).lease_until for post_id in "abc"] == [T2, T2, T1]
    assert ledger.extend_lease(OLD, T1, T1) == 2  # an older extension arriving late shortens nothing
    assert ledger.get("a").lease_until == T2

    ledger.mark_published("a", [PART], T1, token=OLD)
    assert ledger.extend_lease(OLD, T2 + timedelta(seconds=8), T2) == 1
    assert ledger.extend_lease("host-z:9:nobody", T2, T2) == 0


def test_the_lease_is_kept_when_a_ledger_is_moved(backend: Backend) -> None:
    with backend.open(T0) as source:
        claimed(source)
        rows = list(source.export_rows())
    with backend.fresh(T0) as target:
        assert target.import_rows(rows) == 1
        assert target.get("p").lease_until == T0 + timedelta(seconds=8)
