"""The report summary under concurrent writers on one PostgreSQL ledger: real deadlocks on the summary rows,
broken by the server, reach the caller as :class:`LedgerBusy` only once the ledger ran the transaction again
(``postgres._retrying``); two posts moving between one pair of groups in opposite directions lock the groups in
one order (m014_summary_lock_order); and after many writers' claims, publications, failures, retries, releases
and re-plans the summary equals a fresh aggregate over the posts, nothing lost or counted twice."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from amplifier.delivery.ledger import LedgerBusy, LedgerError, PlanEntry, State
from amplifier.delivery.ledger import postgres as pg
from amplifier.delivery.ledger.postgres import PostgresLedger
from tests.contract.test_report_summary import summary_and_recomputed
from tests.integration.servers.postgres import PostgresServer

_databases = itertools.count()
NOW = dt.datetime(2027, 10, 20, 9, 0, tzinfo=dt.UTC)
TOKEN = "node:1:t"


def post(account: str, minute: int, rule: str = "r") -> str:
    return f"{rule}:{account}:2027-10-20T09:{minute:02d}"


def plan(ids: list[str], shift: int = 0) -> list[PlanEntry]:
    """The plan of ``ids`` (one UTC day: one summary group per rule, account and state), ``shift`` minutes later."""
    entries = []
    for post_id in ids:
        rule, account, key = post_id.split(":", 2)
        due = dt.datetime.fromisoformat(key).replace(tzinfo=dt.UTC) + dt.timedelta(minutes=shift)
        entries.append(PlanEntry(post_id, account, "mastodon", rule, due, "h", 1))
    return entries


@pytest.fixture
def ledgers(postgres: PostgresServer) -> Iterator[Callable[[], PostgresLedger]]:
    url = postgres.create_database(f"deadlocks_{next(_databases)}")
    opened: list[PostgresLedger] = []

    def open_one() -> PostgresLedger:
        opened.append(PostgresLedger.open(url, NOW))
        return opened[-1]

    yield open_one
    for ledger in opened:
        ledger.close()


def states(ledger: PostgresLedger) -> dict[State, int]:
    return {state: count for state, count in ledger.counts_by_state().items() if count}


def assert_summary_is_fresh(ledger: PostgresLedger) -> None:
    kept, full = summary_and_recomputed(ledger)
    assert kept == full


class Calls:
    """Ledger calls that remember how often they ran and what they raised; the first run of ``meet`` waits
    until both groups hold their first rows."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}
        self.raised: list[BaseException] = []
        self.barrier = threading.Barrier(2, timeout=10)
        self.met: set[str] = set()

    def claim(self, ledger: PostgresLedger, post_id: str) -> Callable[[], bool]:
        def call() -> bool:
            self.runs[post_id] = self.runs.get(post_id, 0) + 1
            try:
                return ledger.claim(post_id, NOW, TOKEN)
            except LedgerError as exc:
                self.raised.append(exc)
                raise

        return call

    def meet(self, who: str) -> Callable[[], None]:
        def call() -> None:
            if who not in self.met:  # only the first run: a run again goes straight through
                self.met.add(who)
                self.barrier.wait()

        return call


