"""What the daemon is doing, read from the ledger, the heartbeat and the campaign files (``amplifier status``), and
what an operator must act on (``status --check``, the Docker ``HEALTHCHECK``).

Aggregate and windowed ledger queries (:meth:`Ledger.summaries`, :meth:`Ledger.latest`, ...): the cost follows what
is shown, not the size of the ledger. Before the daemon ever ran (no ledger yet), :func:`plan_status` shows the plan
from the campaign files and creates nothing. The CLI (:mod:`amplifier.cli.status`) only renders these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from amplifier.daemon.settings import FAR_FUTURE, HEARTBEAT_NAME, PAUSE_NAME
from amplifier.delivery.ledger import Ledger, Row, State

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign

JSON_VERSION = 1  # of status's JSON (pinned by tests/unit/test_daemon_cli.py)
FINISHED = (State.PUBLISHED, State.FAILED, State.EXPIRED, State.SKIPPED)
DEFAULT_MAX_AGE = 180  # seconds: a heartbeat older than this means the daemon is stuck
DEFAULT_CLAIM_AGE = 15  # minutes: a post claimed longer than this means a publish is stuck
DEFAULT_FAILED_WITHIN = 6  # hours: a post failed or expired this recently makes the check fail
DEFAULT_OVERDUE = 60  # minutes: a due post not sent this long after its time makes the check fail


def iso_in(value: dt.datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def part_results(row: Row) -> list[dict[str, Any]]:
    """Every published part's result (id, URI, URL; None where the platform has none), in part order."""
    recorded = (row.parts[index] for index in sorted(row.parts))
    parts: Iterable[Mapping[str, Any]] = row.result if row.result is not None else recorded
    return [{"id": part.get("id"), "uri": part.get("uri"), "url": part.get("url")} for part in parts]


def row_json(row: Row, zone: ZoneInfo) -> dict[str, Any]:
    results = part_results(row)
    first = results[0] if results else {}
    return {
        "id": row.id,
        "account": row.account,
        "platform": row.platform,
        "rule": row.rule,
        "state": row.state.value,
        "due_at": iso_in(row.due_at, zone),
        "next_attempt_at": iso_in(row.next_attempt_at, zone),
        "attempts": row.attempts,
        "published_at": iso_in(row.published_at, zone),
        "url": first.get("url") or first.get("uri"),
        "results": results,
        "reason": row.last_error,
        "parts": row.part_count,
    }


def read_heartbeat(state: Path) -> dict[str, Any] | None:
    from amplifier.publish.sessions import StateDir

    data = StateDir(state).read_json("", HEARTBEAT_NAME)
    return data if isinstance(data, dict) else None


