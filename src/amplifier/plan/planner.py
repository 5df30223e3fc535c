"""The plan: every post that would go out in a window, rendered and adapted, with the problems found on the way.

campaign -> slots (:mod:`amplifier.plan.schedule`) -> rendered text (:mod:`amplifier.campaign.templates`) -> per-platform parts
(:mod:`amplifier.plan.adapt`) -> :class:`~amplifier.plan.post.PlannedPost`. The clock is a parameter: nothing here reads it.
"""

from __future__ import annotations

import datetime as dt
import gc
import mimetypes
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from jinja2.exceptions import SecurityError

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import MessageSet
from amplifier.campaign.sandbox import (
    FREE_STEPS,
    MAX_PLAN_STEPS,
    MAX_STEPS,
    Budget,
    TemplateLimitError,
)
from amplifier.campaign.templates import compile_template, no_event, render, uses
from amplifier.campaign.yamlsource import PathKey
from amplifier.errors import CampaignError, Problem, UsageError
from amplifier.plan.adapt import Adapted, Content, Target, adapt, tidy
from amplifier.plan.context import account_controls, account_target, shared_context
from amplifier.plan.post import Image, PlannedPost, Platform, Video
from amplifier.plan.quotes import QuoteError, quoted_post
from amplifier.plan.schedule import (
    Occurrence,
    Slot,
    expand,
    make_slot,
    occurrences,
    occurrences_between,
    parse_slot_id,
    rule_zone,
)
from amplifier.plan.videos import planned_video


@dataclass
class Plan:
    posts: list[PlannedPost]
    problems: list[Problem] = field(default_factory=list)
    # Filled by validate (amplifier.plan.review): warnings (exit 0) and rules whose posts are all in the past.
    warnings: list[Problem] = field(default_factory=list)
    finished: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Text:
    """A template with where it stands, for locating render errors."""

    source: str
    set_id: str
    path: PathKey


@dataclass(frozen=True)
class _Static:
    set_id: str
    message_set: MessageSet
    platform: Platform
    lang: str
    target: Target
    per_account: bool  # some template names the account: no sharing between accounts
    share: int | None  # posts of one occurrence with the same share key look the same (None: per account)
    variants: int
    controls: dict[str, Any]  # the Content's replies / quotes / labels (see plan.context.account_controls)


ADAPTED_CACHE = 4096  # adapted texts kept for reuse across instants (texts that do not change between them)


