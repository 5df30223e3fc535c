"""Alerts over real transports on loopback: Apprise's ``json://`` to an HTTP receiver and ``mailto://`` to an SMTP
server (aiosmtpd), started by the tests; the dead man's switch against the HTTP receiver; ``amplifier notify
--test`` as a user runs it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amplifier.notify import alerts
from amplifier.notify.destinations import Destination
from amplifier.notify.heartbeat import DeadMansSwitch
from amplifier.notify.notifier import Notifier
from amplifier.publish.sessions import StateDir
from tests.conftest import BASE_SCHEDULE, Result

from .servers.receivers import HttpReceiver, SmtpReceiver

pytestmark = pytest.mark.integration

T0 = datetime(2027, 10, 29, 8, 0, tzinfo=UTC)
EVERYTHING = frozenset(
    {"post_failed", "post_expired", "account_paused", "account_resumed", "outcome_unknown", "reload_rejected"}
    | {"daemon_stopped", "daemon_stuck"}
)
APP_PASSWORD = "abcd-efgh-ijkl-mnop"  # the Bluesky account's app password, echoed by a server below
TOKEN = "hook-token-0f9e8d7c6b5a"  # the webhook URL's token


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


def outage() -> list[alerts.Alert]:
    """Six accounts on one PDS rejected, 100 posts each failed: what a PDS outage used to look like."""
    found = [
        alerts.account_paused(
            f"acc{n}",
            f"acc{n}: 401 from the server: {{'error': 'AuthenticationRequired', 'password': '{APP_PASSWORD}'}}",
            "pds.example",
            f"ACC{n}_PASSWORD",
        )
        for n in range(6)
    ]
    found += [
        alerts.post_failed(
            f"post-{n:03}", f"acc{n % 6}", "HTTP 503 (gave up after 6 attempts)", "pds.example"
        )
        for n in range(600)
    ]
    return found


def make(tmp_path: Path, *destinations: Destination, log: list[tuple[str, dict[str, object]]]) -> Notifier:
    return Notifier(
        destinations,
        campaign="Kobane Day",
        state=StateDir(tmp_path / "state"),
        secrets=[APP_PASSWORD],
        timeout=5,
        log=lambda event, **fields: log.append((event, fields)),
    )


def test_an_outage_is_one_json_message_without_secrets(tmp_path: Path, http: HttpReceiver) -> None:
    url = http.url(f"alerts/{TOKEN}")
    log: list[tuple[str, dict[str, object]]] = []
    notifier = make(tmp_path, Destination("chat", url, "CHAT_URL", EVERYTHING), log=log)
    for alert in outage():
        notifier.raise_(alert, T0)
    notifier.flush(T0 + timedelta(seconds=30))
    assert notifier.wait(10)
    assert len(http.received) == 1
    got = http.received[0]
    assert got.path == f"/alerts/{TOKEN}"
    assert got.body["title"] == "amplifier · Kobane Day: 600 posts failed, 6 accounts paused"
    lines = got.body["message"].splitlines()
    assert lines[0].startswith("600 posts failed on pds.example (post-000, post-001,")
    assert lines[1].startswith(
        "6 accounts paused on pds.example (acc0, acc1, acc2, acc3, acc4, acc5): 401 from"
    )
    assert "Fix the secrets ACC0_PASSWORD," in lines[1]
    assert APP_PASSWORD not in json.dumps(got.body)
    assert TOKEN not in json.dumps(got.body)
    assert ("notify sent", {"destination": "chat", "alerts": 606}) in log


def test_the_repeat_interval_holds_across_a_restart(tmp_path: Path, http: HttpReceiver) -> None:
    url = http.url(f"alerts/{TOKEN}")
    stuck = alerts.daemon_stuck("a pass has run for 20 minutes")
    for minute in (0, 10, 30, 59):  # a new process each time, the same state folder
        notifier = make(tmp_path, Destination("chat", url, "CHAT_URL", EVERYTHING), log=[])
        notifier.raise_(stuck, T0 + timedelta(minutes=minute))
        assert notifier.close(T0 + timedelta(minutes=minute), timeout=10)
    assert len(http.received) == 1
    notifier = make(tmp_path, Destination("chat", url, "CHAT_URL", EVERYTHING), log=[])
    notifier.raise_(stuck, T0 + timedelta(minutes=61))
    assert notifier.close(T0 + timedelta(minutes=61), timeout=10)
    assert len(http.received) == 2


def test_mail_to_a_local_smtp_server(tmp_path: Path, smtp: SmtpReceiver) -> None:
    log: list[tuple[str, dict[str, object]]] = []
    notifier = make(
        tmp_path, Destination("mail", smtp.url("ops@example.org"), "MAIL_URL", EVERYTHING), log=log
    )
    notifier.raise_(alerts.reload_rejected(["schedule.yaml:3:13: unknown timezone 'Europe/Berln'"]), T0)
    notifier.raise_(
        alerts.post_expired("kobane-day-3", "masto", "missed its window while the daemon was down"), T0
    )
    assert notifier.close(T0, timeout=10)
    assert len(smtp.messages) == 1, log
    mail = smtp.messages[0]
    assert mail["To"] == "ops@example.org"
    assert mail["Subject"] == "amplifier · Kobane Day: 1 post expired, 1 campaign edit rejected"
    text = smtp.text(mail)
    assert (
        "1 post expired (kobane-day-3; account masto): missed its window while the daemon was down." in text
    )
    assert "1 campaign edit rejected: 1 problem(s). The daemon keeps running the last valid campaign." in text
    assert "  schedule.yaml:3:13: unknown timezone 'Europe/Berln'" in text


def test_a_dead_destination_does_not_hold_up_the_others(tmp_path: Path, http: HttpReceiver) -> None:
    # A server that accepts connections and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    log: list[tuple[str, dict[str, object]]] = []
    try:
        notifier = Notifier(
            [
                Destination("dead", f"json://127.0.0.1:{port}/{TOKEN}", "DEAD_URL", EVERYTHING),
                Destination("chat", http.url("alerts"), "CHAT_URL", EVERYTHING),
            ],
            campaign="C",
            timeout=1,
            log=lambda event, **fields: log.append((event, fields)),
        )
        notifier.raise_(alerts.daemon_stopped("SIGTERM"), T0)
        started = datetime.now(UTC)
        notifier.flush(T0, force=True)
        assert datetime.now(UTC) - started < timedelta(seconds=0.5)  # the caller never waits
        assert notifier.wait(15)
        assert len(http.received) == 1
        failures = [fields for event, fields in log if event == "notify failed"]
        assert [f["destination"] for f in failures] == ["dead"]
        assert TOKEN not in str(failures)
    finally:
        silent.close()


# --------------------------------------------------------------------------------------------- dead man's switch


def test_the_dead_mans_switch_pings_and_fails(http: HttpReceiver) -> None:
    log: list[tuple[str, dict[str, object]]] = []
    switch = DeadMansSwitch(
        f"http://127.0.0.1:{http.port}/ping/{TOKEN}", timeout=2, log=lambda e, **f: log.append((e, f))
    )
    switch.ping(healthy=True)
    assert switch.wait(5)
    switch.ping(healthy=False)
    assert switch.wait(5)
    assert [r.path for r in http.received] == [f"/ping/{TOKEN}", f"/ping/{TOKEN}/fail"]
    assert log == []


def test_an_unreachable_monitor_is_logged_not_raised() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    log: list[tuple[str, dict[str, object]]] = []
    switch = DeadMansSwitch(
        f"http://127.0.0.1:{port}/ping/{TOKEN}", timeout=1, log=lambda e, **f: log.append((e, f))
    )
    switch.ping(healthy=True)
    assert switch.wait(5)
    assert [event for event, _ in log] == ["heartbeat failed"]
    assert TOKEN not in str(log)


# --------------------------------------------------------------------------------------------- notify --test

NOTIFY = """\
notify:
  destinations:
    chat:
      url_env: TEST_NOTIFY_CHAT
    mail:
      url_env: TEST_NOTIFY_MAIL
      events: [daemon_stopped]
      digest: "09:00"
