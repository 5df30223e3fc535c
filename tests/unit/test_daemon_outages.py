"""No silent outage, in process: the daemon raises its alerts where the facts happen, a credential pause resumes by
itself when the secret changes (an operator's never does), and ``run --once`` says what it did not send."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amplifier.campaign.load import load_campaign
from amplifier.campaign.models import BlueskyAccount, MastodonAccount
from amplifier.cli.daemon import once_exit_code
from amplifier.daemon.events import EventLog, TickReport
from amplifier.daemon.loop import Daemon
from amplifier.daemon.scheduler import run_once
from amplifier.daemon.settings import DaemonSettings
from amplifier.delivery.ledger import open_ledger
from amplifier.errors import ExitCode
from amplifier.notify.alerting import Alerting
from amplifier.notify.alerts import Message
from amplifier.notify.destinations import Destination
from amplifier.notify.heartbeat import DeadMansSwitch
from amplifier.notify.notifier import Notifier
from amplifier.publish.base import AuthError, PermanentError
from amplifier.publish.secrets import SecretSources

from .test_daemon import Clock, FakePublisher, FakeServer, at, once, write_campaign

EVENTS = frozenset(
    {"post_failed", "post_expired", "account_paused", "account_resumed", "outcome_unknown", "reload_rejected"}
    | {"daemon_stopped", "daemon_stuck"}
)
MASTO_TOKEN = "masto-token-0123456789"
SKY_PASSWORD = "sky-pass-9876543210"


class Sent:
    """A destination's sender that keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, url: str, message: Message, timeout: float) -> None:
        self.messages.append(message)


class Harness:
    def __init__(self, folder: Path, rules: str, now: dt.datetime, env: dict[str, str]) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.env_file = folder / ".env"
        self.write_env(env)
        campaign = load_campaign(write_campaign(folder, rules))
        self.ledger = open_ledger(folder / "state", now)
        self.server = FakeServer()
        self.clock = Clock(now)
        self.log = EventLog(None, clock=self.clock, keep=True)
        self.sent = Sent()
        notifier = Notifier(
            [Destination("chat", "json://127.0.0.1:9/hook", "CHAT", EVENTS)],
            campaign=campaign.name,
            sender=self.sent,
            group=dt.timedelta(0),
        )
        self.pings: list[bool] = []
        switch = DeadMansSwitch(None)
        switch.ping = self.pings.append  # type: ignore[method-assign]
        self.alerting = Alerting(notifier, switch)
        secrets = SecretSources(env_files=(self.env_file,), secrets_dir=None)

        def publisher(account: str, settings: MastodonAccount | BlueskyAccount) -> FakePublisher:
            name = settings.token_env if isinstance(settings, MastodonAccount) else settings.password_env
            secrets.get(name)  # a missing secret: CredentialsError, as the real publishers
            return FakePublisher(account, settings.platform, self.server)

        self.daemon = Daemon(
            campaign,
            self.ledger,
            publisher,
            clock=self.clock,
            log=self.log,
            settings=DaemonSettings(),
            state_dir=folder / "state",
            rng=random.Random(7),
            environ={},
            alerting=self.alerting,
            secrets=secrets,
        )

    def write_env(self, env: dict[str, str]) -> None:
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))

    def once(self, when: dt.datetime) -> TickReport:
        self.clock.now = when
        return run_once(self.daemon, when)

    def alerts(self) -> str:
        self.alerting.notifier.close(self.clock.now, timeout=5)
        return "\n".join(f"{m.title}\n{m.body}" for m in self.sent.messages)


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Harness]]:
    for name in ("T_MASTO", "T_SKY"):
        monkeypatch.delenv(name, raising=False)
    made: list[Harness] = []

    def make(rules: str, now: dt.datetime, env: dict[str, str] | None = None) -> Harness:
        env = {"T_MASTO": MASTO_TOKEN, "T_SKY": SKY_PASSWORD} if env is None else env
        made.append(Harness(tmp_path / f"c{len(made)}", rules, now, env))
        return made[-1]

    yield make
    for item in made:
        item.daemon.close()
        item.ledger.close()


