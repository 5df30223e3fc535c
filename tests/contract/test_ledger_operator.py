"""The ledger's contract for an operator's actions and for the aggregate queries of ``status`` and ``history``:
each test runs against every backend (see ``conftest.py``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from amplifier.delivery.ledger import IllegalTransition, Ledger, PostBusy, State, UnknownPost
from tests.contract.conftest import T0, T1, T2, Backend, entry

LATER = T0 + timedelta(hours=1)


def plan(ledger: Ledger) -> list:
    entries = [
        entry("a1", T0, account="a", rule="r1"),
        entry("a2", T1, account="a", rule="r2"),
        entry("b1", T0, account="b", rule="r1"),
        entry("b2", T2, account="b", rule="r2"),
    ]
    ledger.sync_plan(entries, T0)
    return entries


def test_skip_records_who_when_why_and_survives_a_replan(ledger: Ledger) -> None:
    entries = plan(ledger)
    ledger.skip_posts(["a1", "b2"], "wrong date", T1, by="alice")
    row = ledger.get("a1")
    assert row.state == State.SKIPPED
    assert row.last_error == "skipped by alice: wrong date"
    # a re-plan with the same posts, and one that changes a text, never brings them back
    ledger.sync_plan(entries, T2, start=T0, end=LATER)
    ledger.sync_plan([*entries[:3], entry("b2", T2, digest="new", account="b", rule="r2")], T2)
    assert [ledger.get(i).state for i in ("a1", "a2", "b1", "b2")] == [
        State.SKIPPED,
        State.PLANNED,
        State.PLANNED,
        State.SKIPPED,
    ]
    actions = ledger.operator_actions()
    assert [(a.action, a.target, a.by, a.reason, a.at) for a in actions] == [
        ("skip", "b2", "alice", "wrong date", T1),
        ("skip", "a1", "alice", "wrong date", T1),
    ]


def test_skip_is_all_or_nothing_and_refuses_a_post_being_published(ledger: Ledger) -> None:
    plan(ledger)
    assert ledger.claim("a2", T0, "daemon")
    with pytest.raises(PostBusy, match="being published right now"):
        ledger.skip_posts(["a1", "a2"], "oops", T1, by="alice")
    assert ledger.get("a1").state == State.PLANNED  # nothing changed
    assert ledger.get("a2").state == State.CLAIMED
    assert ledger.operator_actions() == []
    with pytest.raises(UnknownPost):
        ledger.skip_posts(["a1", "nope"], "oops", T1, by="alice")
    ledger.mark_published("a2", [{"id": "1"}], T1, token="daemon")
    with pytest.raises(IllegalTransition, match="published"):
        ledger.skip_posts(["a2"], "oops", T1, by="alice")


def test_cancel_by_rule_and_by_account_skips_planned_posts_only(ledger: Ledger) -> None:
    entries = plan(ledger)
    assert ledger.claim("b1", T0, "daemon")
    assert ledger.cancel_posts("postponed", T1, by="bob", target="rule r1", rules=["r1"]) == ["a1"]
    assert ledger.get("b1").state == State.CLAIMED  # the daemon's post is left alone
    assert ledger.cancel_posts("account closed", T1, by="bob", target="account b", account="b") == ["b2"]
    assert ledger.get("b2").last_error == "cancelled by bob (account b): account closed"
    ledger.sync_plan(entries, T2, start=T0, end=LATER)
    assert ledger.get("a1").state == State.SKIPPED
    assert ledger.get("b2").state == State.SKIPPED
    assert [(a.action, a.target, a.posts) for a in ledger.operator_actions()] == [
        ("cancel", "account b", 1),
        ("cancel", "rule r1", 1),
    ]


def test_retry_puts_a_failed_or_expired_post_back(ledger: Ledger) -> None:
    plan(ledger)
    assert ledger.claim("a1", T0, "daemon")
    ledger.mark_failed("a1", "server said no", T0, token="daemon")
    ledger.mark_expired("b1", "too late", T0)
    ledger.retry_post("a1", "fixed the image", T1, by="carol")
    row = ledger.get("a1")
    assert (row.state, row.attempts, row.next_attempt_at, row.last_error, row.late_until) == (
        State.PLANNED,
        0,
        T1,
        None,
        None,
    )
    assert row.claim_token is None
    ledger.retry_post("b1", "post it anyway", T1, by="carol", late_until=LATER)
    assert ledger.get("b1").late_until == LATER
    assert [r.id for r in ledger.due(T1)] == ["a1", "b1", "a2"]
    with pytest.raises(IllegalTransition, match="only a failed or expired"):
        ledger.retry_post("a2", "x", T1, by="carol")
    assert [(a.action, a.target) for a in ledger.operator_actions()] == [
        ("retry --late", "b1"),
        ("retry", "a1"),
    ]


def test_an_operators_pause_is_told_from_the_daemons(ledger: Ledger) -> None:
    ledger.pause_account("a", "token rejected", T0)  # the daemon
    ledger.pause_account("b", "holiday", T0, by="dave")
    pauses = {p.account: p for p in ledger.account_pauses()}
    assert (pauses["a"].by, pauses["a"].reason, pauses["a"].paused_at) == (None, "token rejected", T0)
    assert (pauses["b"].by, pauses["b"].reason) == ("dave", "holiday")
    assert ledger.paused_accounts() == {"a": "token rejected", "b": "holiday"}
    assert ledger.resume_account("b", by="dave", now=T1)
    assert not ledger.resume_account("b", by="dave", now=T1)
    assert [(a.action, a.target) for a in ledger.operator_actions()] == [
        ("resume", "account b"),
        ("pause", "account b"),
    ]
    assert [a.action for a in ledger.operator_actions(since=T1)] == ["resume"]


def test_summaries_and_latest(ledger: Ledger) -> None:
    plan(ledger)
    assert ledger.claim("a1", T0, "d")
    ledger.mark_published("a1", [{"id": "1", "url": "https://x/1"}], T1, token="d")
    assert ledger.claim("b1", T0, "d")
    ledger.mark_failed("b1", "no", T1, token="d")
    ledger.mark_expired("b2", "late", T2)
    summaries = ledger.summaries()
    assert set(summaries) == {"a", "b"}
    assert summaries["a"].counts[State.PUBLISHED] == 1
    assert summaries["a"].counts[State.PLANNED] == 1
    assert summaries["a"].last_published_at == T1
    assert summaries["a"].next_due_at == T1
    assert summaries["b"].counts[State.FAILED] == 1
    assert summaries["b"].next_due_at is None
    assert summaries["b"].last_published_at is None
    assert [r.id for r in ledger.latest([State.FAILED, State.EXPIRED], 10)] == ["b2", "b1"]
    assert [r.id for r in ledger.latest([State.FAILED, State.EXPIRED], 1)] == ["b2"]
    assert [r.id for r in ledger.latest([State.PUBLISHED], 10, by_published=True)] == ["a1"]
    assert [r.id for r in ledger.finished_since([State.FAILED, State.EXPIRED], T2)] == ["b2"]
    assert [r.id for r in ledger.overdue(T2)] == ["a2"]
    ledger.pause_account("a", "p", T2)
    assert ledger.overdue(T2) == []


@pytest.mark.parametrize("batch", [1, 2, 500])
def test_iter_history_streams_the_same_rows_as_history(ledger: Ledger, batch: int) -> None:
    entries = [entry(f"p{i}", T0 + timedelta(minutes=i % 3), account="a" if i % 2 else "b") for i in range(7)]
    ledger.sync_plan(entries, T0)
    for account in (None, "a"):
        for states in (None, [State.PLANNED], []):
            expected = [r.id for r in ledger.history(T0, LATER, account, states)]
            streamed = [r.id for r in ledger.iter_history(T0, LATER, account, states, batch=batch)]
            assert streamed == expected


def test_a_replan_of_a_window_reads_and_cancels_only_that_window(backend: Backend) -> None:
    with backend.open(T0) as ledger:
        far = T0 + timedelta(days=30)
        ledger.sync_plan([entry("old", T0 - timedelta(days=30)), entry("far", far), entry("in", T1)], T0)
        # the plan of [T0, LATER) drops "in", moves "far" into the window (by id), leaves "old" alone
        report = ledger.sync_plan([entry("far", T2), entry("new", T2)], T0, start=T0, end=LATER)
        assert report.cancelled == ("in",)
        assert set(report.updated) == {"far"}
        assert report.inserted == ("new",)
        assert ledger.get("old").state == State.PLANNED
        assert ledger.get("far").due_at == T2
