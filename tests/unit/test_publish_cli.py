"""``send --dry-run`` and ``accounts`` as a user runs them, without any server; the JSON keys are pinned."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from amplifier.campaign.load import load_campaign
from amplifier.cli.main import cli
from amplifier.cli.publish import publish_context
from amplifier.delivery.ledger import Row, State, open_ledger
from amplifier.delivery.send import SendOutcome, send_posts
from amplifier.errors import ExitCode
from amplifier.plan.planner import find_posts
from amplifier.plan.post import PlannedPost
from amplifier.publish import (
    REGISTRY,
    AuthError,
    PartResult,
    PermanentError,
    PublishContext,
    PublishError,
    PublishResult,
    RateLimitedError,
    TransientError,
)
from amplifier.publish.mastodon import StatusOutcomeUnknown

SCHEDULE = """\
campaign:
  name: Unit campaign
  timezone: Europe/Berlin
events:
  day:
    name: {en: The Day}
    date: 2027-11-01
accounts:
  masto:
    platform: mastodon
    instance: http://127.0.0.1:9
    token_env: AMP_UNIT_CLI_TOKEN
  bsky:
    platform: bluesky
    handle: amp.example.com
    service: http://127.0.0.1:9
    password_env: AMP_UNIT_CLI_PASSWORD
rules:
  hello:
    kind: once
    at: 2027-10-30T10:00
    event: day
    messages: hello
"""

MESSAGES = """\
sets:
  hello:
    variants:
      - text:
          en: "{{ days_left }} days until {{ event.name }}!"
