"""``amplifier run --once``, ``status``, ``history``, ``pause`` and ``resume`` as a user runs them, with fake
publishers in the registry (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.plan.post import PlannedPost
from amplifier.publish import REGISTRY, PublishContext
from amplifier.publish.base import PartResult, PermanentError, PublishResult
from tests.conftest import BASE_SCHEDULE, Result

RunCli = Callable[..., Result]
DAY1 = "countdown:{account}:2027-10-29T10:00"


class Fake:
    """A publisher that records what it was asked to publish; ``fail`` makes it refuse every post."""

    sent: ClassVar[list[str]] = []
    fail: ClassVar[bool] = False

    def __init__(self, account: str, settings: MastodonAccount | BlueskyAccount, ctx: PublishContext) -> None:
        self.account = account
        self.platform = settings.platform

    def publish(self, post: PlannedPost, *, resume: Mapping[int, PartResult] | None = None) -> PublishResult:
        if Fake.fail:
            raise PermanentError("the server refused the post (HTTP 422): nope")
        Fake.sent.append(post.id)
        parts = tuple(
            PartResult(index=i, id=f"{post.id}#{i}", url=f"https://example.test/{post.id}/{i}")
            for i in range(len(post.parts))
        )
        return PublishResult(post.id, self.account, self.platform, parts)

    def lookup(self, post: PlannedPost) -> dict[int, PartResult]:
        return {}

    def check(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        return None


@pytest.fixture
def campaign(campaign_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    Fake.sent = []
    Fake.fail = False
    monkeypatch.setitem(REGISTRY, "mastodon", Fake)
    monkeypatch.setitem(REGISTRY, "bluesky", Fake)
    monkeypatch.delenv("AMPLIFIER_STATE", raising=False)
    monkeypatch.setenv("AMPLIFIER_SECRETS_DIR", str(tmp_path / "no-secrets"))
    path = campaign_dir(schedule=BASE_SCHEDULE)
    return ["--config", str(path), "--state", str(tmp_path / "state")]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_run_once_publishes_what_is_due_once(run_cli: RunCli, campaign: list[str]) -> None:
    result = run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00")
    assert result.code == 0, result.err
    assert sorted(Fake.sent) == [DAY1.format(account="masto"), DAY1.format(account="sky")]
    posted = [line for line in lines(result.err) if " posted " in line]
    assert len(posted) == 2
    assert "url=https://example.test/" in posted[0]

    again = run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:30")
    assert again.code == 0
    assert len(Fake.sent) == 2  # nothing twice

    status = run_cli(*campaign, "status", "--now", "2027-10-29T10:30", "--format", "json")
    assert status.code == 0, status.err
    data = json.loads(status.out)
    assert data["nodes"] == []  # one machine: no node heartbeats in the ledger
    assert set(data) == {
        "version",
        "now",
        "paused",
        "paused_accounts",
        "heartbeat",
        "counts",
        "next",
        "last_published",
        "failures",
        "claimed",
        "accounts",
        "held",
        "actions",
        "retractions",
        "planned_only",
        "nodes",
        "timezone",
        "campaign_error",
    }
    assert data["version"] == 1
    assert data["counts"]["published"] == 2
    assert data["last_published"][0]["url"].startswith("https://example.test/")
    assert data["next"][0]["id"] in (
        "countdown:masto:2027-10-30T10:00",
        "countdown:sky:2027-10-30T10:00",
    )
    assert set(data["accounts"]) == {"masto", "sky"}
    assert set(data["accounts"]["masto"]) == {
        "platform",
        "paused",
        "paused_by",
        "counts",
        "last_published_at",
        "next_due_at",
    }

    history = run_cli(*campaign, "history", "--now", "2027-11-05", "--account", "sky", "--format", "json")
    assert history.code == 0, history.err
    data = json.loads(history.out)
    assert set(data) == {"version", "from", "to", "account", "posts", "actions"}
    assert [(p["id"], p["state"]) for p in data["posts"]] == [(DAY1.format(account="sky"), "published")]
    assert set(data["posts"][0]) == {
        "id",
        "account",
        "platform",
        "rule",
        "state",
        "due_at",
        "next_attempt_at",
        "attempts",
        "published_at",
        "url",
        "results",
        "reason",
        "parts",
    }


def test_run_once_exit_4_when_a_post_failed(run_cli: RunCli, campaign: list[str]) -> None:
    Fake.fail = True
    result = run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00", "--log-format", "json")
    assert result.code == 4
    events = [json.loads(line) for line in lines(result.err)]
    failed = [e for e in events if e["event"] == "failed"]
    assert {e["account"] for e in failed} == {"masto", "sky"}
    assert all("HTTP 422" in e["reason"] for e in failed)
    assert events[-1]["event"] == "done"


def test_dry_run_leaves_the_ledger_alone(run_cli: RunCli, campaign: list[str], tmp_path: Path) -> None:
    first = run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00")
    assert first.code == 0, first.err
    result = run_cli(*campaign, "run", "--once", "--dry-run", "--now", "2027-10-29T10:00")
    assert result.code == 0, result.err
    assert Fake.sent == []  # the dry-run publisher, not the platform's
    assert "dry_run=True" in result.err
    status = json.loads(run_cli(*campaign, "status", "--now", "2027-10-29T10:05", "--format", "json").out)
    assert status["counts"]["published"] == 0


def test_pause_and_resume(run_cli: RunCli, campaign: list[str], tmp_path: Path) -> None:
    assert run_cli(*campaign, "pause", "--reason", "breaking news").code == 0
    paused = run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00")
    assert paused.code == 0
    assert Fake.sent == []
    assert 'paused="breaking news"' in paused.err
    status = json.loads(run_cli(*campaign, "status", "--format", "json").out)
    assert status["paused"] == "breaking news"

    assert run_cli(*campaign, "resume").code == 0
    (tmp_path / "state" / "PAUSE").write_text("")
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    assert Fake.sent == []
    resumed = run_cli(*campaign, "resume")
    assert "removed" in resumed.out
    assert not (tmp_path / "state" / "PAUSE").exists()
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    assert len(Fake.sent) == 2


def test_resume_an_unknown_account_is_a_usage_error(run_cli: RunCli, campaign: list[str]) -> None:
    result = run_cli(*campaign, "resume", "--account", "nobody")
    assert result.code == 2
    assert "'nobody' is not paused" in result.err


def test_status_check_for_a_healthcheck(
    run_cli: RunCli, campaign: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_cli(*campaign, "status", "--check")
    assert result.code == 1
    assert "unhealthy: no heartbeat" in result.err
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00").code == 0
    missing = run_cli(*campaign, "status", "--check")
    assert missing.code == 1  # a campaign with a missing secret is never healthy
    assert [line for line in lines(missing.err) if line.startswith("unhealthy:")] == [
        f"unhealthy: account {a}: the secret {v} is not set: export {v}=..., or put it in a .env file or a file "
        f"named {v} in the secrets folder (looked in {missing.err.split('(looked in ')[1].split(')')[0]})"
        for a, v in (("masto", "TEST_MASTO_TOKEN"), ("sky", "TEST_SKY_PASSWORD"))
    ]
    monkeypatch.setenv("TEST_MASTO_TOKEN", "t")
    monkeypatch.setenv("TEST_SKY_PASSWORD", "p")
    healthy = run_cli(*campaign, "status", "--check", "--format", "json")
    assert healthy.code == 0, healthy.err
    assert json.loads(healthy.out)["healthy"] is True


def test_secrets_never_reach_the_log(
    run_cli: RunCli, campaign: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from amplifier.publish import _bluesky, _mastodon

    monkeypatch.setitem(REGISTRY, "mastodon", _mastodon)
    monkeypatch.setitem(REGISTRY, "bluesky", _bluesky)
    secret = "tok-9f8e7d6c5b4a-secret"
    monkeypatch.setenv("TEST_MASTO_TOKEN", secret)
    monkeypatch.setenv("TEST_SKY_PASSWORD", secret)
    # Unreachable servers (.example does not resolve... but nothing may try: point them at a closed port).
    config = Path(campaign[1])
    config.write_text(
        config.read_text()
        .replace("https://mastodon.example", "http://127.0.0.1:9")
        .replace(
            "    handle: campaign.bsky.social\n",
            "    handle: campaign.bsky.social\n    service: http://127.0.0.1:9\n",
        )
    )
    result = run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00", "--log-format", "json")
    assert secret not in result.err
    assert secret not in result.out
    events = [json.loads(line) for line in lines(result.err)]
    assert {e["event"] for e in events} >= {"retry", "done"}


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_unusable_ledger_file_is_a_clear_error(
    run_cli: RunCli, campaign: list[str], tmp_path: Path, dry_run: bool
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "ledger.sqlite3").write_bytes(b"not a database, " * 512)
    flags = ["--dry-run"] if dry_run else []
    result = run_cli(*campaign, "run", "--once", *flags, "--now", "2027-10-29T10:00")
    assert result.code == 4, result.err
    assert "not a usable ledger database" in result.err
    assert "Traceback" not in result.err
    assert Fake.sent == []


@pytest.mark.parametrize("folder", ["state#1", "state?mode=rw", "100%"])
def test_a_dry_run_copies_a_ledger_whatever_its_folder_is_called(
    run_cli: RunCli, campaign: list[str], tmp_path: Path, folder: str
) -> None:
    args = [*campaign[:-1], str(tmp_path / folder)]
    assert run_cli(*args, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    published = list(Fake.sent)
    assert published
    result = run_cli(*args, "run", "--once", "--dry-run", "--now", "2027-10-29T10:05")
    assert result.code == 0, result.err
    assert " posted " not in result.err  # the copy knows they are out already
    assert "dry_run=True" in result.err
    assert Fake.sent == published


# --------------------------------------------------------------------------------------------- signals, dry run


def test_stop_on_signals_calls_stop_and_restores_the_handlers() -> None:
    import os
    import signal

    from amplifier.cli.daemon import stop_on_signals

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    calls: list[str] = []
    with stop_on_signals(lambda: calls.append("stop")):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
    assert calls == ["stop", "stop"]
    assert {signum: signal.getsignal(signum) for signum in before} == before


@pytest.mark.parametrize("dry_run", [False, True])
def test_run_once_installs_the_signal_handlers_too(
    run_cli: RunCli, campaign: list[str], monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    import amplifier.cli.daemon as cli_daemon

    entered: list[str] = []
    real = cli_daemon.stop_on_signals

    def recording(stop: Callable[[], None]) -> Any:
        entered.append(getattr(stop, "__name__", ""))
        return real(stop)

    monkeypatch.setattr(cli_daemon, "stop_on_signals", recording)
    flags = ["--dry-run"] if dry_run else []
    result = run_cli(*campaign, "run", "--once", *flags, "--now", "2027-10-29T10:00")
    assert result.code == 0, result.err
    assert entered == ["stop"]  # Daemon.stop: no new claims, the posts in flight finish


def test_a_dry_run_writes_its_heartbeat_in_its_scratch_folder(
    run_cli: RunCli, campaign: list[str], tmp_path: Path
) -> None:
    heartbeat = tmp_path / "state" / "heartbeat.json"
    result = run_cli(*campaign, "run", "--once", "--dry-run", "--now", "2027-10-29T10:00")
    assert result.code == 0, result.err
    assert not heartbeat.exists()  # `status --check` must not take a dry run for the daemon
    assert run_cli(*campaign, "status", "--check").code == 1
    result = run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00")
    assert result.code == 0, result.err
    assert heartbeat.exists()


@pytest.mark.parametrize("switch", ["file", "command"])
def test_a_dry_run_obeys_the_real_pause_switches(
    run_cli: RunCli, campaign: list[str], tmp_path: Path, switch: str
) -> None:
    from amplifier.delivery.ledger import outside_pause_reason

    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00").code == 0  # the real ledger
    state = tmp_path / "state"
    assert outside_pause_reason(state) is None
    if switch == "file":
        (tmp_path / "state" / "PAUSE").write_text("")
    else:
        assert run_cli(*campaign, "pause", "--reason", "breaking news").code == 0
        assert outside_pause_reason(state) == "breaking news"

    result = run_cli(*campaign, "run", "--once", "--dry-run", "--now", "2027-10-29T10:00")

    assert result.code == 0, result.err
    assert "paused=" in result.err
    assert "posted" not in result.err
    assert Fake.sent == []


def test_outside_pause_reason_of_a_missing_or_unusable_ledger_is_none(tmp_path: Path) -> None:
    from amplifier.delivery.ledger import outside_pause_reason

    assert outside_pause_reason(tmp_path / "missing") is None
    assert not (tmp_path / "missing").exists()  # never created
    (tmp_path / "ledger.sqlite3").write_text("not a database")
    assert outside_pause_reason(tmp_path) is None


@pytest.mark.parametrize(
    ("unknown_since", "next_check", "claimed", "stuck"),
    [
        # an ordinary claim older than --claim-age: stuck publishing
        (None, "2027-10-29T10:00:00+00:00", "2027-10-29T10:00:00+00:00", True),
        (None, "2027-10-29T10:00:00+00:00", "2027-10-29T11:50:00+00:00", False),
        # outcome unknown, waiting two hours for a rate limit's reset: not stuck
        ("2027-10-29T10:00:00+00:00", "2027-10-29T12:30:00+00:00", "2027-10-29T10:00:00+00:00", False),
        # outcome unknown, its check long overdue: the daemon is not looking at it
        ("2027-10-29T10:00:00+00:00", "2027-10-29T10:30:00+00:00", "2027-10-29T10:00:00+00:00", True),
    ],
)
def test_health_check_of_a_post_whose_outcome_is_unknown(
    unknown_since: str | None, next_check: str, claimed: str, stuck: bool
) -> None:
    import datetime as dt

    from amplifier.daemon.status import health_problems

    now = dt.datetime(2027, 10, 29, 12, 0, tzinfo=dt.UTC)
    row = {"id": "p", "claimed_at": claimed, "unknown_since": unknown_since, "next_attempt_at": next_check}
    heartbeat = {"written_at": now.isoformat(), "at": now.isoformat()}
    problems = health_problems({"heartbeat": heartbeat, "claimed": [row]}, now, 180, 15)
    assert bool(problems) == stuck, problems
