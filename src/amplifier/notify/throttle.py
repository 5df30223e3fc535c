"""What was sent when: the memory behind the repeat interval and the once-a-day digest.

Kept in the state folder as ``notify/sent.json`` (mode 0600, written atomically), so that a restart neither repeats
an alert nor sends a second digest the same day. Entries older than the repeat interval (at least a day) are dropped
when it is written. A damaged file is the same as none.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from amplifier.publish.sessions import StateDir

SUB = "notify"
SENT = "sent.json"


class SentLog:
    """When each alert key was last sent to each destination, and the day of each one's last digest."""

    def __init__(self, state: StateDir | None, repeat: timedelta) -> None:
        self.state = state
        self.repeat = repeat
        self.sent: dict[str, dict[str, str]] = {}
        self.digests: dict[str, str] = {}
        data = self._read()
        if isinstance(data, dict) and data.get("version") == 1:
            sent, digests = data.get("sent"), data.get("digest")
            if isinstance(sent, dict):
                self.sent = {
                    str(d): {str(k): str(v) for k, v in keys.items()}
                    for d, keys in sent.items()
                    if isinstance(keys, dict)
                }
            if isinstance(digests, dict):
                self.digests = {str(d): str(day) for d, day in digests.items()}

    def _read(self) -> Any:
        if self.state is None or not (self.state.path / SUB / SENT).is_file():
            return None
        return self.state.read_json(SUB, SENT)

    def recent(self, destination: str, key: str, now: datetime) -> bool:
        at = self.sent.get(destination, {}).get(key)
        if at is None:
            return False
        try:
            return now - datetime.fromisoformat(at) < self.repeat
        except ValueError:
            return False

    def mark(self, destination: str, keys: Iterable[str], now: datetime) -> None:
        stamp = now.astimezone(UTC).isoformat()
        self.sent.setdefault(destination, {}).update(dict.fromkeys(keys, stamp))

    def unmark(self, destination: str, keys: Iterable[str], now: datetime) -> None:
        stamp = now.astimezone(UTC).isoformat()
        mine = self.sent.get(destination, {})
        for key in keys:
            if mine.get(key) == stamp:
                del mine[key]

    def save(self, now: datetime) -> None:
        keep = max(self.repeat, timedelta(days=1))
        for destination, keys in self.sent.items():
            self.sent[destination] = {k: v for k, v in keys.items() if _age(v, now) < keep}
        if self.state is not None:
            self.state.write_json(SUB, SENT, {"version": 1, "sent": self.sent, "digest": self.digests})


def _age(stamp: str, now: datetime) -> timedelta:
    try:
        return now - datetime.fromisoformat(stamp)
    except ValueError:
        return timedelta.max
