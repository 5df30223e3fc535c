"""Ledger speed at the size a long campaign reaches: ``status --check``, ``status`` and ``history`` on a generated
ledger of a million posts (SQLite).

The ledger
    ``--rows`` posts (default 1,000,000) of 40 accounts, one every ~minute over the past years: 97% published
    (with a result), 1.5% failed, 1% expired, a few skipped, the last ones planned (due in the next days), 5
    claimed. Generated once per run in a temporary state folder, through the ledger's own migrations.

Whole commands
    ``amplifier status --check --format json``, ``status`` (table), ``history --format json`` of the last 7 days,
    and ``history`` of everything as JSON, each a fresh process: wall time, CPU time and peak RSS
    (``VmHWM`` of the command's process). Goals: the first three under 0.5 s and 150 MB; ``history`` of everything in constant
    memory (its RSS is reported beside the 7-day one's).

The SQL against the floor
    Each command's statements, captured as the ledger runs them (a trace callback), are timed against the same
    questions written by hand against SQLite in this script (no index hints, fetchall of raw tuples): the
    ratio must stay under 2.

The re-plan
    :meth:`Ledger.sync_plan` of the daemon's window (the planned posts, unchanged) on the big ledger: its cost
    must follow the window, not the ledger.

Run: ``.venv/bin/python bench/bench_ledger.py [--rows N] [--src DIR]`` (``--src``: another checkout's ``src``,
to measure a version before this one; about a minute for a million rows).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2027, 10, 29, 12, 0, tzinfo=dt.UTC)
ACCOUNTS = 40
GOAL_SECONDS = 0.5
GOAL_MB = 150
GOAL_RATIO = 2.0


def campaign(folder: Path) -> Path:
    accounts = "".join(
        f"  a{i}:\n    platform: mastodon\n    instance: https://m{i}.example\n    token_env: BENCH_TOKEN_{i}\n"
        for i in range(ACCOUNTS)
    )
    (folder / "messages").mkdir(parents=True)
    (folder / "schedule.yaml").write_text(
        "campaign:\n  name: Bench\n  timezone: UTC\n  language: en\n"
        f"accounts:\n{accounts}"
        "rules:\n  daily:\n    kind: recurring\n    cron: '0 10 * * *'\n    start: 2024-01-01\n"
        "    end: 2028-12-31\n    messages: m\n",
        encoding="utf-8",
    )
    (folder / "messages" / "m.yaml").write_text(
        textwrap.dedent("""\
            sets:
              m:
                variants:
                  - text: {en: "Join us"}
            """),
        encoding="utf-8",
    )
    return folder / "schedule.yaml"


def generate(state: Path, rows: int) -> None:
    """``rows`` posts through the ledger's migrations, then bulk-inserted (one transaction)."""
    from amplifier.delivery.ledger import open_ledger

    with open_ledger(state, NOW):
        pass
    rng = random.Random(7)
    planned = min(2000, rows // 100)
    start = NOW - dt.timedelta(minutes=rows - planned)
    conn = sqlite3.connect(state / "ledger.sqlite3", isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # generating test data only: the ledger's own writes stay FULL
    conn.execute("BEGIN")

    def text(value: dt.datetime) -> str:
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")

    batch: list[tuple[Any, ...]] = []
    for i in range(rows):
        due = start + dt.timedelta(minutes=i)
        account = f"a{i % ACCOUNTS}"
        stamp = text(due)
        result = published = error = claimed = token = None
        if i >= rows - planned:
            state_ = "planned"
        elif i >= rows - planned - 5:
            state_, claimed, token = "claimed", text(NOW - dt.timedelta(minutes=1)), "bench"
        else:
            draw = rng.random()
            if draw < 0.97:
                state_, published = "published", text(due + dt.timedelta(seconds=3))
                result = (
                    f'[{{"id": "{i}", "uri": "https://m.example/s/{i}", "url": "https://m.example/@a/{i}"}}]'
                )
            elif draw < 0.985:
                state_, error = "failed", "the server refused the post (HTTP 422)"
            elif draw < 0.995:
                state_, error = "expired", "missed its window"
            else:
                state_, error = "skipped", "skipped by bench: no"
        batch.append(
            (
                f"daily:{account}:{i}",
                account,
                "mastodon",
                "daily",
                stamp,
                "h",
                1,
                state_,
                0,
                stamp,
                error,
                claimed,
                token,
                published,
                result,
                stamp,
                published or stamp,
            )
        )
        if len(batch) == 50_000:
            _insert(conn, batch)
            batch = []
    _insert(conn, batch)
    conn.execute("COMMIT")
    conn.close()


def _insert(conn: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
    conn.executemany(
        "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state, attempts,"
        " next_attempt_at, last_error, claimed_at, claim_token, published_at, result, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch,
    )


# Runs amplifier and, at exit, writes the process's own peak RSS (VmHWM: that of its memory after exec, not the
# bench's that the fork copied, which ``wait4``'s ru_maxrss would count) to the file $BENCH_RSS_FILE.
WRAPPER = """
import atexit, os, runpy, sys
def peak():
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_RSS_FILE"], "w") as out:
        out.write(hwm.split()[1])
atexit.register(peak)
sys.argv = ["amplifier", *sys.argv[1:]]
runpy.run_module("amplifier", run_name="__main__")
"""


def command(src: Path, config: Path, state: Path, *args: str) -> tuple[float, float, float, int]:
    """One whole command in a fresh process: (wall s, CPU s, peak RSS MB, exit code)."""
    rss_file = state.parent / "rss"
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "BENCH_RSS_FILE": str(rss_file),
        **{f"BENCH_TOKEN_{i}": "t" for i in range(ACCOUNTS)},
    }
    argv = [sys.executable, "-c", WRAPPER, "--config", str(config), "--state", str(state), *args]
    began = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=sink, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, int(rss_file.read_text()) / 1024, process.returncode


def best(runs: list[tuple[float, float, float, int]]) -> tuple[float, float, float, int]:
    return min(runs, key=lambda run: run[0])


# The same questions, written by hand against SQLite (the floor).
FLOOR = {
    "status": [
        "SELECT account, state, COUNT(*), MAX(published_at) FROM posts GROUP BY account, state",
        "SELECT * FROM posts WHERE state = 'planned' ORDER BY due_at LIMIT 10",
        "SELECT * FROM posts WHERE state = 'published' ORDER BY published_at DESC LIMIT 10",
        "SELECT * FROM posts WHERE state IN ('failed', 'expired') ORDER BY updated_at DESC LIMIT 10",
        "SELECT * FROM posts WHERE state = 'claimed'",
        "SELECT account, MIN(next_attempt_at) FROM posts WHERE state = 'planned' GROUP BY account",
    ],
    "history": ["SELECT * FROM posts WHERE due_at >= ? AND due_at < ? ORDER BY due_at"],
}


def timed(conn: sqlite3.Connection, statements: list[tuple[str, tuple[Any, ...]]], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        for sql, params in statements:
            conn.execute(sql, params).fetchall()
        times.append(time.perf_counter() - began)
    return min(times)


def sql_ratios(state: Path) -> dict[str, tuple[float, float]]:
    """Per command: (the ledger's statements' time, the floor's), each the best of 5."""
    from zoneinfo import ZoneInfo

    from amplifier.daemon.status import FINISHED, collect_status, ledger_problems
    from amplifier.delivery.ledger import open_ledger

    captured: list[str] = []
    week = (NOW - dt.timedelta(days=7), NOW)
    results: dict[str, tuple[float, float]] = {}
    db = state / "ledger.sqlite3"
    raw = sqlite3.connect(db)
    for name in ("status", "history"):
        captured.clear()
        with open_ledger(state, NOW) as ledger:
            ledger._conn.set_trace_callback(captured.append)  # type: ignore[attr-defined]
            if name == "status":
                collect_status(ledger, NOW, ZoneInfo("UTC"), state, {})
                ledger_problems(ledger, NOW, 6, 60)
            else:
                list(ledger.iter_history(*week, None, FINISHED, batch=100_000))
        ours = [(sql, ()) for sql in captured if "posts" in sql and sql.lstrip().upper().startswith("SELECT")]
        week_text = tuple(value.isoformat(timespec="microseconds") for value in week)
        floor = [(sql, week_text if "?" in sql else ()) for sql in FLOOR[name]]
        results[name] = (timed(raw, ours), timed(raw, floor))
    raw.close()
    return results


def replan(state: Path, rows: int) -> tuple[float, int]:
    """A re-plan of the daemon's window (the planned posts, unchanged) on the big ledger: (seconds, posts)."""
    from amplifier.delivery.ledger import PlanEntry, open_ledger

    planned = min(2000, rows // 100)
    start = NOW - dt.timedelta(minutes=rows - planned)
    entries = [
        PlanEntry(f"daily:a{i % ACCOUNTS}:{i}", f"a{i % ACCOUNTS}", "mastodon", "daily", due, "h", 1)
        for i in range(rows - planned, rows)
        for due in [start + dt.timedelta(minutes=i)]
    ]
    with open_ledger(state, NOW) as ledger:
        began = time.perf_counter()
        report = ledger.sync_plan(entries, NOW, start=entries[0].due_at, end=entries[-1].due_at)
        seconds = time.perf_counter() - began
    assert not report.inserted, report
    assert not report.cancelled, report
    return seconds, len(entries)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    sys.path.insert(0, str(options.src))
    with tempfile.TemporaryDirectory(prefix="amplifier-bench-ledger-") as scratch:
        folder = Path(scratch)
        config = campaign(folder / "campaign")
        state = folder / "state"
        began = time.perf_counter()
        generate(state, options.rows)
        print(
            f"ledger: {options.rows:,} rows generated in {time.perf_counter() - began:.1f} s ({options.src})"
        )
        now = NOW.isoformat()
        week = ["--from", (NOW - dt.timedelta(days=7)).isoformat(), "--to", now]
        cases = {
            "status --check --format json": ["status", "--check", "--format", "json", "--now", now],
            "status (table)": ["status", "--now", now],
            "history 7 days --format json": ["history", "--format", "json", "--now", now, *week],
            "history everything --format json": [
                "history",
                "--format",
                "json",
                "--now",
                now,
                "--from",
                "2000-01-01T00:00:00+00:00",
                "--to",
                now,
            ],
        }
        failed = False
        print(f"{'command':36} {'wall s':>8} {'cpu s':>8} {'RSS MB':>8}  exit  goal")
        for label, args in cases.items():
            everything = label.startswith("history everything")
            repeat = 1 if everything else options.repeat  # a minute a run on a million rows: once is enough
            wall, cpu, rss, code = best([command(options.src, config, state, *args) for _ in range(repeat)])
            ok = everything or (wall < GOAL_SECONDS and rss < GOAL_MB)
            failed |= not ok
            goal = "(streams)" if everything else ("ok" if ok else "MISSED")
            print(f"{label:36} {wall:8.3f} {cpu:8.3f} {rss:8.1f}  {code:4}  {goal}")
        seconds, posts = replan(state, options.rows)
        print(f"re-plan of the daemon's window ({posts:,} posts, unchanged): {seconds:.3f} s")
        if options.src.resolve() == (ROOT / "src").resolve():
            for name, (ours, floor) in sql_ratios(state).items():
                ratio = ours / floor if floor else float("inf")
                failed |= ratio > GOAL_RATIO
                print(
                    f"SQL of {name:10} {ours * 1000:8.1f} ms, by hand {floor * 1000:8.1f} ms: {ratio:.2f}x "
                    f"({'ok' if ratio <= GOAL_RATIO else 'MISSED'}, goal {GOAL_RATIO}x)"
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
