"""The lease job of an idle daemon writes nothing (see :mod:`amplifier.daemon.leases`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from amplifier.delivery.ledger import State
from tests.unit.test_daemon import Harness, at, make, once

__all__ = ["make"]  # the fixture


def spy_extensions(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``extend_lease`` the daemon's ledger is asked for, by token."""
    calls: list[str] = []
    real = harness.ledger.extend_lease

    def extend_lease(token: str, lease_until: datetime, now: datetime) -> int:
        calls.append(token)
        return real(token, lease_until, now)

    monkeypatch.setattr(harness.ledger, "extend_lease", extend_lease)
    return calls


def test_an_idle_daemon_extends_no_lease_and_its_lease_job_sleeps_until_it_may_claim(
    make: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = make(once("o", "2027-10-20T09:00", accounts="[masto]"), at("2027-10-20T08:00"))
    daemon = harness.daemon
    calls = spy_extensions(harness, monkeypatch)
    woken: list[str] = []
    daemon.sleep_leases = lambda: woken.append("sleep")
    daemon.wake_leases = lambda: woken.append("wake")
    now = at("2027-10-20T08:30")

    daemon.extend_leases(now)  # idle: holds no claim
    assert calls == []
    assert not daemon.may_hold_claims

    post_id = "o:masto:2027-10-20T09:00"
    with daemon.claiming():  # an operation that leaves its claim behind (say, an unknown outcome)
        assert woken == ["wake"]
        assert harness.ledger.claim(post_id, now, daemon.token)
    daemon.extend_leases(now)
    assert calls == [daemon.token]
    row = harness.ledger.get(post_id)
    assert row.lease_until is not None
    assert row.lease_until > now
    daemon.extend_leases(now)  # still held: extended again, the job stays awake
    assert calls == [daemon.token] * 2
    assert woken == ["wake"]

    harness.ledger.mark_skipped(post_id, "test", now, token=daemon.token)
    assert harness.ledger.get(post_id).state == State.SKIPPED
    daemon.extend_leases(now)  # finds none: the job sleeps
    assert calls == [daemon.token] * 3
    assert woken == ["wake", "sleep"]
    daemon.extend_leases(now)
    daemon.extend_leases(now)
    assert calls == [daemon.token] * 3


def test_the_lease_job_stays_awake_while_an_operation_may_still_claim(
    make: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An extension that finds no claim while an account's pass runs (it may claim any moment) keeps going."""
    harness = make(once("o", "2027-10-20T09:00", accounts="[masto]"), at("2027-10-20T08:00"))
    daemon = harness.daemon
    calls = spy_extensions(harness, monkeypatch)
    slept: list[str] = []
    daemon.sleep_leases = lambda: slept.append("sleep")
    now = at("2027-10-20T08:30")
    with daemon.claiming():
        daemon.extend_leases(now)
        daemon.extend_leases(now)
    assert calls == [daemon.token] * 2
    assert slept == []
    daemon.extend_leases(now)  # the pass ended with no claim left
    assert slept == ["sleep"]
    assert not daemon.may_hold_claims


def test_one_machine_runs_follow_ups_and_reads_for_every_account_with_no_shared_uses(
    make: Callable[..., Harness],
) -> None:
    """SQLite, one node: the account leases are a no-op (every account is this node's, nothing is taken or
    written), and the follow-up runner spends the posts' limiter itself."""
    harness = make(once("o", "2027-10-20T09:00", accounts="[masto]"), at("2027-10-20T08:00"))
    daemon = harness.daemon
    assert daemon.shared_uses is None
    assert daemon.readback.uses is None
    assert daemon.followup_runner.limiter is daemon.limiter
    with daemon.account_leases(["masto", "sky"], at("2027-10-20T08:30")) as held:
        assert held == {"masto", "sky"}
    assert daemon.coordinator.accounts() == []
