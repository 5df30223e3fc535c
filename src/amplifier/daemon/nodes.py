"""The daemon as one node of several on a shared ledger (see :mod:`amplifier.delivery.coordination`).

* Planning: only the leader writes the plan (:meth:`NodesMixin.write_plan`), with the source of its files
  (:func:`campaign_source`: content hash, git commit or newest file time); a node whose files are older than the
  plan's does not overwrite it, says so in its log (``plan not written``), and gives the lead up. A follower
  still plans its window in memory, to render the posts the leader planned; when the leader dies, the next
  follower that asks (every watch interval) leads, and writes the plan at once (:meth:`NodesMixin.take_lead`).
* Publishing: one node per account at a time (the coordinator's account lock), and the account's rate budget
  read again from the shared ledger under that lock (:meth:`NodesMixin.publish_account`). A pass takes its
  accounts in one step, its share of the due ones (:meth:`NodesMixin.take_accounts`: the due accounts
  over the nodes alive, split by :func:`owners` so that no two nodes ask for one account), and reads their
  budgets in one query, so a burst spreads over the nodes. A node holds back a
  post whose text it would render differently from the plan's (older files), or that its files do not know.
* Follow-up jobs and read-back: run for an account only while this node holds its lease, taken the way a pass
  takes its accounts (:meth:`NodesMixin.account_leases`), the budgets read again under it; the requests they
  make (writes, reads, deletions) are written into the account's shared uses (:class:`~amplifier.delivery.shared_state.SharedUses`) before
  the lease goes, so the next holder counts them: one budget per account across nodes, and a read or a job
  never sent by two nodes at once.

With one machine (:class:`~amplifier.delivery.coordination.LocalCoordinator`) all of this is a no-op.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from amplifier.campaign.load import Campaign
from amplifier.daemon.events import EventLog, TickReport
from amplifier.daemon.readback import READ_BUDGETS, ReadBack
from amplifier.daemon.settings import FAR_FUTURE, DaemonSettings
from amplifier.delivery.coordination import Coordinator
from amplifier.delivery.followups import DELETE_BUDGETS
from amplifier.delivery.ledger import Ledger, PlanEntry, PlanSource, Row, StalePlan, State, SyncReport
from amplifier.delivery.ratelimit import Budget, RateLimiter
from amplifier.delivery.shared_state import (
    DELETES_BUDGET,
    POSTS_BUDGET,
    READS_BUDGET,
    LedgerState,
    SharedUses,
)
from amplifier.plan.post import PlannedPost
from amplifier.publish.state import StateStore

SHARE_WAIT = timedelta(seconds=1)  # the other nodes' share of a pass's accounts: theirs first, for so long


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def campaign_source(campaign: Campaign, files: Iterable[Path], node: str) -> PlanSource:
    """The source of a plan made from ``files``: their content hash, and their revision: the git commit of a
    checkout (its commit time), else ``mtime`` (the newest file time)."""
    digest = hashlib.sha256()
    newest = 0.0
    for path in sorted(set(files)):
        try:
            data = path.read_bytes()
            newest = max(newest, path.stat().st_mtime)
        except OSError:
            data = b"\0missing"
        digest.update(
            str(path.relative_to(campaign.root) if path.is_relative_to(campaign.root) else path).encode()
        )
        digest.update(b"\0" + hashlib.sha256(data).digest())
    commit = _git(campaign.root, "log", "-1", "--format=%H %ct")
    if commit is not None and " " in commit:
        sha, stamp = commit.split(" ", 1)
        if stamp.isdigit():
            return PlanSource(
                digest.hexdigest(), f"git:{sha[:12]}", datetime.fromtimestamp(int(stamp), UTC), node
            )
    return PlanSource(digest.hexdigest(), "mtime", datetime.fromtimestamp(newest, UTC), node)


def owners(accounts: Iterable[str], known: Iterable[str], nodes: Sequence[str]) -> dict[str, str]:
    """Which node of ``nodes`` takes each of ``accounts`` first when its posts come due: the campaign's accounts
    (``known``), sorted, dealt out in turn over the nodes, sorted. It depends on neither the time a node passes
    nor what other nodes took already, so every node computes the same split (no two nodes ask for one
    account), and a burst of every account gives each node its share to one account. An account the list does
    not name (a node with other files) goes by its hash."""
    order = {account: n for n, account in enumerate(sorted(set(known)))}
    ranked = sorted(set(nodes))

    def rank(account: str) -> int:
        if account in order:
            return order[account]
        return int.from_bytes(hashlib.blake2b(account.encode(), digest_size=8).digest(), "big")

    return {account: ranked[rank(account) % len(ranked)] for account in accounts}


def longest(budgets: Iterable[Budget]) -> timedelta:
    """The longest window of ``budgets`` (how long a use counts)."""
    return max((window.span for budget in budgets for window in budget.windows), default=timedelta(0))


class NodesMixin:
    """The daemon's hooks for several nodes (see the module docstring)."""

    campaign: Campaign
    ledger: Ledger
    settings: DaemonSettings
    log: EventLog
    limiter: RateLimiter
    coordinator: Coordinator
    token: str
    posts: dict[str, PlannedPost]
    shared_uses: SharedUses | None  # a node of several: the accounts' uses the ledger's posts do not show
    readback: ReadBack
    delete_limiter: RateLimiter  # the follow-up deletions' budget (.followups)
    _held: dict[str, datetime]  # account -> until when this node leaves it to the others
    _plan_note: str | None

    def open_shared_uses(self, store: StateStore | None) -> SharedUses | None:
        """A node of several: the accounts' shared uses, in ``store`` (None: the ledger's database)."""
        if not self.coordinator.shared:
            return None
        keep = {
            POSTS_BUDGET: longest(self.limiter.budgets.values()),
            READS_BUDGET: longest(READ_BUDGETS.values()),
            DELETES_BUDGET: longest(DELETE_BUDGETS.values()),
        }
        return SharedUses(store or LedgerState(self.ledger, self.token, self.clock), keep)  # type: ignore[attr-defined]

    def side_budgets(self) -> dict[str, RateLimiter]:
        """The budgets besides the posts' that the shared uses keep: the reads', the follow-up deletions'."""
        return {READS_BUDGET: self.readback.limiter, DELETES_BUDGET: self.delete_limiter}

    def campaign_files(self, campaign: Campaign) -> list[Path]:
        from amplifier.daemon.watch import snapshot_files

        return list(snapshot_files(campaign))

    def write_plan(
        self, entries: Sequence[PlanEntry], now: datetime, start: datetime, end: datetime, campaign: Campaign
    ) -> SyncReport:
        """Write the plan into the ledger, if this node is the leader and its files are not older."""
        if not self.coordinator.shared:
            return self.ledger.sync_plan(entries, now, start=start, end=end)
        if not self.coordinator.may_plan():
            self._note_plan("following: another node writes the plan")
            return SyncReport()
        source = campaign_source(campaign, self.campaign_files(campaign), self.token)
        try:
            report = self.ledger.sync_plan(entries, now, start=start, end=end, source=source)
        except StalePlan as exc:
            self.coordinator.resign()
            self._note_plan(str(exc))
            return SyncReport()
        self._note_plan(f"leading: the plan is written from revision {source.revision}")
        return report

    def _note_plan(self, note: str) -> None:
        if note != self._plan_note:
            self._plan_note = note
            self.log.emit("plan role", node=self.token, state=note)

    def take_lead(self, now: datetime) -> bool:
        """A follower asks for the lead (the leader may have died); True if it took it and wrote the plan."""
        if not self.coordinator.shared or self.coordinator.is_leader or not self.coordinator.may_plan():
            return False
        self.plan(now)  # type: ignore[attr-defined]
        return True

    # -- publishing ------------------------------------------------------------------------------------------

    def held_accounts(self, now: datetime) -> dict[str, datetime]:
        """The accounts this node leaves to other nodes for now, and until when."""
        for account in [account for account, until in self._held.items() if until <= now]:
            del self._held[account]
        return dict(self._held)

    def hold(self, account: str, now: datetime, reason: str) -> str:
        """Leave ``account`` to the other nodes for a moment (a watch interval); the daemon's step result."""
        self._held[account] = now + timedelta(seconds=max(self.settings.watch_interval, 1.0))
        said: dict[str, str] = self.__dict__.setdefault("_held_said", {})
        if said.get(account) != reason:  # once per reason, not at every pass
            said[account] = reason
            self.log.emit("held", account=account, reason=reason)
        return "held"

    def hold_back(self, row: Row, post: PlannedPost | None, now: datetime) -> str | None:
        """Why this node must not deliver (nor skip) ``row`` now, None when it may."""
        if not self.coordinator.shared:
            return None
        if not self.coordinator.holds(row.account, now):
            return self.hold(row.account, now, "the account's lease passed: another node may publish for it")
        if post is None:
            if self.coordinator.is_leader:
                return None  # the leader's files are the plan's: the post is gone from the campaign
            return self.hold(row.account, now, f"{row.id}: not in this node's campaign files")
        if PlanEntry.from_post(post).content_hash != row.content_hash:
            return self.hold(row.account, now, f"{row.id}: this node's campaign files render it differently")
        return None

    @contextmanager
    def pass_accounts(self, queues: dict[str, list[Row]], now: datetime) -> Iterator[dict[str, list[Row]]]:
        """The pass's accounts (:meth:`take_accounts`), released when the pass ends."""
        taken = self.take_accounts(queues, now)
        try:
            yield taken
        finally:
            self.coordinator.release(taken)

    def take_accounts(self, queues: dict[str, list[Row]], now: datetime) -> dict[str, list[Row]]:
        """A node of several: the pass's accounts, taken in one step, their budgets read in one query. Of the
        accounts whose posts just came due, a node takes the ones it owns (:func:`owners` over the nodes alive:
        every node computes the same split, so the nodes of a burst never ask for the same account); the others
        are their owners' for :data:`SHARE_WAIT`, then anyone's (an owner may wake late, or be gone), as are
        accounts due for longer. One node: ``queues`` as they are."""
        if not self.coordinator.shared or not queues:
            return queues
        alive = {
            beat.node for beat in self.ledger.nodes() if beat.beat_at > now - 2 * self.settings.claim_lease
        }
        nodes = sorted(alive | {self.token})
        fresh = {account for account, rows in queues.items() if rows[0].next_attempt_at > now - SHARE_WAIT}
        waited = queues.keys() - fresh
        known = self.campaign.schedule.accounts.keys()
        mine = {account for account, node in owners(fresh, known, nodes).items() if node == self.token}
        wanted = waited | mine
        taken = self.coordinator.take(wanted, now, len(wanted)) if wanted else set()
        until = now + SHARE_WAIT
        for account in sorted(queues.keys() - taken):
            if account in wanted:  # refused: another node holds it
                self.hold(account, now, "another node publishes for it")
            else:  # its owner's for a moment, then taken if still free
                self._held[account] = until
        try:
            self._budgets_read = self.refresh_budgets(taken, now) if taken else set()
        except BaseException:
            self.coordinator.release(taken)  # never held on after a failed pass (the lease job extends it)
            raise
        return {account: rows for account, rows in queues.items() if account in taken}

    def publish_account(self, rows: list[Row]) -> TickReport:
        """Publish one account's due posts, while this node holds the account (else leave it for now)."""
        account = rows[0].account
        now: datetime = self.clock()  # type: ignore[attr-defined]
        with self.coordinator.account(account, now) as mine:
            if not mine:
                self.hold(account, now, "another node publishes for it")
                return TickReport()
            self.__dict__.get("_held_said", {}).pop(account, None)
            if self.coordinator.shared and account not in self.__dict__.get("_budgets_read", ()):
                self.refresh_budget(account, self.clock())  # type: ignore[attr-defined]
            with self.claiming():  # type: ignore[attr-defined]
                return self._run_account(rows)  # type: ignore[attr-defined,no-any-return]

    @contextmanager
    def account_leases(self, accounts: Iterable[str], now: datetime) -> Iterator[set[str]]:
        """Follow-up jobs and read-back of ``accounts``: the ones this node may run for now (a node of several:
        those whose lease it took, in one step, their budgets read again), held while the block runs; then the
        requests made meanwhile are written into the shared uses and the leases let go. One node: all of them."""
        wanted = set(accounts)
        if not self.coordinator.shared or not wanted:
            yield wanted
            return
        taken = self.coordinator.take(wanted, now, len(wanted))
        try:
            if taken:
                self.refresh_budgets(taken, now)
            yield taken
        finally:
            try:
                if self.shared_uses is not None and taken:
                    self.shared_uses.flush(taken)  # before the next holder reads them
            finally:
                self.coordinator.release(taken)

    def refresh_budget(self, account: str, now: datetime) -> None:
        """The account's rate budget, read again from the shared ledger (every node's posts count)."""
        self.refresh_budgets({account}, now, only=account)

    def refresh_budgets(self, accounts: set[str], now: datetime, *, only: str | None = None) -> set[str]:
        """The rate budgets of ``accounts``, read again from the shared ledger in one query (``only``: the
        query asks for that one account), with the uses its posts do not show (follow-up writes; the reads'
        budget: read requests) and the blocks other nodes' 429s set; the accounts read."""
        rows = self.ledger.history(
            now - timedelta(days=2), now + FAR_FUTURE, account=only, states=[State.PUBLISHED]
        )
        uses: dict[str, list[tuple[str, datetime, int]]] = {account: [] for account in accounts}
        for row in rows:
            if (
                row.account in uses
                and row.published_at is not None
                and row.published_at > now - timedelta(days=1)
            ):
                parts = sum(1 for part in (row.result or ()) if not part.get("existed"))
                uses[row.account].append((row.platform, row.published_at, parts))
        shared = self.shared_uses.load(accounts, now) if self.shared_uses is not None else {}
        for account, used in uses.items():
            extra = shared.get(account, [])
            used += [(use.platform, use.at, use.parts) for use in extra if use.budget == POSTS_BUDGET]
            self.limiter.replace_uses(account, used)
            if account in shared:
                for budget, limiter in self.side_budgets().items():
                    side = [(use.platform, use.at, use.parts) for use in extra if use.budget == budget]
                    limiter.replace_uses(account, side)
        self.limiter.load_blocks(now, accounts)  # every node's 429 resets (a shared state store)
        return set(accounts)
