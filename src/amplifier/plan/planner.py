"""The plan: every post that would go out in a window, rendered and adapted, with the problems found on the way.

campaign -> slots (:mod:`amplifier.plan.schedule`) -> rendered text (:mod:`amplifier.campaign.templates`) -> per-platform parts
(:mod:`amplifier.plan.adapt`) -> :class:`~amplifier.plan.post.PlannedPost`. The clock is a parameter: nothing here reads it.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.campaign.models import MessageSet
from amplifier.campaign.templates import uses
from amplifier.campaign.yamlsource import PathKey
from amplifier.errors import Problem
from amplifier.plan.adapt import Adapted, Content, Target, adapt
from amplifier.plan.context import account_controls, account_target
from amplifier.plan.followups import FollowupPlan, followup_plan
from amplifier.plan.frozen import frozen_factory, frozen_replacer
from amplifier.plan.inputs import SlotInputs
from amplifier.plan.post import PlannedPost, Platform
from amplifier.plan.quotes import QuoteError, quoted_post
from amplifier.plan.rendering import Renderer, TemplateText
from amplifier.plan.schedule import Slot, expand


@dataclass
class Plan:
    posts: list[PlannedPost]
    problems: list[Problem] = field(default_factory=list)
    # Filled by validate (amplifier.plan.review): warnings (exit 0) and rules whose posts are all in the past.
    warnings: list[Problem] = field(default_factory=list)
    finished: list[Problem] = field(default_factory=list)


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
    fields: dict[
        str, Any
    ]  # every Content field but the texts and the content warning (with the account's controls)
    kind: int  # statics with the same kind adapt the same texts the same way (the key of the adapted cache)
    followups: FollowupPlan | None  # boosts, pin, delete_after (plan.followups); None: none
    content: Callable[..., Content]  # Content(texts=..., content_warning=..., **fields), fast (plan.frozen)
    quotes: bool  # the set quotes a post (plan.quotes)


_new_post = frozen_factory(PlannedPost)  # PlannedPost(...), without the per-field cost of a frozen __init__

ADAPTED_CACHE = 4096  # adapted texts kept for reuse across instants (texts that do not change between them)


class Planner(SlotInputs):
    """Renders and adapts slots of one campaign; caches compiled templates and shared renders."""

    def __init__(self, campaign: Campaign) -> None:
        super().__init__(campaign)
        self._rendered: dict[tuple[Any, ...], str] = {}
        self._adapted: dict[tuple[Any, ...], Adapted] = {}
        self._statics: dict[tuple[str, str], _Static] = {}
        self._by_occurrence: dict[tuple[int, int], Adapted] = {}
        self._shares: dict[tuple[Any, ...], int] = {}
        self._kinds: dict[tuple[Any, ...], int] = {}  # (target, Content fields) -> the statics' kind
        self._per_account: dict[str, bool] = {}  # message set -> some template names the account
        self._timed_targets: dict[Target, Target] = {}  # Bluesky targets with this instant's createdAt
        self.renderer = Renderer(campaign)
        self._at: dt.datetime | None = None

    @property
    def problems(self) -> list[Problem]:
        return self.renderer.problems

    # -------------------------------------------------------------------------------------------- rendering

    def _render(
        self, text: TemplateText, context: dict[str, Any], cache_key: tuple[Any, ...] | None
    ) -> str | None:
        rendered = self.renderer.render(text, context)
        if rendered is not None and cache_key is not None:
            self._rendered[(text.source, *cache_key)] = rendered
        return rendered

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
            per_account = self._per_account.get(rule.messages)
            if per_account is None:
                per_account = self._per_account[rule.messages] = any(
                    uses(text, "account") for _path, text in message_set.templates()
                )
            share_key = (rule_id, lang, target, tuple(sorted(controls.items())))
            share = None if per_account else self._shares.setdefault(share_key, len(self._shares))
            tags = self._tags(message_set) if self._appends_tags(rule.messages, message_set) else ()
            fields = {
                "lang": lang,
                "hashtags": tags,
                "sensitive": message_set.media_sensitive(),
                "images": self._images_for(rule.messages, message_set, lang),
                "video": self._video_for(rule.messages, message_set, lang) if message_set.videos else None,
                "quote": message_set.quote is not None,
                "link_card": message_set.link_card,
                "split": message_set.split.enabled,
                "numbering": message_set.split.numbering,
                **controls,
            }
            kind_key = (target, tuple(fields.items()))
            kind = self._kinds.setdefault(kind_key, len(self._kinds))
            followups = followup_plan(campaign, rule_id, account_id)
            static = self._statics[key] = _Static(
                rule.messages,
                message_set,
                account.platform,
                lang,
                target,
                per_account,
                share,
                len(message_set.variants),
                fields,
                kind,
                followups if followups else None,
                frozen_replacer(Content(texts=(), **fields)),
                message_set.quote is not None,
            )

        return static

    def post(self, slot: Slot) -> PlannedPost | None:
        if slot.at is not self._at and slot.at != self._at:  # the slots of one instant share its datetime
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
                self.renderer.problem(
                    static.set_id,
                    ("variants", variant_index, field_name, static.lang),
                    f"{slot.id}: {message}",
                )
        return _new_post(  # the fields of PlannedPost, in order
            slot.id,
            slot.at,
            slot.rule,
            slot.account,
            static.platform,
            static.lang,
            adapted.parts,
            static.set_id,
            variant_index,
            slot.event,
            adapted.problems,
            self._quote(slot, static) if static.quotes else None,
            static.followups.for_slot(slot.at, slot.event) if static.followups is not None else (),
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
            self.renderer.problem(static.set_id, ("quote",), str(exc))
            return None

    def _next_instant(self, at: dt.datetime) -> None:
        """Slots come in time order: what one occurrence shares between accounts is not needed past its instant,
        so a plan of any length holds the caches of one instant (and a bounded cache of adapted texts)."""
        self._at = at
        self._rendered.clear()
        self._by_occurrence.clear()
        self._timed_targets.clear()
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
                rendered = self._render(TemplateText(source, static.set_id, path), context, cache_key)
                if rendered is None:
                    return None
            texts.append(rendered)

        cw = None
        if message_set.content_warning is not None and static.platform == "mastodon":
            cw_source = message_set.content_warning.get(lang) or message_set.content_warning.get("*")
            if cw_source:
                if context is None:
                    context = self._context(slot, lang, message_set)
                cw = self._render(
                    TemplateText(cw_source, static.set_id, ("content_warning", lang)), context, None
                )

        mastodon = static.platform == "mastodon"
        key = (
            static.kind,
            tuple(texts),
            cw,
            None if mastodon else slot.at,
        )  # Bluesky: createdAt is the slot time
        adapted = self._adapted.get(key)
        if adapted is None:
            target = static.target
            if not mastodon:
                timed = self._timed_targets.get(target)
                if timed is None:
                    timed = self._timed_targets[target] = replace(target, created_at=slot.at)
                target = timed
            content = static.content(texts=key[1], content_warning=cw)
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


from amplifier.plan.find import find_posts, plannable  # noqa: E402  # kept importable from here

__all__ = ["Plan", "Planner", "find_posts", "gc_paused", "plan_window", "plannable"]
