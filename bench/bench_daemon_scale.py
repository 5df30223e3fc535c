"""Daemon at scale: a 200k-post campaign against a 1M-row ledger (issue 11).

Generated in a temp folder (nothing is committed): a campaign of 50 Mastodon accounts posting daily at 12:00 UTC
from 2020 to 2030 (about 200k posts), and a SQLite ledger of 1M rows written directly with ``executemany`` (the
campaign's past posts published, the rest filler of an older campaign: mostly published, some failed and
expired). The clock is fixed (``--now``) at 06:00 UTC, so nothing is due and nothing is sent.

Measured, each as a whole command (a fresh process):

* ``run --once``: wall time and peak RSS;
* ``run`` (the long-running daemon): start (process start to the ``started`` line), then a hot reload (a message
  file changed to the ``reload ok`` line, the watch interval included), peak RSS, and CPU while idle (over
  ``BENCH_IDLE`` seconds, default 60: 0.1 % of 10 s would be one 10 ms clock tick);
* the floor: a bare ``python`` that opens the ledger with ``sqlite3`` and reads the window's rows by hand.

Goals: start and reload under 1 s, ``run --once`` under 1 s, peak RSS under 150 MB, idle under 0.1 % of a core.
Run: ``.venv/bin/python bench/bench_daemon_scale.py`` (``BENCH_ROWS=100000`` for a smaller ledger).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
ACCOUNTS = 50
NOW = dt.datetime(2026, 6, 15, 6, 0, tzinfo=dt.UTC)
FIRST = dt.date(2020, 1, 1)
LAST = dt.date(2030, 12, 31)
IDLE_SECONDS = float(
    os.environ.get("BENCH_IDLE", "60")
)  # long enough for 0.1 % to be more than one clock tick
LIMIT_S = 1.0
RSS_LIMIT_MB = 150.0

MESSAGES = """\
sets:
  daily:
    variants:
      - text:
          en: "Day {{ at }} for {{ account.id }}: VERSION"
"""


def write_campaign(folder: Path) -> Path:
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    accounts = "".join(
        f"  m{n:02d}:\n    platform: mastodon\n    instance: http://127.0.0.1:9\n    token_env: BENCH_SCALE\n"
        for n in range(ACCOUNTS)
    )
    (folder / "schedule.yaml").write_text(
        "campaign:\n  name: scale bench\n  timezone: UTC\n"
        f"accounts:\n{accounts}"
        "rules:\n"
        f"  daily:\n    kind: recurring\n    cron: '0 12 * * *'\n    start: {FIRST.isoformat()}\n"
        f"    end: {LAST.isoformat()}\n    messages: daily\n"
    )
    (folder / "messages" / "daily.yaml").write_text(MESSAGES.replace("VERSION", "v1"))
    return folder / "schedule.yaml"


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def generate_ledger(state: Path) -> int:
    """The ledger, with the real schema (opened once by amplifier), then ``ROWS`` rows inserted directly."""
    from amplifier.delivery.ledger.sqlite import LEDGER_NAME, SqliteLedger

    SqliteLedger.open(state / LEDGER_NAME, NOW).close()
    conn = sqlite3.connect(state / LEDGER_NAME, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    columns = (
        "id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
        " last_error, published_at, result, created_at, updated_at"
    )
    sql = f"INSERT INTO posts ({columns}) VALUES ({', '.join('?' * 15)})"

    def rows() -> Iterator[tuple[object, ...]]:
        count = 0
        day = FIRST
        while day < NOW.date() and count < ROWS:  # the campaign's past posts: published
            due = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
            stamp = _stamp(due)
            for n in range(ACCOUNTS):
                key = f"{day.isoformat()}T12:00"
                result = f'[{{"id":"{count}","uri":"http://127.0.0.1:9/s/{count}"}}]'
                head = (f"daily:m{n:02d}:{key}", f"m{n:02d}", "mastodon", "daily", stamp, "h", 1, "published")
                yield (*head, 0, stamp, None, stamp, result, stamp, stamp)
                count += 1
            day += dt.timedelta(days=1)
        start = dt.datetime(2012, 1, 1, tzinfo=dt.UTC)
        filler = 0
        while count < ROWS:  # an older campaign: mostly published, some failed or expired
            due = start + dt.timedelta(minutes=5 * filler)
            stamp = _stamp(due)
            state = "published" if filler % 20 else ("failed" if filler % 40 else "expired")
            result = f'[{{"id":"old{filler}"}}]' if state == "published" else None
            reason = None if state == "published" else "bench"
            published = stamp if state == "published" else None
            head = (
                f"old:o{filler % 40:02d}:{filler}",
                f"o{filler % 40:02d}",
                "mastodon",
                "old",
                stamp,
                "h",
                1,
                state,
            )
            yield (*head, 0, stamp, reason, published, result, stamp, stamp)
            filler += 1
            count += 1

    conn.execute("BEGIN")
    total = conn.executemany(sql, rows()).rowcount
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return total


def _command(schedule: Path, state: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "amplifier", "-c", str(schedule), "--state", str(state), *extra]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLIFIER_")}
    env["BENCH_SCALE"] = "bench-token"
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def timed_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit status of one command."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - began, usage.ru_maxrss / 1024, proc.returncode


def floor(state: Path) -> float:
    """A bare python that reads the window's rows by hand: what any command pays at least."""
    start, end = _stamp(NOW - dt.timedelta(hours=2)), _stamp(NOW + dt.timedelta(days=2))
    code = (
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
        " c.execute('SELECT * FROM posts WHERE due_at >= ? AND due_at < ?', (sys.argv[2], sys.argv[3])).fetchall()"
    )
    return min(
        timed_child([sys.executable, "-c", code, str(state / "ledger.sqlite3"), start, end], _env())[0]
        for _ in range(3)
    )


