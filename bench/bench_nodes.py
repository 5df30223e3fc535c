"""Several nodes on one PostgreSQL ledger: failover time, and what the ledger costs per post.

Failover
    Two ``amplifier run`` daemons (real processes, real time, the default lease) on one PostgreSQL ledger, a
    campaign of one Mastodon account with a post due every minute, against the threaded Mastodon stub of
    ``bench_daemon`` (each post answered after 1 s). When a node has claimed a post (its request on the way),
    that node is SIGKILLed; measured: the time from the kill until that post is published by the other node.
    Target: under 10 s.

Per-post ledger cost
    ``claim`` + ``mark_published`` of 300 posts, one after another, on the SQLite ledger (a file on the local
    disk) and on PostgreSQL (a local cluster with ``fsync`` on, over loopback TCP): milliseconds per post.

Needs Debian's ``postgresql`` package (``scripts/test`` installs it). Run: ``.venv/bin/python bench/bench_nodes.py``
(about two minutes; no network beyond loopback).
"""

from __future__ import annotations

import datetime as dt
import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import bench_daemon  # noqa: E402

POSTS = 300
FAILOVER_TARGET = 10.0
FAILOVER_ROUNDS = 3


def ledger_cost(ledger: object, label: str) -> float:
    from amplifier.delivery.ledger import PlanEntry

    now = dt.datetime(2027, 10, 20, 9, 0, tzinfo=dt.UTC)
    entries = [
        PlanEntry(f"p{n:04d}", "masto", "mastodon", "r", now + dt.timedelta(minutes=n), "h", 1)
        for n in range(POSTS)
    ]
    ledger.sync_plan(entries, now)  # type: ignore[attr-defined]
    began = time.perf_counter()
    for entry in entries:
        assert ledger.claim(entry.id, now, "bench:1:t", lease_until=now + dt.timedelta(seconds=8))  # type: ignore[attr-defined]
        ledger.mark_published(entry.id, [{"id": entry.id}], now, token="bench:1:t")  # type: ignore[attr-defined]
    per_post = (time.perf_counter() - began) / POSTS * 1000
    print(f"ledger cost, {label}: {per_post:.2f} ms per post (claim + mark_published)")
    return per_post


def write_campaign(folder: Path, url: str, first: dt.datetime, count: int) -> None:
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    rules = "".join(
        f"  r{n:02d}:\n    kind: once\n    at: {first + dt.timedelta(minutes=n):%Y-%m-%dT%H:%M}\n    messages: hello\n"
        for n in range(count)
    )
    (folder / "schedule.yaml").write_text(
        "campaign:\n  name: failover bench\n  timezone: UTC\n"
        f"accounts:\n  masto:\n    platform: mastodon\n    instance: {url}\n    token_env: BENCH_TOKEN\n"
        f"rules:\n{rules}"
    )
    (folder / "messages" / "hello.yaml").write_text(bench_daemon.MESSAGES)


def failover(database_url: str, stub_url: str, work: Path) -> list[float]:
    from amplifier.delivery.ledger import State
    from amplifier.delivery.ledger.postgres import PostgresLedger

    first = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    write_campaign(work / "campaign", stub_url, first, FAILOVER_ROUNDS + 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLIFIER_")}
    env |= {
        "AMPLIFIER_LEDGER": database_url,
        "BENCH_TOKEN": "t",
        "AMPLIFIER_SECRETS_DIR": str(work / "none"),
        "PYTHONPATH": str(ROOT / "src"),  # the nodes run this checkout's amplifier, not an installed one
    }
    procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(n: int) -> None:
        procs[n] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "amplifier",
                "--config",
                str(work / "campaign"),
                "--state",
                str(work / f"s{n}"),
                "run",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(work / f"node{n}.log").open("ab"),
            env=env,
        )

    start(0)
    start(1)
    times: list[float] = []
    try:
        with PostgresLedger.open(database_url, dt.datetime.now(dt.UTC)) as ledger:
            for round_ in range(FAILOVER_ROUNDS):
                post_id = f"r{round_:02d}:masto:{first + dt.timedelta(minutes=round_):%Y-%m-%dT%H:%M}"
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        row = ledger.get(post_id)
                    except Exception:
                        row = None
                    if row is not None and row.state == State.CLAIMED and row.claim_token:
                        break
                    time.sleep(0.01)
                else:
                    raise SystemExit(f"{post_id} was never claimed")
                pid = int(row.claim_token.split(":")[1])
                victim = next(n for n, proc in procs.items() if proc.pid == pid)
                killed = time.monotonic()
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait()
                while ledger.get(post_id).state != State.PUBLISHED:
                    if time.monotonic() - killed > 60:
                        raise SystemExit(f"{post_id}: no failover within 60 s")
                    time.sleep(0.02)
                times.append(time.monotonic() - killed)
                print(
                    f"failover {round_ + 1}: {times[-1]:.2f} s from the kill to the post, from the other node"
                )
                start(victim)  # back up for the next round
    except SystemExit:  # what the nodes said, to see why
        for n in sorted(procs):
            print(f"node {n}:\n{(work / f'node{n}.log').read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    return times


class _Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        return None  # the killed node's connection: a broken pipe is expected


def main() -> None:
    from tests.integration.servers.postgres import PostgresServer

    from amplifier.delivery.ledger.postgres import PostgresLedger
    from amplifier.delivery.ledger.sqlite import SqliteLedger

    bench_daemon.LATENCY = 1.0
    server = _Quiet(("127.0.0.1", 0), bench_daemon._Stub)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stub_url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as scratch:
        work = Path(scratch)
        postgres = PostgresServer.start(work / "pg", fsync=True)
        try:
            now = dt.datetime.now(dt.UTC)
            with SqliteLedger.open(work / "ledger.sqlite3", now) as ledger:
                sqlite_ms = ledger_cost(ledger, "SQLite")
            with PostgresLedger.open(postgres.create_database("cost"), now) as pg_ledger:
                pg_ms = ledger_cost(pg_ledger, "PostgreSQL")
            print(f"ledger cost: PostgreSQL / SQLite = {pg_ms / sqlite_ms:.2f}")
            times = failover(postgres.create_database("failover"), stub_url, work)
        finally:
            postgres.stop()
            server.shutdown()
    worst = max(times)
    print(f"failover: worst {worst:.2f} s of {len(times)} (must be < {FAILOVER_TARGET:.0f} s)")
    print("PASS" if worst < FAILOVER_TARGET else "FAIL")
    sys.exit(0 if worst < FAILOVER_TARGET else 1)


if __name__ == "__main__":
    main()
