"""The CLI as a user runs it: exit codes, messages on stderr, the JSON contract, and what it imports."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
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
    assert any("schedule.yaml:5:3: unknown key 'colour' (use one of: " in line for line in lines), lines
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


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """``umask(0o027)`` sets the process's umask for one test."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
@pytest.mark.parametrize("fmt", ["html", "ics", "json"])
def test_preview_output_follows_the_umask(
    run_cli: RunCli, tmp_path: Path, umask: Callable[[int], None], mask: int, fmt: str
) -> None:
    umask(mask)
    target = tmp_path / f"preview.{fmt}"
    args = ("--from", "2027-10-31", "--to", "2027-11-01", "--format", fmt, "-o", str(target))
    result = run_cli("preview", "-c", str(ROOT / "schedule.yaml"), *args)
    assert result.code == 0, result.err
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    target.chmod(0o600)  # written again: a new file, with the umask's mode again
    assert run_cli("preview", "-c", str(ROOT / "schedule.yaml"), *args).code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_schema_files_follow_the_umask(
    run_cli: RunCli, tmp_path: Path, umask: Callable[[int], None], mask: int
) -> None:
    umask(mask)
    assert run_cli("schema", "-o", str(tmp_path)).code == 0
    for name in ("schedule.schema.json", "messages.schema.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("account", ["masto", "sky"])
def test_compose_for_an_account_is_the_planned_post(
    run_cli: RunCli, campaign_dir: Callable[..., Path], account: str
) -> None:
    config = str(campaign_dir())
    planned = json.loads(
        run_cli("preview", "-c", config, "--from", "2027-10-29", "--to", "+1d", "--format", "json").out
    )["posts"]
    post = next(p for p in planned if p["account"] == account)
    assert post["variant"] == 0
    template = (
        "{{ days_left | plural(one='# day', other='# days') }} until {{ event.name }}.\n\n#Riseup4Rojava"
    )
    result = run_cli(
        "compose", template, "-c", config, "--account", account, "--event", "kobane-day",
        "--now", post["at"], "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert (data["platform"], data["lang"], data["account"]) == (post["platform"], post["lang"], account)
    assert data["parts"] == post["parts"]
    assert data["parts"][0]["text"].startswith("3 days until World Kobane Day.")


def test_compose_uses_the_accounts_language_and_limit(
    run_cli: RunCli, campaign_dir: Callable[..., Path]
) -> None:
    schedule = BASE_SCHEDULE.replace(
        "    token_env: TEST_MASTO_TOKEN\n",
        "    token_env: TEST_MASTO_TOKEN\n    language: ku\n    max_characters: 100\n",
    )
    messages = "sets:\n  countdown:\n    variants:\n      - text: {en: Soon., ku: Nêzîk.}\n"
    config = str(campaign_dir(schedule=schedule, messages={"main.yaml": messages}))
    text = "Jin, jiyan, azadî! " * 12 + "{{ account.instance }}"
    result = run_cli("compose", text, "-c", config, "--account", "masto", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["lang"] == "ku"
    assert len(data["parts"]) == 3
    assert {part["limit"] for part in data["parts"]} == {100}
    assert all(part["payload"]["language"] == "ku" for part in data["parts"])
    assert data["parts"][-1]["text"].endswith("https://mastodon.example/ 3/3")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("{{ event.name }}", "--account", "masto"), "TEXT uses {{ event }}: name the event with --event"),
        (("{{ foo( }}", "--account", "masto"), "TEXT: template error: "),
        (("{{ nope }}", "--account", "masto"), "TEXT: template error: 'nope' is undefined"),
        (("x", "--account", "nope"), "--account: unknown account 'nope' (the campaign has: masto, sky)"),
        (
            ("x", "--account", "sky", "--event", "nope"),
            "--event: unknown event 'nope' (the campaign has: kobane-day)",
        ),
        (
            ("x", "--account", "sky", "--platform", "mastodon"),
            "--platform: with --account, the account's own",
        ),
        (("x", "--account", "sky", "--lang", "de"), "--lang: with --account, the account's own settings"),
        (("x",), "--platform: choose mastodon or bluesky (or give --account ID)"),
    ],
)
def test_compose_usage_errors(
    run_cli: RunCli, campaign_dir: Callable[..., Path], args: tuple[str, ...], message: str
) -> None:
    result = run_cli("compose", *args, "-c", str(campaign_dir()))
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_preview_json_to_a_file_is_what_stdout_gets(run_cli: RunCli, tmp_path: Path) -> None:
    args = [
        "preview",
        "-c",
        str(ROOT / "schedule.yaml"),
        "--from",
        "2027-10-20",
        "--to",
        "2027-11-02",
        "--format",
        "json",
    ]
    printed = run_cli(*args)
    target = tmp_path / "preview.json"
    written = run_cli(*args, "-o", str(target))
    assert printed.code == written.code == 0, written.err
    posts = json.loads(printed.out)["posts"]
    assert written.err == f"wrote {target} ({len(posts)} posts)\n"
    assert target.read_text(encoding="utf-8") == printed.out
    assert [p.name for p in tmp_path.iterdir()] == ["preview.json"]  # no temporary file left


def test_preview_json_into_a_missing_folder_is_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "preview.json"
    result = run_cli("preview", "-c", str(ROOT / "schedule.yaml"), "--format", "json", "-o", str(target))
    assert result.code == 2
    assert f"--output: cannot write {target}" in result.err
    assert result.out == ""