def collect_status(
    ledger: Ledger,
    now: dt.datetime,
    zone: ZoneInfo,
    state: Path,
    accounts: Mapping[str, str],
    *,
    limit: int = 10,
) -> dict[str, Any]:
    """Everything ``status`` shows, as versioned JSON data; ``accounts`` maps account id -> platform."""
    summaries = ledger.summaries()
    pauses = {pause.account: pause for pause in ledger.account_pauses()}
    per_account: dict[str, dict[str, Any]] = {
        account: {"platform": p} for account, p in sorted(accounts.items())
    }
    platforms = {row.account: row.platform for row in ledger.due(now + FAR_FUTURE, limit)}
    for account, summary in summaries.items():
        info = per_account.setdefault(account, {"platform": platforms.get(account)})
        info.update(
            {
                "counts": {state.value: summary.counts[state] for state in State},
                "last_published_at": iso_in(summary.last_published_at, zone),
                "next_due_at": iso_in(summary.next_due_at, zone),
            }
        )
    for account, info in per_account.items():
        pause = pauses.get(account)
        info.setdefault("counts", dict.fromkeys((s.value for s in State), 0))
        info.setdefault("last_published_at", None)
        info.setdefault("next_due_at", None)
        info["paused"] = pause.reason if pause else None
        info["paused_by"] = (pause.by or "the daemon") if pause else None
        info["platform"] = info.get("platform") or platforms.get(account)
    held = [
        row_json(row, zone)
        for account in sorted(pauses)
        for row in _first(
            ledger.iter_history(now - FAR_FUTURE, now + FAR_FUTURE, account, [State.PLANNED]), 3
        )
    ]
    totals = dict.fromkeys((s.value for s in State), 0)
    for summary in summaries.values():
        for state_, count in summary.counts.items():
            totals[state_.value] += count
    pause_file = state / PAUSE_NAME
    return {
        "version": JSON_VERSION,
        "now": now.astimezone(zone).isoformat(),
        "paused": ledger.pause_reason() or (f"the file {pause_file} exists" if pause_file.exists() else None),
        "paused_accounts": {account: pause.reason for account, pause in pauses.items()},
        "heartbeat": read_heartbeat(state),
        "counts": totals,
        "next": [row_json(row, zone) for row in ledger.due(now + FAR_FUTURE, limit)],
        "held": held,
        "last_published": [
            row_json(r, zone) for r in ledger.latest([State.PUBLISHED], limit, by_published=True)
        ],
        "failures": [row_json(row, zone) for row in ledger.latest(PROBLEM_STATES, limit)],
        "claimed": [
            {
                **row_json(row, zone),
                "claimed_at": row.claimed_at.isoformat() if row.claimed_at else None,
                # set: an attempt ended with its outcome unknown; reconciliation looks at next_attempt_at
                "unknown_since": row.unknown_since.isoformat() if row.unknown_since else None,
            }
            for row in ledger.claimed()
        ],
        "accounts": per_account,
        "retractions": [
            {"id": r.post_id, "by": r.by, "at": iso_in(r.at, zone), "reason": r.reason, "state": r.state}
            for r in sorted(ledger.retractions().values(), key=lambda r: r.at, reverse=True)[:limit]
        ],
        "actions": [
            {
                "at": iso_in(action.at, zone),
                "by": action.by,
                "action": action.action,
                "target": action.target,
                "reason": action.reason,
                "posts": action.posts,
            }
            for action in ledger.operator_actions(limit=limit)
        ],
        # Nodes sharing the ledger (PostgreSQL): each one's last heartbeat, lead and holdings.
        "nodes": [
            {
                "node": beat.node,
                "host": beat.host,
                "pid": beat.pid,
                "beat_at": iso_in(beat.beat_at, zone),
                "leader": beat.leader,
                "holds": list(beat.holds),
            }
            for beat in ledger.nodes()
        ],
        "planned_only": False,
    }


def _first(rows: Iterable[Row], count: int) -> list[Row]:
    taken: list[Row] = []
    for row in rows:
        taken.append(row)
        if len(taken) >= count:
            break
    return taken


def plan_status(
    campaign: Campaign | None, now: dt.datetime, zone: ZoneInfo, state: Path, *, limit: int = 10
) -> dict[str, Any]:
    """``status`` before the daemon ever ran: the next posts due from the campaign files; nothing is created."""
    from amplifier.plan.planner import plan_window

    upcoming: list[Any] = []
    settings_by_account: dict[str, Any] = {}
    if campaign is not None:  # campaign files that cannot be loaded: an empty status, still nothing created
        window = plan_window(campaign, now, now + dt.timedelta(days=14)).posts
        upcoming = sorted(window, key=lambda p: (p.at, p.id))
        settings_by_account = dict(campaign.schedule.accounts)
    empty = dict.fromkeys((s.value for s in State), 0)
    accounts: dict[str, dict[str, Any]] = {}
    for account, settings in sorted(settings_by_account.items()):
        first = next((post for post in upcoming if post.account == account), None)
        accounts[account] = {
            "platform": settings.platform,
            "paused": None,
            "paused_by": None,
            "counts": dict(empty),
            "last_published_at": None,
            "next_due_at": iso_in(first.at, zone) if first else None,
        }
    pause_file = state / PAUSE_NAME
    return {
        "version": JSON_VERSION,
        "now": now.astimezone(zone).isoformat(),
        "paused": f"the file {pause_file} exists" if pause_file.exists() else None,
        "paused_accounts": {},
        "heartbeat": None,
        "counts": dict(empty),
        "next": [
            {
                "id": post.id,
                "account": post.account,
                "platform": post.platform,
                "rule": post.rule,
                "state": "planned",
                "due_at": iso_in(post.at, zone),
                "next_attempt_at": iso_in(post.at, zone),
                "attempts": 0,
                "published_at": None,
                "url": None,
                "results": [],
                "reason": None,
                "parts": len(post.parts),
            }
            for post in upcoming[:limit]
        ],
        "held": [],
        "last_published": [],
        "failures": [],
        "claimed": [],
        "accounts": accounts,
        "retractions": [],
        "actions": [],
        "planned_only": True,
    }


# --------------------------------------------------------------------------------------------- status


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
