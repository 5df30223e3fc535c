"""Daemon speed: fan-out of simultaneous posts, and the cost of waiting.

Fan-out
    100, 300 and 1,000 Mastodon accounts with one post each due at the same instant, against one account alone;
    the daemon's pass (:meth:`Daemon.tick`, real publishers over HTTP) is timed for each, after a warm-up pass
    (instance limits cached), 5 runs each; the best and the median are reported. Goal: median(n) / median(1)
    under 2 for 100 accounts, under 3 for 300 and 1,000 (posts go out concurrently, not one after another). The
    loopback server answers every post after 200 ms: a minimal threaded Mastodon API (instance + statuses) in a
    process of its own that adds no queueing (its listen backlog fits the burst). ``mastodon-mock`` is not used
    here: it handles requests one after another, so its figures would measure the mock, not amplifier.
    The pass includes what a real pass does after the posts: the read-back of the warm-up posts (1 h old, the
    first ``readback`` age), read concurrently per account. The stub writes each answer in one piece (headers
    and body): written in two, the second waited for the client's delayed ACK (40 ms a request, a stall no real
    server has, which made one post look 80 ms slower than it is and every ratio smaller).
    Also reported: the pass's CPU seconds, the stub's (on the same cores), and the floor no concurrency can
    beat: Mastodon.py's own CPU for one ``status_post`` (one thread, no daemon; as amplifier calls it, answers
    left as parsed JSON, and as shipped, answers typed) times the number of posts: in one process the GIL runs
    one thread at a time, so a pass of n posts takes at least n x that CPU; with every core (a process pool, no
    cost of amplifier's own, a server using no CPU of this machine) n x that CPU / cores. Those floors over one
    post's time are the ratios no change to amplifier can go under.
    ``BENCH_FAN_OUT=100,1000`` picks the sizes, ``BENCH_SKIP_IDLE=1`` skips the idle part.

Idle
    ``amplifier run --dry-run`` (the long-running daemon) with a 30-day campaign (20 accounts, a daily post
    and a countdown) and nothing due soon: CPU seconds used over ~20 s of waiting and its RSS (must stay under
    150 MB), against a bare ``python -c 'import time; time.sleep(...)'`` measured over the same period.

Run: ``.venv/bin/python bench/bench_daemon.py`` (about a minute; no network beyond loopback).
"""

from __future__ import annotations

import datetime as dt
import http.server
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

LATENCY = 0.2
FAN_OUTS = (100, 300, 1000)
RUNS = 5
LIMITS = {100: 2.0, 300: 3.0, 1000: 3.0}  # fan-out time / one post's time, on the median
IDLE_SECONDS = 20.0
RSS_LIMIT_MB = 150.0
WARM = dt.datetime(2027, 10, 20, 8, 0, tzinfo=dt.UTC)
DUE = dt.datetime(2027, 10, 20, 9, 0, tzinfo=dt.UTC)

MESSAGES = """\
sets:
  hello:
    variants:
      - text:
          en: "Bench post for {{ account.id }} at {{ at }}"
"""


def write_fan_out_campaign(folder: Path, url: str, tokens: dict[str, str]) -> Path:
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    accounts = "".join(
        f"  {name}:\n    platform: mastodon\n    instance: {url}\n    token_env: {env}\n"
        for name, env in ((name, f"BENCH_TOKEN_{name.upper()}") for name in tokens)
    )
    (folder / "schedule.yaml").write_text(
        "campaign:\n  name: fan-out bench\n  timezone: UTC\n"
        f"accounts:\n{accounts}"
        "rules:\n  warm:\n    kind: once\n    at: 2027-10-20T08:00\n    messages: hello\n"
        "  burst:\n    kind: once\n    at: 2027-10-20T09:00\n    messages: hello\n"
    )
    (folder / "messages" / "hello.yaml").write_text(MESSAGES)
    for name, token in tokens.items():
        os.environ[f"BENCH_TOKEN_{name.upper()}"] = token
    return folder / "schedule.yaml"


