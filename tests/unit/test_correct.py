"""``amplifier correct``: editing a published Mastodon post to the files' text, each edit recorded once (also
through a crash between the request and the ledger write), Bluesky refused with what to do instead."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amplifier.delivery.correct import CorrectRefused, correct_post
from amplifier.delivery.ledger import PlanEntry, SqliteLedger
from amplifier.delivery.ledger.sqlite import LEDGER_NAME
from amplifier.plan.adapt import Content, Target, adapt
from amplifier.plan.post import PlannedPost, Platform
from amplifier.publish.base import OutcomeUnknownError, PermanentError

T0 = datetime(2027, 10, 29, 9, 0, tzinfo=UTC)


def planned(post_id: str, platform: Platform, *texts: str, cw: str | None = None) -> PlannedPost:
    adapted = adapt(Content(texts=texts, lang="en", content_warning=cw), Target(platform, created_at=T0))
    return PlannedPost(post_id, T0, "r", "masto", platform, "en", adapted.parts, "m", 0)


class FakeMastodon:
    """Statuses by id: (text, content warning); each edit request counted."""

    def __init__(self, statuses: dict[str, tuple[str, str]]) -> None:
        self.statuses = statuses
        self.edits: list[tuple[str, str]] = []
        self.fail: Exception | None = None

    def status_source(self, status_id: str) -> tuple[str, str]:
        return self.statuses[status_id]

    def edit_status(self, status_id: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.edits.append((status_id, str(payload["status"])))
        self.statuses[status_id] = (str(payload["status"]), str(payload.get("spoiler_text") or ""))
        return {"id": status_id}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Any]:
    with SqliteLedger.open(tmp_path / "ledger.db", T0) as ledger:
        yield ledger


def publish(ledger: Any, post: PlannedPost, ids: list[str]) -> None:
    ledger.sync_plan([PlanEntry.from_post(post)], T0)
    assert ledger.claim(post.id, T0, "tok")
    ledger.mark_published(post.id, [{"id": status_id} for status_id in ids], T0, token="tok")


def now() -> datetime:
    return T0


def test_a_changed_part_is_edited_and_recorded_with_who_and_the_texts(ledger: Any) -> None:
    old = planned("p", "mastodon", "Meet at Heumarkt")
    publish(ledger, old, ["101"])
    server = FakeMastodon({"101": ("Meet at Heumarkt", "")})
    new = planned("p", "mastodon", "Meet at Neumarkt")

    preview = correct_post(ledger, server, new, by="ana@host", now=now, dry_run=True)
    assert [(p.outcome, p.old_text, p.new_text) for p in preview.parts] == [
        ("would edit", "Meet at Heumarkt", "Meet at Neumarkt")
    ]
    assert server.edits == []
    assert ledger.edits("p") == []

    done = correct_post(ledger, server, new, by="ana@host", now=now)
    assert [part.outcome for part in done.parts] == ["edited"]
    assert server.edits == [("101", "Meet at Neumarkt")]
    [edit] = ledger.edits("p")
    assert (edit.part, edit.by, edit.old_text, edit.new_text, edit.outcome) == (
        0,
        "ana@host",
        "Meet at Heumarkt",
        "Meet at Neumarkt",
        "edited",
    )
    again = correct_post(ledger, server, new, by="ana@host", now=now)
    assert [part.outcome for part in again.parts] == ["unchanged"]
    assert len(server.edits) == 1
    assert len(ledger.edits("p")) == 1


def test_only_the_parts_that_differ_are_edited_and_a_changed_warning_counts(ledger: Any) -> None:
    old = planned("t", "mastodon", "First", "Second", cw="Police")
    publish(ledger, old, ["1", "2"])
    server = FakeMastodon({"1": ("First 1/2", "Police"), "2": ("Second 2/2", "Police")})
    server.statuses = {"1": (old.parts[0].text, "Police"), "2": (old.parts[1].text, "Police")}
    new = planned("t", "mastodon", "First", "Second", cw="Police violence")
    done = correct_post(ledger, server, new, by="ana", now=now)
    assert [part.outcome for part in done.parts] == ["edited", "edited"]
    assert ledger.edits("t")[0].detail == "content warning: 'Police' -> 'Police violence'"
    newer = planned("t", "mastodon", "First", "Second, fixed", cw="Police violence")
    done = correct_post(ledger, server, newer, by="ana", now=now)
    assert [part.outcome for part in done.parts] == ["unchanged", "edited"]


def test_a_crash_after_the_request_is_settled_by_the_next_correct_without_a_second_edit(ledger: Any) -> None:
    old = planned("c", "mastodon", "Old")
    publish(ledger, old, ["7"])
    server = FakeMastodon({"7": ("Old", "")})
    new = planned("c", "mastodon", "New")

    class Crash(BaseException):
        pass

    def die() -> None:
        raise Crash  # the process dies between the request and the ledger write

    with pytest.raises(Crash):
        correct_post(ledger, server, new, by="ana", now=now, after_request=die)
    [pending] = ledger.edits("c")
    assert pending.outcome == "pending"
    done = correct_post(ledger, server, new, by="ana", now=now)
    assert [(p.outcome, p.old_text) for p in done.parts] == [("edited before", "Old")]
    assert server.edits == [("7", "New")]  # one request in all
    [edit] = ledger.edits("c")
    assert (edit.outcome, edit.old_text, edit.new_text) == ("edited", "Old", "New")


def test_an_edit_that_did_not_reach_the_server_is_tried_again_on_the_same_record(ledger: Any) -> None:
    publish(ledger, planned("u", "mastodon", "Old"), ["8"])
    server = FakeMastodon({"8": ("Old", "")})
    new = planned("u", "mastodon", "New")
    server.fail = OutcomeUnknownError("read timeout")
    with pytest.raises(OutcomeUnknownError):
        correct_post(ledger, server, new, by="ana", now=now)
    assert [edit.outcome for edit in ledger.edits("u")] == ["pending"]
    server.fail = None
    correct_post(ledger, server, new, by="ana", now=now)
    assert [edit.outcome for edit in ledger.edits("u")] == ["edited"]
    # A refusal is recorded as failed, with the reason.
    server.fail = PermanentError("the server refused the post (HTTP 422): Text too long")
    with pytest.raises(PermanentError):
        correct_post(ledger, server, planned("u", "mastodon", "Newer"), by="ana", now=now)
    last = ledger.edits("u")[-1]
    assert last.outcome == "failed"
    assert "Text too long" in last.detail


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("bluesky", "Bluesky has no edits: a published post cannot be changed"),
        ("planned", "it is planned, not published: nothing to correct"),
        ("thread", "the corrected text makes 2 part(s), the published thread has 1"),
        ("paused", "the account masto is paused (holiday); resume it first"),
    ],
)
def test_what_cannot_be_corrected_is_refused_plainly(ledger: Any, setup: str, fragment: str) -> None:
    platform: Platform = "bluesky" if setup == "bluesky" else "mastodon"
    post = planned("x", platform, "Text")
    if setup == "planned":
        ledger.sync_plan([PlanEntry.from_post(post)], T0)
    else:
        publish(ledger, post, ["9"])
    if setup == "paused":
        ledger.pause_account("masto", "holiday", T0)
    new = planned("x", platform, "Text", "More") if setup == "thread" else post
    server = FakeMastodon({"9": ("Other", "")})
    with pytest.raises(CorrectRefused, match=fragment.replace("(", r"\(").replace(")", r"\)")) as info:
        correct_post(ledger, server, new, by="ana", now=now)
    if setup == "bluesky":
        assert "`amplifier retract x`, then `amplifier send x`" in str(info.value)
    assert server.edits == []


def test_correct_command_line_on_bluesky_exits_4_with_retract_and_send(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    path = campaign_dir()
    state = tmp_path / "state"
    with SqliteLedger.open(state / LEDGER_NAME, T0) as ledger:
        from amplifier.campaign.load import load_campaign
        from amplifier.plan.planner import find_posts

        [post] = find_posts(load_campaign(path), ["countdown:sky:2027-10-29T10:00"])
        publish(ledger, post, ["3kabc"])
    result = run_cli(
        "--config", str(path), "--state", str(state), "correct", "countdown:sky:2027-10-29T10:00"
    )
    assert result.code == 4, result.err
    assert "Bluesky has no edits" in result.err
    assert "amplifier retract countdown:sky:2027-10-29T10:00" in result.err
