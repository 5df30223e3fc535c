"""The exit code of each command that writes to the platforms when an account's secret is missing or its
credentials are rejected: 3 (:attr:`ExitCode.ACCOUNT`) for ``send``, ``gate``, ``correct`` and ``run --once``;
``retract`` leaves what it cannot delete to the daemon (0, with a ``waiting`` line) or reports a refused deletion
(4). The CLI maps every :class:`~amplifier.errors.AmplifierError` to its code in one place
(:func:`amplifier.cli.options.exit_code`); these pin the codes as a user sees them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from amplifier.cli.options import exit_code
from amplifier.delivery.gate import GateRefused
from amplifier.delivery.ledger import LedgerUnreachable, UnknownPost
from amplifier.delivery.send import SendRefused
from amplifier.errors import AmplifierError, CampaignError, CredentialsError, ExitCode, StateError, UsageError
from amplifier.plan.post import PlannedPost
from amplifier.publish import REGISTRY
from amplifier.publish.base import AuthError, PermanentError, TransientError
from amplifier.publish.followups import Target, WriteOutcome
from amplifier.publish.sessions import LoginRefusedError
from tests.conftest import Result
from tests.unit.test_daemon_cli import DAY1, Fake
from tests.unit.test_daemon_cli import campaign as campaign  # the fixture

RunCli = Callable[..., Result]
MASTO = DAY1.format(account="masto")
SKY = DAY1.format(account="sky")
REJECTED = "masto: the server rejected the credentials (HTTP 401): The access token is invalid"


def no_secret(account: str, settings: Any, context: Any) -> Any:
    raise CredentialsError(f"{account}: the secret TEST_MASTO_TOKEN is not set")


class Rejected(Fake):
    """A publisher whose server rejects the token for every write."""

    def publish(self, post: PlannedPost, *, resume: Any = None) -> Any:
        raise AuthError(REJECTED, status=401)

    def set_gates(self, rkeys: Any, **change: Any) -> list[str]:
        raise AuthError(REJECTED, status=401)

    def set_quote_policy(self, status_ids: Any, policy: str) -> list[str]:
        raise AuthError(REJECTED, status=401)

    def status_source(self, status_id: str) -> tuple[str, str]:
        raise AuthError(REJECTED, status=401)

    def edit_status(self, status_id: str, payload: Any) -> Any:
        raise AuthError(REJECTED, status=401)

    def followups(self) -> Rejected:
        return self

    def write(self, kind: str, target: Target, when: datetime) -> WriteOutcome:
        raise AuthError(REJECTED, status=401)

    def is_done(self, kind: str, target: Target, when: datetime) -> bool:
        raise AuthError(REJECTED, status=401)


@pytest.fixture
def published(run_cli: RunCli, campaign: list[str]) -> list[str]:
    """The campaign with the first day's posts published (by ``run --once``, with fake publishers)."""
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    return campaign


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CredentialsError("x"), ExitCode.ACCOUNT),
        (AuthError("x"), ExitCode.ACCOUNT),
        (LoginRefusedError("x", datetime(2027, 1, 1)), ExitCode.ACCOUNT),
        (PermanentError("x"), ExitCode.PUBLISH),
        (TransientError("x"), ExitCode.PUBLISH),
        (GateRefused("x"), ExitCode.PUBLISH),
        (SendRefused("x"), ExitCode.PUBLISH),
        (UnknownPost("x"), ExitCode.PUBLISH),
        (UsageError("x"), ExitCode.INVALID),
        (CampaignError([]), ExitCode.INVALID),
        (StateError("x"), ExitCode.STATE),
        (LedgerUnreachable("x"), ExitCode.STATE),
        (AmplifierError("x"), ExitCode.FAILURE),
        (ValueError("a bug"), ExitCode.FAILURE),
    ],
)
def test_every_error_class_has_its_exit_code(error: BaseException, code: ExitCode) -> None:
    assert exit_code(error) is code


