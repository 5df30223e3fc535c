"""`amplifier init`: a campaign that validates at once, explains itself, never overwrites; completion."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from amplifier.campaign.scaffold import EVENT_IN, SKELETON_FILES, campaign_files, init_campaign
from amplifier.campaign.schema import schemas
from amplifier.errors import UsageError
from tests.conftest import ROOT, Result

RunCli = Callable[..., Result]
TODAY = dt.date(2027, 3, 1)
EXPECTED_FILES = {
    "schedule.yaml",
    "messages/messages.yaml",
    ".env.example",
    ".gitignore",
    "schema/schedule.schema.json",
    "schema/messages.schema.json",
}


def test_init_then_validate_at_once(run_cli: RunCli, tmp_path: Path) -> None:
    folder = tmp_path / "new-campaign"
    result = run_cli("init", str(folder), "--name", "Riseup: 4 Rojava")
    assert result.code == 0, result.err
    assert {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} == EXPECTED_FILES
    assert "Next: cd" in result.out
    # with the real clock, as a person runs it right after init
    validated = run_cli("validate", "-c", str(folder))
    assert validated.code == 0, validated.err
    assert "valid: 2 accounts, 3 rules, 3 message sets" in validated.out
    preview = run_cli("preview", "-c", str(folder), "--to", f"+{EVENT_IN.days + 1}d", "--format", "json")
    assert preview.code == 0, preview.err
    posts = json.loads(preview.out)["posts"]
    assert {post["rule"] for post in posts} == {"weekly-call", "countdown", "the-day"}
    assert {post["platform"] for post in posts} == {"mastodon", "bluesky"}


@pytest.mark.parametrize("today", [dt.date(2026, 12, 31), dt.date(2027, 2, 28), dt.date(2028, 10, 20)])
@pytest.mark.parametrize("zone", ["Europe/Berlin", "Asia/Damascus", "America/Sao_Paulo"])
def test_skeleton_is_valid_whatever_the_day_and_zone(
    run_cli: RunCli, tmp_path: Path, today: dt.date, zone: str
) -> None:
    folder = tmp_path / "c"
    init_campaign(folder, today=today, name="C", timezone=zone)
    result = run_cli("validate", "-c", str(folder), "--now", f"{today.isoformat()}T23:59")
    assert result.code == 0, result.err


def test_files_explain_themselves_and_name_the_secrets(tmp_path: Path) -> None:
    init_campaign(tmp_path, today=TODAY, name="C")
    schedule_text = (tmp_path / "schedule.yaml").read_text(encoding="utf-8")
    schedule = YAML(typ="safe").load(schedule_text)
    secrets = {a.get("token_env") or a.get("password_env") for a in schedule["accounts"].values()}
    assert secrets == {"AMPLIFIER_MASTODON_TOKEN", "AMPLIFIER_BLUESKY_PASSWORD"}
    env_example = (tmp_path / ".env.example").read_text(encoding="utf-8")
    for name in secrets:
        assert re.search(rf"^{name}=$", env_example, re.MULTILINE), name  # named, no value
    assert "write:statuses write:media read:accounts read:statuses" in env_example
    assert ".env" in (tmp_path / ".gitignore").read_text(encoding="utf-8").splitlines()
    for name in ("schedule.yaml", "messages/messages.yaml"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
        assert len(comments) >= 8, name
        schema_ref = re.match(r"# yaml-language-server: \$schema=(\S+)", text)
        assert schema_ref is not None
        assert (tmp_path / name).parent.joinpath(schema_ref.group(1)).resolve().is_file()
    assert schedule["events"]["day-of-action"]["date"] == TODAY + EVENT_IN
    assert "__" not in schedule_text  # every placeholder replaced


def test_schemas_are_this_versions(tmp_path: Path) -> None:
    init_campaign(tmp_path, today=TODAY)
    for name, schema in schemas().items():
        assert json.loads((tmp_path / "schema" / name).read_text(encoding="utf-8")) == schema


def test_files_are_readable_by_the_team(tmp_path: Path) -> None:
    init_campaign(tmp_path, today=TODAY)
    assert (tmp_path / "schedule.yaml").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("name", ['Quote " and: colon', "#hash # tag", "ڕۆژی کۆبانێ", "  spaced  "])
def test_any_name_is_kept_exactly(tmp_path: Path, name: str) -> None:
    files = campaign_files(today=TODAY, name=name, timezone="Europe/Berlin")
    schedule = YAML(typ="safe").load(files["schedule.yaml"])
    assert schedule["campaign"]["name"] == name.strip()


def test_refuses_to_overwrite_anything(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "messages").mkdir()
    (tmp_path / "messages" / "messages.yaml").write_text("mine", encoding="utf-8")
    result = run_cli("init", str(tmp_path))
    assert result.code == 2
    assert "already has messages/messages.yaml" in result.err
    assert "never overwrites" in result.err
    assert (tmp_path / "messages" / "messages.yaml").read_text(encoding="utf-8") == "mine"
    assert not (tmp_path / "schedule.yaml").exists()  # nothing written at all


def test_an_existing_empty_folder_is_fine(tmp_path: Path) -> None:
    result = init_campaign(tmp_path, today=TODAY)
    assert {str(p) for p in result.files} == EXPECTED_FILES


@pytest.mark.parametrize(
    ("target", "blocked"),
    [
        ("file/campaign", "file"),  # the folder would be inside a file
        ("campaign", "campaign/messages"),  # a file stands where the messages folder goes
    ],
)
def test_a_folder_that_cannot_be_made_is_a_usage_error_and_no_file_is_written(
    run_cli: RunCli, tmp_path: Path, target: str, blocked: str
) -> None:
    (tmp_path / blocked).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / blocked).write_text("mine", encoding="utf-8")
    result = run_cli("init", str(tmp_path / target))
    assert result.code == 2
    assert result.err.startswith("cannot write ")
    assert "internal error" not in result.err
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == [tmp_path / blocked]
    assert (tmp_path / blocked).read_text(encoding="utf-8") == "mine"


def test_not_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(UsageError, match="not a folder"):
        init_campaign(target, today=TODAY)


def test_unknown_timezone(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("init", str(tmp_path / "c"), "--timezone", "Europe/Berlinn")
    assert result.code == 2
    assert "--timezone: unknown timezone 'Europe/Berlinn' (did you mean Europe/Berlin, " in result.err
    assert not (tmp_path / "c").exists()


def test_every_skeleton_file_is_in_the_package() -> None:
    from importlib import resources

    for name in SKELETON_FILES:
        assert resources.files("amplifier.campaign").joinpath("skeleton", name).is_file()


# ------------------------------------------------------------------------------------------- completion


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _amplifier_completion amplifier"),
        ("zsh", "compdef _amplifier_completion amplifier"),
        ("fish", "complete --no-files --command amplifier"),
    ],
)
def test_completion_scripts(run_cli: RunCli, shell: str, marker: str) -> None:
    result = run_cli("completion", shell)
    assert result.code == 0, result.err
    assert marker in result.out
    assert "_AMPLIFIER_COMPLETE" in result.out


def test_completion_unknown_shell(run_cli: RunCli) -> None:
    result = run_cli("completion", "tcsh")
    assert result.code == 2


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("amplifier pre", 1, "plain,preview"),
        ("amplifier preview --for", 2, "plain,--format"),
        ("amplifier completion f", 2, "plain,fish"),
    ],
)
def test_completion_completes(words: str, cword: int, expected: str) -> None:
    env = {
        **os.environ,
        "_AMPLIFIER_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    code = "import sys; from amplifier.cli.main import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout.splitlines()
