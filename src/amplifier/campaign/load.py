"""Loading a campaign folder: ``schedule.yaml`` and ``messages/*.yaml``, validated, with every problem located.

:func:`load_campaign` returns a :class:`Campaign` or raises :class:`~amplifier.errors.CampaignError` with *all* the
problems it found, each as ``file:line:col: message``. It checks each file's shape (the pydantic models) and what spans
files: a rule naming an unknown account, message set or event; a message set with no text in an account's language;
an image that is missing or has no alt text; template syntax, unknown variables and filters.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from amplifier.campaign import templates, wording
from amplifier.campaign.images import image_problem
from amplifier.campaign.models import (
    ID_PATTERN,
    Account,
    CountdownRule,
    MessageSet,
    MessagesFile,
    ScheduleFile,
    rule_accounts,
)
from amplifier.campaign.quotes import quote_problems
from amplifier.campaign.videos import video_problems
from amplifier.campaign.yamlsource import PathKey, Source, load
from amplifier.errors import CampaignError, Problem

M = TypeVar("M", bound=BaseModel)

DEFAULT_CONFIG = "schedule.yaml"
MASTODON_ALT_LIMIT = 1500
BLUESKY_ALT_LIMIT = 2000


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


# ------------------------------------------------------------------------------------------------ cross checks


def cross_check(campaign: Campaign, broken: set[str] | None = None) -> list[Problem]:
    """What spans files; ``broken`` names the message sets (``*``: maybe any), and the ``account:ID`` and
    ``event:ID`` entries, that already have problems of their own (a rule naming them is not reported again)."""
    problems: list[Problem] = []
    problems.extend(_check_rules(campaign, broken or set()))
    problems.extend(_check_message_sets(campaign))
    problems.extend(quote_problems(campaign))
    problems.extend(video_problems(campaign, needs(campaign)))
    return problems


def _check_rules(campaign: Campaign, broken: set[str]) -> Iterator[Problem]:
    schedule = campaign.schedule
    for rule_id, rule in schedule.rules.items():
        base = ("rules", rule_id)
        if rule.messages not in campaign.message_sets and not broken & {rule.messages, "*"}:
            yield campaign.schedule_problem(
                (*base, "messages"),
                f"rule {rule_id!r} names unknown message set {rule.messages!r}"
                + _suggest(rule.messages, campaign.message_sets),
            )
        if rule.accounts != "all":
            for index, account in enumerate(rule.accounts):
                if account not in schedule.accounts and f"account:{account}" not in broken:
                    yield campaign.schedule_problem(
                        (*base, "accounts", index),
                        f"rule {rule_id!r} names unknown account {account!r}"
                        + _suggest(account, schedule.accounts),
                    )
        event_id = getattr(rule, "event", None)
        if event_id is not None and event_id not in schedule.events:
            if f"event:{event_id}" not in broken:
                yield campaign.schedule_problem(
                    (*base, "event"),
                    f"rule {rule_id!r} names unknown event {event_id!r}"
                    + _suggest(event_id, schedule.events),
                )
            continue
        if isinstance(rule, CountdownRule) and rule.hours_before:
            event = schedule.events[rule.event]
            if not isinstance(event.date, dt.datetime):
                yield campaign.schedule_problem(
                    (*base, "hours_before"),
                    f"hours_before needs a start time on event {rule.event!r} (e.g. date: {event.date}T14:00)",
                )
        if event_id is not None:
            event = schedule.events[event_id]
            for lang in _rule_languages(campaign, rule_id):
                if lang not in event.name and "*" not in event.name:
                    yield campaign.schedule_problem(
                        ("events", event_id, "name"),
                        f"event {event_id!r} has no name in {lang!r} (needed by rule {rule_id!r})",
                    )


def _suggest(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _rule_languages(campaign: Campaign, rule_id: str) -> list[str]:

    rule = campaign.schedule.rules[rule_id]
    return sorted({campaign.account_lang(a) for a in rule_accounts(campaign.schedule, rule)})


def needs(campaign: Campaign) -> dict[str, dict[str, set[str]]]:
    """For each message set, each language it must provide -> the platforms it is posted to in it."""

    out: dict[str, dict[str, set[str]]] = {}
    for rule in campaign.schedule.rules.values():
        if rule.messages not in campaign.message_sets:
            continue
        for account_id in rule_accounts(campaign.schedule, rule):
            account = campaign.account(account_id)
            langs = out.setdefault(rule.messages, {})
            langs.setdefault(campaign.account_lang(account_id), set()).add(account.platform)
    return out


def _check_message_sets(campaign: Campaign) -> Iterator[Problem]:
    required = needs(campaign)
    for set_id, message_set in campaign.message_sets.items():
        source = campaign.set_sources[set_id]
        base: PathKey = ("sets", set_id)
        langs = required.get(set_id, {})
        for index, variant in enumerate(message_set.variants):
            for lang, platforms in sorted(langs.items()):
                for platform in sorted(platforms):
                    override: dict[str, Any] = getattr(variant, platform)
                    if lang not in variant.text and lang not in override:
                        yield source.problem(
                            (*base, "variants", index, "text"),
                            f"variant {index + 1} of {set_id!r} has no {lang!r} text "
                            f"(needed for {platform} accounts in {lang!r})",
                        )
        if message_set.content_warning is not None:
            for lang, platforms in langs.items():
                if (
                    "mastodon" in platforms
                    and lang not in message_set.content_warning
                    and ("*" not in message_set.content_warning)
                ):
                    yield source.problem(
                        (*base, "content_warning"), f"content warning of {set_id!r} has no {lang!r} text"
                    )
        for index, image in enumerate(message_set.images):
            path = (*base, "images", index)
            problem = image_problem(campaign.root, image.path)
            if problem is not None:
                yield source.problem((*path, "path"), problem)
            for lang, platforms in sorted(langs.items()):
                alt = image.alt.get(lang) or image.alt.get("*")
                if alt is None or not alt.strip():
                    yield source.problem((*path, "alt"), f"image {image.path} has no alt text in {lang!r}")
                    continue
                limit = MASTODON_ALT_LIMIT if "mastodon" in platforms else BLUESKY_ALT_LIMIT
                if len(alt) > limit:
                    yield source.problem(
                        (*path, "alt"), f"alt text is {len(alt)} characters, over the limit of {limit}"
                    )


def check_templates(source: Source, set_id: str, message_set: MessageSet) -> Iterator[Problem]:
    """Syntax, variables and filters of every template of a message set; needs no other file."""
    for path, text in message_set.templates():
        yield from _check_template(source, ("sets", set_id, *path), text)


def _check_template(source: Source, path: PathKey, text: str) -> Iterator[Problem]:
    for issue in templates.check(text):
        line, col = source.text_line(path, issue.line)
        yield Problem(source.display, line, col, issue.message)
