"""A wrong ``AMPLIFIER_LEDGER`` as an operator meets it: one plain line saying what is wrong with the URL or the
connection, never its password (no server is needed: every URL here fails before or at connecting)."""

from __future__ import annotations

import pytest

from amplifier import redact
from tests.unit.test_daemon_cli import RunCli
from tests.unit.test_daemon_cli import campaign as campaign  # the fixture

PASSWORD = "Sup3r%S3cret"


@pytest.fixture(autouse=True)
def _forget() -> None:
    redact.forget_all()


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
