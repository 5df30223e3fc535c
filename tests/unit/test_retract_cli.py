"""``amplifier retract`` as an operator reads it: the table is grouped by post (each post, then its jobs and what
became of each), with fake publishers in the registry (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from amplifier.delivery.ledger import open_ledger
from amplifier.delivery.ledger.followups import FollowupJob
from amplifier.publish import REGISTRY
from amplifier.publish.followups import Target, WriteOutcome
from tests.unit.test_daemon_cli import DAY1, Fake, RunCli
from tests.unit.test_daemon_cli import campaign as campaign  # the fixture

AT = datetime(2027, 10, 29, 10, 30, tzinfo=UTC)
MASTO, SKY = DAY1.format(account="masto"), DAY1.format(account="sky")


class Writer:
    """Makes every write, except on the accounts in ``refused`` (the server says 403)."""

    refused: ClassVar[set[str]] = set()

    def __init__(self, account: str) -> None:
        self.account = account

    def write(self, kind: str, target: Target, when: datetime) -> WriteOutcome:
        from amplifier.publish.base import PermanentError

        if self.account in Writer.refused:
            raise PermanentError("HTTP 403: not allowed")
        return WriteOutcome(f"{kind} made by {self.account}")

    def is_done(self, kind: str, target: Target, when: datetime) -> bool:
        return False


class Writing(Fake):
    def followups(self) -> Writer:
        return Writer(self.account)


@pytest.fixture
def published(run_cli: RunCli, campaign: list[str], tmp_path: Path) -> list[str]:
    """Both accounts' first countdown published; ``sky`` reposted its own post (a boost done)."""
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    with open_ledger(tmp_path / "state", AT) as ledger:
        ledger.plan_followups([FollowupJob(SKY, "boost", "sky", "bluesky", AT)])
        (job,) = ledger.followups([SKY])
        assert ledger.claim_followup(job.key, "t", AT, AT + timedelta(minutes=1))
        ledger.finish_followup(job.key, "t", "done", "reposted", AT)
    return campaign


def test_a_dry_run_lists_each_posts_jobs_under_it(run_cli: RunCli, published: list[str]) -> None:
    """The jobs came after all the posts, without a post id: which deletion and unboost went with which post?"""
    dry = run_cli(*published, "retract", "--rule", "countdown", "--dry-run", "--now", "2027-10-29T11:00")
    assert dry.code == 0, dry.err
    blocks = [line for line in dry.out.splitlines() if line.strip()]
    assert sorted([blocks[0:2], blocks[2:5]]) == [
        [f"would retract {MASTO}", "  delete by masto: would run"],
        [f"would retract {SKY}", "  delete by sky: would run", "  unboost by sky: would run"],
    ]


def test_a_retraction_says_under_each_post_what_became_of_each_job(
    run_cli: RunCli, published: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Writer, "refused", {"masto"})
    monkeypatch.setitem(REGISTRY, "mastodon", Writing)
    monkeypatch.setitem(REGISTRY, "bluesky", Writing)
    result = run_cli(*published, "retract", MASTO, SKY, "--now", "2027-10-29T11:00")
    assert result.code == 4, result.err
    assert [line for line in result.out.splitlines() if line.strip()] == [
        f"retracting {MASTO}",
        "  delete by masto: failed: HTTP 403: not allowed",
        f"retracting {SKY}",
        "  delete by sky: done: delete made by sky",
        "  unboost by sky: done: unboost made by sky",
    ]
    # stderr: what went wrong
    assert result.err == f"retract: {MASTO} delete by masto: HTTP 403: not allowed\n"


def test_the_json_keeps_its_keys(run_cli: RunCli, published: list[str]) -> None:
    import json

    dry = run_cli(*published, "retract", SKY, "--dry-run", "--format", "json", "--now", "2027-10-29T11:00")
    data: dict[str, Any] = json.loads(dry.out)
    assert set(data) == {"version", "dry_run", "posts", "jobs", "refused", "outcome"}
    assert [(job["post_id"], job["kind"]) for job in data["jobs"]] == [(SKY, "delete"), (SKY, "unboost")]


def test_a_dry_run_before_anything_was_published_creates_nothing(
    run_cli: RunCli, campaign: list[str], tmp_path: Path
) -> None:
    """``--dry-run`` promised to change nothing, and created the state folder and an empty ledger."""
    dry = run_cli(*campaign, "retract", "--event", "kobane-day", "--dry-run")
    assert dry.code == 0, dry.err
    assert "nothing to retract: no published post matches" in dry.out
    by_id = run_cli(*campaign, "retract", MASTO, "--dry-run")
    assert by_id.code == 4
    assert f"retract: {MASTO}: not in the ledger" in by_id.err
    assert not (tmp_path / "state").exists()
