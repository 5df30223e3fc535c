"""``amplifier run`` as an operator runs it, over HTTP against the loopback servers: crashes (SIGKILL at
random points, and between the request and the ledger write), injected faults (5xx, timeouts, 429 with a
reset time), clocks (DST, a campaign zone that is not the machine's) and edits of the campaign while it runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from amplifier.delivery.ledger import State, open_ledger
from amplifier.publish.bluesky import record_key

from .servers import Account, MastodonServer, PdsServer
from .servers.mastodon import MastodonAccount as ServerAccount

pytestmark = pytest.mark.integration

TOKEN_ENV = "AMP_DAEMON_MASTO_TOKEN"
PASSWORD_ENV = "AMP_DAEMON_BSKY_PASSWORD"
BERLIN = ZoneInfo("Europe/Berlin")

HEADER = """\
campaign:
  name: Daemon integration
  timezone: {zone}
events:
  day:
    name: {{en: The Day}}
    date: 2027-11-01
accounts:
{accounts}
rules:
{rules}
"""

MASTO = """\
  masto:
    platform: mastodon
    instance: {url}
    token_env: {env}
"""

BSKY = """\
  sky:
    platform: bluesky
    handle: {handle}
    service: {url}
    password_env: {env}
"""

MESSAGES = """\
sets:
  hello:
    variants:
      - text:
          en: "Post of {{{{ at }}}} on {{{{ account.id }}}}{suffix}"
