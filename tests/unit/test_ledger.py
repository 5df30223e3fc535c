"""The SQLite ledger's storage: files and their modes, pragmas, SQLite's write lock, several processes, crashes.

What every ledger does (transitions, retries, thread parts, re-plans, pauses) is the contract, tested against
every implementation in ``tests/contract/test_ledger_contract.py``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from amplifier.delivery.ledger import Ledger, LedgerBusy, LedgerError, State, to_db_time
from amplifier.delivery.ledger.sqlite import SqliteLedger
from tests.contract.conftest import T0, T1, T2, entry

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "amplifier" / "ledger.db"


@pytest.fixture
def ledger(path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger.open(path, T0) as opened:
        yield opened


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection, to look under the ledger's API."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


# -- opening: files, modes, pragmas --------------------------------------------------------------------------


def test_open_creates_private_folders_and_file(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        path = tmp_path / "a" / "b" / "ledger.db"
        with SqliteLedger.open(path, T0) as ledger:
            ledger.sync_plan([entry()], T0)  # writes, so the WAL and shared memory files exist
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            for sidecar in ("ledger.db-wal", "ledger.db-shm"):
                assert stat.S_IMODE((path.parent / sidecar).stat().st_mode) == 0o600, sidecar
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


def test_open_leaves_existing_folders_alone_and_tightens_a_loose_file(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    path = tmp_path / "ledger.db"
    with SqliteLedger.open(path, T0):
        pass
    path.chmod(0o644)

    with SqliteLedger.open(path, T0):
        pass

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_open_sets_the_pragmas(path: Path) -> None:
    with SqliteLedger.open(path, T0, busy_timeout=2.5) as ledger:
        conn = ledger._conn  # the pragmas are per connection
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (2500,)
    with raw(path) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # WAL is persistent


def test_open_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not SQLite, just some text that is long enough to be a header" * 20)
    with pytest.raises(LedgerError, match="not a usable ledger"):
        SqliteLedger.open(path, T0)


def test_open_reports_a_folder_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerError, match="cannot create the ledger"):
        SqliteLedger.open(blocker / "ledger.db", T0)


def test_a_ledger_that_cannot_be_opened_says_what_is_in_the_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's ``unable to open database file`` alone said neither that the path is a folder nor that the file
    belongs to another user (a state folder copied as root, a container's volume with another uid)."""
    from amplifier.delivery.ledger import sqlite as module

    folder = tmp_path / "state" / "ledger.sqlite3"
    folder.mkdir(parents=True)
    with pytest.raises(LedgerError, match=r"unable to open database file: .* is a folder, not a ledger file"):
        SqliteLedger.open(folder, T0)

    path = tmp_path / "ledger.sqlite3"
    SqliteLedger.open(path, T0).close()
    # As another user would: the file not accessible (root reads any file, so the refusal is played here).
    real_access = os.access
    monkeypatch.setattr(
        module.os, "access", lambda p, mode: False if Path(p) == path else real_access(p, mode)
    )

    def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
        error = sqlite3.OperationalError("unable to open database file")
        error.sqlite_errorcode = sqlite3.SQLITE_CANTOPEN  # type: ignore[misc]
        raise error

    monkeypatch.setattr(module.sqlite3, "connect", refuse)
    with pytest.raises(LedgerError) as caught:
        SqliteLedger.open(path, T0)
    assert str(caught.value) == (
        f"{path}: cannot open the ledger: unable to open database file: permission denied: the ledger file {path}"
        f" (owner uid {path.stat().st_uid}, mode 0600) must be readable and writable by the user amplifier runs"
        f" as (uid {os.getuid()})"
    )


def test_reasons_are_stored_exactly_as_given(ledger: Ledger, path: Path) -> None:
    reason = "Mastodon 503 « Service Unavailable » — retry\nline two"
    ledger.sync_plan([entry("p")], T0)
    assert ledger.claim("p", T0, "tok")
    ledger.schedule_retry("p", reason, T2, T1)

    assert ledger.get("p").last_error == reason
    with raw(path) as check:
        assert check.execute("SELECT last_error FROM posts").fetchall() == [(reason,)]


def test_due_uses_the_state_and_next_attempt_index(ledger: SqliteLedger) -> None:
    plan = ledger._conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM posts WHERE state = 'planned' AND next_attempt_at <= ?",
        (to_db_time(T0),),
    ).fetchall()
    assert any("posts_state_next_attempt" in str(step[-1]) for step in plan), plan


def test_a_write_lock_held_too_long_is_reported_as_busy(path: Path) -> None:
    with SqliteLedger.open(path, T0, busy_timeout=0.05) as ledger:
        ledger.sync_plan([entry("a")], T0)
        with raw(path) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(LedgerBusy, match="the ledger is busy"):
                ledger.claim("a", T0, "tok")
            with SqliteLedger.open(
                path, T0, busy_timeout=0.05
            ) as reader:  # a migrated ledger opens without the lock
                assert reader.get("a").state is State.PLANNED
            assert [row.id for row in ledger.due(T0)] == ["a"]  # reading is never blocked (WAL)
            other.execute("ROLLBACK")
        assert ledger.claim("a", T0, "tok")


