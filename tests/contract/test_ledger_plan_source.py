"""The plan's source in the ledger (both backends): a node whose campaign files are older than those the plan was
made from never overwrites it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from amplifier.delivery.ledger import Ledger, PlanSource, StalePlan, State
from tests.contract.conftest import T0, T1, T2, entry

OLD = PlanSource("hash-old", "git:aaaa", T0, node="node-a")
NEW = PlanSource("hash-new", "git:bbbb", T0 + timedelta(hours=1), node="node-b")


def test_no_source_until_a_plan_is_written_with_one(ledger: Ledger) -> None:
    assert ledger.plan_source() is None
    ledger.sync_plan([entry()], T0)
    assert ledger.plan_source() is None
    ledger.sync_plan([entry()], T1, source=OLD)
    assert ledger.plan_source() == PlanSource("hash-old", "git:aaaa", T0, "node-a", T1)


def test_older_files_never_overwrite_the_plan(ledger: Ledger) -> None:
    ledger.sync_plan([entry("new-post")], T1, source=NEW)

    with pytest.raises(StalePlan, match="newer campaign files") as raised:
        ledger.sync_plan([entry("old-post")], T2, source=OLD)

    assert raised.value.recorded.revision == "git:bbbb"
    assert [row.id for row in ledger.export_rows()] == ["new-post"]  # nothing changed
    assert ledger.get("new-post").state == State.PLANNED
    assert ledger.plan_source() == PlanSource("hash-new", "git:bbbb", NEW.revised_at, "node-b", T1)


def test_the_same_files_or_newer_ones_write_the_plan(ledger: Ledger) -> None:
    ledger.sync_plan([entry("a")], T0, source=OLD)
    ledger.sync_plan([entry("b")], T1, source=NEW)  # newer files
    assert ledger.get("a").state == State.CANCELLED
    # The same files with an older time (another node's checkout of the same commit): same content, written.
    same = PlanSource("hash-new", "mtime", T0, node="node-c")
    report = ledger.sync_plan([entry("b"), entry("c")], T2, source=same)
    assert report.inserted == ("c",)
    assert ledger.plan_source() == PlanSource("hash-new", "mtime", T0, "node-c", T2)


def test_each_node_beats_with_what_it_holds(ledger: Ledger) -> None:
    from amplifier.delivery.ledger import NodeBeat

    assert ledger.nodes() == []
    ledger.beat_node("host-a:10:daemon-a", T0, leader=True, holds=["account masto"])
    ledger.beat_node("host-b:20:daemon-b", T1, leader=False, holds=[])
    ledger.beat_node("host-a:10:daemon-a", T2, leader=True, holds=["account masto", "1 claim(s)"])
    beats = ledger.nodes()
    assert beats == [
        NodeBeat("host-a:10:daemon-a", T2, True, ("account masto", "1 claim(s)")),
        NodeBeat("host-b:20:daemon-b", T1, False, ()),
    ]
    assert (beats[0].host, beats[0].pid) == ("host-a", 10)
