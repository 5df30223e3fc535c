"""The posts a window shows: its start and end, the zone its times are shown in, and the accounts and rules chosen
(``preview``'s ``--account``, ``--platform``, ``--lang`` and ``--rule``), chosen before the posts are planned so
that every view of the window shows the same posts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.plan.planner import Plan, Progress
    from amplifier.plan.stream import PlanStream, StreamProgress


@dataclass(frozen=True)
class Selection:
    """The posts a preview shows, and how it shows their times."""

    start: dt.datetime
    end: dt.datetime
    zone: ZoneInfo  # every time shown is in this zone
    accounts: frozenset[str] | None = None  # None: every account
    rules: frozenset[str] | None = None  # None: every rule
    filters: tuple[str, ...] = ()  # the filters as given, for the header ("platform bluesky", ...)

    def plan(self, campaign: Campaign, progress: Progress | None = None) -> Plan:
        """The selected posts of the window, planned whole (:func:`amplifier.plan.planner.plan_window`)."""
        from amplifier.plan.planner import plan_window

        accounts, rules = self._sets()
        return plan_window(campaign, self.start, self.end, accounts=accounts, rules=rules, progress=progress)

    def stream(self, campaign: Campaign, progress: StreamProgress | None = None) -> PlanStream:
        """The selected posts of the window, planned as they are read (:func:`amplifier.plan.stream.stream_window`)."""
        from amplifier.plan.stream import stream_window

        accounts, rules = self._sets()
        return stream_window(
            campaign, self.start, self.end, accounts=accounts, rules=rules, progress=progress
        )

    def _sets(self) -> tuple[set[str] | None, set[str] | None]:
        return (
            None if self.accounts is None else set(self.accounts),
            None if self.rules is None else set(self.rules),
        )


def choose_accounts(
    campaign: Campaign, *, accounts: Iterable[str], platforms: Iterable[str], langs: Iterable[str]
) -> tuple[frozenset[str] | None, list[str]]:
    """The accounts that match every filter given (by id, platform, language; ``None``: no filter given), and the
    filters as given, for a header (``platform bluesky``, ``lang ckb, ar``)."""
    schedule = campaign.schedule
    chosen: set[str] | None = None
    filters: list[str] = []
    by: list[tuple[str, tuple[str, ...], Callable[[str], Any]]] = [
        ("account", tuple(accounts), lambda a: a),
        ("platform", tuple(platforms), lambda a: schedule.accounts[a].platform),
        ("lang", tuple(langs), campaign.account_lang),
    ]
    for option, values, of_account in by:
        if values:
            matching = {a for a in schedule.accounts if of_account(a) in values}
            chosen = matching if chosen is None else chosen & matching
            filters.append(f"{option} {', '.join(dict.fromkeys(values))}")
    return (None if chosen is None else frozenset(chosen)), filters


def unknown(values: Iterable[str], known: Iterable[str]) -> list[str]:
    """The ``values`` not among ``known``, each once, in their order."""
    known = set(known)
    return [value for value in dict.fromkeys(values) if value not in known]