def timed_pass(
    schedule: Path, state: Path, *, strict: bool = True, server_cpu: Callable[[], float] = lambda: 0.0
) -> tuple[float, int, float, float, float]:
    """Time the pass that publishes the ``burst`` post of every account, in a warm daemon: the ``warm`` post
    an hour earlier made the publishers (HTTP sessions, cached instance limits), as in a daemon that runs.
    Seconds (wall), posts published, CPU seconds of this process and of the server (``server_cpu``) in it, and
    seconds until the last post was out (the pass then reads back the warm-up posts)."""
    from amplifier.campaign.load import load_campaign
    from amplifier.cli.publish import publish_context
    from amplifier.daemon.events import EventLog
    from amplifier.daemon.loop import Daemon
    from amplifier.delivery.ledger import open_ledger
    from amplifier.publish import create_publisher
    from amplifier.publish.mastodon import MastodonPublisher

    campaign = load_campaign(schedule)
    ctx = publish_context(campaign, state)
    first = next(iter(campaign.schedule.accounts))
    probe = create_publisher(first, campaign.account(first), ctx)
    assert isinstance(probe, MastodonPublisher)
    probe.limits(refresh=True)  # one instance request, cached in the state folder for every account
    probe.close()
    now = WARM
    with open_ledger(state, now) as ledger:
        daemon = Daemon(
            campaign,
            ledger,
            lambda account, settings: create_publisher(account, settings, ctx),
            clock=lambda: now,
            log=EventLog(sys.stderr if os.environ.get("BENCH_VERBOSE") else None),
            environ={},
        )
        posts_out: list[float] = []
        read_back = daemon.read_back

        def after_posts(at: dt.datetime) -> None:
            posts_out.append(time.perf_counter())
            read_back(at)

        daemon.read_back = after_posts  # type: ignore[method-assign]
        try:
            daemon.start(now)
            warm = daemon.tick(now)
            now = DUE
            began, cpu, server = time.perf_counter(), time.process_time(), server_cpu()
            report = daemon.tick(now)
            elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
            server = server_cpu() - server
        finally:
            daemon.close()
    expected = len(campaign.schedule.accounts)
    for name, done in (("warm-up", warm), ("burst", report)):
        if strict and len(done.published) != expected:
            raise SystemExit(f"fan-out {name}: {len(done.published)} of {expected} published: {done}")
    return elapsed, len(report.published), cpu, server, posts_out[-1] - began


class _Stub(http.server.BaseHTTPRequestHandler):
    """Just enough of the Mastodon API for a post: the instance, and statuses answered after LATENCY."""

    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # an answer leaves in one piece when the request is handled (see the docstring)
    counter = itertools.count(1)

    def _send(self, data: object) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(
            {
                "domain": "stub.test",
                "version": "4.3.0",
                "configuration": {
                    "statuses": {
                        "max_characters": 500,
                        "characters_reserved_per_url": 23,
                        "max_media_attachments": 4,
                    },
                    "media_attachments": {"description_limit": 1500},
                },
            }
        )

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(LATENCY)
        number = next(self.counter)
        self._send(
            {
                "id": str(number),
                "uri": f"http://stub.test/statuses/{number}",
                "url": f"http://stub.test/@x/{number}",
                "created_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
                "content": "",
            }
        )

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _StubServer(http.server.ThreadingHTTPServer):
    request_queue_size = 4096  # a burst of 1,000 connections must not overflow the listen backlog
    daemon_threads = True


def serve_stub() -> None:
    """The stub in a process of its own (``bench_daemon.py stub``): prints its port, serves until killed."""
    server = _StubServer(("127.0.0.1", 0), _Stub)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def client_floor(url: str, calls: int = 10) -> dict[str, float]:
    """CPU seconds of one ``status_post`` by Mastodon.py alone (no daemon, no ledger), one thread: the least a
    post costs the daemon's process, whatever its concurrency (the GIL runs one thread at a time). ``plain``: the
    client amplifier posts with (:func:`~amplifier.publish.mastodon_client.plain_client_class`, answers left as
    parsed JSON); ``typed``: Mastodon.py as shipped."""
    from mastodon import Mastodon

    from amplifier.publish.httpsession import EnvironmentSession
    from amplifier.publish.mastodon_client import plain_client_class

    floors = {}
    for name, kind in (("typed", Mastodon), ("plain", plain_client_class())):
        api = kind(
            api_base_url=url,
            access_token="stub-token-floor",
            ratelimit_method="throw",
            session=EnvironmentSession(),
            mastodon_version="4.3.0",
            version_check_mode="created",
        )
        api.status_post("warm-up", idempotency_key="floor-warm")
        began = time.process_time()
        for n in range(calls):
            api.status_post(f"floor {n}", idempotency_key=f"floor-{n}")
        floors[name] = (time.process_time() - began) / calls
    return floors


