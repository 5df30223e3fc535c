"""``skip``, ``cancel``, ``retry``, ``pause --account`` and what ``status`` / ``status --check`` / ``history`` say
of them, as an operator runs them (fake publishers, no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amplifier.delivery.ledger import State, open_ledger
from amplifier.publish import REGISTRY
from tests.conftest import BASE_SCHEDULE, Result
from tests.unit.test_daemon_cli import Fake

RunCli = Callable[..., Result]
M29 = "countdown:masto:2027-10-29T10:00"
S29 = "countdown:sky:2027-10-29T10:00"
M30 = "countdown:masto:2027-10-30T10:00"
M31 = "countdown:masto:2027-10-31T10:00"
T = datetime(2027, 10, 29, 12, tzinfo=UTC)


@pytest.fixture
def campaign(campaign_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    Fake.sent = []
    Fake.fail = False
    monkeypatch.setitem(REGISTRY, "mastodon", Fake)
    monkeypatch.setitem(REGISTRY, "bluesky", Fake)
    monkeypatch.delenv("AMPLIFIER_STATE", raising=False)
    monkeypatch.setenv("AMPLIFIER_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("TEST_MASTO_TOKEN", "t")
    monkeypatch.setenv("TEST_SKY_PASSWORD", "p")
    path = campaign_dir(schedule=BASE_SCHEDULE)
    return ["--config", str(path), "--state", str(tmp_path / "state")]


def state_of(tmp_path: Path, post_id: str) -> State:
    with open_ledger(tmp_path / "state", T) as ledger:
        return ledger.get(post_id).state


def status_json(run_cli: RunCli, campaign: list[str], *args: str) -> tuple[int, dict, str]:
    result = run_cli(*campaign, "status", "--format", "json", *args)
    return result.code, json.loads(result.out), result.err


def test_skip_survives_replans_and_is_shown_with_who_and_why(
    run_cli: RunCli, campaign: list[str], tmp_path: Path
) -> None:
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00").code == 0  # plans the window
    result = run_cli(
        *campaign, "skip", M29, M31, "--reason", "wrong date", "--by", "alice", "--now", "2027-10-28T12:00"
    )
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"skipped: {M29}",
        f"skipped: {M31}",
    ]  # M31: beyond the daemon's window
    # every pass re-plans; the skipped posts never go out
    for now in ("2027-10-29T10:00", "2027-10-30T10:00", "2027-10-31T10:00"):
        assert run_cli(*campaign, "run", "--once", "--now", now).code == 0
    assert M29 not in Fake.sent
    assert M31 not in Fake.sent
    assert S29 in Fake.sent
    assert M30 in Fake.sent
    assert state_of(tmp_path, M29) == State.SKIPPED
    _, data, _ = status_json(run_cli, campaign, "--now", "2027-10-31T12:00")
    assert [(a["by"], a["action"], a["target"], a["reason"]) for a in data["actions"]] == [
        ("alice", "skip", M31, "wrong date"),
        ("alice", "skip", M29, "wrong date"),
    ]
    history = json.loads(
        run_cli(*campaign, "history", "--now", "2027-11-01", "--account", "masto", "--format", "json").out
    )
    skipped = {p["id"]: p["reason"] for p in history["posts"] if p["state"] == "skipped"}
    assert skipped == {M29: "skipped by alice: wrong date", M31: "skipped by alice: wrong date"}
    assert len(history["actions"]) == 2
    table = run_cli(*campaign, "history", "--now", "2027-11-01")
    assert "alice" in table.out
    assert "wrong date" in table.out


def test_skip_of_an_id_in_neither_the_ledger_nor_the_campaign_skips_nothing(
    run_cli: RunCli, campaign: list[str], tmp_path: Path
) -> None:
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00").code == 0
    result = run_cli(*campaign, "skip", M29, "countdown:masto:2027-10-29T11:00", "--now", "2027-10-28T12:00")
    assert result.code == 2
    assert "no planned post with id 'countdown:masto:2027-10-29T11:00'" in result.err
    assert state_of(tmp_path, M29) == State.PLANNED  # all or none


def test_skip_of_a_post_being_published_is_refused(
    run_cli: RunCli, campaign: list[str], tmp_path: Path
) -> None:
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00").code == 0
    with open_ledger(tmp_path / "state", T) as ledger:
        assert ledger.claim(M29, T, "the-daemon")
    result = run_cli(*campaign, "skip", S29, M29)
    assert result.code == 4
    assert "is being published right now" in result.err
    assert state_of(tmp_path, S29) == State.PLANNED  # all or nothing
    unknown = run_cli(*campaign, "skip", "countdown:masto:2030-01-01T10:00")
    assert unknown.code == 2
    assert "no planned post" in unknown.err


@pytest.mark.parametrize(
    ("args", "cancelled"),
    [
        (["--account", "masto"], {M29, M30, M31} - {M31}),
        (["--rule", "countdown"], {M29, M30, S29, "countdown:sky:2027-10-30T10:00"}),
        (["--event", "kobane-day"], {M29, M30, S29, "countdown:sky:2027-10-30T10:00"}),
    ],
)
def test_cancel_every_planned_post_of_an_account_rule_or_event(
    run_cli: RunCli, campaign: list[str], tmp_path: Path, args: list[str], cancelled: set[str]
) -> None:
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00").code == 0
    result = run_cli(*campaign, "cancel", *args, "--reason", "postponed")
    assert result.code == 0, result.err
    assert {line.strip() for line in result.out.splitlines()[1:]} == cancelled
    # exit 4 when the sky post of the 29th, not cancelled, missed its window (no pass ran that day)
    expected = 0 if S29 in cancelled else 4
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-30T10:00").code == expected
    assert not cancelled & set(Fake.sent)
    assert all(state_of(tmp_path, post_id) == State.SKIPPED for post_id in cancelled)


def test_cancel_needs_exactly_one_target(run_cli: RunCli, campaign: list[str]) -> None:
    assert run_cli(*campaign, "cancel").code == 2
    assert run_cli(*campaign, "cancel", "--rule", "countdown", "--account", "masto").code == 2
    assert "no event" in run_cli(*campaign, "cancel", "--event", "nope").err


def test_retry_within_the_window_and_late(run_cli: RunCli, campaign: list[str], tmp_path: Path) -> None:
    Fake.fail = True
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 4
    assert state_of(tmp_path, M29) == State.FAILED
    code, data, _err = status_json(run_cli, campaign, "--check", "--now", "2027-10-29T10:05")
    assert code == 1
    assert any(p.startswith(f"post {M29} failed at ") for p in data["problems"]), data["problems"]
    # the countdown post may go out late on its own day only: retry (no --late) works that day, not the next
    Fake.fail = False
    within = run_cli(*campaign, "retry", M29, "--by", "bob", "--now", "2027-10-29T12:00")
    assert within.code == 0, within.err
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T12:01").code == 0
    assert M29 in Fake.sent
    refused = run_cli(*campaign, "retry", S29, "--by", "bob", "--now", "2027-10-30T09:00")
    assert refused.code == 2
    assert "give --late" in refused.err
    assert state_of(tmp_path, S29) == State.FAILED
    late = run_cli(
        *campaign,
        "retry",
        S29,
        "--late",
        "--by",
        "bob",
        "--reason",
        "server fixed",
        "--now",
        "2027-10-30T09:00",
    )
    assert late.code == 0, late.err
    with open_ledger(tmp_path / "state", T) as ledger:
        row = ledger.get(S29)
        assert (row.state, row.attempts, row.late_until is not None) == (State.PLANNED, 0, True)
        actions = ledger.operator_actions()
    assert [(a.by, a.action, a.target, a.reason) for a in actions] == [
        ("bob", "retry --late", S29, "server fixed"),
        ("bob", "retry", M29, "retried by the operator"),
    ]
    assert row.late_until == datetime(2027, 10, 30, 9, tzinfo=UTC) + (
        row.late_until - row.late_until.replace(hour=9)
    )
    # the daemon honours --late: a pass after the post's own window sends it instead of expiring it
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-30T09:30").code == 0
    assert S29 in Fake.sent
    assert state_of(tmp_path, S29) == State.PUBLISHED
    again = run_cli(*campaign, "retry", S29)
    assert again.code == 4
    assert "only a failed or expired post" in again.err


def test_pause_account_by_the_operator_is_not_a_health_failure_but_the_daemons_is(
    run_cli: RunCli, campaign: list[str], tmp_path: Path
) -> None:
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00").code == 0
    result = run_cli(*campaign, "pause", "--account", "masto", "--reason", "holiday", "--by", "carol")
    assert result.code == 0, result.err
    assert run_cli(*campaign, "pause", "--account", "nobody").code == 2
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    assert M29 not in Fake.sent
    code, data, err = status_json(run_cli, campaign, "--check", "--overdue", "100000000")
    assert code == 0, err
    assert data["accounts"]["masto"]["paused"] == "holiday"
    assert data["accounts"]["masto"]["paused_by"] == "carol"
    assert [row["id"] for row in data["held"]][:1] == [M29]  # its next posts are held
    with open_ledger(tmp_path / "state", T) as ledger:
        ledger.pause_account("sky", "the server rejected the app password", T)  # what the daemon does
    code, data, err = status_json(run_cli, campaign, "--check", "--overdue", "100000000")
    assert code == 1
    assert "unhealthy: account sky is paused: the server rejected the app password" in err
    assert "masto" not in err
    assert run_cli(*campaign, "resume", "--account", "masto", "--by", "carol").code == 0
    _, data, _ = status_json(run_cli, campaign)
    assert [(a["action"], a["target"]) for a in data["actions"]] == [
        ("resume", "account masto"),
        ("pause", "account masto"),
    ]


def test_check_fails_on_an_overdue_post(run_cli: RunCli, campaign: list[str]) -> None:
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00").code == 0
    # the daemon has not sent the post of the 29th two hours after its time
    code, _data, err = status_json(run_cli, campaign, "--check", "--now", "2027-10-29T12:00")
    assert code == 1
    overdue = [line for line in err.splitlines() if "is overdue" in line]
    assert [line.split(" is overdue")[0] for line in overdue] == [
        f"unhealthy: post {M29}",
        f"unhealthy: post {S29}",
    ]


def test_status_before_the_daemon_ever_ran_shows_the_plan_and_creates_nothing(
    run_cli: RunCli, campaign: list[str], tmp_path: Path
) -> None:
    code, data, err = status_json(run_cli, campaign, "--now", "2027-10-28T12:00")
    assert code == 0, err
    assert not (tmp_path / "state").exists()
    assert data["planned_only"] is True
    assert [row["id"] for row in data["next"][:2]] == [M29, S29]
    assert data["accounts"]["masto"]["next_due_at"].startswith("2027-10-29T10:00")
    table = run_cli(*campaign, "status", "--now", "2027-10-28T12:00")
    assert table.code == 0
    assert "has not run yet" in table.out
    history = run_cli(*campaign, "history", "--format", "json")
    assert history.code == 0
    assert json.loads(history.out)["posts"] == []
    assert not (tmp_path / "state").exists()


def test_status_and_history_give_every_parts_result(
    run_cli: RunCli, campaign: list[str], tmp_path: Path
) -> None:
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-28T12:00").code == 0
    with open_ledger(tmp_path / "state", T) as ledger:
        assert ledger.claim(M29, T, "x")
        ledger.mark_published(
            M29,
            [
                {"id": "1", "uri": "at://a/1", "url": "https://x/1"},
                {"id": "2", "uri": "at://a/2", "url": None},
            ][: ledger.get(M29).part_count]
            + [{"id": str(i)} for i in range(2, ledger.get(M29).part_count)],
            T,
            token="x",
        )
    _, data, _ = status_json(run_cli, campaign, "--now", "2027-10-29T13:00")
    results = data["last_published"][0]["results"]
    assert results[0] == {"id": "1", "uri": "at://a/1", "url": "https://x/1"}
    assert all(set(part) == {"id", "uri", "url"} for part in results)
    history = json.loads(run_cli(*campaign, "history", "--now", "2027-10-30", "--format", "json").out)
    assert history["posts"][0]["results"] == results


def test_status_check_of_broken_files_without_a_ledger_creates_nothing(
    run_cli: RunCli, campaign: list[str], tmp_path: Path
) -> None:
    Path(campaign[1]).write_text("campaign: [", encoding="utf-8")
    result = run_cli(*campaign, "status", "--check")
    assert result.code == 1
    assert "unhealthy: the campaign files cannot be loaded" in result.err
    assert not (tmp_path / "state").exists()


def test_status_and_history_say_when_their_times_are_in_utc_for_want_of_the_campaign(
    run_cli: RunCli, campaign: list[str]
) -> None:
    """Campaign files that cannot be loaded made ``status`` and ``history`` show UTC times as if they were the
    campaign's, without a word."""
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    schedule = Path(campaign[1])
    good = schedule.read_text(encoding="utf-8")
    fine = json.loads(run_cli(*campaign, "status", "--format", "json").out)
    assert (fine["timezone"], fine["campaign_error"]) == ("Europe/Berlin", None)
    schedule.write_text(
        good.replace("  timezone: Europe/Berlin", "  timezon: Europe/Berlin"), encoding="utf-8"
    )
    note = f"times in UTC: the campaign files cannot be loaded ({schedule}:3:3: unknown key 'timezon'"
    for command in (("status",), ("history", "--from", "2027-10-28", "--to", "2027-10-30")):
        table = run_cli(*campaign, *command)
        assert table.code == 0, table.err
        assert table.out.splitlines()[0].startswith(note), table.out
        assert "Traceback" not in table.out + table.err
    data = json.loads(run_cli(*campaign, "status", "--format", "json").out)
    assert data["timezone"] == "UTC"
    assert data["campaign_error"].startswith(f"{schedule}:3:3: unknown key 'timezon'")
    assert data["last_published"][0]["due_at"] == "2027-10-29T08:00:00+00:00"


