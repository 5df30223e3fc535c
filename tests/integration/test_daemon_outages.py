"""No silent outage, as an operator runs it: ``amplifier run`` as a subprocess against mastodon-mock, its alerts to a
``json://`` receiver and its dead man's switch to an HTTP receiver on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .servers import MastodonServer
from .servers.receivers import HttpReceiver

pytestmark = pytest.mark.integration

HOOK = "hook-0a1b2c3d4e5f6a7b"  # the webhook URL's token
PING = "ping-9f8e7d6c5b4a3b2c"  # the dead man's switch's token
BAD = ["bad-token-aaaa-111111", "bad-token-bbbb-222222", "bad-token-cccc-333333"]

SCHEDULE = """\
campaign:
  name: Alerting integration
  timezone: UTC
accounts:
{accounts}
rules:
  hello:
    kind: once
    at: 2027-10-20T09:00
    messages: hello
    missed: {{action: post, grace: P1D}}
notify:
  group: 1
  destinations:
    chat:
      url_env: AMP_ALERTS_CHAT
"""

ACCOUNT = """\
  m{n}:
    platform: mastodon
    instance: {url}
    token_env: AMP_ALERTS_TOKEN_{n}
"""

MESSAGES = """\
sets:
  hello:
    variants:
      - text:
          en: "Hello from {{ account.id }}"
"""


def run(
    folder: Path, env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amplifier", "--config", str(folder), "--state", str(folder / "state"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def campaign(tmp_path: Path, mastodon_server: MastodonServer) -> Path:
    folder = tmp_path / "campaign"
    (folder / "messages").mkdir(parents=True)
    accounts = "".join(ACCOUNT.format(n=n, url=mastodon_server.url) for n in range(3))
    (folder / "schedule.yaml").write_text(SCHEDULE.format(accounts=accounts))
    (folder / "messages" / "hello.yaml").write_text(MESSAGES)
    return folder


def environment(tmp_path: Path, chat: HttpReceiver, ping: HttpReceiver) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLIFIER_")}
    env |= {f"AMP_ALERTS_TOKEN_{n}": token for n, token in enumerate(BAD)}
    env |= {
        "AMPLIFIER_SECRETS_DIR": str(tmp_path / "no-secrets"),
        "AMP_ALERTS_CHAT": chat.url(f"alerts/{HOOK}"),
        "AMPLIFIER_HEARTBEAT_URL": f"http://127.0.0.1:{ping.port}/ping/{PING}",
    }
    return env


def test_rejected_tokens_are_one_alert_and_the_switch_fails(
    campaign: Path, tmp_path: Path, mastodon_server: MastodonServer
) -> None:
    mastodon_port = mastodon_server.url.rsplit(":", 1)[1].rstrip("/")
    with HttpReceiver() as chat, HttpReceiver() as ping:
        env = environment(tmp_path, chat, ping)
        # Before anything is due: a healthy pass, the switch is pinged, nothing to alert.
        early = run(campaign, env, "run", "--once", "--now", "2027-10-20T08:00")
        assert early.returncode == 0, early.stderr
        assert [r.path for r in ping.received] == [f"/ping/{PING}"]
        assert chat.received == []
        # Due now: the server rejects the three tokens; the accounts are paused.
        due = run(campaign, env, "run", "--once", "--now", "2027-10-20T09:00")
        assert due.returncode == 3, due.stderr
        assert [r.path for r in ping.received] == [f"/ping/{PING}", f"/ping/{PING}/fail"]
        assert len(chat.received) == 1, [r.body for r in chat.received]
        body = chat.received[0].body
        assert body["title"] == "amplifier · Alerting integration: 3 accounts paused"
        assert body["message"].startswith("3 accounts paused on 127.0.0.1 (")
        assert f"http://127.0.0.1:{mastodon_port} rejected the access token (HTTP 401" in body["message"]
        assert "(1×)" not in body["message"]  # one cause for the three
        assert (
            "Fix the secrets AMP_ALERTS_TOKEN_0, AMP_ALERTS_TOKEN_1, AMP_ALERTS_TOKEN_2;" in body["message"]
        )
        sent = json.dumps(body)
        for secret in (*BAD, HOOK, PING):
            assert secret not in sent
            assert secret not in due.stderr
        # Every due post it did not send, with why.
        unsent = [line for line in due.stderr.splitlines() if " not sent " in line]
        assert len(unsent) == 3, due.stderr
        assert all("the account is paused" in line for line in unsent)
        # The next pass: still paused (the same tokens), still failing, no repeated alert.
        again = run(campaign, env, "run", "--once", "--now", "2027-10-20T09:01")
        assert again.returncode == 3, again.stderr
        assert len(chat.received) == 1
        assert ping.received[-1].path == f"/ping/{PING}/fail"


def test_a_fixed_token_resumes_the_account(
    campaign: Path, tmp_path: Path, mastodon_server: MastodonServer
) -> None:
    with HttpReceiver() as chat, HttpReceiver() as ping:
        env = environment(tmp_path, chat, ping)
        assert run(campaign, env, "run", "--once", "--now", "2027-10-20T09:00").returncode == 3
        account = mastodon_server.create_account(mastodon_server.unique_username("alerts"))
        env["AMP_ALERTS_TOKEN_1"] = account.access_token
        fixed = run(campaign, env, "run", "--once", "--now", "2027-10-20T09:02")
        assert "resumed account=m1" in fixed.stderr, fixed.stderr
        assert 'reason="its secret AMP_ALERTS_TOKEN_1 changed"' in fixed.stderr
        assert len(mastodon_server.statuses(account)) == 1
        assert fixed.returncode == 3  # m0 and m2 are still paused
        assert "account resumed" in chat.received[-1].body["title"]


def test_sigterm_sends_daemon_stopped(campaign: Path, tmp_path: Path) -> None:
    with HttpReceiver() as chat, HttpReceiver() as ping:
        env = environment(tmp_path, chat, ping)
        log = tmp_path / "daemon.log"
        with log.open("w") as stderr:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "amplifier",
                    "--config",
                    str(campaign),
                    "--state",
                    str(campaign / "state"),
                    "run",
                    "--now",
                    "2027-10-20T08:00",
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                cwd=campaign,
            )
        try:
            deadline = time.monotonic() + 30
            while " started " not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=40) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        titles = [r.body["title"] for r in chat.received]
        assert titles == ["amplifier · Alerting integration: daemon stopped"], log.read_text()
        assert "stopped by a signal" in chat.received[0].body["message"]


# --------------------------------------------------------------------------------------------- a slow reload

SLOW_SCHEDULE = """\
campaign:
  name: Slow reload
  timezone: UTC