CLAIMER = """
import json, sys
from amplifier.delivery.ledger.sqlite import SqliteLedger
from datetime import datetime, UTC
path, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
now = datetime(2027, 10, 25, 8, tzinfo=UTC)
won = []
with SqliteLedger.open(path, now) as ledger:
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(count):
        if ledger.claim(f"p{n:04d}", now, token):
            won.append(f"p{n:04d}")
print(json.dumps(won), flush=True)
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_two_processes_never_claim_one_post(path: Path) -> None:
    count = 300
    with SqliteLedger.open(path, T0) as ledger:
        ledger.sync_plan([entry(f"p{n:04d}") for n in range(count)], T0)

    children = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(path), token, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for token in ("proc-a", "proc-b")
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=120)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:  # pragma: no cover - only on a hang
                child.kill()
                child.wait()
    assert [child.returncode for child in children] == [0, 0]

    won_a, won_b = (set(json.loads(output.strip().splitlines()[-1])) for output in outputs)
    assert won_a.isdisjoint(won_b)
    assert won_a | won_b == {f"p{n:04d}" for n in range(count)}
    with SqliteLedger.open(path, T0) as ledger:
        assert all(ledger.get(pid).claim_token == "proc-a" for pid in won_a)
        assert all(ledger.get(pid).claim_token == "proc-b" for pid in won_b)


CRASHER = """
import sys
from amplifier.delivery.ledger import PlanEntry
from amplifier.delivery.ledger.sqlite import SqliteLedger
from datetime import datetime, timedelta, UTC
path, count = sys.argv[1], int(sys.argv[2])
t0 = datetime(2027, 10, 25, 8, tzinfo=UTC)
with SqliteLedger.open(path, t0) as ledger:
    for row in ledger.claimed():
        ledger.release(row.id, t0)  # recover from the previous kill: resume where it stopped
    generation = 0
    while True:
        generation += 1
        plan = [
            PlanEntry(f"p{n:05d}", "acct", "bluesky", "r", t0 + timedelta(minutes=n), f"g{generation}", 3)
            for n in range(count)
        ]
        print("sync", generation, flush=True)
        ledger.sync_plan(plan, t0)
        print("synced", generation, flush=True)
        for row in ledger.due(t0 + timedelta(minutes=count), limit=4):
            if ledger.claim(row.id, t0, "crasher"):
                for index in row.missing_parts:
                    ledger.record_part(row.id, index, {"uri": f"at://{row.id}/{index}"}, t0)
                ledger.mark_published(row.id, None, t0)
"""


def check_consistent(path: Path, count: int) -> None:
    with raw(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT COUNT(*) FROM posts").fetchone() == (count,)
        # One sync is one transaction: every untouched planned post has the same generation.
        generations = conn.execute(
            "SELECT DISTINCT content_hash FROM posts WHERE state = 'planned'"
            " AND NOT EXISTS (SELECT 1 FROM post_parts WHERE post_id = posts.id)"
        ).fetchall()
        assert len(generations) == 1, generations
        # A published thread has every part, and its result is the parts in order.
        for post_id, result in conn.execute("SELECT id, result FROM posts WHERE state = 'published'"):
            assert json.loads(result) == [{"uri": f"at://{post_id}/{index}"} for index in range(3)]
        # Parts exist only for claimed, published or (released) planned posts, and only the parts published.
        for post_id, index, result in conn.execute("SELECT post_id, part_index, result FROM post_parts"):
            assert json.loads(result) == {"uri": f"at://{post_id}/{index}"}
        others = conn.execute(
            "SELECT id, state FROM posts WHERE state NOT IN ('published', 'planned', 'claimed')"
        ).fetchall()
        assert others == []


# Where to kill: right after a sync starts (inside its transaction) or a little later (inside the publishing).
KILL_DELAYS = [0.0, 0.02, 0.05, 0.1, 0.2, 0.35]


@pytest.mark.slow
def test_a_process_killed_at_any_point_leaves_the_ledger_consistent(path: Path) -> None:
    count = 20_000
    published_before = -1
    killed_inside_a_sync = 0
    for round_number, delay in enumerate(KILL_DELAYS):
        child = subprocess.Popen(
            [sys.executable, "-c", CRASHER, str(path), str(count)],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        try:
            assert child.stdout is not None
            target = f"sync {2 + round_number % 2}"
            while (line := child.stdout.readline().strip()) != target:
                assert line, "the child stopped early"
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read().split()
            child.wait(timeout=30)
        finally:
            if child.poll() is None:  # pragma: no cover
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL
        if not rest:
            killed_inside_a_sync += 1
        check_consistent(path, count)
        with raw(path) as conn:
            published = conn.execute("SELECT COUNT(*) FROM posts WHERE state = 'published'").fetchone()[0]
        assert published > published_before  # progress survives the kills
        published_before = published

    assert killed_inside_a_sync >= 1  # the test did hit the big transaction
    with SqliteLedger.open(path, T0) as ledger:
        for row in ledger.claimed():
            ledger.release(row.id, T0)
        counts = ledger.counts_by_state()
        assert (counts[State.CLAIMED], counts[State.PUBLISHED]) == (0, published_before)