@dataclass
class FanOut:
    """Seconds of the burst pass (wall, then CPU of the daemon's process, then CPU of the stub) per size (1: one
    account), one per run; and :func:`client_floor`."""

    times: dict[int, list[float]] = field(default_factory=dict)
    cpus: dict[int, list[float]] = field(default_factory=dict)
    stub_cpus: dict[int, list[float]] = field(default_factory=dict)
    posts_out: dict[int, list[float]] = field(default_factory=dict)  # until the last post was out
    floor: dict[str, float] = field(default_factory=dict)


def bench_fan_out_stub(sizes: tuple[int, ...] = FAN_OUTS, runs: int = RUNS) -> FanOut:
    """The burst pass for one account and for each size, ``runs`` times each. The stub runs in a process of its
    own, as a server does: in the daemon's process its threads would compete for the GIL."""
    stub = subprocess.Popen([sys.executable, __file__, "stub"], stdout=subprocess.PIPE, text=True)
    assert stub.stdout is not None
    url = f"http://127.0.0.1:{int(stub.stdout.readline())}"
    result = FanOut()

    def measured(schedule: Path, state: Path) -> tuple[float, int, float, float, float]:
        return timed_pass(schedule, state, server_cpu=lambda: _cpu_seconds(stub.pid))

    try:
        result.floor = client_floor(url)
        with tempfile.TemporaryDirectory(prefix="bench-daemon-") as scratch:
            work = Path(scratch)
            one = write_fan_out_campaign(work / "one", url, {"solo": "stub-token-solo"})
            plan: list[tuple[int, Path]] = [(1, one)]
            for size in sizes:
                tokens = {f"a{n:04d}": f"stub-token-{n}" for n in range(size)}
                plan.append((size, write_fan_out_campaign(work / f"many-{size}", url, tokens)))
            for size, schedule in plan:
                passes = [measured(schedule, work / f"state-{size}-{n}") for n in range(runs)]
                result.times[size] = [p[0] for p in passes]
                result.cpus[size] = [p[2] for p in passes]
                result.stub_cpus[size] = [p[3] for p in passes]
                result.posts_out[size] = [p[4] for p in passes]
    finally:
        stub.kill()
        stub.wait()
    return result


def floor_lines(size: int, single: float, floor: dict[str, float], limit: float) -> list[str]:
    """The floor of ``size`` posts against one post's ``single`` seconds (see the module docstring)."""
    cores = os.cpu_count() or 1
    plain, typed = floor["plain"], floor["typed"]
    one_process = max(LATENCY, plain * size)
    all_cores = max(LATENCY, plain * size / cores)
    verdict = "cannot" if one_process / single >= limit else "can"
    return [
        f"  floor: Mastodon.py alone {plain * 1000:.2f} ms CPU a post as amplifier calls it ({typed * 1000:.2f} "
        f"ms as shipped) x {size} = {plain * size:.3f} s: in one process (the GIL) ratio "
        f"{one_process / single:.2f}, so one process {verdict} be under {limit:.0f}; on all {cores} cores "
        f"(nothing but Mastodon.py, the server elsewhere) {all_cores:.3f} s, ratio {all_cores / single:.2f}"
    ]


# --------------------------------------------------------------------------------------------- idle


def write_idle_campaign(folder: Path) -> Path:
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    today = dt.datetime.now(dt.UTC).date()
    start = today + dt.timedelta(days=2)
    end = start + dt.timedelta(days=29)
    accounts = "".join(
        f"  m{n:02d}:\n    platform: mastodon\n    instance: http://127.0.0.1:9\n    token_env: BENCH_IDLE\n"
        for n in range(20)
    )
    (folder / "schedule.yaml").write_text(
        "campaign:\n  name: idle bench\n  timezone: Europe/Berlin\n"
        f"events:\n  day:\n    name: {{en: The Day}}\n    date: {end.isoformat()}\n"
        f"accounts:\n{accounts}"
        "rules:\n"
        f"  daily:\n    kind: recurring\n    cron: '0 12 * * *'\n    start: {start.isoformat()}\n"
        f"    end: {end.isoformat()}\n    messages: hello\n"
        "  countdown:\n    kind: countdown\n    event: day\n    days_before: [20, 10, 5, 3, 2, 1, 0]\n"
        "    messages: hello\n"
    )
    (folder / "messages" / "hello.yaml").write_text(MESSAGES)
    return folder / "schedule.yaml"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _measure(proc: subprocess.Popen[Any], seconds: float) -> tuple[float, float]:
    before = _cpu_seconds(proc.pid)
    time.sleep(seconds)
    return _cpu_seconds(proc.pid) - before, _rss_mb(proc.pid)


