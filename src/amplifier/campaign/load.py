"""Loading a campaign folder: ``schedule.yaml`` and ``messages/*.yaml``, validated, with every problem located.

:func:`load_campaign` returns a :class:`Campaign` or raises :class:`~amplifier.errors.CampaignError` with *all* the
problems it found, each as ``file:line:col: message``. It checks each file's shape (the pydantic models) and what spans
files: a rule naming an unknown account, message set or event; a message set with no text in an account's language;
an image that is missing or has no alt text; template syntax, unknown variables and filters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from amplifier.campaign import wording
from amplifier.campaign.checks import check_templates, cross_check, needs
from amplifier.campaign.models import (
    ID_PATTERN,
    Account,
    MessageSet,
    MessagesFile,
    ScheduleFile,
)
from amplifier.campaign.yamlsource import PathKey, Source, load
from amplifier.errors import CampaignError, Problem

__all__ = [
    "DEFAULT_CONFIG",
    "Campaign",
    "check_templates",
    "cross_check",
    "find_config",
    "load_campaign",
    "load_partial",
    "needs",
]

M = TypeVar("M", bound=BaseModel)

DEFAULT_CONFIG = "schedule.yaml"


@dataclass
class Campaign:
    """A validated campaign, with the sources kept for locating problems found later (rendering, limits)."""

    root: Path
    schedule_path: Path
    schedule: ScheduleFile
    schedule_source: Source
    message_sets: dict[str, MessageSet]
    set_sources: dict[str, Source]  # the file each message set is defined in
    files: list[Path] = field(default_factory=list)  # every file the campaign was read from (for hot reload)

    @property
    def config_display(self) -> str:
        return self.schedule_source.display

    @property
    def name(self) -> str:
        return self.schedule.campaign.name

    def account(self, account_id: str) -> Account:
        return self.schedule.accounts[account_id]

    def account_lang(self, account_id: str) -> str:
        return self.schedule.accounts[account_id].language or self.schedule.campaign.language

    def account_zone(self, account_id: str) -> str:
        return self.schedule.accounts[account_id].timezone or self.schedule.campaign.timezone

    def set_problem(self, set_id: str, path: PathKey, message: str) -> Problem:
        return self.set_sources[set_id].problem(("sets", set_id, *path), message)

    def schedule_problem(self, path: PathKey, message: str) -> Problem:
        return self.schedule_source.problem(path, message)

    @cached_property
    def languages(self) -> list[str]:
        return sorted({self.account_lang(a) for a in self.schedule.accounts})


def find_config(config: Path | None) -> Path:
    path = config or Path(DEFAULT_CONFIG)
    if path.is_dir():
        path = path / DEFAULT_CONFIG
    return path


def load_campaign(config: Path | None = None) -> Campaign:
    """Load and check a campaign; raise :class:`CampaignError` with every problem found."""
    campaign, problems = load_partial(config)
    if campaign is None or problems:
        raise CampaignError(problems)
    return campaign


def load_partial(config: Path | None = None) -> tuple[Campaign | None, list[Problem]]:
    """The campaign as far as it could be read, and every problem found: ``validate`` also renders the rules that
    the problems leave whole, to report all problems in one run. Raises :class:`CampaignError` when ``schedule.yaml``
    cannot be read at all."""
    path = find_config(config)
    root = path.parent
    schedule_source = load(path, _display(path, root))
    problems: list[Problem] = list(schedule_source.problems)
    loaded = list(
        schedule_source.problems
    )  # the loader's value problems: later ones at their place are dropped
    broken: set[str] = set()  # what has problems of its own: a rule naming it is not reported again
    schedule = _validate_schedule(schedule_source, problems, broken)

    sets: dict[str, MessageSet] = {}
    set_sources: dict[str, Source] = {}
    files = [path]
    before = len(problems)
    message_files = list(_message_files(schedule, schedule_source, root, problems))
    if len(problems) > before or schedule_source.reported(("messages",)):
        broken.add("*")  # a message file may be missing: rules naming its sets are not reported
    seen = {path.resolve()}
    for file in message_files:
        if file.resolve() in seen:  # matched twice, or through a link to a file already read
            continue
        seen.add(file.resolve())
        files.append(file)
        try:
            source = load(file, _display(file, root))
        except CampaignError as exc:
            problems.extend(exc.problems)
            broken.add("*")
            continue
        problems.extend(source.problems)
        loaded.extend(source.problems)
        for set_id, message_set in _message_sets(source, problems, broken):
            if set_id in sets:
                first = set_sources[set_id]
                problems.append(
                    source.problem(
                        ("sets", set_id),
                        f"message set {set_id!r} is also defined in {first.display}",
                        key=True,
                    )
                )
                continue
            sets[set_id] = message_set
            set_sources[set_id] = source
            problems.extend(check_templates(source, set_id, message_set))

    if schedule is None:
        return None, _once(problems, loaded)
    campaign = Campaign(root, path, schedule, schedule_source, sets, set_sources, files)
    problems.extend(cross_check(campaign, broken))
    return campaign, _once(problems, loaded)


def _once(problems: list[Problem], loaded: list[Problem]) -> list[Problem]:
    """The problems, without the later ones at the place of a value the loader already reported (one mistake, one
    line: a name with a control character is not also an unknown name)."""
    places = {(p.file, p.line, p.col) for p in loaded}
    return loaded + [p for p in problems if p not in loaded and (p.file, p.line, p.col) not in places]


def _message_files(
    schedule: ScheduleFile | None, source: Source, root: Path, problems: list[Problem]
) -> Iterator[Path]:
    """The message files the ``messages:`` globs match, each inside the campaign folder."""
    patterns = schedule.messages if schedule else ["messages/*.yaml"]
    inside = root.resolve()
    for index, pattern in enumerate(patterns):
        where = ("messages", index)
        if source.reported(where):
            continue  # already a problem of its own (a control character...)
        if not pattern.strip():
            problems.append(source.problem(where, "an empty pattern: write e.g. messages/*.yaml"))
            continue
        if Path(pattern).is_absolute() or pattern.startswith("~"):
            problems.append(
                source.problem(where, f"{pattern!r}: write the pattern relative to the campaign folder")
            )
            continue
        try:
            matches = sorted(root.glob(pattern))
        except (OSError, ValueError, NotImplementedError, RecursionError) as exc:
            reason = getattr(exc, "strerror", None) or "the folders loop back on themselves or cannot be read"
            problems.append(source.problem(where, f"cannot search {pattern!r}: {reason}"))
            continue
        found = False
        for file in matches:
            try:
                real = file.resolve(strict=True)
            except (OSError, RuntimeError):
                problems.append(source.problem(where, f"{_display(file, root)}: a broken or looping link"))
                continue
            if not real.is_relative_to(inside):
                problems.append(
                    source.problem(where, f"{_display(file, root)} is outside the campaign folder")
                )
                continue
            if real.is_file():
                found = True
                yield file
        if not found and schedule is not None:
            problems.append(source.problem(where, f"no message file matches {pattern!r}"))


def _message_sets(
    source: Source, problems: list[Problem], broken: set[str]
) -> Iterator[tuple[str, MessageSet]]:
    """The valid sets of a messages file; a mistake in one set does not drop the others."""
    data = source.data
    sets = data.get("sets") if isinstance(data, dict) else None
    if not isinstance(sets, dict):
        _validate(MessagesFile, source, problems)
        broken.add("*")
        return
    top = {key: ({} if key == "sets" else value) for key, value in data.items()}
    try:
        MessagesFile.model_validate(top)
    except ValidationError as exc:
        problems.extend(wording.model_problems(MessagesFile, source, exc))
    for set_id, value in sets.items():
        path: PathKey = ("sets", set_id)
        if not re.match(ID_PATTERN, set_id) or len(set_id) > 64:
            problems.append(source.problem(path, f"message set {set_id!r}: {wording.ID_WORDS}", key=True))
            broken.add(set_id)
            continue
        try:
            message_set = MessageSet.model_validate(value)
        except ValidationError as exc:
            problems.extend(wording.model_problems(MessageSet, source, exc, prefix=path))
            broken.add(set_id)
            continue
        if source.reported(path):
            broken.add(set_id)
        yield set_id, message_set


def _validate_schedule(source: Source, problems: list[Problem], broken: set[str]) -> ScheduleFile | None:
    """The schedule; when only some accounts, events or rules have problems, the schedule without them (so the
    checks across files still run for the rest, all problems at once), their ids added to ``broken``."""
    if not isinstance(source.data, dict):
        return _validate(ScheduleFile, source, problems)
    try:
        return ScheduleFile.model_validate(source.data)
    except ValidationError as exc:
        problems.extend(wording.model_problems(ScheduleFile, source, exc))
        failed = {(str(error["loc"][0]), error["loc"][1]) for error in exc.errors() if len(error["loc"]) >= 2}
    if any(section not in _ENTRIES for section, _entry in failed):
        return None
    partial = {
        key: dict(value) if key in _ENTRIES and isinstance(value, dict) else value
        for key, value in source.data.items()
    }
    for section, entry in failed:
        partial[section].pop(entry, None)
        broken.add(f"{_ENTRIES[section]}:{entry}")
    try:
        return ScheduleFile.model_validate(partial)
    except ValidationError:
        return None


_ENTRIES = {"accounts": "account", "events": "event", "rules": "rule"}


def _display(path: Path, root: Path) -> str:
    try:
        relative = path.resolve().relative_to(Path.cwd().resolve())
        return str(relative)
    except (ValueError, OSError, RuntimeError):
        return str(path)


def _validate(model: type[M], source: Source, problems: list[Problem]) -> M | None:
    if not isinstance(source.data, dict):
        problems.append(source.problem((), "expected a mapping of keys to values at the top of the file"))
        return None
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        problems.extend(wording.model_problems(model, source, exc))
        return None
