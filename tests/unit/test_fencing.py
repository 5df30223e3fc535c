"""Fencing in the delivery path and the daemon: whoever reconciles or finishes a post another process claimed
takes the claim over first, so the old holder (paused past its lease, or cut off) can record nothing after."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from amplifier.delivery.deliver import Delivery, Retries
from amplifier.delivery.ledger import ClaimMismatch, Ledger, PlanEntry, State, open_ledger
from amplifier.delivery.reconcile import claim_holder_alive
from amplifier.publish.base import TransientError
from tests.unit.test_deliver import DUE, NOW, POST, Stub

OLD = "far-host:4242:daemon-0123"
LEASE = timedelta(seconds=8)


class FailingLookup(Stub):
    def lookup(self, post: object) -> dict[int, object]:  # type: ignore[override]
        raise TransientError("the server is down")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(tmp_path, DUE) as opened:
        opened.sync_plan([PlanEntry.from_post(replace(POST, platform="bluesky"))], DUE)
        yield opened


def test_a_reconciling_node_takes_the_claim_over_so_the_old_holder_is_fenced_off(ledger: Ledger) -> None:
    assert ledger.claim(POST.id, DUE, OLD, lease_until=DUE + LEASE)
    row = ledger.get(POST.id)
    delivery = Delivery(
        ledger, lambda account: FailingLookup(platform="bluesky"), token="new", retries=Retries()
    )

    outcome = delivery.reconcile(row, POST, NOW)

    assert outcome.outcome == "unknown"  # the lookup failed: it stays claimed, now by the reconciler
    assert ledger.get(POST.id).claim_token == "new"
    with pytest.raises(ClaimMismatch):  # the old holder wakes up with its answer: refused
        ledger.mark_published(POST.id, [{"id": "1"}], NOW, token=OLD)
    assert ledger.get(POST.id).state == State.CLAIMED


def test_a_claim_taken_over_meanwhile_is_left_to_its_new_holder(ledger: Ledger) -> None:
    assert ledger.claim(POST.id, DUE, OLD)
    stale = ledger.get(POST.id)
    assert ledger.take_over(POST.id, OLD, "third", NOW)
    delivery = Delivery(ledger, lambda account: Stub(platform="bluesky"), token="new", retries=Retries())

    outcome = delivery.reconcile(stale, POST, NOW)

    assert (outcome.outcome, ledger.get(POST.id).claim_token) == ("unknown", "third")


def test_a_lease_keeps_a_claim_of_another_machine_alive_until_it_passes(ledger: Ledger) -> None:
    assert ledger.claim(POST.id, DUE, OLD, lease_until=DUE + LEASE)
    row = ledger.get(POST.id)
    assert claim_holder_alive(row, DUE + LEASE - timedelta(seconds=1))
    assert not claim_holder_alive(row, DUE + LEASE)
    assert not claim_holder_alive(row, DUE, own_token=OLD)
    # Without a lease, a claim of another machine counts as abandoned at once (as before leases).
    assert not claim_holder_alive(replace(row, lease_until=None), DUE)


def test_a_leased_claim_of_a_process_of_this_machine_that_is_gone_is_abandoned_at_once(
    ledger: Ledger,
) -> None:
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    token = f"{socket.gethostname()}:{dead}:daemon-dead"
    assert ledger.claim(POST.id, DUE, token, lease_until=DUE + LEASE)
    assert not claim_holder_alive(ledger.get(POST.id), DUE)
    alive = f"{socket.gethostname()}:{os.getppid()}:daemon-alive"
    assert claim_holder_alive(replace(ledger.get(POST.id), claim_token=alive), DUE)
