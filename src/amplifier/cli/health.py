"""``status --check``: what needs an operator, one line each (see :mod:`amplifier.cli.status` and
docs/running.md): a stale heartbeat, a stuck claim or an overdue check of an unknown outcome, an account paused by
a credential problem, a recent failure, an overdue post, a secret that cannot be read."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from amplifier.delivery.ledger import Ledger, State

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign

PROBLEM_STATES = (State.FAILED, State.EXPIRED)


def _time(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None


def health_problems(
    status: dict[str, Any], real_now: dt.datetime, max_age: float, claim_age: float
) -> list[str]:
    """Why the daemon looks stuck: an old or missing heartbeat, a post claimed too long, an unknown outcome
    whose check is overdue (empty: none of these)."""
    problems = []
    heartbeat = status.get("heartbeat")
    written = _time(heartbeat.get("written_at")) if heartbeat is not None else None
    if written is None:
        problems.append("no heartbeat: the daemon is not running (or has never run)")
    elif (real_now - written).total_seconds() > max_age:
        age = (real_now - written).total_seconds()
        problems.append(f"the last heartbeat is {age:.0f}s old (more than {max_age:.0f}s)")
    for row in status.get("claimed", []):
        claimed_at = row.get("claimed_at")
        if row.get("unknown_since"):
            # Outcome unknown: waiting for its next check (a backoff, a reset time) is not being stuck;
            # a check overdue by as long is.
            check = _time(row.get("next_attempt_at"))
            if check and (real_now - check).total_seconds() > claim_age * 60:
                problems.append(
                    f"post {row['id']}: outcome unknown since {row['unknown_since']}, its check due at "
                    f"{row['next_attempt_at']} is overdue (is the daemon running?)"
                )
        elif (
            claimed_at and (real_now - dt.datetime.fromisoformat(claimed_at)).total_seconds() > claim_age * 60
        ):
            problems.append(f"post {row['id']} has been claimed since {claimed_at} (stuck publishing?)")
    return problems


def ledger_problems(ledger: Ledger, now: dt.datetime, failed_within: float, overdue: float) -> list[str]:
    """What in the ledger needs an operator: an account paused by a credential problem (not an operator's
    pause), a post failed or expired within ``failed_within`` hours, a due post not sent ``overdue`` minutes
    after its time."""
    problems = [
        f"account {pause.account} is paused: {pause.reason} (fix it, then `amplifier resume --account "
        f"{pause.account}`)"
        for pause in ledger.account_pauses()
        if pause.by is None
    ]
    for row in reversed(ledger.finished_since(PROBLEM_STATES, now - dt.timedelta(hours=failed_within), 20)):
        problems.append(f"post {row.id} {row.state.value} at {row.updated_at.isoformat()}: {row.last_error}")
    for row in ledger.overdue(now - dt.timedelta(minutes=overdue), 20):
        problems.append(
            f"post {row.id} is overdue: due at {row.next_attempt_at.isoformat()} and still not sent "
            "(is the daemon running, or held back by a rate limit?)"
        )
    return problems


def secret_problems(campaign: Campaign) -> list[str]:
    """Every account whose secret cannot be read (no network: only that it is there and readable)."""
    from amplifier.errors import CredentialsError
    from amplifier.publish.secrets import SecretSources

    sources = SecretSources.for_campaign(campaign.root)
    problems = []
    for account, settings in sorted(campaign.schedule.accounts.items()):
        name = getattr(settings, "token_env", None) or getattr(settings, "password_env", None)
        if not name:
            continue
        try:
            sources.get(str(name))
        except CredentialsError as error:
            problems.append(f"account {account}: {error}")
    return problems


__all__ = ["health_problems", "ledger_problems", "secret_problems"]
