"""``send --dry-run`` and ``accounts`` as a user runs them, without any server; the JSON keys are pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from amplifier.cli import cli
from amplifier.errors import ExitCode

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
    keys = {"account", "platform", "ok", "handle", "id", "url", "server", "limits", "error"}
    by_id = {a["account"]: a for a in data["accounts"]}
    assert all(set(a) == keys for a in data["accounts"])
    assert not by_id["masto"]["ok"]
    assert "cannot read http://127.0.0.1:9/api/v2/instance" in by_id["masto"]["error"]
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
