"""The CLI as a user runs it: exit codes, messages on stderr, the JSON contract, and what it imports."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import BASE_MESSAGES, BASE_SCHEDULE, ROOT, Result

RunCli = Callable[..., Result]


def test_validate_example_campaign(run_cli: RunCli) -> None:
    result = run_cli("validate", "--config", str(ROOT / "schedule.yaml"), "--now", "2026-11-21T12:00")
    assert result.code == 0, result.err
    assert "valid: 7 accounts, 6 rules, 5 message sets" in result.out
    assert result.err == ""


def test_validate_reports_every_problem_with_exit_2(
    run_cli: RunCli, campaign_dir: Callable[..., Path]
) -> None:
    schedule = BASE_SCHEDULE.replace("messages: countdown", "messages: countdwn").replace(
        "  language: en\n", "  language: en\n  colour: red\n"
    )
    messages = BASE_MESSAGES.replace("{{ event.name }}.", "{{ event.name }.")
    path = campaign_dir(schedule=schedule, messages={"main.yaml": messages})
    result = run_cli("validate", "--config", str(path), "--now", "2027-01-01")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert any(line.endswith("schedule.yaml:5:3: unknown key 'colour'") for line in lines), lines
    assert any("main.yaml:6:" in line and "template syntax error" in line for line in lines), lines
    assert "Traceback" not in result.err
    assert result.out == ""


def test_validate_past_event_says_finished(run_cli: RunCli, campaign_dir: Callable[..., Path]) -> None:
    """A countdown whose event has passed is finished, not an error: validating a running campaign stays green."""
    result = run_cli("validate", "-c", str(campaign_dir()), "--now", "2027-11-05T00:00")
    assert result.code == 0, result.err
    assert ": valid: " in result.out
    assert (
        "schedule.yaml:22:12: countdown 'countdown' finished: its event 'kobane-day' (2027-11-01) has passed"
        in result.out
    )
    assert result.err == ""


def test_validate_over_limit(run_cli: RunCli, campaign_dir: Callable[..., Path]) -> None:
    messages = BASE_MESSAGES.replace(
        "    hashtags: [Riseup4Rojava]\n", "    split: {enabled: false}\n"
    ).replace("until {{ event.name }}.", "until {{ event.name }}." + " Kobanê" * 60)
    result = run_cli(
        "validate", "-c", str(campaign_dir(messages={"main.yaml": messages})), "--now", "2027-01-01"
    )
    assert result.code == 2
    assert "graphemes, over Bluesky's limit of 300" in result.err


def test_unknown_timezone_is_a_clear_error(run_cli: RunCli, campaign_dir: Callable[..., Path]) -> None:
    path = campaign_dir(schedule=BASE_SCHEDULE.replace("Europe/Berlin", "Europe/Berlinn"))
    result = run_cli("preview", "-c", str(path))
    assert result.code == 2
    assert (
        "schedule.yaml:3:13: campaign.timezone: unknown timezone 'Europe/Berlinn' (did you mean Europe/Berlin"
        in (result.err)
    )
    assert "Traceback" not in result.err


def test_preview_json_contract(run_cli: RunCli) -> None:
    result = run_cli(
        "preview",
        "-c",
        str(ROOT / "schedule.yaml"),
        "--from",
        "2027-10-31",
        "--to",
        "2027-11-02",
        "--format",
        "json",
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["version"] == 1
    assert set(data) == {"version", "campaign", "window", "posts"}
    posts = data["posts"]
    assert posts
    instants = [dt.datetime.fromisoformat(p["at"]) for p in posts]
    assert instants == sorted(instants)
    for post in posts:
        assert {"id", "at", "rule", "account", "platform", "lang", "parts"} <= set(post)
        for part in post["parts"]:
            assert {"text", "length", "limit", "payload"} <= set(part)
            assert part["length"] <= part["limit"]
    thread = next(p for p in posts if p["rule"] == "kobane-day-thread" and p["platform"] == "bluesky")
    assert len(thread["parts"]) == 3
    assert thread["parts"][0]["payload"]["embed"]["$type"] == "app.bsky.embed.images"
    assert thread["at"] == "2027-11-01T09:00:00+01:00"


def test_preview_ids_are_stable_across_windows(run_cli: RunCli) -> None:
    config = str(ROOT / "schedule.yaml")
    wide = run_cli("preview", "-c", config, "--from", "2027-10-20", "--to", "2027-11-02", "--format", "json")
    narrow = run_cli("preview", "-c", config, "--from", "2027-10-30", "--to", "+1d", "--format", "json")
    wide_posts = {p["id"]: p for p in json.loads(wide.out)["posts"]}
    narrow_posts = json.loads(narrow.out)["posts"]
    assert narrow_posts
    for post in narrow_posts:
        assert wide_posts[post["id"]] == post


def test_preview_account_filter_and_table(run_cli: RunCli) -> None:
    result = run_cli(
        "preview",
        "-c",
        str(ROOT / "schedule.yaml"),
        "--from",
        "2027-10-31",
        "--to",
        "2027-11-01",
        "--account",
        "bluesky-ckb",
    )
    assert result.code == 0, result.err
    assert "bluesky-ckb" in result.out
    assert "mastodon-en" not in result.out
    assert "ڕۆژ ماوە" in result.out


def test_preview_unknown_account(run_cli: RunCli) -> None:
    result = run_cli("preview", "-c", str(ROOT / "schedule.yaml"), "--account", "nope")
    assert result.code == 2
    assert "--account: unknown account 'nope'" in result.err


def test_bad_time_option(run_cli: RunCli) -> None:
    result = run_cli("preview", "-c", str(ROOT / "schedule.yaml"), "--from", "next tuesday")
    assert result.code == 2
    assert "--from: cannot read 'next tuesday'" in result.err


def test_compose_bluesky_counts_and_splits(run_cli: RunCli) -> None:
    text = "Jin, jiyan, azadî! 👩🏽‍💻🇹🇷 " * 20 + "#Riseup4Rojava"
    result = run_cli("compose", text, "--platform", "bluesky", "--lang", "ku", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert len(data["parts"]) >= 2
    assert all(part["length"] <= 300 for part in data["parts"])
    assert data["parts"][-1]["payload"]["facets"][-1]["features"][0]["tag"] == "Riseup4Rojava"


def test_compose_over_limit_without_split(run_cli: RunCli) -> None:
    result = run_cli("compose", "x" * 501, "--platform", "mastodon", "--no-split")
    assert result.code == 2
    assert "501 characters, over Mastodon's limit of 500" in result.err


def test_schema_command_matches_committed_files(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("schema", "-o", str(tmp_path))
    assert result.code == 0
    for name in ("schedule.schema.json", "messages.schema.json"):
        assert (tmp_path / name).read_text() == (ROOT / "schema" / name).read_text(), (
            f"schema/{name} is out of date: run `amplifier schema -o schema`"
        )
    assert (
        "# yaml-language-server: $schema=schema/schedule.schema.json" in (ROOT / "schedule.yaml").read_text()
    )


def test_example_files_validate_against_the_schema() -> None:
    import jsonschema

    from amplifier.campaign.yamlsource import load

    schedule_schema = json.loads((ROOT / "schema" / "schedule.schema.json").read_text())
    messages_schema = json.loads((ROOT / "schema" / "messages.schema.json").read_text())
    data = json.loads(json.dumps(load(ROOT / "schedule.yaml").data, default=str))
    jsonschema.validate(data, schedule_schema)
    for file in sorted((ROOT / "messages").glob("*.yaml")):
        jsonschema.validate(json.loads(json.dumps(load(file).data, default=str)), messages_schema)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", "--config", "schedule.yaml", "--now", "2026-11-21"],
        [
            "preview",
            "--config",
            "schedule.yaml",
            "--from",
            "2027-10-25",
            "--to",
            "2027-11-02",
            "--format",
            "json",
        ],
    ],
)
def test_help_validate_preview_do_not_import_atproto_or_apscheduler(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from amplifier.cli.main import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('atproto', 'atproto_client', 'apscheduler'))\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith("[]"), proc.stderr[-500:]


def test_python_dash_m_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "amplifier", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "amplifier, version" in proc.stdout


def test_preview_output_into_a_missing_folder_is_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "preview.html"
    result = run_cli("preview", "-c", str(ROOT / "schedule.yaml"), "--format", "html", "-o", str(target))
    assert result.code == 2
    assert f"--output: cannot write {target}" in result.err
    assert "Traceback" not in result.err


def test_init_with_an_unknown_timezone_is_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("init", str(tmp_path / "c"), "--timezone", "Europe/Berln", "--now", "2027-01-01")
    assert result.code == 2
    assert "--timezone: unknown timezone 'Europe/Berln' (did you mean Europe/Berlin" in result.err
    assert not (tmp_path / "c").exists()
