"""Group commit: the ledger changes of posts that finish together, committed in one fsynced transaction.

With a thousand accounts due at one instant, every post makes two or three ledger changes (claim, then published,
or a retry...). One transaction each means the threads queue for the ledger one after another, each waiting for
its own fsync. :class:`GroupCommit` lets them share: a thread that wants a change queues it; the first one that
finds nobody committing becomes the *leader*, takes every change queued so far and runs them with
:meth:`Ledger.group <amplifier.delivery.ledger.Ledger.group>` (one ``BEGIN IMMEDIATE`` ... ``COMMIT`` with
``synchronous=FULL``), then wakes each waiting thread with its own result and hands the lead to the next change
queued meanwhile.

Why this is still "every ledger change is one fsynced transaction", as far as anyone can observe:

* **Atomic.** Each change runs in a savepoint of its own: a change that raises (a post claimed elsewhere, a part
  that conflicts) leaves nothing behind and is raised in its own thread; the other changes of the group stand.
  Each change still checks the post's state under the ledger's write lock, so two claimants never both win.
* **Durable before it is acted on.** No thread gets its result (a claim's True, a published post's return)
  before the group's COMMIT has returned, i.e. before the change is on disk. A post is sent only after its claim
  is durable, and its outcome is acted on (the next post of the account, the rate budget, the event log) only
  after its record is durable: exactly as with one transaction per change.
* **A crash loses nothing anyone relied on.** Killed before the COMMIT, the whole group is lost, and none of its
  threads had returned: as if each had died just before its own transaction. A failed COMMIT (disk full, the
  ledger busy) raises in every thread of the group, and nothing of it is kept.
* **Nobody reads half a group.** The group holds the ledger's lock from BEGIN to COMMIT; every read of this
  process waits for it, and other processes see only committed data (WAL).

The wait a change may add is one group's commit (about a millisecond); a lone change makes a group of one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from amplifier.delivery.ledger import Ledger

T = TypeVar("T")


@dataclass(eq=False)
class _Change:
    call: Callable[[], Any]
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # this change's thread is to commit the next group
    done: bool = False
    result: Any = None


class GroupCommit:
    """Runs ledger changes from many threads in shared transactions (see the module docstring)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._queue: list[_Change] = []
        self._leading = False
        self.groups = 0  # transactions committed (for tests and benchmarks)
        self.changes = 0

    def run(self, call: Callable[[], T]) -> T:
        """Run ``call`` (one change of :attr:`ledger`) in the next group; its result once the group committed,
        or the exception it (or the commit) raised."""
        change = _Change(call)
        with self._lock:
            self._queue.append(change)
            if not self._leading:
                self._leading = change.lead = True
        while not change.done:
            if change.lead:
                self._commit_group()
            else:
                change.wake.wait()
                change.wake.clear()
        if isinstance(change.result, BaseException):
            raise change.result
        result: T = change.result
        return result

    def _commit_group(self) -> None:
        """As the leader: run every queued change in one transaction, hand each its result, pass the lead on."""
        with self._lock:
            group, self._queue = self._queue, []
        try:
            results = self.ledger.group([change.call for change in group])
        except BaseException as exc:  # the commit failed: no change of the group stands
            results = [exc] * len(group)
        with self._lock:
            self.groups += 1
            self.changes += len(group)
            for change, result in zip(group, results, strict=True):
                change.result, change.done = result, True
                change.wake.set()
            if self._queue:
                following = self._queue[0]
                following.lead = True
                following.wake.set()
            else:
                self._leading = False


GROUPED = frozenset(
    {
        "claim",
        "record_part",
        "mark_published",
        "mark_failed",
        "schedule_retry",
        "release",
        "mark_unknown",
        "mark_expired",
        "mark_skipped",
        "pause_account",
        "record_engagement",
    }
)
"""The ledger's changes of one post (its delivery, its read-back) that go through the group commit; everything
else is called directly."""


class GroupedLedger:
    """A ledger whose per-post changes (:data:`GROUPED`) are committed in groups by :class:`GroupCommit`; reads
    and the other calls go straight to the ledger. What the delivery path of the daemon writes through."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.commits = GroupCommit(ledger)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.ledger, name)
        if name not in GROUPED:
            return attribute

        def grouped(*args: Any, **kwargs: Any) -> Any:
            return self.commits.run(lambda: attribute(*args, **kwargs))

        return grouped
