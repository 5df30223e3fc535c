"""``amplifier init DIR``: a new campaign folder that validates at once and explains itself in comments.

The files come from the ``skeleton/`` folder of the package: ``schedule.yaml`` (an event, two accounts, a
weekly call, a countdown and a thread on the day), ``messages/messages.yaml``, ``.env.example`` (the names of
the secret variables, never values) and ``.gitignore``; ``schema/`` gets the JSON Schemas of this version,
which the ``# yaml-language-server: $schema=...`` line of each file points at. Dates are set from ``today``:
the event is :data:`EVENT_IN` days ahead, so the countdown is in the future and ``amplifier validate`` passes.

Existing files are never overwritten: when any of the files exists, nothing is written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from amplifier.campaign.models import check_timezone
from amplifier.campaign.schema import schemas
from amplifier.errors import UsageError

EVENT_IN = dt.timedelta(days=42)
FILE_MODE = 0o644

# skeleton file -> path in the new campaign (dot files are stored without their dot in the package)
SKELETON_FILES = {
    "schedule.yaml": "schedule.yaml",
    "messages/messages.yaml": "messages/messages.yaml",
    "env.example": ".env.example",
    "gitignore": ".gitignore",
}


@dataclass(frozen=True)
class InitResult:
    directory: Path
    files: tuple[Path, ...]  # every file written, relative to ``directory``
    event_date: dt.date


def skeleton_text(name: str) -> str:
    return resources.files("amplifier.campaign").joinpath("skeleton", name).read_text(encoding="utf-8")


def campaign_files(*, today: dt.date, name: str, timezone: str) -> dict[str, str]:
    """The new campaign's files (relative path -> text) for a campaign ``name`` started on ``today``."""
    try:
        check_timezone(timezone)  # the check (and the suggestions) of the campaign files' timezones
    except ValueError as exc:
        raise UsageError(f"--timezone: {exc}") from None
    if not name.strip():
        raise UsageError("--name: the campaign needs a name")
    event = today + EVENT_IN
    values = {
        "__NAME__": json.dumps(name.strip(), ensure_ascii=False),  # a JSON string is a valid YAML scalar
        "__TIMEZONE__": timezone,
        "__EVENT_DATE__": event.isoformat(),
        "__START__": today.isoformat(),
        "__END__": (event - dt.timedelta(days=1)).isoformat(),
    }
    files: dict[str, str] = {}
    for source, target in SKELETON_FILES.items():
        text = skeleton_text(source)
        for key, value in values.items():
            text = text.replace(key, value)
        files[target] = text
    for schema_name, schema in schemas().items():
        files[f"schema/{schema_name}"] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return files


def init_campaign(
    directory: Path, *, today: dt.date, name: str = "Our campaign", timezone: str = "Europe/Berlin"
) -> InitResult:
    """Write a new campaign into ``directory`` (created if needed); refuse if any of its files exists."""
    files = campaign_files(today=today, name=name, timezone=timezone)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a folder")
    existing = sorted(
        path for path in files if (directory / path).exists() or (directory / path).is_symlink()
    )
    if existing:
        raise UsageError(
            f"{directory} already has {', '.join(existing)}: amplifier init never overwrites a file "
            "(choose an empty folder)"
        )
    try:
        for folder in sorted({(directory / relative).parent for relative in files}):  # before any file
            folder.mkdir(parents=True, exist_ok=True)
        for relative, text in files.items():
            _write_new(directory / relative, text)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or directory}: {exc.strerror or exc}") from None
    return InitResult(directory, tuple(map(Path, files)), today + EVENT_IN)


def _write_new(path: Path, text: str) -> None:
    """Write ``path`` complete or not at all, and never over an existing file (even one created meanwhile)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)  # campaign files are shared and versioned, not private like mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.link(tmp, path)  # fails when path exists
    except FileExistsError:
        raise UsageError(f"{path} already exists: amplifier init never overwrites a file") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
