"""Loading a campaign folder: ``schedule.yaml`` and ``messages/*.yaml``, validated, with every problem located.

:func:`load_campaign` returns a :class:`Campaign` or raises :class:`~amplifier.errors.CampaignError` with *all* the
problems it found, each as ``file:line:col: message``. It checks each file's shape (the pydantic models) and what spans
files: a rule naming an unknown account, message set or event; a message set with no text in an account's language;
an image that is missing or has no alt text; template syntax, unknown variables and filters.
"""

from __future__ import annotations

import datetime as dt
import difflib
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from amplifier.campaign import templates
from amplifier.campaign.models import (
    Account,
    CountdownRule,
    MessageSet,
    MessagesFile,
    ScheduleFile,
    rule_accounts,
)
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
    problems: list[Problem] = []
    schedule = _validate(ScheduleFile, schedule_source, problems)

    sets: dict[str, MessageSet] = {}
    set_sources: dict[str, Source] = {}
    files = [path]
    patterns = schedule.messages if schedule else ["messages/*.yaml"]
    for pattern in patterns:
        matches = sorted(root.glob(pattern))
        if not matches and schedule is not None:
            index = schedule.messages.index(pattern) if pattern in schedule.messages else 0
            problems.append(
                schedule_source.problem(("messages", index), f"no message file matches {pattern!r}")
            )
        for file in matches:
            if file in files:
                continue
            files.append(file)
            try:
                source = load(file, _display(file, root))
            except CampaignError as exc:
                problems.extend(exc.problems)
                continue
            messages = _validate(MessagesFile, source, problems)
            if messages is None:
                continue
            for set_id, message_set in messages.sets.items():
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
        return None, problems
    campaign = Campaign(root, path, schedule, schedule_source, sets, set_sources, files)
    problems.extend(cross_check(campaign))
    return campaign, problems


def _display(path: Path, root: Path) -> str:
    try:
        relative = path.resolve().relative_to(Path.cwd().resolve())
        return str(relative)
    except ValueError:
        return str(path)


def _validate(model: type[M], source: Source, problems: list[Problem]) -> M | None:
    if not isinstance(source.data, dict):
        problems.append(source.problem((), "expected a mapping of keys to values at the top of the file"))
        return None
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(_problem(source, error))
        return None


_ALL_FIELDS: set[str] | None = None


def _field_names() -> set[str]:
    global _ALL_FIELDS
    if _ALL_FIELDS is None:
        from amplifier.campaign import models

        names: set[str] = set()
        for value in vars(models).values():
            if isinstance(value, type) and issubclass(value, BaseModel):
                names.update(value.model_fields)
        _ALL_FIELDS = names
    return _ALL_FIELDS


def _data_path(data: Any, loc: tuple[int | str, ...]) -> PathKey:
    """The part of a pydantic ``loc`` that names nodes of the data (dropping union tags and validator names)."""
    path: list[str | int] = []
    node = data
    for item in loc:
        if _has(node, item):
            path.append(item)
            node = node[item]
    return tuple(path)


def _has(node: Any, item: int | str) -> bool:
    if isinstance(node, dict):
        return item in node
    return isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node)


def _problem(source: Source, error: Any) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    path = _data_path(source.data, loc)
    dotted = ".".join(str(part) for part in path)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, sorted(_field_names() - {key}), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return source.problem(path, f"unknown key {key!r}{hint}", key=True)
    if kind == "missing":
        missing = str(loc[-1])
        where = f" in {dotted}" if dotted else ""
        return source.problem(path, f"missing required key {missing!r}{where}")
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    tag = str(error.get("ctx", {}).get("discriminator", "")).strip("'")
    if kind == "union_tag_not_found":
        message = f"missing required key {tag!r}"
    elif kind == "union_tag_invalid":
        path = _data_path(source.data, (*loc, tag))
        dotted = ".".join(str(part) for part in path)
    return source.problem(path, f"{dotted}: {message}" if dotted else message)


# ------------------------------------------------------------------------------------------------ cross checks


def cross_check(campaign: Campaign) -> list[Problem]:
    problems: list[Problem] = []
    problems.extend(_check_rules(campaign))
    problems.extend(_check_message_sets(campaign))
    return problems


def _check_rules(campaign: Campaign) -> Iterator[Problem]:
    schedule = campaign.schedule
    for rule_id, rule in schedule.rules.items():
        base = ("rules", rule_id)
        if rule.messages not in campaign.message_sets:
            yield campaign.schedule_problem(
                (*base, "messages"),
                f"rule {rule_id!r} names unknown message set {rule.messages!r}"
                + _suggest(rule.messages, campaign.message_sets),
            )
        if rule.accounts != "all":
            for index, account in enumerate(rule.accounts):
                if account not in schedule.accounts:
                    yield campaign.schedule_problem(
                        (*base, "accounts", index),
                        f"rule {rule_id!r} names unknown account {account!r}"
                        + _suggest(account, schedule.accounts),
                    )
        event_id = getattr(rule, "event", None)
        if event_id is not None and event_id not in schedule.events:
            yield campaign.schedule_problem(
                (*base, "event"),
                f"rule {rule_id!r} names unknown event {event_id!r}" + _suggest(event_id, schedule.events),
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
            file = campaign.root / image.path
            if not file.is_file():
                yield source.problem((*path, "path"), f"image file not found: {image.path}")
            elif (mimetypes.guess_type(file.name)[0] or "") not in IMAGE_TYPES:
                yield source.problem(
                    (*path, "path"), f"not a supported image type: {image.path} (PNG, JPEG, GIF, WebP)"
                )
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


IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def check_templates(source: Source, set_id: str, message_set: MessageSet) -> Iterator[Problem]:
    """Syntax, variables and filters of every template of a message set; needs no other file."""
    for path, text in message_set.templates():
        yield from _check_template(source, ("sets", set_id, *path), text)


def _check_template(source: Source, path: PathKey, text: str) -> Iterator[Problem]:
    for issue in templates.check(text):
        line, col = source.text_line(path, issue.line)
        yield Problem(source.display, line, col, issue.message)
