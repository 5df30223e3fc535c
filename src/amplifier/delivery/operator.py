"""An operator's changes to planned posts, behind ``skip`` and ``cancel``: which posts they reach, and the one ledger
transaction each is; and which published posts ``retract`` reaches (:func:`retract_scope`). (``pause``, ``resume``
and ``retry`` are single ledger calls; the CLI makes them.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from amplifier.delivery.ledger import Ledger, PlanEntry, State, UnknownPost
from amplifier.errors import UsageError

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign  # loaded only when a command needs the campaign's files


def skip_posts(
    ledger: Ledger,
    campaign: Callable[[], Campaign],
    post_ids: Sequence[str],
    reason: str,
    now: dt.datetime,
    *,
    by: str,
) -> None:
    """Skip the posts ``post_ids``, all or none. A post not planned into the ledger yet (beyond the daemon's
    window) is taken from the campaign files (``campaign``, loaded only then) and planned first; an id in neither
    is a :class:`UsageError`."""
    from amplifier.plan.planner import find_posts

    missing = [post_id for post_id in post_ids if not _known(ledger, post_id)]
    if missing:
        found = {post.id: post for post in find_posts(campaign(), missing)}
        unknown = [post_id for post_id in missing if post_id not in found]
        if unknown:
            raise UsageError(f"no planned post {', '.join(map(repr, unknown))} in the ledger or the campaign")
        ledger.sync_plan([PlanEntry.from_post(post) for post in found.values()], now, start=now, end=now)
    ledger.skip_posts(list(post_ids), reason, now, by=by)


def _known(ledger: Ledger, post_id: str) -> bool:
    try:
        ledger.get(post_id)
    except UnknownPost:
        return False
    return True


def cancel_scope(
    campaign: Callable[[], Campaign], *, rule: str | None, event: str | None, account: str | None
) -> tuple[str, list[str] | None]:
    """What ``cancel`` reaches: a label for the record (``rule r``, ``event e``, ``account a``) and the rules whose
    posts it cancels (``None``: every rule, for an account). Exactly one of ``rule``, ``event``, ``account``; an
    event is looked up in the campaign (loaded only then)."""
    chosen = [name for name, value in (("--rule", rule), ("--event", event), ("--account", account)) if value]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --rule, --event, --account")
    if rule is not None:
        return f"rule {rule}", [rule]
    if event is not None:
        return f"event {event}", sorted(event_rules(campaign(), event))
    return f"account {account}", None


def event_rules(campaign: Campaign, event: str) -> set[str]:
    """The rules tied to ``event`` (``--event``: a usage error when the campaign has no such event)."""
    schedule = campaign.schedule
    if event not in schedule.events:
        raise UsageError(f"--event: no event {event!r} in the campaign")
    return {name for name, rule in schedule.rules.items() if getattr(rule, "event", None) == event}


EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def retract_scope(
    campaign: Campaign, ids: Sequence[str], *, rule: str | None, event: str | None
) -> set[str] | None:
    """What ``retract`` reaches: the rules whose published posts it retracts (``rule``, or the rules of ``event``),
    or None for the post ``ids`` given. Exactly one of the three (a usage error otherwise, or for a rule or event
    not in the campaign)."""
    chosen = [name for name, value in (("ID", ids), ("--event", event), ("--rule", rule)) if value]
    if len(chosen) != 1:
        raise UsageError("give post IDs, or one of --event, --rule")
    if rule is not None:
        if rule not in campaign.schedule.rules:
            raise UsageError(f"--rule: no rule {rule!r} in the campaign")
        return {rule}
    if event is not None:
        return event_rules(campaign, event)
    return None


def published_posts(ledger: Ledger, rules: set[str], now: dt.datetime) -> list[str]:
    """The ids of the published posts of ``rules``, oldest first."""
    end = now + dt.timedelta(days=1)
    return [row.id for row in ledger.iter_history(EPOCH, end, states=[State.PUBLISHED]) if row.rule in rules]
