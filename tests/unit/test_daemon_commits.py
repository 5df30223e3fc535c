"""The daemon's group commit: changes of many threads share transactions, each atomic and durable on return."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from amplifier.daemon.commits import GroupCommit, GroupedLedger
from amplifier.delivery.ledger import LedgerBusy, PlanEntry, State, UnknownPost
from amplifier.delivery.ledger.sqlite import SqliteLedger

T0 = dt.datetime(2027, 10, 20, 9, 0, tzinfo=dt.UTC)


def plan(ledger: SqliteLedger, count: int) -> list[str]:
    ids = [f"p{n:03d}" for n in range(count)]
    ledger.sync_plan(
        [PlanEntry(post_id, f"acct{n}", "mastodon", "r", T0, "h") for n, post_id in enumerate(ids)], T0
    )
    return ids


def test_changes_of_many_threads_share_commits_and_each_is_durable_on_return(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = SqliteLedger.open(path, T0)
    ids = plan(ledger, 200)
    grouped = GroupedLedger(ledger)
    barrier = threading.Barrier(len(ids))
    seen: dict[str, State] = {}
    errors: list[BaseException] = []

    def post(post_id: str) -> None:
        try:
            barrier.wait()
            assert grouped.claim(post_id, T0, "daemon-1") is True
            # durable once claim returned: another connection (another process) sees it
            with SqliteLedger.open(path, T0) as other:
                seen[post_id] = other.get(post_id).state
            grouped.mark_published(post_id, [{"id": post_id}], T0, token="daemon-1")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(post_id,)) for post_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert set(seen.values()) == {State.CLAIMED}
    assert ledger.counts_by_state()[State.PUBLISHED] == len(ids)
    assert grouped.commits.changes == 2 * len(ids)
    assert grouped.commits.groups < grouped.commits.changes  # commits were shared
    ledger.close()


def test_a_refused_change_is_raised_in_its_own_thread_only(tmp_path: Path) -> None:
    ledger = SqliteLedger.open(tmp_path / "ledger.sqlite3", T0)
    plan(ledger, 1)
    grouped = GroupedLedger(ledger)
    with pytest.raises(UnknownPost):
        grouped.claim("nope", T0, "daemon-1")
    assert grouped.claim("p000", T0, "daemon-1") is True
    assert grouped.claim("p000", T0, "daemon-2") is False  # claimed already: never two winners
    assert grouped.get("p000").claim_token == "daemon-1"  # reads go straight to the ledger
    ledger.close()


class _FailingCommit:
    """A ledger whose group commit fails, as a full disk or a busy ledger makes it fail."""

    def __init__(self, ledger: SqliteLedger) -> None:
        self.ledger = ledger

    def group(self, calls: Any) -> list[Any]:
        raise LedgerBusy(self.ledger.path)


def test_a_failed_commit_is_raised_in_every_thread_of_the_group(tmp_path: Path) -> None:
    ledger = SqliteLedger.open(tmp_path / "ledger.sqlite3", T0)
    ids = plan(ledger, 20)
    commits = GroupCommit(_FailingCommit(ledger))  # type: ignore[arg-type]
    raised: list[BaseException] = []

    def claim(post_id: str) -> None:
        try:
            commits.run(lambda: ledger.claim(post_id, T0, "daemon-1"))
        except LedgerBusy as exc:
            raised.append(exc)

    threads = [threading.Thread(target=claim, args=(post_id,)) for post_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(raised) == len(ids)
    assert ledger.counts_by_state()[State.CLAIMED] == 0  # nothing of a failed group stands
    ledger.close()
