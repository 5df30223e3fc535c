"""The alert stage's logic: grouping into messages, the repeat interval and its state across restarts, redaction,
the digest's timing, the dead man's switch URLs. Sending is a recording function here; the real transports
(Apprise to HTTP and SMTP on loopback) are in tests/integration/test_notify.py."""

from __future__ import annotations

import datetime as dt
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amplifier.notify import alerts
from amplifier.notify.alerts import Message, compose, short_cause
from amplifier.notify.destinations import Destination
from amplifier.notify.heartbeat import fail_url
from amplifier.notify.notifier import Notifier
from amplifier.notify.redaction import MASK, redact, url_fragments
from amplifier.notify.transport import DeliveryError
from amplifier.publish.sessions import StateDir

T0 = datetime(2027, 10, 29, 8, 0, tzinfo=UTC)
ALL = frozenset(
    {
        "post_failed",
        "post_expired",
        "account_paused",
        "account_resumed",
        "outcome_unknown",
        "reload_rejected",
        "daemon_stopped",
        "daemon_stuck",
    }
)
HOOK = "json://127.0.0.1:9/hook/tok-0123456789abcdef"


class Recorder:
    """A sender that records (url, message) and fails for the URLs in ``failing``."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.failing = failing or set()
        self.lock = threading.Lock()

    def __call__(self, url: str, message: Message, timeout: float) -> None:
        with self.lock:
            if url in self.failing:
                raise DeliveryError(f"refused by {url}")
            self.sent.append((url, message))


def notifier(
    tmp_path: Path,
    sender: Recorder,
    *destinations: Destination,
    log: list[tuple[str, dict[str, object]]] | None = None,
) -> Notifier:
    found = log if log is not None else []
    return Notifier(
        destinations or (Destination("chat", HOOK, "CHAT_URL", ALL),),
        campaign="Kobane Day",
        state=StateDir(tmp_path / "state"),
        repeat=timedelta(hours=1),
        group=timedelta(seconds=30),
        secrets=["s3cret-app-password"],
        sender=sender,
        log=lambda event, **fields: found.append((event, fields)),
    )


def outage() -> list[alerts.Alert]:
    """A PDS outage on 6 accounts with 100 posts each: 6 pauses and 600 failures."""
    found = [
        alerts.account_paused(
            f"acc{n}",
            f"acc{n}: the server rejected this account's credentials at 2027-10-29 07:5{n}:00 UTC; not trying",
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


# ------------------------------------------------------------------------------------------------ messages


def test_an_outage_on_six_accounts_is_two_lines_of_one_message() -> None:
    message = compose(outage(), "Kobane Day")
    assert message.title == "amplifier · Kobane Day: 600 posts failed, 6 accounts paused"
    lines = message.body.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("600 posts failed on pds.example (post-000, post-001,")
    assert (
        "and 592 more; accounts acc0, acc1, acc2, acc3, acc4, acc5): HTTP 503 (gave up after 6 attempts)."
        in lines[0]
    )
    assert lines[1].startswith(
        "6 accounts paused on pds.example (acc0, acc1, acc2, acc3, acc4, acc5): "
        "the server rejected this account's credentials. Fix the secrets ACC0_PASSWORD, ACC1_PASSWORD,"
    )
    assert "resumes by itself when its secret changes" in lines[1]


def test_different_causes_are_counted_on_one_line() -> None:
    batch = [
        alerts.post_failed(f"p{n}", "masto", "422: text too long" if n % 3 else "422: bad image")
        for n in range(9)
    ]
    line = compose(batch, "C").body
    assert "9 posts failed (p0, " in line
    assert "422: text too long (6×); 422: bad image (3×)." in line


def test_a_rejected_reload_quotes_its_problems() -> None:
    problems = [f"schedule.yaml:{n}:3: unknown key 'x{n}'" for n in range(1, 26)]
    body = compose([alerts.reload_rejected(problems)], "C").body.splitlines()
    assert body[0].startswith(
        "1 campaign edit rejected: 25 problem(s). The daemon keeps running the last valid"
    )
    assert body[1] == "  schedule.yaml:1:3: unknown key 'x1'"
    assert len(body) == 1 + 20 + 1
    assert body[-1] == "  ... and 5 more (`amplifier validate` shows them all)"


@pytest.mark.parametrize(
    ("alert", "title", "start"),
    [
        (
            alerts.daemon_stopped("SIGTERM"),
            "daemon stopped",
            "Daemon stopped: SIGTERM. Nothing is posted until",
        ),
        (
            alerts.daemon_stuck("a pass has run for 20 minutes"),
            "daemon stuck",
            "Daemon stuck: a pass has run for 20",
        ),
        (
            alerts.post_expired("p1", "sky", "missed its window"),
            "1 post expired",
            "1 post expired (p1; account sky)",
        ),
        (
            alerts.account_resumed("sky", "sky: the secret changed"),
            "1 account resumed",
            "1 account resumed (sky)",
        ),
        (
            alerts.outcome_unknown("p2", "masto", datetime(2027, 10, 29, 7, 0, tzinfo=UTC)),
            "1 post with an unknown outcome",
            "1 post with an unknown outcome (p2; account masto): unknown since",
        ),
    ],
)
def test_each_event_says_what_happened(alert: alerts.Alert, title: str, start: str) -> None:
    message = compose([alert], "C")
    assert message.title == f"amplifier · C: {title}"
    assert message.body.startswith(start)


def test_short_cause_drops_the_account_prefix_and_times() -> None:
    text = "sky: the server rejected this account's credentials at 2027-10-29 07:50:00 UTC; not trying again"
    assert short_cause(text, "sky") == "the server rejected this account's credentials"
    assert len(short_cause("x" * 500)) == 200


# ------------------------------------------------------------------------------------------------ redaction


def test_redact_removes_known_values_and_secret_shapes() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjOmFiYyJ9.c2lnbmF0dXJl"
    text = (
        "401 from server: Authorization: Bearer abcdefghijkl; password=hunter22; "
        f"token {jwt}; url https://user:pa55word@example.org/x; app password s3cret-app-password"
    )
    out = redact(text, ["s3cret-app-password"])
    for leaked in ("abcdefghijkl", "hunter22", jwt, "pa55word", "s3cret-app-password"):
        assert leaked not in out
    assert out.startswith("401 from server: Authorization: " + MASK)
    # each shape on its own
    assert redact("see https://user:pa55word@example.org/x") == f"see https://user:{MASK}@example.org/x"
    assert redact(f"token {jwt} and password=hunter22") == f"token {MASK} and password={MASK}"


def test_redact_removes_every_secret_amplifier_read() -> None:
    # A secret read through SecretSources is registered with amplifier.redact: an alert never holds it, even
    # when nobody passed it to the notifier (the stand-in this stage had before knew only what it was given).
    from amplifier import redact as project

    project.register("tok-9f8e7d6c5b4a")
    try:
        assert redact("401: invalid token tok-9f8e7d6c5b4a (sent as tok-9f8e7d6c5b4a)") == (
            f"401: invalid token {MASK} (sent as {MASK})"
        )
    finally:
        project.forget_all()


def test_url_fragments_are_the_token_bearing_parts() -> None:
    url = "matrixs://amplifier:Sup3rS3cretPw@matrix.example/!roomid1234:example?token=ABCD3FGHIJ&mode=plain"
    assert url_fragments(url) == ["Sup3rS3cretPw", "!roomid1234:example", "ABCD3FGHIJ"]
    assert url_fragments("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567") == [
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "-1001234567",
    ]
    assert url_fragments("mailto://amplifier@127.0.0.1:2525?to=ops@example.org") == []


# ------------------------------------------------------------------------------------------------ the notifier


def test_600_alerts_are_one_message_after_the_group_window(tmp_path: Path) -> None:
    sender = Recorder()
    n = notifier(tmp_path, sender)
    for alert in outage():
        n.raise_(alert, T0)
    assert n.flush(T0 + timedelta(seconds=29)) == {}
    queued = n.flush(T0 + timedelta(seconds=30))
    assert n.wait(5)
    assert list(queued) == ["chat"]
    assert len(sender.sent) == 1
    assert sender.sent[0][0] == HOOK
    assert sender.sent[0][1].title == "amplifier · Kobane Day: 600 posts failed, 6 accounts paused"


def test_the_same_alert_is_not_repeated_within_the_interval_even_after_a_restart(tmp_path: Path) -> None:
    sender = Recorder()
    first = notifier(tmp_path, sender)
    paused = alerts.account_paused("sky", "sky: credentials rejected", "bsky.social")
    first.raise_(paused, T0)
    first.flush(T0, force=True)
    assert first.close(T0, timeout=5)
    assert len(sender.sent) == 1

    again = notifier(tmp_path, sender)  # a restart: the state folder remembers
    again.raise_(paused, T0 + timedelta(minutes=59))
    assert again.flush(T0 + timedelta(minutes=59), force=True) == {}
    other = alerts.account_paused("masto", "masto: token rejected", "mastodon.example")
    again.raise_(other, T0 + timedelta(minutes=59))
    assert "masto" in again.flush(T0 + timedelta(minutes=59), force=True)["chat"].body
    again.raise_(paused, T0 + timedelta(minutes=61))
    assert "sky" in again.flush(T0 + timedelta(minutes=61), force=True)["chat"].body
    assert again.close(timeout=5)
    assert len(sender.sent) == 3
    assert (tmp_path / "state" / "notify" / "sent.json").stat().st_mode & 0o777 == 0o600


def test_an_alert_raised_twice_before_a_flush_is_sent_once(tmp_path: Path) -> None:
    sender = Recorder()
    n = notifier(tmp_path, sender)
    for _ in range(3):
        n.raise_(alerts.daemon_stuck("a pass has run for 20 minutes"), T0)
    assert n.pending() == {"chat": 1}


def test_a_failing_destination_is_logged_does_not_stop_the_others_and_is_tried_again(tmp_path: Path) -> None:
    bad = "json://127.0.0.1:9/bad/tok-fedcba9876543210"
    sender = Recorder(failing={bad})
    log: list[tuple[str, dict[str, object]]] = []
    n = notifier(
        tmp_path,
        sender,
        Destination("chat", HOOK, "CHAT_URL", ALL),
        Destination("mail", bad, "MAIL_URL", ALL),
        log=log,
    )
    failed = alerts.post_failed("p1", "sky", "422: too long")
    n.raise_(failed, T0)
    n.flush(T0, force=True)
    assert n.wait(5)
    assert [url for url, _ in sender.sent] == [HOOK]
    failures = [fields for event, fields in log if event == "notify failed"]
    assert len(failures) == 1
    assert failures[0]["destination"] == "mail"
    assert "tok-fedcba9876543210" not in str(failures[0]["reason"])  # the URL's token is redacted
    assert sorted((d.destination, d.ok) for d in n.deliveries) == [("chat", True), ("mail", False)]
    # Raised again, it goes to the destination that failed, not to the one that has it.
    n.raise_(failed, T0 + timedelta(minutes=1))
    assert n.pending() == {"mail": 1}


def test_destinations_get_only_the_events_they_want(tmp_path: Path) -> None:
    sender = Recorder()
    n = notifier(
        tmp_path,
        sender,
        Destination("chat", HOOK, "CHAT_URL", ALL),
        Destination("pager", "json://127.0.0.1:9/pager", "PAGER_URL", frozenset({"daemon_stopped"})),
    )
    n.raise_(alerts.post_failed("p1", "sky", "422"), T0)
    n.raise_(alerts.daemon_stopped("SIGTERM"), T0)
    queued = n.flush(T0, force=True)
    assert queued["pager"].body.startswith("Daemon stopped")
    assert "post failed" not in queued["pager"].body
    assert "1 post failed" in queued["chat"].body


def test_no_secret_in_a_message(tmp_path: Path) -> None:
    sender = Recorder()
    n = notifier(tmp_path, sender)
    echoed = f"sky: 401 {{'error': 'AuthFailed', 'echo': 's3cret-app-password', 'url': '{HOOK}'}}"
    n.raise_(alerts.account_paused("sky", echoed, "bsky.social"), T0)
    message = n.flush(T0, force=True)["chat"]
    text = message.title + message.body
    assert "s3cret-app-password" not in text
    assert "tok-0123456789abcdef" not in text
    assert MASK in text


def test_a_slow_destination_never_blocks_flush(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(url: str, message: Message, timeout: float) -> None:
        release.wait(10)

    n = Notifier(
        [Destination("chat", HOOK, "CHAT_URL", ALL)], campaign="C", sender=slow, log=lambda *a, **k: None
    )
    n.raise_(alerts.daemon_stuck("x"), T0)
    started = datetime.now(UTC)
    n.flush(T0, force=True)
    assert datetime.now(UTC) - started < timedelta(seconds=0.5)
    assert not n.close(timeout=0.2)  # gives up waiting, returns
    release.set()


# ------------------------------------------------------------------------------------------------ the digest


def test_the_digest_is_due_once_a_day_after_its_time(tmp_path: Path) -> None:
    sender = Recorder()
    n = Notifier(
        [Destination("mail", HOOK, "MAIL_URL", frozenset(), digest=dt.time(9, 0))],
        campaign="C",
        state=StateDir(tmp_path / "state"),
        zone="Europe/Berlin",
        sender=sender,
        log=lambda *a, **k: None,
    )
    berlin_0859 = datetime(2027, 10, 29, 6, 59, tzinfo=UTC)  # 08:59 CEST (UTC+2)
    assert n.digest_due(berlin_0859) == []
    assert n.digest_due(berlin_0859 + timedelta(minutes=1)) == ["mail"]
    built: list[int] = []
    digest = Message("digest", "body")
    assert n.maybe_digest(berlin_0859 + timedelta(minutes=2), lambda: built.append(1) or digest)
    assert not n.maybe_digest(berlin_0859 + timedelta(hours=1), lambda: built.append(1) or digest)
    assert built == [1]
    assert n.digest_due(berlin_0859 + timedelta(days=1, minutes=1)) == ["mail"]
    assert n.digest_due(berlin_0859 + timedelta(days=1, hours=4)) == []  # too late that day: next day
    assert n.wait(5)
    assert sender.sent == [(HOOK, digest)]


# ------------------------------------------------------------------------------------------------ heartbeat


@pytest.mark.parametrize(
    ("url", "fail"),
    [
        ("https://hc-ping.com/0f3c", "https://hc-ping.com/0f3c/fail"),
        ("https://hc-ping.com/0f3c/", "https://hc-ping.com/0f3c/fail"),
        (
            "https://kuma.example/api/push/AbCd?status=up&msg=OK&ping=",
            "https://kuma.example/api/push/AbCd?status=down&msg=OK&ping=",
        ),
    ],
)
def test_the_fail_url(url: str, fail: str) -> None:
    assert fail_url(url) == fail