def test_failed_expired_and_paused_posts_are_alerted_and_the_pass_is_unhealthy(
    harness: Callable[..., Harness],
) -> None:
    rules = once("a", "2027-10-20T09:00") + once("b", "2027-10-20T08:30", missed="{action: expire}")
    h = harness(rules, at("2027-10-20T09:00"))
    h.server.fail("masto", PermanentError("422: text too long"))
    h.server.fail("sky", AuthError(f"401: invalid password {SKY_PASSWORD}"))
    report = h.once(at("2027-10-20T09:00"))
    assert report.failed == ["a:masto:2027-10-20T09:00"]
    assert report.credentials == ["sky"]
    assert sorted(report.expired) == ["b:masto:2027-10-20T08:30", "b:sky:2027-10-20T08:30"]
    assert not report.healthy
    assert h.pings == [False]
    text = h.alerts()
    assert len(h.sent.messages) == 1  # one grouped message
    assert (
        "1 post failed on mastodon.example (a:masto:2027-10-20T09:00; account masto): 422: text too long."
        in text
    )
    assert (
        "2 posts expired (b:masto:2027-10-20T08:30, b:sky:2027-10-20T08:30; accounts masto, sky): "
        "missed its window (the rule expires missed posts)." in text
    )
    assert "1 account paused on bsky.social (sky)" in text
    assert "Fix the secret T_SKY;" in text
    assert SKY_PASSWORD not in text


def test_a_healthy_pass_pings_healthy(harness: Callable[..., Harness]) -> None:
    h = harness(once("a", "2027-10-20T09:00"), at("2027-10-20T09:00"))
    report = h.once(at("2027-10-20T09:00"))
    assert report.published
    assert report.healthy
    assert h.pings == [True]
    assert h.alerts() == ""


def test_a_rejected_secret_resumes_by_itself_when_it_changes(harness: Callable[..., Harness]) -> None:
    h = harness(once("a", "2027-10-20T09:00", accounts="[masto]"), at("2027-10-20T09:00"))
    h.server.fail("masto", AuthError("401: the access token is invalid", fingerprint=None))
    h.once(at("2027-10-20T09:00"))
    assert "masto" in h.ledger.paused_accounts()
    record = (h.folder / "state" / "pauses" / "masto.json").read_text()
    assert MASTO_TOKEN not in record
    assert json.loads(record)["variable"] == "T_MASTO"
    assert h.daemon.credential_paused() == {"masto": h.ledger.paused_accounts()["masto"]}
    # The same secret: still paused, pass after pass.
    h.daemon.tick(at("2027-10-20T09:01"))
    assert "masto" in h.ledger.paused_accounts()
    # A new token: resumed at the next pass, and the post goes out.
    h.write_env({"T_MASTO": "masto-token-fixed-0000"})
    report = h.daemon.tick(at("2027-10-20T09:02"))
    assert h.ledger.paused_accounts() == {}
    assert report.published == ["a:masto:2027-10-20T09:00"]
    resumed = h.log.of("resumed")
    assert resumed == [
        {
            "time": resumed[0]["time"],
            "event": "resumed",
            "account": "masto",
            "reason": "its secret T_MASTO changed",
        }
    ]
    assert not (h.folder / "state" / "pauses" / "masto.json").exists()
    assert "1 account resumed (masto): its secret T_MASTO changed." in h.alerts()


def test_a_missing_secret_resumes_when_it_is_set(harness: Callable[..., Harness]) -> None:
    h = harness(once("a", "2027-10-20T09:00", accounts="[masto]"), at("2027-10-20T09:00"), env={})
    h.once(at("2027-10-20T09:00"))
    assert "masto" in h.ledger.paused_accounts()
    assert json.loads((h.folder / "state" / "pauses" / "masto.json").read_text())["secret"] is None
    h.daemon.tick(at("2027-10-20T09:01"))
    assert "masto" in h.ledger.paused_accounts()  # still missing: not fixed
    h.write_env({"T_MASTO": MASTO_TOKEN})
    assert h.daemon.tick(at("2027-10-20T09:02")).published == ["a:masto:2027-10-20T09:00"]


def test_an_operators_pause_never_resumes_by_itself(harness: Callable[..., Harness]) -> None:
    h = harness(once("a", "2027-10-20T09:00", accounts="[masto]"), at("2027-10-20T09:00"))
    h.ledger.pause_account("masto", "paused by the operator", at("2027-10-20T08:00"))
    h.write_env({"T_MASTO": "another-token-123456"})
    h.once(at("2027-10-20T09:00"))
    assert h.ledger.paused_accounts() == {"masto": "paused by the operator"}
    # An operator pausing an account that was paused for its credentials takes it over too.
    h.server.fail("masto", AuthError("401: the access token is invalid"))
    h.ledger.resume_account("masto")
    h.daemon.tick(at("2027-10-20T09:01"))
    assert "masto" in h.daemon.credential_paused()
    h.ledger.pause_account("masto", "paused by the operator", at("2027-10-20T09:01"))
    h.write_env({"T_MASTO": "a-third-token-123456"})
    h.daemon.tick(at("2027-10-20T09:02"))
    assert h.ledger.paused_accounts() == {"masto": "paused by the operator"}
    assert h.daemon.credential_paused() == {}


