"""Fan-out across nodes: 100 accounts due at one instant, published by three nodes on one PostgreSQL ledger.

Three ``amplifier run`` daemons (real processes, real time, each with its own state folder and the same campaign
files) share a PostgreSQL ledger (a local cluster, ``fsync`` on, loopback TCP). The campaign has ``ROUNDS + 1``
bursts ``GAP`` seconds apart; in each, every account has one post due at the same second. The first burst warms
the nodes up (instance limits read, HTTP and database connections open, as in a daemon that runs); each of the
others is one measured run. Measured per burst, from the ledger: the time from the burst's due time to the
``published_at`` of its last post (each node records it with its own clock, the same machine's). The same is
measured with one account (one post per burst) on three nodes: the baseline. Each node's log says which posts it
published (``posted``), so the bench also says how the accounts spread over the nodes.

The Mastodon API is the threaded stub of ``bench_daemon`` in a process of its own (each post answered after
200 ms, no queueing). Target: the median burst of 100 accounts under 2x the median of one post.

Needs Debian's ``postgresql`` package (``scripts/test`` installs it). Run: ``.venv/bin/python
bench/bench_fanout_nodes.py`` (about three minutes; no network beyond loopback). ``BENCH_ACCOUNTS=300`` for
another size.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import bench_daemon  # noqa: E402

NODES = 3
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))  # measured bursts, after one warm-up burst
GAP = 12.0  # seconds between two bursts
LIMIT = 2.0  # median fan-out / median one post
START_MARGIN = 45.0  # seconds from writing the campaign to the first burst: the nodes start meanwhile


def write_campaign(folder: Path, url: str, accounts: int, first: dt.datetime) -> list[str]:
    """The campaign files; returns the due times of the bursts as the rules' local ``at`` (UTC)."""
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    names = [f"a{n:03d}" for n in range(accounts)]
    listed = "".join(
        f"  {name}:\n    platform: mastodon\n    instance: {url}\n    token_env: BENCH_TOKEN\n"
        for name in names
    )
    ats = [
        (first + dt.timedelta(seconds=GAP * burst)).strftime("%Y-%m-%dT%H:%M:%S")
        for burst in range(ROUNDS + 1)
    ]
    rules = "".join(
        f"  b{burst}:\n    kind: once\n    at: {at}\n    messages: hello\n" for burst, at in enumerate(ats)
    )
    (folder / "schedule.yaml").write_text(
        f"campaign:\n  name: fan-out across nodes\n  timezone: UTC\naccounts:\n{listed}rules:\n{rules}"
    )
    (folder / "messages" / "hello.yaml").write_text(bench_daemon.MESSAGES)
    return ats


def _posted(log: Path) -> list[str]:
    ids = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "posted":
            ids.append(str(record["id"]))
    return ids


