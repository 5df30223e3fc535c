"""The heartbeat: ``heartbeat.json`` in the state folder says the daemon is alive, for ``status --check``."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from amplifier.clock import utcnow
from amplifier.daemon.events import EventLog
from amplifier.daemon.settings import HEARTBEAT_NAME


def write_heartbeat(
    state_dir: Path,
    now: datetime,
    *,
    next_wake: datetime | None,
    campaign: str,
    log: EventLog,
    reloading_since: datetime | None = None,
) -> None:
    """Write ``heartbeat.json`` in ``state_dir`` (atomically): the daemon is alive at ``now`` (and, with
    ``reloading_since``, has been loading a new version of the campaign files since then); a failure is logged,
    never raised."""
    from amplifier.publish.sessions import StateDir, StateError

    data = {
        "version": 1,
        "pid": os.getpid(),
        "at": now.astimezone(UTC).isoformat(),
        "written_at": utcnow().isoformat(),
        "next_wake": next_wake.isoformat() if next_wake else None,
        "campaign": campaign,
        "reloading_since": reloading_since.astimezone(UTC).isoformat() if reloading_since else None,
    }
    try:
        StateDir(state_dir).write_json("", HEARTBEAT_NAME, data)
    except StateError as exc:
        log.emit("error", reason=str(exc))