accounts:
  m:
    platform: mastodon
    instance: {url}
    token_env: AMP_RELOAD_TOKEN
rules:
  a:
    kind: once
    at: 2027-10-20T09:00
    messages: hello
{slow}"""

SLOW_RULE = "  {set}{n}:\n    kind: once\n    at: 2027-10-20T1{n}:00\n    messages: {set}\n"

SLOW_SET = """\
sets:
  {set}:
    variants:
      - text:
          en: "{text}"
"""
# About a quarter of a second per render here (within the sandbox's bounds): ten posts, seconds.
SLOW_TEXT = (
    "Slow {% set ns = namespace(x=0) %}{% for i in range(250) %}{% for j in range(250) %}"
    "{% set ns.x = (ns.x + j) % 7 %}{% endfor %}{% endfor %}{{ ns.x }}"
)


def test_a_slow_reload_does_not_stop_posting(tmp_path: Path, mastodon_server: MastodonServer) -> None:
    folder = tmp_path / "slow"
    (folder / "messages").mkdir(parents=True)
    sets = ("slow", "slower")
    slow_rules = "".join(SLOW_RULE.format(n=n, set=name) for name in sets for n in range(5))
    (folder / "schedule.yaml").write_text(SLOW_SCHEDULE.format(url=mastodon_server.url, slow=slow_rules))
    (folder / "messages" / "hello.yaml").write_text(MESSAGES)
    for name in sets:
        (folder / "messages" / f"{name}.yaml").write_text(SLOW_SET.format(set=name, text="Fast for now"))
    account = mastodon_server.create_account(mastodon_server.unique_username("reload"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLIFIER_")}
    env |= {
        "AMPLIFIER_SECRETS_DIR": str(tmp_path / "no-secrets"),
        "AMP_RELOAD_TOKEN": account.access_token,
        "AMPLIFIER_TEST_WATCH": "0.2",
        "AMPLIFIER_TEST_RELOAD_SLOW": "1",
    }
    log = tmp_path / "daemon.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [
                *(
                    sys.executable,
                    "-m",
                    "amplifier",
                    "--config",
                    str(folder),
                    "--state",
                    str(folder / "state"),
                ),
                *("run", "--log-format", "json", "--now", "2027-10-20T08:59:58"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=folder,
        )

    def wait_for(*texts: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in log.read_text() for text in texts):
            assert time.monotonic() < deadline, f"no {texts!r} in {log.read_text()}"
            time.sleep(0.05)

    try:
        wait_for('"started"', timeout=30)
        for name in sets:
            (folder / "messages" / f"{name}.yaml").write_text(SLOW_SET.format(set=name, text=SLOW_TEXT))
        wait_for('"reload started"', timeout=10)
        status = run(folder, env, "status", "--format", "json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["heartbeat"]["reloading_since"] is not None
        wait_for('"reload ok"', '"reload invalid"', timeout=60)
        assert len(mastodon_server.statuses(account)) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    # The post went out on time, while the reload was still running; the reload was slow, and said so.
    ended = min(names.index(name) for name in ("reload ok", "reload invalid") if name in names)
    assert names.index("reload started") < names.index("posted") < ended, names
    assert "late" not in events[names.index("posted")]
    assert "reload slow" in names
