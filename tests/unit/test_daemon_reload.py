"""A reload never stops posting: the new files are loaded and rendered on their own thread while the daemon posts
the last valid campaign, and a reload that takes long is visible (log, heartbeat, alert)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from amplifier.campaign.load import Campaign, load_campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.daemon import filewatch
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


def _daemon(tmp_path: Path, settings: DaemonSettings) -> tuple[Path, Daemon, EventLog]:
    folder = tmp_path / "campaign"
    schedule = write_campaign(folder, once("a", "2027-10-20T09:00", accounts="[masto]"))
    start = at("2027-10-20T08:00")
    clock = offset_clock(start)
    ledger = open_ledger(folder / "state", start)
    log = EventLog(None, clock=clock, keep=True)
    server = FakeServer()

    def publisher(account: str, config: MastodonAccount | BlueskyAccount) -> FakePublisher:
        return FakePublisher(account, config.platform, server)

    daemon = Daemon(
        load_campaign(schedule),
        ledger,
        publisher,
        clock=clock,
        log=log,
        settings=settings,
        state_dir=folder / "state",
        rng=random.Random(1),
        environ={},
    )
    daemon.start(clock())
    return schedule, daemon, log


@contextmanager
def _serving(tmp_path: Path, settings: DaemonSettings) -> Iterator[tuple[Path, Daemon, EventLog]]:
    """A daemon of the one-post campaign, served (``serve``) on its own thread until the block ends."""
    schedule, daemon, log = _daemon(tmp_path, settings)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(daemon, stop), kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(10)
        yield schedule, daemon, log
    finally:
        stop.set()
        thread.join(15)
        daemon.close()
        daemon.ledger.close()
    assert not thread.is_alive()


def _reloaded_within(log: EventLog, seconds: float) -> float:
    began = time.monotonic()
    while not log.of("reload ok") and time.monotonic() - began < seconds:
        time.sleep(0.01)
    assert log.of("reload ok")
    return time.monotonic() - began


def _edit(schedule: Path) -> None:
    """An editor's save: the new text written to a temporary file, renamed over the schedule."""
    temp = schedule.with_name(".schedule.yaml.swp")
    temp.write_text(schedule.read_text() + once("b", "2027-10-20T09:00", accounts="[masto]"))
    temp.replace(schedule)


def test_an_edit_is_reloaded_when_the_kernel_reports_it_not_at_the_next_poll(tmp_path: Path) -> None:
    """Polled every 30 s (and a backstop of 60 s), an edit would wait for the next look; notified, it is
    loaded, rendered and swapped in within a second (the reload runs on its own thread: swapped in as soon as
    it is ready, not at the next look either)."""
    with _serving(tmp_path, DaemonSettings(watch_interval=30)) as (schedule, daemon, log):
        assert daemon.watcher is not None
        _edit(schedule)
        assert _reloaded_within(log, 5) < 1.0
        assert "b:masto:2027-10-20T09:00" in daemon.posts
        assert len(log.of("reload started")) == 1  # the editor's save is one reload


def test_without_file_notifications_the_daemon_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> filewatch.Observer:
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(filewatch, "inotify_observer", unavailable)
    with _serving(tmp_path, DaemonSettings(watch_interval=0.1)) as (schedule, daemon, log):
        assert daemon.watcher is None
        assert log.of("watching")[0]["files"] == "polled every 0.1s (no file notifications)"
        _edit(schedule)
        _reloaded_within(log, 5)
        assert "b:masto:2027-10-20T09:00" in daemon.posts


def test_an_idle_daemon_looks_at_its_alerts_at_the_heartbeat_interval(tmp_path: Path) -> None:
    """Idle, nothing can be stuck and no alert waits: the alerts are looked at with the heartbeat, not every
    watch interval; a pass that runs (is it stuck?) brings the frequent look back."""
    settings = DaemonSettings(watch_interval=0.05, heartbeat_interval=0.5)
    with _serving(tmp_path, settings) as (_schedule, daemon, _log):
        looks: list[float] = []
        real = daemon.alerting.watch

        def watch(now: datetime) -> None:
            looks.append(time.monotonic())
            real(now)

        daemon.alerting.watch = watch  # type: ignore[method-assign]
        time.sleep(1.6)
        assert 1 <= len(looks) <= 5  # not 32
        daemon.alerting.pass_started(daemon.clock())  # a pass that does not end
        time.sleep(1.0)  # the next slow look sees it, then looks every 0.05 s
        began = time.monotonic() - 0.4
        assert len([at for at in looks if at > began]) >= 4


def test_the_events_that_count_are_the_campaigns_files_and_the_pause_switches(tmp_path: Path) -> None:
    schedule, daemon, _log = _daemon(tmp_path, DaemonSettings())
    try:
        root = schedule.parent.resolve()
        state = (root / "state").resolve()
        assert {root, root / "messages", state} <= daemon.watched_folders()
        counted = [
            root / "schedule.yaml",
            root / "messages" / "hello.yaml",
            root / "messages" / "new.yaml",  # a file the messages glob will match
            state / "PAUSE",
            state / "ledger.sqlite3",
            state / "ledger.sqlite3-wal",  # `amplifier pause` from another process
        ]
        ignored = [
            root / ".schedule.yaml.swp",  # an editor's swap file
            root / "messages" / "hello.yaml~",
            root / "notes.txt",
            state / "heartbeat.json",  # the daemon's own heartbeat
            state / ".heartbeat.json.tmp",
            tmp_path / "elsewhere" / "PAUSE",
        ]
        (root / "..data").symlink_to(root / "messages")  # how a Kubernetes ConfigMap swaps its files at once
        counted.append(root / "..data")
        assert [path for path in counted if not daemon.watch_relevant(path)] == []
        assert [path for path in ignored if daemon.watch_relevant(path)] == []
    finally:
        daemon.close()
        daemon.ledger.close()