CLIENT_LIBRARIES = ("mastodon", "atproto", "atproto_client", "apscheduler", "requests", "urllib3", "httpx")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", "--now", "2026-11-21"],
        ["preview", "--from", "2027-10-25", "--to", "2027-11-02", "--format", "json"],
        ["preview", "--from", "2027-10-25", "--to", "2027-11-02", "--format", "ics"],
        ["status"],
        ["run", "--once", "--now", "2026-11-21"],  # nothing due: nothing to publish
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_commands_that_publish_nothing_import_no_client_library(args: list[str], tmp_path: Path) -> None:
    """Start-up: Mastodon.py (with requests and urllib3), atproto and APScheduler only for a command that publishes."""
    argv = ["--config", str(ROOT / "schedule.yaml"), "--state", str(tmp_path / "state"), *args]
    code = (
        "import sys, io, contextlib\n"
        "from amplifier.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try:\n        main({argv!r})\n    except SystemExit as exc:\n        assert not exc.code, exc.code\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({CLIENT_LIBRARIES!r}))\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith("[]"), proc.stderr[-500:]


def test_preview_to_offset_counts_from_from_as_help_and_docs_say(run_cli: RunCli) -> None:
    """Defect 8: ``--to +1h`` is an hour after ``--from`` (now when absent); --help and running.md say so."""
    config = str(ROOT / "schedule.yaml")
    result = run_cli("preview", "-c", config, "--from", "2027-10-31T09:00", "--to", "+1h", "--format", "json")
    assert result.code == 0, result.err
    window = json.loads(result.out)["window"]
    start, end = (dt.datetime.fromisoformat(window[k]) for k in ("from", "to"))
    assert end - start == dt.timedelta(hours=1)
    now = run_cli("preview", "-c", config, "--now", "2027-10-31T09:00", "--to", "+1h", "--format", "json")
    window = json.loads(now.out)["window"]
    assert dt.datetime.fromisoformat(window["to"]) - dt.datetime.fromisoformat(window["from"]) == (
        dt.timedelta(hours=1)
    )
    helptext = run_cli("preview", "--help").out
    assert "counts from --from" in " ".join(helptext.split())
    running = (Path(__file__).resolve().parents[2] / "docs" / "running.md").read_text()
    assert "offset given to `--to` counts from `--from`" in " ".join(running.split())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("validate", "--now", "+999999999d"), "--now: '+999999999d' is too far"),
        (("validate", "--horizon", "99999999999d"), "--horizon: '+99999999999d' is too far"),
        (("validate", "--now", "9999-12-31T23:00"), "use a time between 1900 and 2999"),
        (("validate", "--now", "0001-01-01"), "use a time between 1900 and 2999"),
        (("preview", "--from", "2027-01-10", "--to", "2027-01-01"), "give a --to after --from"),
        (("preview", "--from", "+999999999w"), "--from: '+999999999w' is too far"),
    ],
)
def test_times_out_of_range_are_usage_errors(run_cli: RunCli, args: tuple[str, ...], fragment: str) -> None:
    result = run_cli(*args, "--config", str(ROOT / "schedule.yaml"))
    assert result.code == 2, result.err
    assert fragment in result.err
    assert "internal error" not in result.err


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("abc\udcff", "TEXT: byte 0xff at character 4 is not UTF-8 text"),
        ("abc\x1b[2J", "TEXT: the control character U+001B at character 4"),
        ("a\x00b", "TEXT: the control character U+0000 at character 2"),
    ],
)
def test_compose_refuses_text_that_cannot_be_posted(run_cli: RunCli, text: str, fragment: str) -> None:
    result = run_cli("compose", text, "--platform", "mastodon")
    assert result.code == 2
    assert fragment in result.err


def test_unusable_state_folder_is_exit_5(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    for command in ("pause", "accounts"):  # the commands that write to the state folder
        result = run_cli(
            "--config", str(ROOT / "schedule.yaml"), "--state", str(tmp_path / "afile" / "sub"), command
        )
        assert result.code == 5, (command, result.err)
        assert "cannot create the" in result.err
    # status and history write nothing: with no ledger there, status shows the plan from the campaign files
    assert (
        run_cli(
            "--config", str(ROOT / "schedule.yaml"), "--state", str(tmp_path / "afile" / "sub"), "history"
        ).code
        == 0
    )
    shown = run_cli(
        "--config", str(ROOT / "schedule.yaml"), "--state", str(tmp_path / "afile" / "sub"), "status"
    )
    assert shown.code == 0, shown.err
    assert "the daemon has not run yet" in shown.out
    (tmp_path / "dir" / "ledger.sqlite3").mkdir(parents=True)
    result = run_cli("--config", str(ROOT / "schedule.yaml"), "--state", str(tmp_path / "dir"), "status")
    assert result.code == 5, result.err
    assert "cannot open the ledger" in result.err


def test_ledger_from_a_newer_version_is_exit_4(run_cli: RunCli, tmp_path: Path) -> None:
    import sqlite3

    from amplifier.delivery.ledger import open_ledger

    with open_ledger(tmp_path, dt.datetime(2027, 1, 1, tzinfo=dt.UTC)):
        pass
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as raw:
        raw.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_future', 'x')")
    raw.close()
    result = run_cli("--config", str(ROOT / "schedule.yaml"), "--state", str(tmp_path), "status")
    assert result.code == 4, result.err
    assert "upgrade amplifier" in result.err