def _wait_for(log: Path, text: str, after: int, deadline: float) -> float:
    while time.monotonic() < deadline:
        found = log.read_text()[after:]
        if text in found:
            return time.perf_counter()
        time.sleep(0.005)
    raise SystemExit(f"no {text!r} in the daemon's log:\n{log.read_text()[-3000:]}")


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of the process, two ways: the kernel's tick count (user + system, dead threads included; 10 ms
    steps) and the nanosecond run time of its live threads (``schedstat``). The idle figure is the larger of the
    two differences: a few short wake-ups are neither rounded away nor, in a thread that ended, missed."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return ticks, _run_ns(pid) / 1e9


def _run_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):  # a thread that just ended
            continue
    return total


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(schedule: Path, state: Path, log_path: Path) -> dict[str, float]:
    argv = _command(schedule, state, "--now", NOW.isoformat(), "run", "--log-format", "json")
    with log_path.open("w") as log:
        began = time.perf_counter()
        daemon = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=log)
    try:
        started = _wait_for(log_path, '"started"', 0, time.monotonic() + 120) - began
        time.sleep(1.0)
        size = len(log_path.read_text())
        messages = schedule.parent / "messages" / "daily.yaml"
        changed = time.perf_counter()
        messages.write_text(MESSAGES.replace("VERSION", "v2"))
        reloaded = _wait_for(log_path, '"reload ok"', size, time.monotonic() + 120) - changed
        time.sleep(1.0)
        cpu_before = _cpu_seconds(daemon.pid)
        time.sleep(IDLE_SECONDS)
        cpu_after = _cpu_seconds(daemon.pid)
        idle_cpu = max(after - before for before, after in zip(cpu_before, cpu_after, strict=True))
        peak = _peak_rss_mb(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    return {"start_s": started, "reload_s": reloaded, "idle_share": idle_cpu / IDLE_SECONDS, "peak_mb": peak}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        work = Path(scratch)
        schedule = write_campaign(work / "campaign")
        state = work / "state"
        began = time.perf_counter()
        rows = generate_ledger(state)
        print(f"scale: {rows} ledger rows generated in {time.perf_counter() - began:.1f} s", flush=True)
        base = floor(state)
        once_s, once_mb, status = timed_child(
            _command(schedule, state, "--now", NOW.isoformat(), "run", "--once"), _env()
        )
        print(
            f"run --once: {once_s:.3f} s (x{once_s / base:.1f} the floor, {base:.3f} s), peak RSS {once_mb:.0f} MB,"
            f" exit {status}",
            flush=True,
        )
        figures = serve(schedule, state, work / "daemon.log")
    print(
        f"daemon: start {figures['start_s']:.3f} s (x{figures['start_s'] / base:.1f} the floor), reload"
        f" {figures['reload_s']:.3f} s (watch interval included), peak RSS {figures['peak_mb']:.0f} MB,"
        f" idle {figures['idle_share'] * 100:.3f} % of a core"
    )
    ok = (
        once_s < LIMIT_S
        and figures["start_s"] < LIMIT_S
        and figures["reload_s"] < LIMIT_S
        and max(once_mb, figures["peak_mb"]) < RSS_LIMIT_MB
        and figures["idle_share"] < 0.001
    )
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
