"""Every query the CLI and the daemon run against the SQLite ledger is answered from an index.

The statements are captured as amplifier really runs them (a trace callback on every connection the SQLite
ledger opens) while the daemon and the operator's commands run on a ledger that holds thousands of finished
posts; then ``EXPLAIN QUERY PLAN`` of each must not scan ``posts`` (``SCAN posts``) other than through a partial index of the planned or claimed posts (which holds a
window's worth of rows, never the finished ones), except the one aggregate
of ``status`` that counts every post by account and state, which reads a covering index (no table row).

PostgreSQL is not checked this way: its planner rightly prefers a sequential scan on tables this small, and
``enable_seqscan = off`` only says whether an index *could* be used; the bench (``bench/bench_ledger.py``)
measures the real thing.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amplifier.delivery.ledger import PlanEntry, open_ledger
from amplifier.delivery.ledger import sqlite as sqlite_ledger
from amplifier.publish import REGISTRY
from tests.conftest import BASE_SCHEDULE, Result
from tests.unit.test_daemon_cli import Fake

RunCli = Callable[..., Result]
M29 = "countdown:masto:2027-10-29T10:00"
# Partial indexes: they hold only the planned (or claimed) posts, a window's worth, never the finished ones.
PARTIAL = re.compile(r"USING (COVERING )?INDEX (posts_planned|posts_planned_next|posts_claimed)$")
# The one statement allowed to read a whole index: status's counts by account and state (a covering index).
AGGREGATE = "SELECT account, state, COUNT(*), MAX(published_at) FROM posts GROUP BY account, state"


def fill(state: Path, rows: int) -> None:
    """``rows`` finished posts of other accounts, years back, and a few failed and expired ones."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with open_ledger(state, start) as ledger:
        entries = [
            PlanEntry(
                f"old:{i}", f"acct{i % 40}", "mastodon", f"r{i % 7}", start + timedelta(hours=i), "h", 1
            )
            for i in range(rows)
        ]
        ledger.sync_plan(entries, start)
    conn = sqlite3.connect(state / "ledger.sqlite3")
    with conn:
        conn.execute(
            "UPDATE posts SET state = 'published', published_at = due_at, result = '[{\"id\": \"1\"}]'"
            " WHERE id LIKE 'old:%' AND CAST(substr(id, 5) AS INTEGER) % 50 != 0"
        )
        conn.execute(
            "UPDATE posts SET state = 'failed', last_error = 'x' WHERE state = 'planned' AND rowid % 2 = 0"
        )
        conn.execute(
            "UPDATE posts SET state = 'expired', last_error = 'x' WHERE state = 'planned' AND id LIKE 'old:%'"
        )
    conn.close()


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    statements: list[str] = []
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite_ledger.sqlite3, "connect", connect)
    return statements


def scans(db: Path, statements: list[str]) -> dict[str, list[str]]:
    """Each statement on ``posts`` that scans it, with its plan."""
    found: dict[str, list[str]] = {}
    conn = sqlite3.connect(db)
    try:
        for sql in dict.fromkeys(statements):
            if not re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT)", sql, re.I) or "posts" not in sql:
                continue
            if sql.strip().startswith(AGGREGATE):
                plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
                assert any("COVERING INDEX posts_account_state" in step for step in plan), plan
                continue
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            if any(re.match(r"SCAN posts\b", step) and not PARTIAL.search(step) for step in plan):
                found[sql] = plan
    finally:
        conn.close()
    return found


@pytest.mark.parametrize("analyzed", [False, True])
def test_no_query_of_the_cli_or_the_daemon_scans_posts(
    run_cli: RunCli,
    campaign_dir: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    traced: list[str],
    analyzed: bool,
) -> None:
    Fake.sent = []
    Fake.fail = False
    monkeypatch.setitem(REGISTRY, "mastodon", Fake)
    monkeypatch.setitem(REGISTRY, "bluesky", Fake)
    monkeypatch.delenv("AMPLIFIER_STATE", raising=False)
    monkeypatch.setenv("AMPLIFIER_SECRETS_DIR", str(tmp_path / "no-secrets"))
    state = tmp_path / "state"
    fill(state, 3000)
    if analyzed:
        with sqlite3.connect(state / "ledger.sqlite3") as conn:
            conn.execute("ANALYZE")
    traced.clear()  # only what the commands below run
    campaign = ["--config", str(campaign_dir(schedule=BASE_SCHEDULE)), "--state", str(state)]
    commands = [
        ["run", "--once", "--now", "2027-10-28T12:00"],
        ["run", "--once", "--now", "2027-10-29T10:00"],
        ["status", "--format", "json", "--now", "2027-10-29T11:00"],
        ["status", "--check", "--now", "2027-10-29T11:00"],
        ["status", "--now", "2027-10-29T11:00"],
        ["history", "--format", "json", "--now", "2027-10-30"],
        ["history", "--account", "masto", "--now", "2027-10-30"],
        ["skip", "countdown:sky:2027-10-30T10:00", "--now", "2027-10-29T11:00"],
        ["cancel", "--account", "masto", "--now", "2027-10-29T11:00"],
        ["pause", "--account", "sky", "--now", "2027-10-29T11:00"],
        ["resume", "--account", "sky", "--now", "2027-10-29T11:00"],
        ["retry", "old:0", "--late", "--now", "2027-10-29T11:00"],
    ]
    Fake.fail = True
    for command in commands:
        result = run_cli(*campaign, *command)
        assert result.code in (0, 1, 4), (command, result.err)
        Fake.fail = False
    assert len(traced) > 50  # the trace saw the work
    found = scans(state / "ledger.sqlite3", traced)
    assert not found, "\n".join(f"{sql}\n    {plan}" for sql, plan in found.items())


def test_unsent_posts_are_read_through_their_state_not_ten_years_of_due_times(
    tmp_path: Path, traced: list[str]
) -> None:
    """run --once asks for the planned and claimed posts due in the last ten years (the unsent ones): the
    due-time index would walk every finished post of those years (0.2 s on a million rows)."""
    from amplifier.delivery.ledger import State

    fill(tmp_path, 500)
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    with conn:  # three posts left unsent, among the finished ones
        conn.execute(
            "UPDATE posts SET state = 'planned', last_error = NULL"
            " WHERE rowid IN (SELECT rowid FROM posts WHERE state = 'expired' LIMIT 3)"
        )
    conn.close()
    now = datetime(2027, 10, 30, tzinfo=UTC)
    traced.clear()
    with open_ledger(tmp_path, now) as ledger:
        rows = ledger.history(now - timedelta(days=3650), now, states=[State.PLANNED, State.CLAIMED])
    assert len(rows) == 3
    assert all(row.state == State.PLANNED for row in rows)
    assert [(row.due_at, row.id) for row in rows] == sorted((row.due_at, row.id) for row in rows)
    (sql,) = [s for s in traced if "FROM posts" in s and "due_at >= " in s]
    conn = sqlite3.connect(tmp_path / "ledger.sqlite3")
    plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
    conn.close()
    assert "INDEX posts_state_next_attempt" in plan