def cross_groups(ledgers: Callable[[], PostgresLedger], calls: Calls) -> dict[str, Any]:
    """Two nodes' groups: one claims a post of account a then one of b, the other one of b then one of a. Each
    claim moves its account's summary rows (planned -1, claimed +1), so after the first claim each group holds
    the rows the other one's second claim needs: a deadlock, on the summary rows alone (four different posts)."""
    first, second = ledgers(), ledgers()
    first.sync_plan(plan([post("a", 0), post("a", 1), post("b", 0), post("b", 1)]), NOW)
    outcome: dict[str, Any] = {}

    def run(name: str, ledger: PostgresLedger, one: str, other: str) -> None:
        try:
            outcome[name] = ledger.group(
                [calls.claim(ledger, one), calls.meet(name), calls.claim(ledger, other)]
            )
        except LedgerError as exc:
            outcome[name] = exc

    threads = [
        threading.Thread(target=run, args=("first", first, post("a", 0), post("b", 0))),
        threading.Thread(target=run, args=("second", second, post("b", 1), post("a", 1))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcome


def test_a_deadlock_on_the_summary_rows_is_ledger_busy_and_the_group_runs_again(
    ledgers: Callable[[], PostgresLedger],
) -> None:
    calls = Calls()
    outcome = cross_groups(ledgers, calls)
    # the server broke a real deadlock: one group's second claim lost, as LedgerBusy ...
    assert len(calls.raised) == 1
    assert isinstance(calls.raised[0], LedgerBusy)
    assert isinstance(calls.raised[0].__cause__, psycopg.errors.DeadlockDetected)
    # ... its whole group ran again, after the other one committed: every claim taken, once
    assert outcome == {"first": [True, None, True], "second": [True, None, True]}
    assert sorted(calls.runs.values()) == [1, 1, 2, 2]
    ledger = ledgers()
    assert states(ledger) == {State.CLAIMED: 4}
    assert_summary_is_fresh(ledger)


def test_without_runs_again_the_group_that_lost_writes_nothing(
    ledgers: Callable[[], PostgresLedger], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg, "ROLLBACK_TRIES", 1)
    calls = Calls()
    outcome = cross_groups(ledgers, calls)
    lost = [name for name, result in outcome.items() if isinstance(result, LedgerBusy)]
    assert len(lost) == 1  # the caller's to try again
    won = "second" if lost == ["first"] else "first"
    assert outcome[won] == [True, None, True]
    ledger = ledgers()
    # the group that lost kept nothing, not even its first claim (it ran before the deadlock)
    assert states(ledger) == {State.CLAIMED: 2, State.PLANNED: 2}
    assert_summary_is_fresh(ledger)


def _waiting(ledger: PostgresLedger, count: int) -> None:
    """Until ``count`` sessions wait for a lock."""
    deadline = time.monotonic() + 10
    while True:
        with ledger._reading() as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()[0]
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"{waiting} sessions wait for a lock, not {count}"
        time.sleep(0.02)


def test_a_claim_and_a_release_in_one_group_lock_its_summary_rows_in_one_order(
    ledgers: Callable[[], PostgresLedger], postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release (claimed -> planned) and a claim (planned -> claimed) of two posts of one account and day move
    between the same two summary rows in opposite directions. A third session holds the claimed row; the
    release waits for it, then the claim. Taken in the order of the move (old group, then new), the claim would
    hold the planned row while the release, given the claimed row, waits for it: a deadlock. In key order both
    wait for the claimed row first, and both go through, without any run again."""
    monkeypatch.setattr(pg, "ROLLBACK_TRIES", 1)
    releasing, claiming, looking = ledgers(), ledgers(), ledgers()
    releasing.sync_plan(plan([post("a", 0), post("a", 1), post("a", 2)]), NOW)
    assert releasing.claim(post("a", 0), NOW, TOKEN)
    assert releasing.claim(post("a", 1), NOW, TOKEN)
    holder = psycopg.connect(releasing._url, autocommit=False)
    holder.execute("SELECT 1 FROM report_summary WHERE state = 'claimed' FOR UPDATE")
    failures: list[BaseException] = []

    def run(call: Callable[[], object]) -> threading.Thread:
        def guarded() -> None:
            try:
                call()
            except LedgerError as exc:
                failures.append(exc)

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread

    try:
        threads = [run(lambda: releasing.release(post("a", 1), NOW, token=TOKEN))]
        _waiting(looking, 1)
        threads.append(run(lambda: claiming.claim(post("a", 2), NOW, TOKEN)))
        _waiting(looking, 2)
    finally:
        holder.commit()
        holder.close()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    ledger = ledgers()
    assert {
        row.id: row.state for row in ledger.history(NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=1))
    } == {
        post("a", 0): State.CLAIMED,
        post("a", 1): State.PLANNED,
        post("a", 2): State.CLAIMED,
    }
    assert_summary_is_fresh(ledger)


WRITERS = 4
ROUNDS = 40


def test_concurrent_writers_leave_the_summary_equal_to_a_fresh_aggregate(
    ledgers: Callable[[], PostgresLedger],
) -> None:
    """Four nodes' threads, each on its own connection, claim, publish, fail, retry and release posts of the
    same accounts in groups of one to four changes (the daemon's group commits), while one of them re-plans
    (due times moved, posts cancelled and revived): no LedgerBusy reaches a caller, every publication that
    returned is in the ledger once, and the summary equals a fresh aggregate over the posts."""
    ids = [post(f"a{n % 6}", n // 6, rule) for n in range(36) for rule in ("r", "s")]
    ledgers().sync_plan(plan(ids), NOW)
    published: list[str] = []
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        ledger, rng, token = ledgers(), random.Random(number), f"node:{number}:t"
        held: list[str] = []
        for round_ in range(ROUNDS):
            if number == 0 and round_ % 5 == 0:  # the leader re-plans: some posts move, some go, some return
                try:
                    ledger.sync_plan(plan(rng.sample(ids, len(ids) - 8), shift=rng.choice((0, 1, 2))), NOW)
                except LedgerError as exc:
                    failures.append(exc)
                continue
            calls: list[tuple[str, str, Callable[[], object]]] = []
            for _ in range(rng.randint(1, 4)):
                if held and rng.random() < 0.6:
                    post_id = held.pop(rng.randrange(len(held)))
                    kind = rng.choice(("publish", "publish", "fail", "retry", "release"))
                    change: Callable[[], object] = {
                        "publish": lambda p=post_id: ledger.mark_published(p, [{"id": p}], NOW, token=token),
                        "fail": lambda p=post_id: ledger.mark_failed(p, "refused", NOW, token=token),
                        "retry": lambda p=post_id: ledger.schedule_retry(p, "later", NOW, NOW, token=token),
                        "release": lambda p=post_id: ledger.release(p, NOW, token=token),
                    }[kind]
                else:
                    post_id, kind = rng.choice(ids), "claim"
                    change = lambda p=post_id: ledger.claim(p, NOW, token)  # noqa: E731
                calls.append((kind, post_id, change))
            try:
                results = ledger.group([change for _, _, change in calls])
            except LedgerError as exc:
                failures.append(exc)
                continue
            for (kind, post_id, _), result in zip(calls, results, strict=True):
                if isinstance(result, LedgerBusy):
                    failures.append(result)
                elif kind == "claim" and result is True:
                    held.append(post_id)
                elif kind == "publish" and not isinstance(result, BaseException):
                    published.append(post_id)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    ledger = ledgers()
    rows = ledger.history(NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1))
    assert len(published) == len(set(published)) > 0
    assert sorted(row.id for row in rows if row.state == State.PUBLISHED) == sorted(published)
    assert_summary_is_fresh(ledger)


def test_a_writer_waits_for_a_row_lock_at_most_the_lock_timeout_and_is_not_run_again(
    ledgers: Callable[[], PostgresLedger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session's lock timeout (set with the connection) bounds a writer's wait for another transaction's
    row: LedgerBusy, which is no rollback by the server, so the ledger does not run it again."""
    monkeypatch.setattr(pg, "LOCK_TIMEOUT", "100ms")
    pauses: list[float] = []
    monkeypatch.setattr(pg, "time", SimpleNamespace(sleep=pauses.append))  # a run again pauses first
    ledger = ledgers()
    ledger.sync_plan(plan([post("a", 0)]), NOW)
    holder = psycopg.connect(ledger._url, autocommit=False)
    holder.execute("SELECT 1 FROM posts FOR UPDATE")
    try:
        with pytest.raises(LedgerBusy) as raised:
            ledger.claim(post("a", 0), NOW, TOKEN)
        assert isinstance(raised.value.__cause__, psycopg.errors.LockNotAvailable)
        assert pauses == []
        with ledger._reading() as conn:
            assert conn.execute("SHOW lock_timeout").fetchone()[0] == "100ms"
    finally:
        holder.rollback()
        holder.close()
    assert ledger.claim(post("a", 0), NOW, TOKEN)  # once the lock is gone
