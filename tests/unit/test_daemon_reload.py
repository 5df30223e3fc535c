"""A reload never stops posting: the new files are loaded and rendered on their own thread while the daemon posts
the last valid campaign, and a reload that takes long is visible (log, heartbeat, alert)."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import timedelta
from pathlib import Path

from amplifier.campaign.load import Campaign, load_campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.daemon.events import EventLog
from amplifier.daemon.loop import Daemon
from amplifier.daemon.scheduler import serve
from amplifier.daemon.settings import DaemonSettings, offset_clock
from amplifier.delivery.ledger import State, open_ledger
from amplifier.notify.alerting import Alerting
from amplifier.notify.alerts import Message
from amplifier.notify.destinations import Destination
from amplifier.notify.heartbeat import DeadMansSwitch
from amplifier.notify.notifier import Notifier

from .test_daemon import FakePublisher, FakeServer, at, once, write_campaign

SLOW = 4.0  # seconds the edited campaign takes to load and render


def test_a_slow_reload_does_not_hold_up_posting(tmp_path: Path) -> None:
    folder = tmp_path / "campaign"
    schedule = write_campaign(folder, once("a", "2027-10-20T09:00", accounts="[masto]"))
    campaign = load_campaign(schedule)
    start = at("2027-10-20T08:59:58")  # the post is due two seconds after the daemon starts
    clock = offset_clock(start)
    ledger = open_ledger(folder / "state", start)
    server = FakeServer()
    log = EventLog(None, clock=clock, keep=True)
    sent: list[Message] = []
    notifier = Notifier(
        [Destination("chat", "json://127.0.0.1:9/x", "CHAT", frozenset({"daemon_stuck"}))],
        campaign=campaign.name,
        sender=lambda url, message, timeout: sent.append(message),
        group=timedelta(0),
    )
    loading = threading.Event()

    def loader(path: Path) -> Campaign:
        loading.set()
        time.sleep(SLOW)  # a template that takes seconds to render, as far as the daemon can tell
        return load_campaign(path)

    def publisher(account: str, settings: MastodonAccount | BlueskyAccount) -> FakePublisher:
        return FakePublisher(account, settings.platform, server)

    daemon = Daemon(
        campaign,
        ledger,
        publisher,
        clock=clock,
        log=log,
        settings=DaemonSettings(watch_interval=0.1, reload_slow=1.0),
        state_dir=folder / "state",
        loader=loader,
        rng=random.Random(1),
        environ={},
        alerting=Alerting(notifier, DeadMansSwitch(None)),
    )
    daemon.start(clock())
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(target=serve, args=(daemon, stop), kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(10)
        # An edit that adds a second post: its load takes SLOW seconds.
        schedule.write_text(schedule.read_text() + once("b", "2027-10-20T09:00", accounts="[masto]"))
        assert loading.wait(5)
        began = time.monotonic()

        def reloading_since() -> str | None:
            value = json.loads((folder / "state" / "heartbeat.json").read_text())["reloading_since"]
            return str(value) if value else None

        while reloading_since() is None and time.monotonic() - began < 1:
            time.sleep(0.02)
        assert reloading_since() is not None  # `status` shows the reload in progress
        # The post of the running campaign goes out on time, while the reload still runs.
        deadline = time.monotonic() + SLOW
        while not server.published and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ("a:masto:2027-10-20T09:00", 0) in server.published
        assert time.monotonic() - began < SLOW - 0.5
        assert ledger.get("a:masto:2027-10-20T09:00").state == State.PUBLISHED
        # Slow: logged, and alerted as a stuck daemon.
        deadline = time.monotonic() + SLOW
        while not log.of("reload slow") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.of("reload slow")
        # Then the new campaign is swapped in, and its post goes out too.
        deadline = time.monotonic() + SLOW + 10
        while ("b:masto:2027-10-20T09:00", 0) not in server.published and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ("b:masto:2027-10-20T09:00", 0) in server.published
        assert log.of("reload ok")
        assert reloading_since() is None
    finally:
        stop.set()
        thread.join(15)
        daemon.alerting.close(clock(), timeout=5)
        daemon.close()
        ledger.close()
    assert not thread.is_alive()
    assert any("a reload of the campaign files has run for more than 1 seconds" in m.body for m in sent)
