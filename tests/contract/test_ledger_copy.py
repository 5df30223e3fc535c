"""Copying a whole ledger (``amplifier ledger migrate``, a dry run's copy of a shared ledger): everything the
source holds arrives in the target exactly once, in one transaction, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from amplifier.delivery.ledger import (
    GateChange,
    Ledger,
    LedgerError,
    PlanSource,
    copy_contents,
)
from amplifier.publish.engagement import Engagement
from tests.contract.conftest import T0, T1, T2, Backend, entry

LATE = T0 + timedelta(hours=6)
SOURCE = PlanSource("c0ffee", "abc123", T0 - timedelta(days=1), "node-a")


def _everything(ledger: Ledger) -> None:
    """A ledger holding one of everything: posts in every state (a lease, an unknown outcome, a thread half
    out, a ``retry --late``), paused accounts by the daemon and by an operator, the operators' actions, a gate
    change, engagement readings and the plan's source."""
    ledger.sync_plan(
        [entry(f"p{n}", T0 + timedelta(minutes=n), parts=2) for n in range(6)], T0, source=SOURCE
    )
    ledger.claim("p0", T0, "node-a:1:x", lease_until=T2)
    ledger.mark_published("p0", [{"id": "1", "url": "u1"}, {"id": "2", "url": "u2"}], T1, token="node-a:1:x")
    ledger.claim("p1", T0, "node-a:1:x", lease_until=T2)
    ledger.record_part("p1", 0, {"id": "3", "uri": "at://x/3"}, T1, token="node-a:1:x")
    ledger.mark_unknown("p1", "timed out", T1, check_at=T2, token="node-a:1:x")
    ledger.claim("p2", T0, "node-a:1:x")
    ledger.mark_failed("p2", "rejected: too long", T1, token="node-a:1:x")
    ledger.retry_post("p2", "fixed the text", T1, by="ana@laptop", late_until=LATE)
    ledger.skip_posts(["p3"], "not this one", T1, by="ana@laptop")
    ledger.pause_account("bluesky-ku", "credentials rejected", T1)
    ledger.pause_account("mastodon-en", "holiday", T2, by="ana@laptop")
    ledger.record_gate_change(GateChange("p0", "mastodon-en", "ana@laptop", T2, None, "nobody", "done", "ok"))
    ledger.record_engagement(
        [
            Engagement("p0", 0, T1, 1, 0, 0, None),
            Engagement("p0", 0, T2, 3, 1, 0, None),
            Engagement("p0", 1, T2, gone=True),
        ]
    )


def _contents(ledger: Ledger) -> tuple[object, ...]:
    return (
        list(ledger.export_rows()),
        ledger.account_pauses(),
        ledger.export_actions(),
        ledger.operator_actions(limit=100),
        ledger.gate_changes(),
        list(ledger.export_engagement()),
        ledger.plan_source(),
        ledger.counts_by_state(),
    )


def test_a_copy_holds_everything_the_source_holds(backend: Backend) -> None:
    with backend.open(T0) as source, backend.fresh(T0) as target:
        _everything(source)
        assert copy_contents(source, target, T2) == 6
        assert _contents(target) == _contents(source)
        assert target.get("p2").late_until == LATE  # the operator's retry --late window
        assert target.get("p1").lease_until == T2
        assert target.get("p1").next_part == 1
        assert [a.action for a in target.export_actions()] == ["retry --late", "skip", "pause"]
        assert target.account_pauses()[1].by == "ana@laptop"  # who paused it, not recorded again
        assert len(target.engagement("p0")) == 3
        assert target.plan_source() == source.plan_source()


def test_a_second_copy_into_the_same_ledger_is_refused_and_changes_nothing(backend: Backend) -> None:
    with backend.open(T0) as source, backend.fresh(T0) as target:
        _everything(source)
        copy_contents(source, target, T2)
        before = _contents(target)
        with pytest.raises(LedgerError, match="there already"):
            copy_contents(source, target, T2)
        assert _contents(target) == before  # nothing twice: not an action, a reading or a gate change


def test_a_copy_that_fails_midway_leaves_the_target_unchanged(backend: Backend) -> None:
    with backend.open(T0) as source, backend.fresh(T0) as target:
        _everything(source)
        target.sync_plan([entry("p5", T0)], T0)  # the last post of the source is there already
        before = _contents(target)
        with pytest.raises(LedgerError, match="'p5'"):
            copy_contents(source, target, T2)
        assert _contents(target) == before


def test_export_of_engagement_reads_in_batches(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    import amplifier.delivery.ledger.sql_engagement as engagement

    monkeypatch.setattr(engagement, "EXPORT_BATCH", 2)
    with backend.open(T0) as ledger:
        _everything(ledger)
        readings = list(ledger.export_engagement())
    assert [(r.post_id, r.index, r.read_at) for r in readings] == [
        ("p0", 0, T1),
        ("p0", 0, T2),
        ("p0", 1, T2),
    ]
