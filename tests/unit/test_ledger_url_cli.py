"""A wrong ``AMPLIFIER_LEDGER`` as an operator meets it: one plain line saying what is wrong with the URL or the
connection, never its password (no server is needed: every URL here fails before or at connecting)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from amplifier import redact
from amplifier.delivery.ledger import ledger_url
from tests.unit.test_daemon_cli import RunCli
from tests.unit.test_daemon_cli import campaign as campaign  # the fixture

PASSWORD = "Sup3r%S3cret"


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()  # what these tests registered must not mask another module's output


@pytest.mark.parametrize("command", [("status",), ("pause",), ("status", "--check", "--format", "json")])
def test_a_password_the_driver_cannot_decode_is_never_echoed(
    run_cli: RunCli, campaign: list[str], monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """psycopg's message quoted the password back: ``invalid percent-encoded token: "Sup3r%S3cret"``."""
    monkeypatch.setenv("AMPLIFIER_LEDGER", f"postgresql://amp:{PASSWORD}@127.0.0.1:1/amp")
    result = run_cli(*campaign, *command)
    assert result.code != 0
    assert "S3cret" not in result.out + result.err
    assert (
        "the PostgreSQL ledger (its URL cannot be read): cannot connect to the ledger database (percent-encode the"
        " special characters of its user name and password (% as %25" in result.err
    )
    assert "Traceback" not in result.err


def test_a_refused_connection_says_what_failed_and_the_hint() -> None:
    """Only the hint was kept (``(\\tIs the server running on that host ...?)``), not that it was refused."""
    import psycopg

    from amplifier.delivery.ledger.postgres import connect_reason

    error = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )
    assert connect_reason(error) == (
        "Connection refused; Is the server running on that host and accepting TCP/IP connections?"
    )


def test_a_driver_message_that_quotes_the_password_is_redacted() -> None:
    from amplifier.delivery.ledger.postgres import PostgresLedger, connect_reason

    PostgresLedger("postgresql://amp:pl41n-Secret-pw@127.0.0.1:1/amp")  # registers it; connects to nothing
    error = __import__("psycopg").OperationalError('FATAL: bad option "pl41n-Secret-pw"')
    assert "pl41n" not in connect_reason(error)


def test_the_health_check_counts_an_unreachable_ledger_as_a_problem(
    run_cli: RunCli, campaign: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It exited 4 with no JSON: the Docker health check's log had no word of why."""
    import json

    monkeypatch.setenv("AMPLIFIER_LEDGER", "postgresql://amp:pl41n-Secret-pw@127.0.0.1:1/amp")
    result = run_cli(*campaign, "status", "--check", "--format", "json")
    assert result.code == 1, result.err
    data = json.loads(result.out)
    assert data["healthy"] is False
    (problem,) = [p for p in data["problems"] if "ledger" in p]
    assert problem.startswith("the ledger cannot be opened: postgresql://127.0.0.1:1/amp: cannot connect")
    assert f"unhealthy: {problem}" in result.err
    assert "pl41n" not in result.out + result.err


def test_the_url_is_read_from_the_secrets_folder(tmp_path: Path) -> None:
    folder = tmp_path
    assert ledger_url({"AMPLIFIER_SECRETS_DIR": str(folder)}) is None
    (folder / "AMPLIFIER_LEDGER").write_text("postgresql://ledger-owner@db.example/ledger\n")
    assert ledger_url({"AMPLIFIER_SECRETS_DIR": str(folder)}) == "postgresql://ledger-owner@db.example/ledger"
    assert ledger_url({"AMPLIFIER_SECRETS_DIR": str(folder / "missing")}) is None


def test_no_url_anywhere_costs_no_secret_lookup(tmp_path: Path) -> None:
    """The health check and ``history`` open the ledger every time: with no URL set and no secrets file, finding
    that out imports nothing of pydantic-settings (about 30 ms of each command)."""
    code = (
        "import sys\n"
        "from amplifier.delivery.ledger import ledger_url\n"
        f"assert ledger_url({{'AMPLIFIER_SECRETS_DIR': {str(tmp_path)!r}}}) is None\n"
        "assert 'pydantic_settings' not in sys.modules, 'pydantic_settings imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
