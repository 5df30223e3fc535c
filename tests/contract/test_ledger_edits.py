"""The edits of published posts (``amplifier correct``) in every ledger backend: recorded pending before the
request, finished once after it, per post and part, oldest first, seen by another connection, redacted."""

from __future__ import annotations

import pytest

from amplifier.delivery.ledger import EditRecord, LedgerError, UnknownPost, copy_contents
from tests.contract.conftest import T0, T1, T2, Backend, entry


def test_an_edit_is_pending_then_finished_once_and_seen_by_another_connection(backend: Backend) -> None:
    with backend.open(T0) as ledger, backend.open(T0) as other:
        ledger.sync_plan([entry("p"), entry("q")], T0)
        first = ledger.begin_edit(
            EditRecord("p", 0, "mastodon-en", "ana@laptop", T1, "Heumarkt", "Neumarkt", "pending")
        )
        second = ledger.begin_edit(
            EditRecord(
                "p", 1, "mastodon-en", "bo", T2, "Part two", "Part 2", "pending", "content warning: '' -> 'x'"
            )
        )
        ledger.begin_edit(EditRecord("q", 0, "mastodon-en", "bo", T2, "a", "b", "pending"))
        assert first != second
        assert [(e.part, e.outcome) for e in other.edits("p")] == [(0, "pending"), (1, "pending")]

        ledger.finish_edit(first, "edited", "", T2)
        ledger.finish_edit(second, "failed", "HTTP 422 token=abcdefabcdefabcdefabcdef refused", T2)
        edits = other.edits("p")
        assert [(e.id, e.by, e.at, e.old_text, e.new_text, e.outcome) for e in edits] == [
            (first, "ana@laptop", T1, "Heumarkt", "Neumarkt", "edited"),
            (second, "bo", T2, "Part two", "Part 2", "failed"),
        ]
        assert edits[0].done_at == T2
        assert "abcdefabcdefabcdefabcdef" not in edits[1].detail  # redacted like every stored reason
        assert [e.post_id for e in other.edits()] == ["p", "p", "q"]
        with pytest.raises(LedgerError, match="already finished"):
            ledger.finish_edit(first, "failed", "again", T2)


def test_an_edit_needs_a_known_post_an_outcome_and_an_aware_time(backend: Backend) -> None:
    with backend.open(T0) as ledger:
        ledger.sync_plan([entry("p")], T0)
        with pytest.raises(UnknownPost):
            ledger.begin_edit(EditRecord("nope", 0, "a", "me", T0, "x", "y", "pending"))
        with pytest.raises(ValueError, match="outcome"):
            ledger.begin_edit(EditRecord("p", 0, "a", "me", T0, "x", "y", "sideways"))
        with pytest.raises(ValueError, match="aware"):
            ledger.begin_edit(EditRecord("p", 0, "a", "me", T0.replace(tzinfo=None), "x", "y", "pending"))
        edit = ledger.begin_edit(EditRecord("p", 0, "a", "me", T0, "x", "y", "pending"))
        with pytest.raises(ValueError, match="outcome"):
            ledger.finish_edit(edit, "pending", "", T1)
        with pytest.raises(LedgerError, match="no edit"):
            ledger.finish_edit(edit + 1000, "edited", "", T1)


def test_moving_a_ledger_keeps_its_edits_finished_and_pending(backend: Backend) -> None:
    with backend.open(T0) as source, backend.fresh(T0) as target:
        source.sync_plan([entry("p")], T0)
        done = source.begin_edit(EditRecord("p", 0, "mastodon-en", "ana", T1, "old", "new", "pending"))
        source.finish_edit(done, "edited", "", T2)
        source.begin_edit(EditRecord("p", 1, "mastodon-en", "bo", T2, "two", "2", "pending"))
        copy_contents(source, target, T0)
        assert [
            (e.post_id, e.part, e.by, e.at, e.old_text, e.new_text, e.outcome, e.done_at)
            for e in target.edits()
        ] == [
            ("p", 0, "ana", T1, "old", "new", "edited", T2),
            ("p", 1, "bo", T2, "two", "2", "pending", None),
        ]
