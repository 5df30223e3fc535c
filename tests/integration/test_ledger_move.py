"""Moving a campaign's ledger from the state folder's SQLite file to PostgreSQL (``amplifier ledger migrate``),
and the commands working against the shared ledger, on a real PostgreSQL started by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amplifier.delivery.ledger import (
    GateChange,
    PlanEntry,
    State,
    open_ledger,
    open_ledger_copy,
    open_local_ledger,
)
from amplifier.delivery.ledger.postgres import PostgresLedger
from tests.conftest import Result
from tests.integration.servers.postgres import PostgresServer

T0 = datetime(2027, 10, 25, 8, 0, tzinfo=UTC)
PASSWORD = (
    "pw-6f1d2c0e9a"  # trust authentication accepts any password: it is here to be kept out of every output
)


def _url(postgres: PostgresServer, database: str) -> str:
    postgres.create_database(database)
    return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{postgres.port}/{database}"


def _fill(state: Path) -> None:
    with open_local_ledger(state, T0) as ledger:
        ledger.sync_plan(
            [
                PlanEntry(f"r:{a}:{n}", a, "mastodon", "r", T0 + timedelta(hours=n), f"h{n}", 1)
                for n in range(4)
                for a in ("acc1", "acc2")
            ],
            T0,
        )
        ledger.claim("r:acc1:0", T0, "otherhost:1:daemon-x")
        ledger.mark_published("r:acc1:0", [{"id": "9", "url": "https://m.example/9"}], T0)
        ledger.mark_expired("r:acc2:0", "missed its window", T0)
        ledger.pause_account("acc2", "credentials rejected by the server", T0)
        ledger.record_gate_change(GATE_CHANGE)


GATE_CHANGE = GateChange(
    "r:acc1:0", "acc1", "ana@laptop", T0, None, "nobody", "done", "status 9: quotes nobody"
)

RunCli = Callable[..., Result]


@pytest.fixture
def cli(run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, RunCli]:
    """The state folder (``$AMPLIFIER_STATE``) and the CLI runner."""
    state = tmp_path / "state"
    monkeypatch.setenv("AMPLIFIER_STATE", str(state))
    monkeypatch.chdir(tmp_path)
    return state, run_cli


def test_migrate_moves_every_post_once_and_pauses_the_old_ledger(
    postgres: PostgresServer, cli: tuple[Path, RunCli], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, run = cli
    _fill(state)
    with open_local_ledger(state, T0) as before:
        rows = list(before.export_rows())
    url = _url(postgres, "move1")
    monkeypatch.setenv("AMPLIFIER_LEDGER", url)

    result = run("ledger", "migrate")
    assert result.code == 0, result.err
    assert "moved 8 post(s) to postgresql://127.0.0.1:" in result.out
    assert "1 published" in result.out
    assert "1 expired" in result.out
    assert "acc2" in result.out
    assert PASSWORD not in result.out + result.err

    with PostgresLedger.open(url, T0) as shared:
        assert list(shared.export_rows()) == rows
        assert shared.paused_accounts() == {"acc2": "credentials rejected by the server"}
        assert shared.gate_changes() == [GATE_CHANGE]
        assert not shared.is_paused()
    with open_local_ledger(state, T0) as old:
        reason = old.pause_reason()
    assert reason is not None
    assert "moved to postgresql://127.0.0.1:" in reason
    assert PASSWORD not in reason

    # The commands now read the shared ledger; a second move is refused and changes nothing there.
    where = run("ledger", "where")
    assert where.out.startswith("postgresql: postgresql://127.0.0.1:")
    assert PASSWORD not in where.out
    again = run("ledger", "migrate")
    assert again.code != 0
    assert "holds posts already" in again.err
    assert PASSWORD not in again.err
    with PostgresLedger.open(url, T0) as shared:
        assert len(list(shared.export_rows())) == 8


def test_a_post_being_published_stops_the_move_and_posting_stays_paused(
    postgres: PostgresServer, cli: tuple[Path, RunCli], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, run = cli
    _fill(state)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        with open_local_ledger(state, T0) as ledger:
            ledger.claim("r:acc1:1", datetime.now(UTC), f"{socket.gethostname()}:{sleeper.pid}:daemon-x")
        url = _url(postgres, "move2")
        monkeypatch.setenv("AMPLIFIER_LEDGER", url)
        result = run("ledger", "migrate")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.code != 0
    assert "being published right now (r:acc1:1)" in result.err
    with PostgresLedger.open(url, T0) as shared:
        assert shared.counts_by_state()[State.PLANNED] == 0
    with open_local_ledger(state, T0) as old:
        assert (old.pause_reason() or "").startswith("moving the ledger to")


def test_a_dry_run_copies_the_shared_ledger_and_never_writes_to_it(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _url(postgres, "copy1")
    monkeypatch.setenv("AMPLIFIER_LEDGER", url)
    with open_ledger(tmp_path, T0) as shared:
        assert isinstance(shared, PostgresLedger)
        shared.sync_plan([PlanEntry("p", "acc1", "bluesky", "r", T0, "h", 1)], T0)
        shared.set_paused(True, "held for review", T0)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with open_ledger_copy(tmp_path, scratch, T0) as copy:
        assert copy.get("p").state == State.PLANNED
        assert copy.pause_reason() == "held for review"
        assert not copy.claim("p", T0, "dry:1:run")  # paused, as the shared ledger is
        copy.set_paused(False, None, T0)
        assert copy.claim("p", T0, "dry:1:run")
    with open_ledger(tmp_path, T0) as shared:
        assert shared.get("p").state == State.PLANNED
    assert os.environ["AMPLIFIER_LEDGER"] == url


def test_a_ledger_url_that_is_not_postgresql_is_refused_without_echoing_it(
    cli: tuple[Path, RunCli], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, run = cli
    monkeypatch.setenv("AMPLIFIER_LEDGER", f"mysql://root:{PASSWORD}@db/x")
    result = run("status")
    assert result.code == 4, result.err
    assert "AMPLIFIER_LEDGER must be a PostgreSQL URL" in result.err
    assert PASSWORD not in result.out + result.err