@pytest.mark.parametrize("how", ["missing secret", "rejected token"])
def test_send_exits_3_for_the_account(
    run_cli: RunCli, campaign: list[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setitem(REGISTRY, "mastodon", no_secret if how == "missing secret" else Rejected)
    result = run_cli(*campaign, "--now", "2027-10-29T10:00", "send", MASTO, SKY)
    assert result.code == ExitCode.ACCOUNT, result.err
    assert ("TEST_MASTO_TOKEN is not set" if how == "missing secret" else "HTTP 401") in result.err


@pytest.mark.parametrize("how", ["missing secret", "rejected token"])
def test_run_once_exits_3_for_the_account(
    run_cli: RunCli, campaign: list[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setitem(REGISTRY, "mastodon", no_secret if how == "missing secret" else Rejected)
    result = run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00")
    assert result.code == ExitCode.ACCOUNT, result.err
    assert Fake.sent == [SKY]  # the other account posts on


@pytest.mark.parametrize("how", ["missing secret", "rejected token"])
@pytest.mark.parametrize("command", [["gate", "--quotes", "off"], ["correct"]])
def test_operator_writes_exit_3_for_the_account(
    run_cli: RunCli, published: list[str], monkeypatch: pytest.MonkeyPatch, how: str, command: list[str]
) -> None:
    monkeypatch.setitem(REGISTRY, "mastodon", no_secret if how == "missing secret" else Rejected)
    result = run_cli(*published, command[0], MASTO, *command[1:])
    assert result.code == ExitCode.ACCOUNT, result.err
    line = "TEST_MASTO_TOKEN is not set" if how == "missing secret" else "HTTP 401"
    assert f"{command[0]}: " in result.err
    assert line in result.err


def test_an_account_error_and_a_refusal_in_one_gate_exit_4(
    run_cli: RunCli, published: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst code wins, as the codes are ordered: 4 (a post refused) over 3 (an account's secret)."""
    monkeypatch.setitem(REGISTRY, "mastodon", no_secret)
    result = run_cli(*published, "gate", MASTO, "no-such:post", "--quotes", "off", "--format", "json")
    assert result.code == ExitCode.PUBLISH, result.err
    assert f"gate: {MASTO}: masto: the secret TEST_MASTO_TOKEN is not set" in result.err


@pytest.mark.parametrize("how", ["missing secret", "rejected token"])
def test_retract_leaves_an_account_error_to_the_daemon_and_exits_0(
    run_cli: RunCli, published: list[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Unlike the other writes, a retraction is recorded first and its deletions wait for the account (the daemon
    finishes them once the secret is fixed): 0, with a ``waiting`` line that says why."""
    monkeypatch.setitem(REGISTRY, "mastodon", no_secret if how == "missing secret" else Rejected)
    result = run_cli(*published, "retract", MASTO, "--now", "2027-10-29T11:00")
    assert result.code == ExitCode.OK, result.err
    why = "TEST_MASTO_TOKEN is not set" if how == "missing secret" else "HTTP 401"
    (waiting,) = [line for line in result.out.splitlines() if line.startswith("waiting: ")]
    assert why in waiting
    assert waiting.endswith("(the daemon finishes it)")


def test_a_write_on_a_post_of_an_account_the_campaign_dropped_is_a_usage_error(
    run_cli: RunCli, published: list[str]
) -> None:
    """The line names the post once (it said ``gate: ID: ID: its account...``)."""
    schedule = Path(published[1])
    text = schedule.read_text()
    start, end = text.index("  masto:\n"), text.index("  sky:\n")
    schedule.write_text(text[:start] + text[end:])
    result = run_cli(*published, "gate", MASTO, "--quotes", "off")
    assert result.code == ExitCode.INVALID, result.err
    assert result.err.strip() == f"gate: {MASTO}: its account 'masto' is not in the campaign any more"
    result = run_cli(*published, "retract", MASTO, "--now", "2027-10-29T11:00")
    assert result.code == ExitCode.PUBLISH, result.err
    assert (
        f"failed: {MASTO} delete by masto: the account 'masto' is not in the campaign any more" in result.err
    )


def test_ledger_migrate_without_a_postgresql_url(
    run_cli: RunCli, campaign: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMP_TEST_PG", raising=False)
    unset = run_cli(*campaign, "ledger", "migrate", "--to-env", "AMP_TEST_PG")
    assert unset.code == ExitCode.ACCOUNT  # a secret not set, as any other
    assert "the secret AMP_TEST_PG is not set" in unset.err
    monkeypatch.setenv("AMP_TEST_PG", "mysql://root:s3cret-pass@db/campaign")
    wrong = run_cli(*campaign, "ledger", "migrate", "--to-env", "AMP_TEST_PG")
    assert wrong.code == ExitCode.INVALID
    assert "--to-env: AMP_TEST_PG must hold a PostgreSQL URL" in wrong.err
    assert "s3cret-pass" not in wrong.out + wrong.err


def test_every_publisher_a_write_opens_is_closed_also_after_an_error(
    run_cli: RunCli, published: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    class Closing(Rejected):
        def close(self) -> None:
            closed.append(self.account)

    monkeypatch.setitem(REGISTRY, "mastodon", Closing)
    monkeypatch.setitem(REGISTRY, "bluesky", Closing)
    assert run_cli(*published, "gate", MASTO, SKY, "--quotes", "off").code == ExitCode.ACCOUNT
    assert closed == ["masto", "sky"]  # one publisher per post, closed after its write
    closed.clear()
    assert run_cli(*published, "retract", MASTO, SKY, "--now", "2027-10-29T11:00").code == ExitCode.OK
    assert sorted(closed) == ["masto", "sky"]  # one per account, closed after the deletions