def test_unsent_posts_say_why_and_set_the_exit_code(harness: Callable[..., Harness]) -> None:
    h = harness(once("a", "2027-10-20T09:00") + once("b", "2027-10-20T09:00"), at("2027-10-20T09:00"))
    h.server.fail("sky", AuthError("401: rejected"))
    report = h.once(at("2027-10-20T09:00"))
    unsent = h.daemon.unsent(at("2027-10-20T09:00"), report)
    assert {row.id: failure for row, _why, failure in unsent} == {
        "a:sky:2027-10-20T09:00": True,
        "b:sky:2027-10-20T09:00": True,
    }
    assert all(why.startswith("the account is paused: 401: rejected") for _row, why, _f in unsent)
    code = once_exit_code(report, h.daemon.failures, h.daemon.credential_paused(), unsent)
    assert code == ExitCode.ACCOUNT
    # The next pass: still paused (from an earlier pass): still a failure.
    later = h.once(at("2027-10-20T09:05"))
    assert once_exit_code(later, 0, h.daemon.credential_paused(), []) == ExitCode.ACCOUNT


def test_exit_codes_of_run_once() -> None:
    assert once_exit_code(TickReport(), 0, {}, []) == ExitCode.OK
    assert once_exit_code(TickReport(expired=["x"]), 0, {}, []) == ExitCode.PUBLISH
    assert once_exit_code(TickReport(), 1, {}, []) == ExitCode.PUBLISH
    assert once_exit_code(TickReport(), 0, {}, [(None, "retry at ...", True)]) == ExitCode.PUBLISH
    # held by the operator's pause: not a failure
    assert once_exit_code(TickReport(), 0, {}, [(None, "all posting is paused", False)]) == ExitCode.OK
    assert once_exit_code(TickReport(credentials=["sky"]), 0, {}, []) == ExitCode.ACCOUNT


def test_a_rejected_reload_is_alerted_with_its_lines(harness: Callable[..., Harness]) -> None:
    h = harness(once("a", "2027-10-20T09:00"), at("2027-10-20T09:00"))
    schedule = h.folder / "schedule.yaml"
    schedule.write_text(schedule.read_text().replace("timezone: Europe/Berlin", "timezone: Europe/Berln"))
    assert h.daemon.watch(at("2027-10-20T08:00"))
    text = h.alerts()
    assert "1 campaign edit rejected" in text
    assert "schedule.yaml:3:" in text


def test_a_pass_that_does_not_end_is_reported_by_a_job_that_does_not_wait_for_it(tmp_path: Path) -> None:
    import threading
    import time

    from amplifier.daemon.scheduler import serve
    from amplifier.daemon.settings import offset_clock

    start = at("2027-10-20T09:00")
    clock = offset_clock(start)
    h = Harness(
        tmp_path / "c", once("a", "2027-10-20T09:00", accounts="[masto]"), start, {"T_MASTO": MASTO_TOKEN}
    )
    h.daemon.clock = clock
    h.daemon.settings = DaemonSettings(watch_interval=0.1)
    h.alerting.stuck_after = dt.timedelta(seconds=1)
    h.server.delay = 4.0  # the publish hangs: the pass holds the lock
    h.daemon.start(clock())
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(h.daemon, stop), kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(10)
        deadline = time.monotonic() + 3.5
        while not h.sent.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.server.calls == [("masto", "a:masto:2027-10-20T09:00")]
        assert h.server.published == {}  # still in the pass
        assert [m.title for m in h.sent.messages] == ["amplifier · Daemon unit tests: daemon stuck"]
        assert "a pass has run for more than" in h.sent.messages[0].body
    finally:
        stop.set()
        thread.join(20)
        h.daemon.close()
        h.ledger.close()


def test_a_failed_follow_up_is_alerted_as_its_post(harness: Callable[..., Harness]) -> None:
    h = harness(once("o", "2027-10-29T10:00", accounts="[masto]"), at("2027-10-29T10:00"))
    h.daemon._emit(
        "followup-failed", id="o:masto:x", kind="pin", account="masto", reason="HTTP 422: too many pinned"
    )
    text = h.alerts()
    assert "o:masto:x" in text
    assert "its pin by masto failed: HTTP 422: too many pinned" in text