def bench_idle() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as scratch:
        work = Path(scratch)
        schedule = write_idle_campaign(work / "campaign")
        log_path = work / "daemon.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLIFIER_")}
        with log_path.open("w") as log:
            daemon = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "amplifier",
                    "-c",
                    str(schedule),
                    "--state",
                    str(work / "state"),
                    "run",
                    "--dry-run",
                    "--log-format",
                    "json",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
        baseline = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({IDLE_SECONDS * 3})"])
        try:
            deadline = time.monotonic() + 60
            while '"started"' not in log_path.read_text():
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"idle: the daemon did not start:\n{log_path.read_text()}")
                time.sleep(0.2)
            time.sleep(2.0)  # let start-up settle
            base_cpu_before = _cpu_seconds(baseline.pid)
            cpu, rss = _measure(daemon, IDLE_SECONDS)
            base_cpu = _cpu_seconds(baseline.pid) - base_cpu_before
            base_rss = _rss_mb(baseline.pid)
        finally:
            for proc in (daemon, baseline):
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=40)
        planned = [json.loads(line) for line in log_path.read_text().splitlines() if '"planned"' in line]
    return {
        "idle_s": IDLE_SECONDS,
        "cpu_s": cpu,
        "cpu_share": cpu / IDLE_SECONDS,
        "baseline_cpu_s": base_cpu,
        "rss_mb": rss,
        "baseline_rss_mb": base_rss,
        "rss_ratio": rss / base_rss if base_rss else 0.0,
        "planned_posts": float(planned[0]["posts"]) if planned else 0.0,
    }


def main() -> None:
    sizes = tuple(int(size) for size in os.environ.get("BENCH_FAN_OUT", "").split(",") if size) or FAN_OUTS
    fan = bench_fan_out_stub(sizes)
    single = statistics.median(fan.times[1])
    print(
        f"fan-out (threaded stub, {LATENCY * 1000:.0f} ms per post, {RUNS} runs each): 1 account "
        f"best {min(fan.times[1]):.3f} s, median {single:.3f} s; Mastodon.py alone: "
        f"{fan.floor['plain'] * 1000:.2f} ms CPU a post as amplifier calls it, "
        f"{fan.floor['typed'] * 1000:.2f} ms as shipped"
    )
    ok = True
    for size in sizes:
        times = fan.times[size]
        best, median = min(times), statistics.median(times)
        limit = LIMITS.get(size, 3.0)
        ok &= median / single < limit
        cpu = statistics.median(fan.cpus[size])
        stub_cpu = statistics.median(fan.stub_cpus[size])
        print(
            f"fan-out: {size} accounts best {best:.3f} s, median {median:.3f} s: ratio best "
            f"{best / min(fan.times[1]):.2f}, median {median / single:.2f} (must be < {limit:.0f}); CPU median "
            f"{cpu:.3f} s, {cpu / size * 1000:.2f} ms a post (the stub: {stub_cpu / size * 1000:.2f} ms a post "
            f"on the same cores); runs: {', '.join(f'{t:.3f}' for t in times)}"
        )
        out, single_out = statistics.median(fan.posts_out[size]), statistics.median(fan.posts_out[1])
        print(
            f"  the posts alone (the pass before its read-back): median {out:.3f} s, ratio {out / single_out:.2f} "
            f"to one post's {single_out:.3f} s"
        )
        for line in floor_lines(size, single, fan.floor, limit):
            print(line)
    if os.environ.get("BENCH_SKIP_IDLE"):
        print("PASS" if ok else "FAIL")
        sys.exit(0 if ok else 1)
    idle = bench_idle()
    print(
        f"idle: {idle['cpu_s']:.3f} CPU s over {idle['idle_s']:.0f} s "
        f"({idle['cpu_share'] * 100:.2f} % of a core; bare sleeping python: {idle['baseline_cpu_s']:.3f} s)"
    )
    print(
        f"idle: RSS {idle['rss_mb']:.1f} MB (bare python {idle['baseline_rss_mb']:.1f} MB, "
        f"x{idle['rss_ratio']:.1f}; must be < {RSS_LIMIT_MB:.0f} MB), "
        f"{idle['planned_posts']:.0f} posts in the planned window"
    )
    ok = ok and idle["rss_mb"] < RSS_LIMIT_MB
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1:] == ["stub"]:
        serve_stub()
    else:
        main()