"""

IDS = ["hello:masto:2027-10-30T10:00", "hello:bsky:2027-10-30T10:00"]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "messages").mkdir()
    (tmp_path / "schedule.yaml").write_text(SCHEDULE)
    (tmp_path / "messages" / "hello.yaml").write_text(MESSAGES)
    monkeypatch.setenv("AMPLIFIER_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.delenv("AMPLIFIER_STATE", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(folder: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(folder), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_send_dry_run_json_contract(folder: Path) -> None:
    code, out, _err = run(folder, "send", "--dry-run", "--format", "json", *IDS)
    assert code == ExitCode.OK
    data = json.loads(out)
    assert set(data) == {"version", "dry_run", "posts"}
    assert data["version"] == 1
    assert [p["id"] for p in data["posts"]] == IDS
    for post in data["posts"]:
        assert set(post) == {"id", "account", "platform", "status", "url", "parts", "error"}
        assert post["status"] == "dry run"
        assert set(post["parts"][0]) == {"index", "id", "url", "uri", "cid", "existed", "payload"}
    assert data["posts"][0]["parts"][0]["payload"]["status"] == "2 days until The Day!"
    assert not (folder / ".amplifier-state").exists()  # a dry run writes nothing


def test_send_dry_run_table(folder: Path) -> None:
    code, out, _err = run(folder, "send", "--dry-run", *IDS)
    assert code == ExitCode.OK
    assert "dry run" in out
    assert "2 days until The Day!" in out


def test_accounts_json_contract_and_exit_code(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMP_UNIT_CLI_TOKEN", "token-value-123")
    monkeypatch.delenv("AMP_UNIT_CLI_PASSWORD", raising=False)
    code, out, err = run(folder, "accounts", "--format", "json")
    assert code == ExitCode.ACCOUNT
    data = json.loads(out)
    assert set(data) == {"version", "accounts"}
    keys = {
        "account",
        "platform",
        "ok",
        "handle",
        "id",
        "url",
        "server",
        "limits",
        "error",
        "bot",
        "warnings",
    }
    by_id = {a["account"]: a for a in data["accounts"]}
    assert all(set(a) == keys for a in data["accounts"])
    assert not by_id["masto"]["ok"]
    assert "cannot connect to http://127.0.0.1:9/api/v2/instance" in by_id["masto"]["error"]
    assert "AMP_UNIT_CLI_PASSWORD is not set" in by_id["bsky"]["error"]
    assert "bsky: the secret AMP_UNIT_CLI_PASSWORD is not set" in err
    assert "token-value-123" not in out + err


def test_send_with_a_missing_secret_stops_that_account(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMP_UNIT_CLI_TOKEN", raising=False)
    monkeypatch.delenv("AMP_UNIT_CLI_PASSWORD", raising=False)
    code, out, _err = run(folder, "--state", str(folder / "st"), "send", "--format", "json", IDS[0])
    assert code == ExitCode.ACCOUNT
    (post,) = json.loads(out)["posts"]
    assert post["status"] == "failed"
    assert "AMP_UNIT_CLI_TOKEN" in post["error"]["message"]


def test_send_network_failure_is_exit_4_and_transient(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMP_UNIT_CLI_TOKEN", "t")
    code, out, _err = run(folder, "--state", str(folder / "st"), "send", "--format", "json", IDS[0])
    assert code == ExitCode.PUBLISH
    (post,) = json.loads(out)["posts"]
    assert post["error"]["kind"] == "transient"


# --------------------------------------------------------------------------------------------- send and the ledger


class FakePublisher:
    """A platform that remembers what it published (by post id and part), and raises the errors queued."""

    platform = "mastodon"

    def __init__(self, account: str, world: dict[str, Any]) -> None:
        self.account = account
        self.world = world

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        self.world["requests"] += 1
        if self.world["errors"]:
            raise self.world["errors"].pop(0)
        existed = post.id in self.world["server"]  # the Idempotency-Key returns the first status
        self.world["server"].setdefault(post.id, f"https://masto.example/@camp/{len(self.world['server'])}")
        url = self.world["server"][post.id]
        parts = tuple(
            PartResult(index=i, id=f"{post.id}#{i}", url=url, existed=existed) for i in range(len(post.parts))
        )
        return PublishResult(post.id, self.account, "mastodon", parts)

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        return {}

    def check(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


@pytest.fixture
def world(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {"server": {}, "errors": [], "requests": 0, "made": 0}

    def factory(account: str, settings: Any, ctx: PublishContext) -> FakePublisher:
        state["made"] += 1
        return FakePublisher(account, state)

    monkeypatch.setitem(REGISTRY, "mastodon", factory)
    return state


def send_now(folder: Path, *ids: str) -> list[SendOutcome]:
    campaign = load_campaign(folder / "schedule.yaml")
    ctx = publish_context(campaign, folder / "st")
    with open_ledger(folder / "st", datetime.now(UTC)) as ledger:
        return send_posts(find_posts(campaign, ids), campaign, ctx, dry_run=False, ledger=ledger)


def ledger_row(folder: Path, post_id: str) -> Row:
    with open_ledger(folder / "st", datetime.now(UTC)) as ledger:
        return ledger.get(post_id)


def test_send_records_in_the_ledger_and_answers_a_second_send_from_it(
    folder: Path, world: dict[str, Any]
) -> None:
    (first,) = send_now(folder, IDS[0])
    assert first.status == "published"
    row = ledger_row(folder, IDS[0])
    assert row.state == State.PUBLISHED
    assert row.result is not None
    assert first.result is not None
    assert row.result[0]["url"] == first.result.url
    world["made"] = world["requests"] = 0
    (second,) = send_now(folder, IDS[0])
    assert second.status == "already published"
    assert second.result is not None
    assert second.result.url == row.result[0]["url"]
    assert (world["made"], world["requests"]) == (0, 0)  # not even a publisher was made


@pytest.mark.parametrize(
    ("error", "state", "attempts", "status"),
    [
        (PermanentError("the server refused the post (HTTP 422): too long"), State.FAILED, 1, "failed"),
        (
            RateLimitedError("rate limited", reset_at=datetime(2027, 10, 30, 12, 0, tzinfo=UTC)),
            State.PLANNED,
            1,
            "rate limited",
        ),
        (TransientError("server error (HTTP 502)", status=502), State.PLANNED, 1, "failed"),
        (AuthError("rejected the access token", status=401), State.PLANNED, 0, "failed"),
        # the attempt counts; the post stays claimed, unknown since its claim, for reconciliation only
        (StatusOutcomeUnknown("timed out; the status may have been created"), State.CLAIMED, 1, "failed"),
    ],
)
def test_send_failures_leave_the_ledger_as_the_daemon_would(
    folder: Path, world: dict[str, Any], error: PublishError, state: State, attempts: int, status: str
) -> None:
    world["errors"].append(error)
    (outcome,) = send_now(folder, IDS[0])
    assert outcome.status == status
    row = ledger_row(folder, IDS[0])
    assert (row.state, row.attempts) == (state, attempts)
    if isinstance(error, RateLimitedError):
        assert row.next_attempt_at == datetime(2027, 10, 30, 12, 0, tzinfo=UTC)  # the reset (after the slot)
    if state == State.PLANNED and not isinstance(error, RateLimitedError):
        assert row.next_attempt_at == row.due_at  # the daemon still sends it at its time
    assert (row.unknown_since is not None) == isinstance(error, StatusOutcomeUnknown)
    if row.unknown_since is not None:
        assert row.unknown_since == row.claimed_at


def test_send_after_an_unknown_outcome_reconciles_and_sends_once(folder: Path, world: dict[str, Any]) -> None:
    """A timeout after which the status exists: the next send re-sends under the key, which returns it."""
    world["errors"].append(StatusOutcomeUnknown("timed out"))
    send_now(folder, IDS[0])
    world["server"][IDS[0]] = "https://masto.example/@camp/created-anyway"  # the request did arrive
    (outcome,) = send_now(folder, IDS[0])
    assert outcome.status == "already published"
    assert outcome.result is not None
    assert outcome.result.url == "https://masto.example/@camp/created-anyway"
    assert ledger_row(folder, IDS[0]).state == State.PUBLISHED
    assert len(world["server"]) == 1


def test_send_refuses_a_post_the_ledger_finished(folder: Path, world: dict[str, Any]) -> None:
    world["errors"].append(PermanentError("the server refused the post (HTTP 422): too long"))
    send_now(folder, IDS[0])
    world["requests"] = 0
    (outcome,) = send_now(folder, IDS[0])
    assert outcome.status == "refused"
    assert "failed in the ledger: the server refused the post" in str(outcome.error)
    assert world["requests"] == 0


def test_send_refuses_while_the_account_or_everything_is_paused(folder: Path, world: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    with open_ledger(folder / "st", now) as ledger:
        ledger.pause_account("masto", "token revoked", now)
    (outcome,) = send_now(folder, IDS[0])
    assert outcome.status == "refused"
    assert "the account masto is paused (token revoked)" in str(outcome.error)
    with open_ledger(folder / "st", now) as ledger:
        ledger.resume_account("masto")
        ledger.set_paused(True, "breaking news", now)
    code, _out, err = run(folder, "--state", str(folder / "st"), "send", IDS[0])
    assert code == ExitCode.PUBLISH
    assert "all posting is paused (breaking news)" in err
    assert world["requests"] == 0
    assert ledger_row(folder, IDS[0]).state == State.PLANNED
