"""What the daemon tells: one line per event (:class:`EventLog`), and what one pass did (:class:`TickReport`)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from amplifier.clock import Clock, utcnow
from amplifier.delivery.reconcile import Reconciled
from amplifier.redact import redact


class EventLog:
    """One line per event on ``stream``: ``TIME EVENT key=value ...`` or a JSON object (``fmt="json"``).

    Callers pass only texts that are safe to show (ids, URLs, :class:`AmplifierError` messages): never a
    secret. ``keep`` also keeps the events in :attr:`events` (for tests and the benchmark).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        fmt: str = "text",
        clock: Clock = utcnow,
        *,
        keep: bool = False,
    ) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"unknown log format {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.clock = clock
        self.keep = keep
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        stamp = _iso(self.clock())
        values = {k: _iso(v) if isinstance(v, datetime) else v for k, v in fields.items() if v is not None}
        values = {k: redact(v) if isinstance(v, str) else v for k, v in values.items()}  # no secret echoed
        record = {"time": stamp, "event": event, **values}
        if self.fmt == "json":
            line = json.dumps(record, ensure_ascii=False, default=str)
        else:
            pairs = " ".join(
                f"{key}={_text_value(value)}" for key, value in record.items() if key not in ("time", "event")
            )
            line = f"{stamp} {event}" + (f" {pairs}" if pairs else "")
        with self._lock:
            if self.keep:
                self.events.append(record)
            if self.stream is not None:
                self.stream.write(line + "\n")
                self.stream.flush()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [record for record in self.events if record["event"] == event]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_minute(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(ch.isspace() or ch in "\"'=" for ch in text):
        return json.dumps(text, ensure_ascii=False)
    return text


@dataclass
class TickReport:
    """What one pass did, by post id."""

    published: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # rate limit: left planned, not claimed
    released: list[str] = field(default_factory=list)  # shutdown or paused account: back to planned
    unknown: list[str] = field(default_factory=list)  # outcome unknown: claimed until reconciled
    reconciled: list[Reconciled] = field(default_factory=list)
    credentials: list[str] = field(default_factory=list)  # accounts paused for their credentials
    paused: str | None = None  # why nothing was posted, when everything is paused

    @property
    def healthy(self) -> bool:
        """Nothing failed or expired, and no account was paused for its credentials (the dead man's switch)."""
        failed = any(item.outcome == "failed" for item in self.reconciled)
        return not (self.failed or self.expired or self.credentials or failed)

    def merge(self, other: TickReport) -> None:
        for name in (
            "published",
            "retried",
            "failed",
            "expired",
            "skipped",
            "deferred",
            "released",
            "unknown",
        ):
            getattr(self, name).extend(getattr(other, name))
        self.reconciled.extend(other.reconciled)
        self.credentials.extend(other.credentials)
        self.paused = other.paused or self.paused