def burst_times(
    database_url: str, stub_url: str, work: Path, accounts: int
) -> tuple[list[float], list[Counter[int]]]:
    """Seconds from each measured burst's due time to its last post's publication, and per burst how many posts
    each node published."""
    from amplifier.delivery.ledger import State
    from amplifier.delivery.ledger.postgres import PostgresLedger

    first = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=START_MARGIN)).replace(microsecond=0)
    write_campaign(work / "campaign", stub_url, accounts, first)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLIFIER_")}
    env |= {
        "AMPLIFIER_LEDGER": database_url,
        "BENCH_TOKEN": "t",
        "AMPLIFIER_SECRETS_DIR": str(work / "none"),
        "PYTHONPATH": str(ROOT / "src"),
    }
    logs = [work / f"node{n}.log" for n in range(NODES)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "amplifier",
                "--config",
                str(work / "campaign"),
                "--state",
                str(work / f"s{n}"),
                "run",
                "--log-format",
                "json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=logs[n].open("w"),
            env=env,
        )
        for n in range(NODES)
    ]
    try:
        while not all('"started"' in log.read_text() for log in logs):
            if any(proc.poll() is not None for proc in procs):
                raise SystemExit("a node stopped:\n" + "\n".join(log.read_text()[-2000:] for log in logs))
            time.sleep(0.1)
        if dt.datetime.now(dt.UTC) > first - dt.timedelta(seconds=2):
            raise SystemExit("the nodes took too long to start (raise START_MARGIN)")
        last_due = first + dt.timedelta(seconds=GAP * ROUNDS)
        expected = accounts * (ROUNDS + 1)
        cpu: list[float] | None = None
        with PostgresLedger.open(database_url, dt.datetime.now(dt.UTC)) as ledger:
            deadline = last_due + dt.timedelta(seconds=60)
            while True:
                if cpu is None and dt.datetime.now(dt.UTC) > first + dt.timedelta(seconds=GAP / 2):
                    cpu = [bench_daemon._cpu_seconds(proc.pid) for proc in procs]  # after the warm-up burst
                rows = ledger.history(first - dt.timedelta(hours=1), last_due + dt.timedelta(hours=1))
                done = [row for row in rows if row.state == State.PUBLISHED]
                if len(done) == expected:
                    break
                if dt.datetime.now(dt.UTC) > deadline:
                    states = Counter(row.state.value for row in rows)
                    raise SystemExit(
                        f"{len(done)} of {expected} published a minute after the last burst: {states}"
                    )
                time.sleep(0.5)
        if cpu is not None:  # the measured bursts' CPU seconds (and the idle time between them) of each node
            used = [
                bench_daemon._cpu_seconds(proc.pid) - before for proc, before in zip(procs, cpu, strict=True)
            ]
            print(
                f"{accounts} account(s): CPU of the nodes over the measured bursts: "
                + ", ".join(f"{seconds:.2f} s" for seconds in used)
                + f" ({sum(used) / (accounts * ROUNDS) * 1000:.1f} ms per post, idle time included)"
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    times: list[float] = []
    spread: list[Counter[int]] = []
    by_node = {post: node for node, log in enumerate(logs) for post in _posted(log)}
    if os.environ.get("BENCH_VERBOSE"):  # every post: how late, from which node
        for row in sorted(done, key=lambda row: (row.due_at, row.published_at or row.due_at)):
            late = ((row.published_at or row.due_at) - row.due_at).total_seconds()
            claimed = ((row.claimed_at or row.due_at) - row.due_at).total_seconds()
            print(f"{row.id} {late:.3f} node {by_node.get(row.id)} claimed {claimed:.3f}", file=sys.stderr)
        for log in logs:
            print(log.read_text(), file=sys.stderr)
    for burst in range(1, ROUNDS + 1):
        rows = [row for row in done if row.rule == f"b{burst}"]
        if len(rows) != accounts:
            raise SystemExit(f"burst {burst}: {len(rows)} posts of {accounts} published")
        times.append(max((row.published_at or row.due_at) - row.due_at for row in rows).total_seconds())
        spread.append(Counter(by_node.get(row.id, -1) for row in rows))
    return times, spread


def main() -> None:
    from tests.integration.servers.postgres import PostgresServer

    stub = subprocess.Popen(
        [sys.executable, str(Path(bench_daemon.__file__)), "stub"], stdout=subprocess.PIPE, text=True
    )
    assert stub.stdout is not None
    stub_url = f"http://127.0.0.1:{int(stub.stdout.readline())}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fanout-nodes-") as scratch:
            work = Path(scratch)
            postgres = PostgresServer.start(work / "pg", fsync=True)
            try:
                results = {}
                for accounts in (1, ACCOUNTS):
                    folder = work / f"n{accounts}"
                    folder.mkdir()
                    url = postgres.create_database(f"fanout{accounts}")
                    results[accounts] = burst_times(url, stub_url, folder, accounts)
            finally:
                postgres.stop()
    finally:
        stub.kill()
        stub.wait()
    one, _ = results[1]
    many, spread = results[ACCOUNTS]
    print(
        f"fan-out across {NODES} nodes (PostgreSQL, fsync on; stub {bench_daemon.LATENCY * 1000:.0f} ms per post; "
        f"{ROUNDS} bursts each, due time to the last post published)"
    )
    print(f"1 account: best {min(one):.3f} s, median {statistics.median(one):.3f} s")
    ratio_best, ratio = min(many) / min(one), statistics.median(many) / statistics.median(one)
    print(
        f"{ACCOUNTS} accounts: best {min(many):.3f} s, median {statistics.median(many):.3f} s: ratio best "
        f"{ratio_best:.2f}, median {ratio:.2f} (must be < {LIMIT:.0f})"
    )
    for burst, counts in enumerate(spread, 1):
        shares = ", ".join(f"node {node}: {count}" for node, count in sorted(counts.items()))
        print(f"burst {burst}: {shares}")
    print("PASS" if ratio < LIMIT else "FAIL")
    sys.exit(0 if ratio < LIMIT else 1)


if __name__ == "__main__":
    main()