"""


def once_rules(count: int, first: dt.datetime, *, prefix: str = "r", grace: str = "P1D") -> str:
    """``count`` once rules one minute apart from ``first`` (an aware time; written as its wall time)."""
    rules = []
    for n in range(count):
        at = first + dt.timedelta(minutes=n)
        rules.append(
            f"  {prefix}{n:02d}:\n    kind: once\n    at: {at:%Y-%m-%dT%H:%M}\n"
            f"    messages: hello\n    missed: {{action: post, grace: {grace}}}\n"
        )
    return "".join(rules)


NINE = dt.datetime(2027, 10, 20, 9, 0, tzinfo=BERLIN)


@dataclass
class Campaign:
    folder: Path
    state: Path
    env: dict[str, str]
    masto: ServerAccount | None = None
    sky: Account | None = None
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def args(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "amplifier",
            "--config",
            str(self.folder),
            "--state",
            str(self.state),
            *args,
        ]

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.args(*args),
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.folder,
            timeout=timeout,
            check=False,
        )

    @property
    def log_path(self) -> Path:
        return self.folder / "daemon.log"

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the long-running daemon; its JSON log is appended to :attr:`log_path`."""
        with self.log_path.open("a") as log:
            proc = subprocess.Popen(
                self.args("run", "--log-format", "json", *args),
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
                env={**self.env, **(env or {})},
                cwd=self.folder,
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
        """SIGTERM, wait, and return the log's events."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        return events(self.log_path.read_text())

    def write(self, rules: str, *, suffix: str = "", schedule: str | None = None) -> None:
        accounts = ""
        if self.masto is not None:
            accounts += MASTO.format(url=self.env["MASTO_URL"], env=TOKEN_ENV)
        if self.sky is not None:
            accounts += BSKY.format(handle=self.sky.handle, url=self.env["PDS_URL"], env=PASSWORD_ENV)
        text = schedule or HEADER.format(
            zone=self.env.get("ZONE", "Europe/Berlin"), accounts=accounts, rules=rules
        )
        (self.folder / "schedule.yaml").write_text(text)
        (self.folder / "messages" / "hello.yaml").write_text(MESSAGES.format(suffix=suffix))

    def ledger_states(self) -> dict[str, State]:
        with open_ledger(self.state, dt.datetime.now(dt.UTC)) as ledger:
            rows = ledger.history(
                dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
            )
        return {row.id: row.state for row in rows}


def events(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.fixture
def make_campaign(tmp_path: Path, mastodon_server: MastodonServer) -> Iterator[Callable[..., Campaign]]:
    made: list[Campaign] = []

    def make(*, masto: bool = True, pds: PdsServer | None = None, zone: str = "Europe/Berlin") -> Campaign:
        folder = tmp_path / f"campaign{len(made)}"
        (folder / "messages").mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLIFIER_")}
        env |= {
            "AMPLIFIER_SECRETS_DIR": str(tmp_path / "no-secrets"),
            "MASTO_URL": mastodon_server.url,
            "ZONE": zone,
            "TZ": "America/Los_Angeles",  # the machine's zone must never matter
        }
        campaign = Campaign(folder, folder / "state", env)
        if masto:
            campaign.masto = mastodon_server.create_account(mastodon_server.unique_username("daemon"))
            env[TOKEN_ENV] = campaign.masto.access_token
        if pds is not None:
            campaign.sky = pds.create_account("daemon")
            env[PASSWORD_ENV] = campaign.sky.password
            env["PDS_URL"] = pds.url
        made.append(campaign)
        return campaign

    yield make
    for campaign in made:
        for proc in campaign.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def masto_texts(server: MastodonServer, account: ServerAccount) -> list[str]:
    return [status["content"] for status in server.statuses(account)]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --------------------------------------------------------------------------------------------- crash


BURST = 20


@pytest.mark.slow
def test_sigkill_at_random_points_publishes_every_post_exactly_once(
    make_campaign: Callable[..., Campaign], mastodon_server: MastodonServer, pds: PdsServer
) -> None:
    campaign = make_campaign(pds=pds)
    # Large enough that a daemon left running for up to half a second cannot publish it all before four kills.
    campaign.write(once_rules(BURST, NINE))
    now = "2027-10-20T09:30"
    rng = random.Random(int(os.environ.get("AMPLIFIER_TEST_SEED", "4")))
    kills = 0
    reconciled: list[dict[str, Any]] = []
    began = time.monotonic()
    for round_ in range(40):
        # At least four kills, however slow the machine; past 40 s stop as soon as there were four (hard cap 180 s).
        elapsed = time.monotonic() - began
        if (elapsed > 40 and kills >= 4) or elapsed > 180:
            break
        if round_ % 2 == 0:
            # The test hook: die right after the N-th successful request, before the ledger write.
            out = campaign.run(
                "run",
                "--once",
                "--now",
                now,
                "--log-format",
                "json",
                env={"AMPLIFIER_TEST_CRASH_AFTER_REQUEST": str(rng.randint(1, 3))},
            )
            assert out.returncode in (0, 137), out.stderr
            reconciled += [e for e in events(out.stderr) if e["event"] == "reconcile"]
            kills += out.returncode == 137
            if out.returncode == 0:
                break
        else:
            # SIGKILL the long-running daemon at a random instant once it runs (reconciling or publishing).
            started = campaign.log_path.read_text().count('"started"') if campaign.log_path.exists() else 0
            proc = campaign.start("--now", now)

            def daemon_started(n: int = started) -> bool:
                return campaign.log_path.read_text().count('"started"') > n

            wait_for(daemon_started, 20, "the daemon")
            time.sleep(rng.uniform(0.0, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
    assert kills >= 4
    # Posts whose request went out but whose ledger write did not were found by reconciliation.
    assert any(e["outcome"] in ("published", "released") for e in reconciled), reconciled
    final = campaign.run("run", "--once", "--now", now)
    assert final.returncode == 0, final.stderr

    ids = [f"r{n:02d}:{account}:2027-10-20T09:{n:02d}" for n in range(BURST) for account in ("masto", "sky")]
    states = campaign.ledger_states()
    assert {post_id: states[post_id] for post_id in ids} == dict.fromkeys(ids, State.PUBLISHED)

    assert campaign.masto is not None
    texts = masto_texts(mastodon_server, campaign.masto)
    assert len(texts) == BURST, texts
    assert len(set(texts)) == BURST
    assert campaign.sky is not None
    records = pds.list_records(campaign.sky.did, "app.bsky.feed.post")
    assert len(records) == BURST
    when = {n: NINE + dt.timedelta(minutes=n) for n in range(BURST)}
    expected = {record_key(f"r{n:02d}:sky:2027-10-20T09:{n:02d}", 0, when[n]) for n in range(BURST)}
    assert {record["uri"].rsplit("/", 1)[1] for record in records} == expected


# --------------------------------------------------------------------------------------------- faults


def test_faults_every_post_published_once_and_nothing_before_the_reset(
    make_campaign: Callable[..., Campaign], mastodon_faults: MastodonServer
) -> None:
    campaign = make_campaign()
    # Real time here: the server's reset time is real time. Four posts due a few minutes ago.
    first = dt.datetime.now(BERLIN).replace(second=0, microsecond=0) - dt.timedelta(minutes=6)
    campaign.write(once_rules(4, first))
    assert campaign.masto is not None
    account = campaign.masto
    posts = "/api/v1/statuses"
    mastodon_faults.reset_request_counts()
    # First a 429 whose reset is 6 s from now, then 502, 502, 503, then a request slower than the client's
    # timeout (its outcome is unknown to the client; mastodon-mock drops it, a real server may create the
    # status: the re-send under the same key must get it back, not make a second one).
    injected = time.monotonic()
    mastodon_faults.inject(status=429, times=1, path=posts, method="POST", ratelimit_reset_in=6)
    mastodon_faults.inject(status=502, times=2, path=posts, method="POST")
    mastodon_faults.inject(status=503, times=1, path=posts, method="POST")
    mastodon_faults.inject(delay=1.5, times=1, path=posts, method="POST")
    proc = campaign.start(
        env={"AMPLIFIER_TEST_BACKOFF": "2", "AMPLIFIER_TEST_REQUEST_TIMEOUT": "0.7"},
    )
    try:
        wait_for(lambda: mastodon_faults.request_count(posts) >= 1, 30, "the first (rate-limited) request")
        while time.monotonic() - injected < 5.5:  # nothing may be sent before the reset time
            assert mastodon_faults.request_count(posts) == 1
            time.sleep(0.1)
        wait_for(lambda: len(mastodon_faults.statuses(account)) >= 4, 60, "all posts")
        time.sleep(2.5)  # let the slow request and any stray retry land
    finally:
        log = campaign.stop(proc)
    reasons = [e["reason"] for e in log if e["event"] == "retry"]
    for needle in ("429", "502", "503"):
        assert any(needle in reason for reason in reasons), (needle, reasons)
    # The timeout is no ordinary retry: its outcome is unknown, and reconciliation re-sends it under the key
    unknown = [e["reason"] for e in log if e["event"] == "unknown"]
    assert any("timed out" in reason for reason in unknown), (unknown, reasons)
    assert not any("timed out" in reason for reason in reasons), reasons
    assert any(e["event"] == "reconcile" and e["outcome"] == "released" for e in log)
    texts = masto_texts(mastodon_faults, account)
    assert len(texts) == 4
    assert len(set(texts)) == 4
    assert proc.returncode == 0
    assert log[-1]["event"] == "stopped"
    assert all(state == State.PUBLISHED for state in campaign.ledger_states().values())


# --------------------------------------------------------------------------------------------- clock


@pytest.mark.parametrize(
    ("zone", "rule_at", "now", "published"),
    [
        # Berlin leaves summer time on 2027-10-31 at 03:00 CEST -> 02:00 CET: 02:30 happens twice.
        ("Europe/Berlin", "2027-10-31T02:30", "2027-10-31T00:31+00:00", True),  # first 02:30 (CEST)
        ("Europe/Berlin", "2027-10-31T02:30", "2027-10-31T00:29+00:00", False),
        # New York enters summer time on 2027-03-14: 02:30 does not exist and moves to 03:30 EDT.
        ("America/New_York", "2027-03-14T02:30", "2027-03-14T07:29+00:00", False),
        ("America/New_York", "2027-03-14T02:30", "2027-03-14T07:30+00:00", True),
        # Tokyo (no DST), run from a machine in Los Angeles: --now without an offset is Tokyo time.
        ("Asia/Tokyo", "2027-10-20T09:00", "2027-10-20T09:00", True),
        ("Asia/Tokyo", "2027-10-20T09:00", "2027-10-20T08:59", False),
    ],
)
def test_once_at_chosen_instants(
    make_campaign: Callable[..., Campaign],
    mastodon_server: MastodonServer,
    zone: str,
    rule_at: str,
    now: str,
    published: bool,
) -> None:
    campaign = make_campaign(zone=zone)
    rule = f"  r:\n    kind: once\n    at: {rule_at}\n    messages: hello\n"
    campaign.write(rule)
    out = campaign.run("run", "--once", "--now", now, "--log-format", "json")
    assert out.returncode == 0, out.stderr
    assert campaign.masto is not None
    texts = masto_texts(mastodon_server, campaign.masto)
    assert len(texts) == (1 if published else 0)
    states = campaign.ledger_states()
    assert list(states.values()) == [State.PUBLISHED if published else State.PLANNED]


# --------------------------------------------------------------------------------------------- edits


def test_edits_while_running(make_campaign: Callable[..., Campaign], mastodon_server: MastodonServer) -> None:
    campaign = make_campaign()
    campaign.write(once_rules(1, NINE))
    proc = campaign.start("--now", "2027-10-20T09:00", env={"AMPLIFIER_TEST_WATCH": "0.3"})
    assert campaign.masto is not None
    account = campaign.masto
    try:
        wait_for(lambda: len(mastodon_server.statuses(account)) == 1, 30, "the first post")
        schedule = campaign.folder / "schedule.yaml"
        good = schedule.read_text()
        # A broken edit: the daemon keeps running the last valid campaign.
        schedule.write_text(good.replace("kind: once", "kind: [once"))
        wait_for(lambda: "reload invalid" in campaign.log_path.read_text(), 10, "the invalid reload")
        assert proc.poll() is None
        # A valid edit: one more post due now (posted) and one tomorrow (planned).
        campaign.write(
            once_rules(1, NINE)
            + once_rules(1, NINE, prefix="s")
            + once_rules(1, NINE + dt.timedelta(days=1), prefix="t")
        )
        wait_for(lambda: len(mastodon_server.statuses(account)) == 2, 30, "the re-planned post")
        # Another valid edit removes tomorrow's post: cancelled.
        campaign.write(once_rules(1, NINE) + once_rules(1, NINE, prefix="s"))
        wait_for(
            lambda: campaign.ledger_states().get("t00:masto:2027-10-21T09:00") == State.CANCELLED,
            10,
            "the cancellation",
        )
    finally:
        log = campaign.stop(proc)
    invalid = [e for e in log if e["event"] == "reload invalid" and "problem" in e]
    assert invalid
    assert all("schedule.yaml:" in e["problem"] for e in invalid)
    assert [e["event"] for e in log].count("reload ok") >= 2
    assert proc.returncode == 0
    assert len(masto_texts(mastodon_server, account)) == 2  # r00 was never sent again
    states = campaign.ledger_states()
    assert states["r00:masto:2027-10-20T09:00"] == State.PUBLISHED
    assert states["s00:masto:2027-10-20T09:00"] == State.PUBLISHED