"""


@pytest.fixture
def notify_campaign(
    campaign_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    monkeypatch.setenv("AMPLIFIER_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.delenv("AMPLIFIER_HEARTBEAT_URL", raising=False)
    return campaign_dir(BASE_SCHEDULE + NOTIFY)


def test_notify_test_sends_to_every_destination(
    notify_campaign: Path,
    http: HttpReceiver,
    smtp: SmtpReceiver,
    run_cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_NOTIFY_CHAT", http.url(f"alerts/{TOKEN}"))
    monkeypatch.setenv("TEST_NOTIFY_MAIL", smtp.url("ops@example.org"))
    result = run_cli("-c", str(notify_campaign), "notify", "--test", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["version"] == 1
    assert set(data) == {"version", "destinations", "heartbeat"}
    assert data["heartbeat"] == {"url_env": "AMPLIFIER_HEARTBEAT_URL", "url_set": False}
    assert [(d["name"], d["ok"], d["tested"]) for d in data["destinations"]] == [
        ("chat", True, True),
        ("mail", True, True),
    ]
    assert set(data["destinations"][0]) == {
        "name",
        "url_env",
        "url_set",
        "events",
        "digest",
        "tested",
        "ok",
        "error",
    }
    assert data["destinations"][1]["digest"] == "09:00"
    assert TOKEN not in result.out + result.err
    assert len(http.received) == 1
    assert http.received[0].body["title"] == "amplifier · Test campaign: test message"
    assert len(smtp.messages) == 1
    assert "This is a test from `amplifier notify --test`" in smtp.text(smtp.messages[0])


def test_notify_test_says_which_failed_and_exits_6(
    notify_campaign: Path, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    with HttpReceiver(status=500) as broken:
        monkeypatch.setenv("TEST_NOTIFY_CHAT", broken.url(f"alerts/{TOKEN}"))
        # TEST_NOTIFY_MAIL is not set
        result = run_cli("-c", str(notify_campaign), "notify", "--test")
    assert result.code == 6
    assert "FAILED" in result.out
    assert "mail: the secret TEST_NOTIFY_MAIL is not set" in result.err
    assert "chat: Failed to send JSON POST notification" in result.err
    assert "dead man's switch (AMPLIFIER_HEARTBEAT_URL): not set" in result.out
    assert TOKEN not in result.out + result.err


def test_notify_without_a_section_is_a_usage_error(
    campaign_dir: Callable[..., Path], run_cli: Callable[..., Result]
) -> None:
    result = run_cli("-c", str(campaign_dir()), "notify", "--test")
    assert result.code == 2
    assert "no `notify:` section" in result.err


def test_commands_that_do_not_notify_do_not_import_apprise(campaign_dir: Callable[..., Path]) -> None:
    import subprocess
    import sys

    path = campaign_dir()
    code = (
        "import sys; from amplifier.cli.main import main\n"
        "try:\n    main(['-c', sys.argv[1], 'validate'])\nexcept SystemExit:\n    pass\n"
        "from amplifier.notify.notifier import Notifier\n"
        "print('apprise' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


_ = threading  # the receivers run threads; nothing else here needs it


def test_notify_lists_without_sending(
    notify_campaign: Path, http: HttpReceiver, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_NOTIFY_CHAT", http.url(f"alerts/{TOKEN}"))
    monkeypatch.setenv("TEST_NOTIFY_MAIL", "mailto://amplifier@127.0.0.1:9?to=ops@example.org")
    monkeypatch.setenv("AMPLIFIER_HEARTBEAT_URL", f"https://hc-ping.example/{TOKEN}")
    result = run_cli("-c", str(notify_campaign), "notify")
    assert result.code == 0, result.err
    assert http.received == []
    assert "TEST_NOTIFY_CHAT" in result.out
    assert "09:00" in result.out
    assert "dead man's switch (AMPLIFIER_HEARTBEAT_URL): set" in result.out
    assert TOKEN not in result.out + result.err
    monkeypatch.delenv("TEST_NOTIFY_MAIL")
    result = run_cli("-c", str(notify_campaign), "notify", "--format", "json")
    assert result.code == 6
    mail = json.loads(result.out)["destinations"][1]
    assert (mail["url_set"], mail["ok"], mail["tested"]) == (False, False, False)