def test_status_at_80_columns_keeps_each_id_whole(
    run_cli: RunCli, campaign: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ids were folded over three lines (``kobane-countdow`` / ``n:bluesky-ckb:2`` / ...) beside an account
    column and a raw ``next_attempt_at``: neither readable nor copyable for ``skip ID``."""
    monkeypatch.setenv("COLUMNS", "80")
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    Fake.fail = True
    run_cli(*campaign, "run", "--once", "--now", "2027-10-30T10:00")
    assert run_cli(*campaign, "pause", "--account", "sky", "--reason", "checking the wording").code == 0
    status = run_cli(*campaign, "status", "--now", "2027-10-30T10:05")
    assert status.code == 0, status.err
    lines = status.out.splitlines()
    assert all(len(line) <= 80 for line in lines), status.out
    assert "│ 2027-10-31 10:00 │ countdown:masto:2027-10-31T10:00 │ planned │" in lines  # next due
    assert "│ 2027-10-31 10:00 │ countdown:sky:2027-10-31T10:00 │ planned │" in lines  # held
    failed = lines.index("│ 2027-10-30 10:00 │ countdown:masto:2027-10-30T10:00             │ failed │")
    assert "the server refused the post (HTTP 422): nope" in lines[failed + 1]  # the reason under its id
    assert "next_attempt_at" not in status.out
    assert any(line.startswith("│ 2027-10-29 10:00 │ countdown:masto:2027-10-29T10:00 ") for line in lines)


def test_a_post_waiting_for_a_retry_says_when_under_its_id() -> None:
    import io

    from rich.console import Console

    from amplifier.cli.status_tables import posts_table

    row = {
        "id": "countdown:masto:2027-10-31T10:00",
        "due_at": "2027-10-31T10:00:00+01:00",
        "next_attempt_at": "2027-10-31T10:30:00+01:00",
        "state": "planned",
        "reason": "server error (HTTP 502): will retry",
    }
    out = io.StringIO()
    Console(file=out, width=80).print(
        posts_table("next due", [row, {**row, "next_attempt_at": row["due_at"]}])
    )
    text = out.getvalue()
    assert "server error (HTTP 502): will retry" in text
    assert text.count("retry at 2027-10-31 10:30") == 1  # the second is due at its time: nothing to say


def test_the_heartbeat_line_is_in_the_campaigns_zone_with_its_age(
    run_cli: RunCli, campaign: list[str]
) -> None:
    """It was ``heartbeat: 2026-11-30T00:00:58.030688+00:00``: UTC with microseconds, beside Berlin times."""
    from amplifier.cli.status_tables import heartbeat_text

    beat = {"written_at": "2027-10-30T09:04:20.123456+00:00"}
    assert heartbeat_text(beat, "2027-10-30T10:05:00+01:00") == "2027-10-30 10:04 (40 s ago)"
    assert heartbeat_text(None, "2027-10-30T10:05:00+01:00") == "none"
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    status = run_cli(*campaign, "status")
    line = next(text for text in status.out.splitlines() if text.startswith("heartbeat: "))
    assert line.endswith(" s ago)"), line