class Planner:
    """Renders and adapts slots of one campaign; caches compiled templates and shared renders."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self._templates: dict[str, Any] = {}
        self._rendered: dict[tuple[Any, ...], str] = {}
        self._adapted: dict[tuple[Any, ...], Adapted] = {}
        self._images: dict[tuple[str, str], tuple[Image, ...]] = {}
        self._videos: dict[tuple[str, str], Video | None] = {}
        self._inline_tags: dict[str, bool] = {}
        self._statics: dict[tuple[str, str], _Static] = {}
        self._shared_context: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._by_occurrence: dict[tuple[int, int], Adapted] = {}
        self._shares: dict[tuple[Any, ...], int] = {}
        self._problems: dict[Problem, None] = {}
        self._at: dt.datetime | None = None
        self._over_limit: set[str] = set()  # templates that went over a sandbox limit: not rendered again
        self._steps_left: dict[str, int] = {}  # each template's steps left for this plan (MAX_PLAN_STEPS)

    @property
    def problems(self) -> list[Problem]:
        return sorted(self._problems)

    def _problem(self, set_id: str, path: PathKey, message: str, template_line: int | None = None) -> None:
        source = self.campaign.set_sources[set_id]
        if template_line is None:
            problem = source.problem(("sets", set_id, *path), message)
        else:
            line, col = source.text_line(("sets", set_id, *path), template_line)
            problem = Problem(source.display, line, col, message)
        self._problems[problem] = None

    # -------------------------------------------------------------------------------------------- rendering

    def _render(self, text: _Text, context: dict[str, Any], cache_key: tuple[Any, ...] | None) -> str | None:
        if text.source in self._over_limit:
            return None  # reported once, at its first render
        try:
            template = self._templates.get(text.source)
            if template is None:
                template = self._templates[text.source] = compile_template(text.source)
            left = self._steps_left.get(text.source, MAX_PLAN_STEPS)
            steps = min(MAX_STEPS, left + FREE_STEPS)
            budget = Budget(steps=steps, shared=steps < MAX_STEPS)
            try:
                rendered = tidy(render(template, context, budget))
            finally:
                used = steps - max(budget.steps, 0)
                self._steps_left[text.source] = left - max(0, used - FREE_STEPS)
        except Exception as exc:  # any error raised while rendering is the template's, reported at its line
            if isinstance(exc, TemplateLimitError | SecurityError | RecursionError | MemoryError):
                self._over_limit.add(text.source)
                message = f"template of {_name(text)}: {_describe(exc)}"
            else:
                message = f"template error: {_describe(exc)}"
            self._problem(text.set_id, text.path, message, _template_line(exc))
            return None
        if cache_key is not None:
            self._rendered[(text.source, *cache_key)] = rendered
        return rendered

    def _context(self, slot: Slot, lang: str, message_set: MessageSet) -> dict[str, Any]:
        key = (slot.event, slot.account, lang, id(message_set))
        shared = self._shared_context.get(key)
        if shared is None:
            tags = self._tags(message_set)
            shared = self._shared_context[key] = shared_context(
                self.campaign, slot.event, slot.account, lang, tags
            )
        if slot.event is None:  # the rule has no event: using one is an error that names the rule
            return {
                **shared,
                "event": no_event(slot.rule, "event"),
                "days_left": no_event(slot.rule, "days_left"),
                "hours_left": no_event(slot.rule, "hours_left"),
                "now": slot.at,
                "at": slot.at,
            }
        return {
            **shared,
            "days_left": slot.days_left,
            "hours_left": slot.hours_left,
            "now": slot.at,
            "at": slot.at,
        }

    def _tags(self, message_set: MessageSet) -> list[str]:
        if message_set.hashtags is not None:
            return list(message_set.hashtags.tags)
        return list(self.campaign.schedule.campaign.hashtags)

    def _appends_tags(self, set_id: str, message_set: MessageSet) -> bool:
        cached = self._inline_tags.get(set_id)
        if cached is None:
            placement = message_set.hashtags.placement if message_set.hashtags else "append"
            inline = any(uses(text, "hashtags") for _path, text in message_set.texts())
            cached = self._inline_tags[set_id] = placement == "append" and not inline
        return cached

    def _images_for(self, set_id: str, message_set: MessageSet, lang: str) -> tuple[Image, ...]:
        key = (set_id, lang)
        cached = self._images.get(key)
        if cached is None:
            images = []
            for spec in message_set.images:
                path = (self.campaign.root / spec.path).resolve()
                width = height = None
                try:
                    from PIL import Image as PILImage

                    with PILImage.open(path) as img:
                        width, height = img.size
                except (OSError, ImportError):
                    pass  # a missing file is reported by the campaign checks
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                alt = spec.alt.get(lang) or spec.alt.get("*", "")
                images.append(Image(str(path), alt, mime, width, height))
            cached = self._images[key] = tuple(images)
        return cached

    def _video_for(self, set_id: str, message_set: MessageSet, lang: str) -> Video | None:
        key = (set_id, lang)
        if key not in self._videos:
            self._videos[key] = planned_video(self.campaign.root, message_set.videos[0], lang)
        return self._videos[key]

    # ----------------------------------------------------------------------------------------------- slots

    def _static(self, rule_id: str, account_id: str) -> _Static:
        """What does not change between a rule's occurrences for one account (cached)."""
        key = (rule_id, account_id)
        static = self._statics.get(key)
        if static is None:
            campaign = self.campaign
            rule = campaign.schedule.rules[rule_id]
            message_set = campaign.message_sets[rule.messages]
            account = campaign.account(account_id)
            lang = campaign.account_lang(account_id)
            target = account_target(account)
            controls = account_controls(message_set, account)
            per_account = any(uses(text, "account") for _path, text in message_set.templates())
            share_key = (rule_id, lang, target, tuple(sorted(controls.items())))
            share = None if per_account else self._shares.setdefault(share_key, len(self._shares))
            static = self._statics[key] = _Static(
                rule.messages,
                message_set,
                account.platform,
                lang,
                target,
                per_account,
                share,
                len(message_set.variants),
                controls,
            )

        return static

    def post(self, slot: Slot) -> PlannedPost | None:
        if slot.at != self._at:
            self._next_instant(slot.at)
        static = self._statics.get((slot.rule, slot.account)) or self._static(slot.rule, slot.account)
        variant_index = slot.index % static.variants
        # Posts of one occurrence in one language and one target look the same unless a template names the account.
        key = None if static.share is None else (static.share, slot.index)
        adapted = self._by_occurrence.get(key) if key is not None else None
        if adapted is None:
            adapted = self._adapt(slot, static, variant_index)
            if adapted is None:
                return None
            if key is not None:
                self._by_occurrence[key] = adapted
        if adapted.problems:
            field_name, _value = self._variant_text(static, variant_index)
            for message in adapted.problems:
                self._problem(
                    static.set_id,
                    ("variants", variant_index, field_name, static.lang),
                    f"{slot.id}: {message}",
                )
        return PlannedPost(
            id=slot.id,
            at=slot.at,
            rule=slot.rule,
            account=slot.account,
            platform=static.platform,
            lang=static.lang,
            parts=adapted.parts,
            message_set=static.set_id,
            variant=variant_index,
            event=slot.event,
            warnings=adapted.problems,
            quote=self._quote(slot, static) if static.message_set.quote is not None else None,
        )

    def _quote(self, slot: Slot, static: _Static) -> str | None:
        """The id of the post ``slot``'s post quotes (:mod:`amplifier.plan.quotes`); a problem if there is none."""
        spec = static.message_set.quote
        schedule = self.campaign.schedule
        if (
            spec is None
            or spec.rule not in schedule.rules
            or (spec.account or slot.account) not in schedule.accounts
        ):
            return None  # an unknown rule or account: reported when the campaign was loaded
        try:
            return quoted_post(schedule, slot, spec)
        except QuoteError as exc:
            self._problem(static.set_id, ("quote",), str(exc))
            return None

    def _next_instant(self, at: dt.datetime) -> None:
        """Slots come in time order: what one occurrence shares between accounts is not needed past its instant,
        so a plan of any length holds the caches of one instant (and a bounded cache of adapted texts)."""
        self._at = at
        self._rendered.clear()
        self._by_occurrence.clear()
        if len(self._adapted) > ADAPTED_CACHE:
            self._adapted.clear()

    def _variant_text(self, static: _Static, variant_index: int) -> tuple[str, str | list[str] | None]:
        variant = static.message_set.variants[variant_index]
        override = getattr(variant, static.platform)
        if static.lang in override:
            return static.platform, override[static.lang]
        return "text", variant.text.get(static.lang)

    def _adapt(self, slot: Slot, static: _Static, variant_index: int) -> Adapted | None:
        message_set = static.message_set
        lang = static.lang
        field_name, value = self._variant_text(static, variant_index)
        if value is None:
            return None  # reported by the campaign checks
        sources = value if isinstance(value, list) else [value]
        base: PathKey = ("variants", variant_index, field_name, lang)

        context: dict[str, Any] | None = None
        texts: list[str] = []
        for index, source in enumerate(sources):
            path = (*base, index) if isinstance(value, list) else base
            cache_key = None if static.per_account else (lang, slot.rule, slot.index)
            rendered = self._rendered.get((source, *cache_key)) if cache_key is not None else None
            if rendered is None:
                if context is None:
                    context = self._context(slot, lang, message_set)
                rendered = self._render(_Text(source, static.set_id, path), context, cache_key)
                if rendered is None:
                    return None
            texts.append(rendered)

        cw = None
        if message_set.content_warning is not None and static.platform == "mastodon":
            cw_source = message_set.content_warning.get(lang) or message_set.content_warning.get("*")
            if cw_source:
                if context is None:
                    context = self._context(slot, lang, message_set)
                cw = self._render(_Text(cw_source, static.set_id, ("content_warning", lang)), context, None)

        tags = tuple(self._tags(message_set)) if self._appends_tags(static.set_id, message_set) else ()
        content = Content(
            texts=tuple(texts),
            lang=lang,
            hashtags=tags,
            content_warning=cw,
            sensitive=message_set.media_sensitive(),
            images=self._images_for(static.set_id, message_set, lang),
            video=self._video_for(static.set_id, message_set, lang) if message_set.videos else None,
            link_card=message_set.link_card,
            split=message_set.split.enabled,
            numbering=message_set.split.numbering,
            quote=message_set.quote is not None,
            **static.controls,
        )
        target = (
            static.target if static.platform == "mastodon" else replace(static.target, created_at=slot.at)
        )
        key = (content, target)
        adapted = self._adapted.get(key)
        if adapted is None:
            adapted = self._adapted[key] = adapt(content, target)
        return adapted

    def plan(self, slots: Iterable[Slot]) -> Plan:
        posts = [post for slot in slots if (post := self.post(slot)) is not None]
        return Plan(posts, self.problems)

    def stream(self, slots: Iterable[Slot]) -> Iterator[PlannedPost]:
        """The posts of ``slots`` (in time order), one at a time; :attr:`problems` is complete once they are read."""
        with gc_paused():
            for slot in slots:
                post = self.post(slot)
                if post is not None:
                    yield post


