"""Client-side rate limits: how much an account may still post, and when it may post again.

The daemon asks :meth:`RateLimiter.available_at` before it claims a post and calls :meth:`RateLimiter.record`
after each publish, so it never runs into a limit the platform documents:

* Mastodon: 300 statuses per 3 hours per account (``app/lib/rate_limiter.rb``); each part of a thread is one
  status.
* Bluesky: writes cost points, a create 3; 5000 points per hour and 35000 per day per account.

A 429 from the server (whose limits may be lower than the documented ones) blocks the account until the reset
time it gave: :meth:`RateLimiter.block`. Windows slide: a use counts until ``window`` after it happened. The
clock is a parameter: every method takes an aware ``now``. Thread-safe.

Several nodes on one PostgreSQL ledger share the blocks: with a ``shared`` state store (the ledger's database,
:mod:`amplifier.delivery.shared_state`), a block is also written there (``blocks/<account>``; a later one wins),
and :meth:`RateLimiter.load_blocks` reads every node's, which the daemon does before it publishes for an
account: a reset one node got is respected by all. One machine keeps its blocks in memory.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from amplifier.publish.state import StateStore, loads, safe_name

BLOCKS = "blocks"  # the state store's folder of server-given blocks


@dataclass(frozen=True)
class Window:
    """At most ``limit`` units within any ``span``."""

    limit: int
    span: timedelta


@dataclass(frozen=True)
class Budget:
    """A platform's limits: the windows, and how many units one published part (a create) costs."""

    windows: tuple[Window, ...]
    cost_per_part: int = 1


BUDGETS: Mapping[str, Budget] = {
    "mastodon": Budget((Window(300, timedelta(hours=3)),), cost_per_part=1),
    "bluesky": Budget((Window(5000, timedelta(hours=1)), Window(35000, timedelta(days=1))), cost_per_part=3),
}


class RateLimiter:
    """Per-account sliding windows plus server-given blocks (429 reset times)."""

    def __init__(self, budgets: Mapping[str, Budget] | None = None, shared: StateStore | None = None) -> None:
        self.budgets = dict(BUDGETS if budgets is None else budgets)
        self.shared = shared  # where the nodes of a shared ledger keep their blocks (None: memory only)
        self._uses: dict[str, list[tuple[datetime, int]]] = {}  # per account, in time order
        self._blocked: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def _longest(self, platform: str) -> timedelta:
        budget = self.budgets.get(platform)
        return max((w.span for w in budget.windows), default=timedelta(0)) if budget else timedelta(0)

    def _prune(self, account: str, platform: str, now: datetime) -> list[tuple[datetime, int]]:
        uses = self._uses.setdefault(account, [])
        horizon = now - self._longest(platform)
        stale = 0
        while stale < len(uses) and uses[stale][0] <= horizon:
            stale += 1
        del uses[:stale]
        return uses

    def cost(self, platform: str, parts: int) -> int:
        budget = self.budgets.get(platform)
        return parts * (budget.cost_per_part if budget else 0)

    def available_at(self, account: str, platform: str, parts: int, now: datetime) -> datetime:
        """The earliest instant (``now`` or later) at which ``account`` may publish ``parts`` more parts."""
        with self._lock:
            earliest = now
            blocked = self._blocked.get(account)
            if blocked is not None:
                if blocked > now:
                    earliest = blocked
                else:
                    del self._blocked[account]
            budget = self.budgets.get(platform)
            if budget is None:
                return earliest
            cost = parts * budget.cost_per_part
            uses = self._prune(account, platform, now)
            for window in budget.windows:
                if cost > window.limit:  # can never fit: let it through once the window is empty
                    cost = window.limit
                used = sum(units for at, units in uses if at > now - window.span)
                excess = used + cost - window.limit
                if excess <= 0:
                    continue
                # Free ``excess`` units: wait until enough of the oldest uses leave the window.
                freed = 0
                for at, units in uses:
                    if at <= now - window.span:
                        continue
                    freed += units
                    if freed >= excess:
                        earliest = max(earliest, at + window.span)
                        break
            return earliest

    def record(self, account: str, platform: str, parts: int, now: datetime) -> None:
        """``account`` published ``parts`` parts at ``now``."""
        cost = self.cost(platform, parts)
        if cost <= 0:
            return
        with self._lock:
            bisect.insort(self._prune(account, platform, now), (now, cost))

    def block(self, account: str, until: datetime) -> None:
        """The server said: no more from ``account`` before ``until`` (a later block wins); told to the
        other nodes too, with a shared store."""
        self._block(account, until)
        if self.shared is not None:
            name = safe_name(account) + ".json"
            with self.shared.locked(BLOCKS, name):
                known = _until(self.shared.read_json(BLOCKS, name), account)
                if known is None or until > known:
                    self.shared.write_json(BLOCKS, name, {"account": account, "until": until.isoformat()})

    def _block(self, account: str, until: datetime) -> None:
        with self._lock:
            current = self._blocked.get(account)
            if current is None or until > current:
                self._blocked[account] = until

    def load_blocks(self, now: datetime, accounts: Iterable[str]) -> None:
        """Every node's blocks of ``accounts`` still running at ``now``, from the shared store (none: nothing
        to do)."""
        if self.shared is None:
            return
        names = {safe_name(account) + ".json": account for account in accounts}
        for name, raw in self.shared.read_many(BLOCKS, names).items():
            until = _until(loads(raw), names[name])
            if until is not None and until > now:
                self._block(names[name], until)

    def blocked_until(self, account: str, now: datetime) -> datetime | None:
        with self._lock:
            until = self._blocked.get(account)
        return until if until is not None and until > now else None

    def replace_uses(self, account: str, uses: Iterable[tuple[str, datetime, int]]) -> None:
        """``account``'s past uses are exactly ``uses`` ``(platform, published_at, parts)`` (read from a ledger
        other nodes write to as well); its server-given block stays."""
        with self._lock:
            self._uses[account] = []
        for platform, at, parts in sorted(uses, key=lambda use: use[1]):
            self.record(account, platform, parts, at)

    def seed(self, uses: Iterable[tuple[str, str, datetime, int]]) -> None:
        """Load past uses ``(account, platform, published_at, parts)``, e.g. from the ledger at start-up."""
        for account, platform, at, parts in sorted(uses, key=lambda use: use[2]):
            self.record(account, platform, parts, at)


def _until(data: object, account: str) -> datetime | None:
    """The end of a stored block of ``account`` (None: none, damaged, or another account's)."""
    if not isinstance(data, dict) or data.get("account") != account:
        return None
    try:
        return datetime.fromisoformat(str(data["until"]))
    except (KeyError, ValueError):
        return None
