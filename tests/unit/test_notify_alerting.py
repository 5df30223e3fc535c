"""The daemon-facing facade (:class:`Alerting`): a pass that does not end is reported once, a finished pass flushes
and pings the switch, stopping says so; and the daily digest read from a real ledger."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime, timedelta
from pathlib import Path

from amplifier.delivery.ledger import PlanEntry, open_ledger
from amplifier.notify.alerting import Alerting
from amplifier.notify.alerts import Message, post_failed
from amplifier.notify.destinations import Destination
from amplifier.notify.digest import build_digest, digest_message
from amplifier.notify.heartbeat import DeadMansSwitch
from amplifier.notify.notifier import Notifier
from tests.unit.test_notify import ALL, HOOK, Recorder

T0 = datetime(2027, 10, 29, 6, 0, tzinfo=UTC)  # 08:00 in Berlin


class Switch(DeadMansSwitch):
    """Records pings instead of sending them (the real one is tested over HTTP in tests/integration)."""

    def __init__(self) -> None:
        super().__init__("https://hc-ping.example/uuid")
        self.pings: list[bool] = []

    def ping(self, healthy: bool) -> None:
        self.pings.append(healthy)


def alerting(sender: Recorder, *, digest: dt.time | None = None) -> tuple[Alerting, Switch]:
    notifier = Notifier(
        [Destination("chat", HOOK, "CHAT_URL", ALL, digest=digest)],
        campaign="C",
        zone="Europe/Berlin",
        sender=sender,
        log=lambda *a, **k: None,
    )
    switch = Switch()
    return Alerting(notifier, switch, digest=lambda now: Message("digest", f"at {now:%H:%M}")), switch


def test_a_stuck_pass_is_reported_once(tmp_path: Path) -> None:
    sender = Recorder()
    alert, _switch = alerting(sender)
    alert.pass_started(T0)
    for minute in range(0, 40):
        alert.watch(T0 + timedelta(minutes=minute))
    assert alert.notifier.wait(5)
    assert [message.title for _, message in sender.sent] == ["amplifier · C: daemon stuck"]
    assert sender.sent[0][1].body.startswith("Daemon stuck: a pass has run for more than 15 minutes.")


def test_a_finished_pass_flushes_and_pings(tmp_path: Path) -> None:
    sender = Recorder()
    alert, switch = alerting(sender)
    alert.pass_started(T0)
    alert.raise_(post_failed("p1", "sky", "422: too long"), T0)
    alert.pass_finished(T0 + timedelta(seconds=5), healthy=False)
    assert sender.sent == []  # still within the group window
    alert.pass_finished(T0 + timedelta(seconds=40), healthy=True)
    alert.watch(T0 + timedelta(hours=1))  # not stuck: the pass finished
    assert alert.notifier.wait(5)
    assert [message.title for _, message in sender.sent] == ["amplifier · C: 1 post failed"]
    assert switch.pings == [False, True]


def test_the_digest_goes_out_at_its_time_with_the_watch(tmp_path: Path) -> None:
    sender = Recorder()
    alert, _switch = alerting(sender, digest=dt.time(9, 0))
    alert.watch(T0 + timedelta(minutes=59))
    alert.watch(T0 + timedelta(minutes=60))
    alert.watch(T0 + timedelta(minutes=61))
    assert alert.notifier.wait(5)
    assert sender.sent == [(HOOK, Message("digest", "at 07:00"))]


def test_stopping_says_so_and_waits(tmp_path: Path) -> None:
    sender = Recorder()
    alert, _switch = alerting(sender)
    assert alert.close(T0, reason="SIGTERM", timeout=5)
    assert [message.body.split(".")[0] for _, message in sender.sent] == ["Daemon stopped: SIGTERM"]


def test_a_digest_that_cannot_be_built_is_logged_not_raised() -> None:
    from amplifier.delivery.ledger import LedgerBusy

    log: list[tuple[str, dict[str, object]]] = []
    notifier = Notifier(
        [Destination("chat", HOOK, "CHAT_URL", ALL, digest=dt.time(9, 0))],
        campaign="C",
        zone="Europe/Berlin",
        sender=Recorder(),
        log=lambda event, **fields: log.append((event, fields)),
    )

    def busy(now: datetime) -> Message:
        raise LedgerBusy(Path("/state/ledger.sqlite3"))

    alert = Alerting(notifier, Switch(), digest=busy)
    alert.pass_finished(T0 + timedelta(hours=1, minutes=1), healthy=True)
    assert [(event, fields["action"]) for event, fields in log] == [("notify error", "digest")]
    assert "the ledger is busy" in str(log[0][1]["reason"])


def test_off_sends_nothing() -> None:
    alert = Alerting.off("C")
    alert.raise_(post_failed("p1", "sky", "422"), T0)
    alert.pass_finished(T0 + timedelta(minutes=5), healthy=True)
    assert alert.close(T0, reason="stop", timeout=1)
    assert not alert.switch.active


def test_the_digest_from_the_ledger(tmp_path: Path) -> None:
    with open_ledger(tmp_path, T0 - timedelta(days=2)) as ledger:
        entries = [
            PlanEntry(f"p{n}", "sky", "bluesky", "countdown", T0 - timedelta(hours=10 - n), f"h{n}", 1)
            for n in range(4)
        ]
        entries.append(PlanEntry("next1", "masto", "mastodon", "countdown", T0 + timedelta(hours=3), "h9", 1))
        ledger.sync_plan(entries, T0 - timedelta(days=1))
        for n in (0, 1):
            at = T0 - timedelta(hours=10 - n)
            assert ledger.claim(f"p{n}", at, "t")
            ledger.mark_published(
                f"p{n}", [{"uri": f"at://x/{n}", "url": f"https://bsky.app/p{n}"}], at, token="t"
            )
        assert ledger.claim("p2", T0 - timedelta(hours=8), "t")
        ledger.mark_failed("p2", "422: text too long", T0 - timedelta(hours=8), token="t")
        ledger.mark_expired("p3", "missed its window", T0 - timedelta(hours=6))
        ledger.pause_account("sky", "credentials rejected", T0 - timedelta(hours=5))
        digest = build_digest(ledger, T0)
    message = digest_message(digest, "Kobane Day", "Europe/Berlin")
    assert message.title == "amplifier · Kobane Day: daily digest, 2 published, 3 to look at"
    lines = message.body.splitlines()
    assert lines[0] == "Published in the last 24 hours: 2 (sky 2)."
    assert lines[1] == "  Thu 28 Oct 22:00 sky: https://bsky.app/p0"
    assert "Failed: 1 (`amplifier history` gives each reason)." in lines
    assert "  p2 (sky): 422: text too long" in lines
    assert "  p3 (sky): missed its window" in lines
    assert "Account sky is paused: credentials rejected" in lines
    assert lines[-2:] == ["Next:", "  Fri 29 Oct 11:00 masto: next1"]
