"""JSON Schemas of the campaign files, for editors that speak yaml-language-server.

The example files start with ``# yaml-language-server: $schema=...`` pointing at the files :func:`write_schemas` writes
(``schema/`` in the repository; ``amplifier schema -o DIR`` writes them anywhere).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel

from amplifier.campaign.models import MessagesFile, ScheduleFile

SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "schedule.schema.json": ScheduleFile,
    "messages.schema.json": MessagesFile,
}


def schemas() -> dict[str, Any]:
    out = {}
    for name, model in SCHEMA_FILES.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://amplifier.invalid/schema/{name}"
        out[name] = schema
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / name
        write_atomic(path, json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


@contextmanager
def atomic_writer(path: Path) -> Iterator[TextIO]:
    """A text file to write ``path`` complete or not at all (a temporary file beside it, renamed once the block
    ends without an error), with the mode a plain ``open`` would give it: ``0666`` less the umask. (``mkstemp``
    makes its file ``0600``; pages, calendars and schemas are meant to be shared. Secrets are written by
    :mod:`amplifier.publish.sessions` and stay ``0600``.)"""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` complete or not at all, with the umask's mode (see :func:`atomic_writer`)."""
    with atomic_writer(path) as handle:
        handle.write(text)


def current_umask() -> int:
    """The process's umask. Linux shows it in ``/proc/self/status``; elsewhere it is set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
