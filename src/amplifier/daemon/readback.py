"""Read-back jobs: the daemon reads the engagement of what it published, at set ages, after the posts.

A published post is read (likes, reposts, replies, quotes: :meth:`Publisher.read_engagement`) at each age of
the campaign's ``readback:`` setting (default 1 h, 24 h and 7 days after publishing) and once
``readback.after_event`` after its event ended (rules with an event). Each read is a job like a post:

* **Found cheaply.** One indexed ledger query (:meth:`Ledger.reads_due`) finds the published posts with a read
  due and no reading at or after it; nothing due costs that one query. A reading taken late satisfies every
  age before it (a daemon that was down reads once, not once per missed age).
* **Never duplicated.** A reading is stored with the instant it was taken; the ledger's primary key makes a
  repeated one a no-op, and a stored reading takes the post out of the query's answer.
* **One node per account.** On a shared ledger an account is read only by the node holding its lease, and its
  read requests count in one budget across nodes (:meth:`~amplifier.daemon.nodes.NodesMixin.account_leases`).
* **Accounts at once.** The daemon reads its accounts concurrently on its publishing threads, each account's
  reads in order (the state below is per account or thread-safe).
* **Posts first.** Reads run after the pass's deliveries and never for an account that still has a post due,
  a paused account, or one the server told to wait (a 429's reset, the delivery path's block). Reads have a
  budget of their own (:data:`READ_BUDGETS`, half of what the servers allow for reads), so reading never uses
  what a post would need.
* **Retried on faults.** A 429 blocks the account's reads until the reset the server gave; another transient
  fault backs off (1 min doubling to 1 h); the readings of a call that failed are read again later. A
  Bluesky post the AppView has not indexed yet is read again after :data:`NOT_INDEXED_WAIT`.
* **Deleted is gone, not an error.** A part deleted on the server is stored as a reading with ``gone``; a part
  whose latest reading is gone is recorded gone again at the next age without asking the server; a post
  retracted by the campaign (``amplifier retract``, ``delete_after``) is recorded gone without asking.

A refused read (:class:`PermanentError`, :class:`AuthError`) is logged and not tried again by this process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.delivery.ledger import Ledger, Row
from amplifier.delivery.ledger.report import ReadAges
from amplifier.delivery.ratelimit import Budget, RateLimiter, Window
from amplifier.delivery.shared_state import READS_BUDGET, SharedUses, Use
from amplifier.errors import AmplifierError
from amplifier.plan.schedule import event_end
from amplifier.publish.base import Publisher, RateLimitedError, TransientError
from amplifier.publish.engagement import GET_POSTS_MAX, Engagement, PublishedPart

# Requests per account: half of Mastodon's 300 requests per 5 minutes, half of the AppView's 3000 per 5 minutes.
READ_BUDGETS: Mapping[str, Budget] = {
    "mastodon": Budget((Window(150, timedelta(minutes=5)),)),
    "bluesky": Budget((Window(1500, timedelta(minutes=5)),)),
}
READ_INTERVAL = 300  # seconds: how often `amplifier run` looks for read-back jobs between posts
POSTS_PER_PASS = 200  # read-back jobs taken by one pass (the rest wait for the next)
NOT_INDEXED_WAIT = timedelta(minutes=5)
BACKOFF_MIN = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)

PublisherOf = Callable[[str], Publisher]
Leases = Callable[[set[str], datetime], AbstractContextManager[set[str]]]  # accounts -> those held meanwhile


@dataclass
class ReadOutcome:
    """What one read-back pass did, by post id."""

    read: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # budget, posts first, a server's wait
    failed: list[str] = field(default_factory=list)


def read_ages(campaign: Campaign, now: datetime) -> ReadAges:
    """The campaign's ``readback:`` setting as the ledger's :class:`ReadAges` at ``now``."""
    settings = campaign.schedule.campaign.readback
    after: dict[str, datetime] = {}
    if settings.after_event is not None:
        for rule_id, rule in campaign.schedule.rules.items():
            event_id = getattr(rule, "event", None)
            if event_id is not None and event_id in campaign.schedule.events:
                event = campaign.schedule.events[event_id]
                after[rule_id] = event_end(campaign.schedule, event) + settings.after_event
    return ReadAges(tuple(settings.ages), since=now - settings.stop_after, after=after)


def requests_for(platform: str, parts: int) -> int:
    """How many requests reading ``parts`` parts takes (Mastodon one each, Bluesky 25 a request)."""
    return parts if platform == "mastodon" else -(-parts // GET_POSTS_MAX)


class ReadBack:
    """The read-back jobs of one daemon (see the module docstring); :meth:`run` is its hook in each pass."""

    def __init__(
        self,
        ledger: Ledger,
        post_limiter: RateLimiter,
        emit: Callable[..., None] | None = None,
        *,
        uses: SharedUses | None = None,
    ) -> None:
        self.ledger = ledger
        self.uses = uses  # a node of several: its read requests, told to the account's next holder
        self.post_limiter = post_limiter
        self.limiter = RateLimiter(READ_BUDGETS)
        self.emit: Callable[..., None] = emit or (lambda event, **fields: None)
        self._not_before: dict[str, datetime] = {}  # post id -> not read again before
        self._account_wait: dict[str, tuple[datetime, int]] = {}  # account -> (not before, faults in a row)
        self._refused: set[str] = set()

    def run(
        self,
        now: datetime,
        campaign: Campaign,
        publisher_of: PublisherOf,
        *,
        executor: Executor | None = None,
        leases: Leases | None = None,
    ) -> ReadOutcome:
        """Read what is due at ``now`` with spare budget; never for an account with a post due. With an
        ``executor`` the accounts are read concurrently (each account's reads in order), as posts are sent: a
        pass that reads a thousand accounts waits for the slowest, not for the sum of their round trips. With
        ``leases`` (a node of several: :meth:`~amplifier.daemon.nodes.NodesMixin.account_leases`) only the
        accounts whose lease this node took are read, and what is due is asked again under the leases (another
        node may have read it meanwhile)."""
        outcome = ReadOutcome()
        ages = read_ages(campaign, now)
        rows = self.ledger.reads_due(now, ages, limit=POSTS_PER_PASS)
        if not rows:
            return outcome
        if leases is None:
            self._run_rows(rows, now, publisher_of, executor, outcome)
            return outcome
        with leases({row.account for row in rows}, now) as held:
            if held:
                rows = [
                    row
                    for row in self.ledger.reads_due(now, ages, limit=POSTS_PER_PASS)
                    if row.account in held
                ]
                self._run_rows(rows, now, publisher_of, executor, outcome)
        return outcome

    def _run_rows(
        self,
        rows: Sequence[Row],
        now: datetime,
        publisher_of: PublisherOf,
        executor: Executor | None,
        outcome: ReadOutcome,
    ) -> None:
        if not rows:
            return
        busy = {row.account for row in self.ledger.due(now, limit=1000)}
        paused = set(self.ledger.paused_accounts())
        retracted = self.ledger.retractions([row.id for row in rows])
        by_account: dict[str, list[Row]] = {}
        for row in rows:
            if row.id in self._refused or self._not_before.get(row.id, now) > now:
                continue
            if row.id in retracted and retracted[row.id].state == "done":  # deleted by us: gone, not asked
                gone = [Engagement(row.id, index, now, gone=True) for index in range(row.part_count)]
                self.ledger.record_engagement(gone)
                outcome.gone.append(row.id)
                continue
            if row.account in busy or row.account in paused or self._waiting(row.account, now):
                outcome.deferred.append(row.id)
                continue
            by_account.setdefault(row.account, []).append(row)
        if executor is None or len(by_account) < 2:
            for account, account_rows in by_account.items():
                self._read_account(account, account_rows, now, publisher_of, outcome)
            return
        futures = [
            executor.submit(self._read_account, account, account_rows, now, publisher_of, outcome)
            for account, account_rows in by_account.items()
        ]
        for future in futures:  # every account's reads end before the pass goes on; the first error is raised
            future.result()

    def _waiting(self, account: str, now: datetime) -> bool:
        wait = self._account_wait.get(account)
        return (wait is not None and wait[0] > now) or self.post_limiter.blocked_until(
            account, now
        ) is not None

    def _read_account(
        self,
        account: str,
        rows: Sequence[Row],
        now: datetime,
        publisher_of: PublisherOf,
        outcome: ReadOutcome,
    ) -> None:
        chunk: list[tuple[Row, list[PublishedPart]]] = []
        size = 0
        step = 1 if rows[0].platform == "mastodon" else GET_POSTS_MAX
        for row in rows:
            parts = self._parts(row, now, outcome)
            if not parts:
                if row.id not in outcome.gone:
                    self._refused.add(row.id)  # nothing published to read (no platform id)
                continue
            chunk.append((row, parts))
            size += len(parts)
            if size >= step:
                if not self._read(account, chunk, now, publisher_of, outcome):
                    return
                chunk, size = [], 0
        if chunk:
            self._read(account, chunk, now, publisher_of, outcome)

    def _parts(self, row: Row, now: datetime, outcome: ReadOutcome) -> list[PublishedPart]:
        """The parts of ``row`` to ask the server about; the parts already gone are recorded gone again."""
        latest: dict[int, Engagement] = {}
        for reading in self.ledger.engagement(row.id):
            latest[reading.index] = reading  # by part then time: the last is the latest
        gone = [index for index, reading in latest.items() if reading.gone]
        if gone:
            self.ledger.record_engagement([Engagement(row.id, index, now, gone=True) for index in gone])
            if len(gone) == row.part_count:
                outcome.gone.append(row.id)
                self.emit("read-gone", id=row.id, account=row.account)
        parts: list[PublishedPart] = []
        for index in range(row.part_count):
            result: Mapping[str, Any] = row.parts.get(index) or {}
            if index not in gone and result.get("id"):
                parts.append(PublishedPart(row.id, index, str(result["id"]), result.get("uri")))
        return parts

    def _read(
        self,
        account: str,
        chunk: Sequence[tuple[Row, list[PublishedPart]]],
        now: datetime,
        publisher_of: PublisherOf,
        outcome: ReadOutcome,
    ) -> bool:
        """Read one chunk (one request's worth); False when the account's reads stop for this pass."""
        platform = chunk[0][0].platform
        parts = [part for _, row_parts in chunk for part in row_parts]
        requests = requests_for(platform, len(parts))
        if self.limiter.available_at(account, platform, requests, now) > now:
            outcome.deferred.extend(row.id for row, _ in chunk)
            self.emit("read-deferred", account=account, reason="read budget")
            return False
        self.limiter.record(account, platform, requests, now)
        if self.uses is not None:
            self.uses.note(account, Use(READS_BUDGET, platform, now, requests))
        try:
            readings = publisher_of(account).read_engagement(parts)
        except RateLimitedError as exc:
            until = exc.reset_at or now + BACKOFF_MIN
            self.limiter.block(account, until)
            outcome.deferred.extend(row.id for row, _ in chunk)
            self.emit("read-deferred", account=account, until=until, reason=str(exc))
            return False
        except TransientError as exc:
            faults = self._account_wait.get(account, (now, 0))[1] + 1
            wait = min(BACKOFF_MIN * 2 ** (faults - 1), BACKOFF_MAX)
            self._account_wait[account] = (now + wait, faults)
            outcome.deferred.extend(row.id for row, _ in chunk)
            self.emit("read-retry", account=account, until=now + wait, reason=str(exc))
            return False
        except AmplifierError as exc:  # refused (permanent, credentials): not again in this process
            self._refused.update(row.id for row, _ in chunk)
            outcome.failed.extend(row.id for row, _ in chunk)
            self.emit("read-failed", account=account, reason=str(exc))
            return True
        self._account_wait.pop(account, None)
        self.ledger.record_engagement(readings)
        answered = {(reading.post_id, reading.index) for reading in readings}
        for row, row_parts in chunk:
            if any((part.post_id, part.index) not in answered for part in row_parts):
                self._not_before[row.id] = now + NOT_INDEXED_WAIT  # not indexed yet: later
            mine = [reading for reading in readings if reading.post_id == row.id]
            if mine and all(reading.gone for reading in mine) and len(mine) == len(row_parts):
                outcome.gone.append(row.id)
                self.emit("read-gone", id=row.id, account=account)
            elif mine:
                outcome.read.append(row.id)
                self.emit(
                    "read",
                    id=row.id,
                    account=account,
                    likes=sum(r.likes or 0 for r in mine),
                    reposts=sum(r.reposts or 0 for r in mine),
                    replies=sum(r.replies or 0 for r in mine),
                    quotes=sum(r.quotes or 0 for r in mine),
                )
        return True
