"""What the daemon is doing, read from the ledger and the heartbeat (``amplifier status``), and whether it
looks healthy (``status --check``, the Docker ``HEALTHCHECK``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from amplifier.daemon.settings import FAR_FUTURE, HEARTBEAT_NAME, PAUSE_NAME
from amplifier.delivery.ledger import Ledger, Row, State


def row_json(row: Row, zone: ZoneInfo) -> dict[str, Any]:
    url = None
    if row.result:
        url = row.result[0].get("url") or row.result[0].get("uri")
    return {
        "id": row.id,
        "account": row.account,
        "platform": row.platform,
        "rule": row.rule,
        "state": row.state.value,
        "due_at": row.due_at.astimezone(zone).isoformat(),
        "next_attempt_at": row.next_attempt_at.astimezone(zone).isoformat(),
        "attempts": row.attempts,
        "published_at": row.published_at.astimezone(zone).isoformat() if row.published_at else None,
        "url": url,
        "reason": row.last_error,
        "parts": row.part_count,
    }


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
    planned = ledger.due(now + FAR_FUTURE)
    every = ledger.history(now - FAR_FUTURE, now + FAR_FUTURE)
    published = sorted(
        (row for row in every if row.state == State.PUBLISHED and row.published_at is not None),
        key=lambda row: row.published_at or now,
        reverse=True,
    )
    failures = sorted(
        (row for row in every if row.state in (State.FAILED, State.EXPIRED)),
        key=lambda row: row.updated_at,
        reverse=True,
    )
    paused_accounts = ledger.paused_accounts()
    per_account: dict[str, dict[str, Any]] = {}
    for account, platform in sorted(accounts.items()):
        per_account[account] = {"platform": platform}
    for row in every:
        per_account.setdefault(row.account, {"platform": row.platform})
    for account, info in per_account.items():
        rows = [row for row in every if row.account == account]
        counts = {state.value: sum(1 for row in rows if row.state == state) for state in State}
        last = max((row.published_at for row in rows if row.published_at), default=None)
        upcoming = [row for row in planned if row.account == account]
        info.update(
            {
                "paused": paused_accounts.get(account),
                "counts": counts,
                "last_published_at": last.astimezone(zone).isoformat() if last else None,
                "next_due_at": upcoming[0].next_attempt_at.astimezone(zone).isoformat() if upcoming else None,
            }
        )
    heartbeat = read_heartbeat(state)
    pause_file = state / PAUSE_NAME
    return {
        "now": now.astimezone(zone).isoformat(),
        "paused": ledger.pause_reason() or (f"the file {pause_file} exists" if pause_file.exists() else None),
        "paused_accounts": paused_accounts,
        "heartbeat": heartbeat,
        "counts": {state.value: count for state, count in ledger.counts_by_state().items()},
        "next": [row_json(row, zone) for row in planned[:limit]],
        "last_published": [row_json(row, zone) for row in published[:limit]],
        "failures": [row_json(row, zone) for row in failures[:limit]],
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
        # Nodes sharing the ledger (PostgreSQL): each one's last heartbeat, lead and holdings.
        "nodes": [
            {
                "node": beat.node,
                "host": beat.host,
                "pid": beat.pid,
                "beat_at": beat.beat_at.astimezone(zone).isoformat(),
                "leader": beat.leader,
                "holds": list(beat.holds),
            }
            for beat in ledger.nodes()
        ],
    }


def read_heartbeat(state: Path) -> dict[str, Any] | None:
    from amplifier.publish.sessions import StateDir

    data = StateDir(state).read_json("", HEARTBEAT_NAME)
    return data if isinstance(data, dict) else None


def health_problems(
    status: dict[str, Any], real_now: dt.datetime, max_age: float, claim_age: float
) -> list[str]:
    """Why the daemon looks stuck (empty: healthy): an old or missing heartbeat, a post claimed too long."""
    problems = []
    heartbeat = status.get("heartbeat")
    written = None
    if heartbeat is not None:
        try:
            written = dt.datetime.fromisoformat(str(heartbeat.get("written_at")))
        except ValueError:
            written = None
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
            check = row.get("next_attempt_at")
            if check and (real_now - dt.datetime.fromisoformat(check)).total_seconds() > claim_age * 60:
                problems.append(
                    f"post {row['id']}: outcome unknown since {row['unknown_since']}, its check due at {check} "
                    "is overdue (is the daemon running?)"
                )
        elif (
            claimed_at and (real_now - dt.datetime.fromisoformat(claimed_at)).total_seconds() > claim_age * 60
        ):
            problems.append(f"post {row['id']} has been claimed since {claimed_at} (stuck publishing?)")
    return problems