def _name(text: _Text) -> str:
    """The template in words: ``message set 'countdown', variant 1, en``."""
    path = text.path
    if path and path[0] == "variants" and len(path) >= 4:
        where = f", variant {int(path[1]) + 1}, {path[3]}"
        if path[2] != "text":
            where += f" on {path[2]}"
        if len(path) > 4:
            where += f", thread part {int(path[4]) + 1}"
    elif path and path[0] == "content_warning":
        where = f", content warning, {path[-1]}"
    else:
        where = ""
    return f"message set {text.set_id!r}{where}"


def _describe(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "the template calls itself too deeply (a macro or a recursive loop that does not end?)"
    if isinstance(exc, MemoryError):
        return "the template needs too much memory"
    message = str(exc) or type(exc).__name__
    for jinja, words in _KINDS.items():
        message = message.replace(jinja, words)
    return message


_KINDS = {
    "'dict object'": "the value",
    "'str object'": "the text",
    "'int object'": "the number",
    "'float object'": "the number",
    "'list object'": "the list",
    "'None' ": "nothing (none) ",
}


def _template_line(exc: BaseException) -> int:
    line = 1
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# ----------------------------------------------------------------------------------------------- entry points


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large plan is built.

    A preview allocates hundreds of thousands of small, acyclic objects; the collector would rescan the growing heap
    again and again (a quarter of the time of a large preview). Reference counting still frees memory meanwhile, and
    the collector resumes, as it was, afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


Progress = Callable[[Sequence[Slot]], Iterable[Slot]]
"""Wraps the slots being planned, e.g. to draw a progress bar (:func:`amplifier.cli.progress.track`)."""


def plan_window(
    campaign: Campaign,
    start: dt.datetime,
    end: dt.datetime,
    *,
    accounts: set[str] | None = None,
    rules: set[str] | None = None,
    progress: Progress | None = None,
) -> Plan:
    """Every post with ``start <= at < end`` (of these accounts and rules, if given), in time order."""
    with gc_paused():
        slots = expand(campaign.schedule, start, end, accounts=accounts, rules=rules)
        return Planner(campaign).plan(progress(slots) if progress is not None else slots)


def plannable(campaign: Campaign, problems: Sequence[Problem]) -> set[str]:
    """The rules of a campaign with load-time ``problems`` that can still be rendered: those whose message set, event
    and accounts exist and whose message set's file has no problem. ``validate`` renders them, so problems that
    only rendering finds are reported in the same run as the load-time problems of other files."""
    schedule = campaign.schedule
    broken_files = {problem.file for problem in problems}
    return {
        rule_id
        for rule_id, rule in schedule.rules.items()
        if rule.messages in campaign.message_sets
        and campaign.set_sources[rule.messages].display not in broken_files
        and getattr(rule, "event", None) in (None, *schedule.events)
        and (rule.accounts == "all" or all(account in schedule.accounts for account in rule.accounts))
    }


def find_posts(campaign: Campaign, ids: Iterable[str]) -> list[PlannedPost]:
    """The planned posts with these ids (from ``preview --format json``), in the order given."""
    wanted = list(dict.fromkeys(ids))
    slots: dict[str, Slot] = {}
    by_rule: dict[str, list[str]] = {}
    for post_id in wanted:
        try:
            rule_id, account, _key = parse_slot_id(post_id)
        except ValueError:
            raise UsageError(f"{post_id!r} is not a post id (rule:account:YYYY-MM-DDTHH:MM)") from None
        if rule_id not in campaign.schedule.rules:
            raise UsageError(f"{post_id!r}: no rule {rule_id!r} in the campaign")
        if account not in campaign.schedule.accounts:
            raise UsageError(f"{post_id!r}: no account {account!r} in the campaign")
        by_rule.setdefault(rule_id, []).append(post_id)
    for rule_id, post_ids in by_rule.items():
        rule = campaign.schedule.rules[rule_id]
        event = getattr(rule, "event", None)
        for occ in _occurrences_of(campaign, rule_id, [parse_slot_id(post_id)[2] for post_id in post_ids]):
            for post_id in post_ids:
                _rule, account, key = parse_slot_id(post_id)
                if key == occ.key:
                    slots[post_id] = make_slot(rule_id, account, occ, event)
    missing = [post_id for post_id in wanted if post_id not in slots]
    if missing:
        raise UsageError("no planned post with id " + ", ".join(repr(m) for m in missing))
    planner = Planner(campaign)
    posts = [planner.post(slots[post_id]) for post_id in wanted]
    if planner.problems:
        raise CampaignError(planner.problems)
    return [post for post in posts if post is not None]


def _occurrences_of(campaign: Campaign, rule_id: str, keys: list[str]) -> Iterable[Occurrence]:
    """The rule's occurrences on the local days named by ``keys`` (all of them if a key names no day)."""
    rule = campaign.schedule.rules[rule_id]
    try:
        days = sorted({dt.date.fromisoformat(key[:10]) for key in keys})
    except ValueError:
        return occurrences(campaign.schedule, rule)
    tz = rule_zone(campaign.schedule, rule)
    found: list[Occurrence] = []
    for day in days:  # a wall time is within a day of the UTC instants of its local day
        start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), tzinfo=tz)
        found.extend(occurrences_between(campaign.schedule, rule, start, start + dt.timedelta(days=3)))
    return found
