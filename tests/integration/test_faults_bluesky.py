"""Server faults between the Bluesky publisher and the reference PDS, injected by a proxy on loopback.

Issue 8, defects 2-6 on Bluesky: a ``putRecord`` whose connection drops after the PDS wrote the record, a
truncated answer, a 429 on ``getRecord`` with its reset, a PDS that answers 503 to ``createSession``, a
corrected password, and a server that echoes the secrets it was sent. Every fault must reach the caller as a
classified :class:`PublishError` (never a raw ``httpx`` or ``ValueError``), a retry must not make a second
post, a reset must be honoured, an outage must not pause the account, and no secret may appear in a message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amplifier.campaign.models import BlueskyAccount
from amplifier.plan.post import Part, PlannedPost
from amplifier.publish import PublishContext, create_publisher
from amplifier.publish.base import (
    AuthError,
    OutcomeUnknownError,
    PublishError,
    RateLimitedError,
    TransientError,
)
from amplifier.publish.bluesky import COLLECTION, BlueskyPublisher, record_key
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import LoginGuard, StateDir

from .servers import Account, PdsServer
from .servers.fault_proxy import FaultProxy

pytestmark = pytest.mark.integration

PASSWORD_ENV = "AMP_IT_FAULTS_BSKY_PASSWORD"
AT = datetime(2027, 10, 1, 10, 0, tzinfo=UTC)
PUT = "com.atproto.repo.putRecord"
GET = "com.atproto.repo.getRecord"
LOGIN = "com.atproto.server.createSession"


def planned(post_id: str, *texts: str) -> PlannedPost:
    parts = []
    for i, text in enumerate(texts):
        payload: dict[str, Any] = {
            "$type": COLLECTION,
            "text": text,
            "createdAt": "2027-10-01T10:00:00.000Z",
            "langs": ["en"],
        }
        if i:
            payload["reply"] = {"root": {"$ref": "part:0"}, "parent": {"$ref": f"part:{i - 1}"}}
        parts.append(Part(text=text, length=len(text), limit=300, payload=payload))
    return PlannedPost(
        id=post_id,
        at=AT,
        rule="r",
        account="bsky",
        platform="bluesky",
        lang="en",
        parts=tuple(parts),
        message_set="m",
        variant=0,
    )


class Setup:
    def __init__(self, pds: PdsServer, proxy: FaultProxy, account: Account, tmp_path: Path) -> None:
        self.pds = pds
        self.proxy = proxy
        self.account = account
        self.settings = BlueskyAccount(
            platform="bluesky",
            handle=account.handle,
            service=proxy.url,  # type: ignore[arg-type]
            password_env=PASSWORD_ENV,
        )
        self.ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"), timeout=10.0)
        self.opened: list[BlueskyPublisher] = []

    def publisher(self) -> BlueskyPublisher:
        publisher = create_publisher("bsky", self.settings, self.ctx)
        assert isinstance(publisher, BlueskyPublisher)
        self.opened.append(publisher)
        return publisher

    def records(self) -> list[dict[str, Any]]:
        return self.pds.list_records(self.account.did, COLLECTION)


@pytest.fixture
def setup(pds: PdsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    proxy = FaultProxy.start(pds.url)
    account = pds.create_account("flt")
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    made = Setup(pds, proxy, account, tmp_path)
    try:
        yield made
    finally:
        for publisher in made.opened:
            publisher.close()
        proxy.stop()


def test_the_proxy_is_not_bypassed_after_the_login(setup: Setup) -> None:
    publisher = setup.publisher()
    result = publisher.publish(planned("flt-through", "Through the proxy"))
    assert setup.proxy.count(LOGIN) == 1
    assert setup.proxy.count(PUT) == 1  # the DID document's endpoint was rewritten: the write came through
    assert len(setup.records()) == 1
    assert result.parts[0].id == record_key("flt-through", 0, AT)


def test_a_put_record_dropped_after_the_pds_wrote_it_is_an_unknown_outcome_and_a_retry_makes_no_copy(
    setup: Setup,
) -> None:
    """Defect 3: ``RemoteProtocolError`` (server disconnected) on putRecord was an unknown exception."""
    publisher = setup.publisher()
    publisher.publish(planned("flt-warmup", "Log in first"))
    setup.proxy.inject(PUT, "drop_after")
    post = planned("flt-drop", "Dropped after writing", "and its second part")

    with pytest.raises(OutcomeUnknownError) as caught:
        publisher.publish(post)

    assert isinstance(caught.value, TransientError)
    assert "RemoteProtocolError" in str(caught.value)
    assert caught.value.done == {}
    assert setup.pds.get_record(setup.account.did, COLLECTION, record_key(post.id, 0, AT)) is not None
    result = publisher.publish(post, resume=caught.value.done)  # the daemon's retry
    assert [p.id for p in result.parts] == [record_key(post.id, i, AT) for i in range(2)]
    texts = [r["value"]["text"] for r in setup.records()]
    assert texts.count("Dropped after writing") == 1


def test_a_truncated_answer_to_put_record_is_an_unknown_outcome(setup: Setup) -> None:
    """Defect 3: the ``ValueError`` of a truncated JSON body was an unknown exception."""
    publisher = setup.publisher()
    publisher.publish(planned("flt-warmup2", "Log in first"))
    setup.proxy.inject(PUT, "truncate")
    post = planned("flt-trunc", "Truncated answer")
    with pytest.raises(OutcomeUnknownError, match="invalid answer"):
        publisher.publish(post)
    # the retry resumes (resume={}): getRecord finds the record the truncated answer was about
    assert publisher.publish(post, resume={}).parts[0].existed is True
    assert [r["value"]["text"] for r in setup.records()].count("Truncated answer") == 1


def test_a_429_on_get_record_raises_rate_limited_with_the_servers_reset(setup: Setup) -> None:
    """Defect 2: the start-up ``getRecord`` answered 429 carries the reset the server gave."""
    publisher = setup.publisher()
    publisher.publish(planned("flt-warmup3", "Log in first"))
    reset = int((datetime.now(UTC) + timedelta(minutes=7)).timestamp())
    setup.proxy.inject(
        GET,
        "status",
        status=429,
        headers={"RateLimit-Limit": "3000", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)},
        body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
    )
    with pytest.raises(RateLimitedError) as caught:
        publisher.lookup(planned("flt-429", "Looked up"))
    assert caught.value.reset_at == datetime.fromtimestamp(reset, tz=UTC)
    assert setup.proxy.count(GET) == 1


@pytest.mark.parametrize("action", ["drop_after", "drop_before", "truncate"])
def test_a_lookup_that_fails_on_the_wire_is_transient(setup: Setup, action: str) -> None:
    """Defect 4 (publisher side): a drop on the start-up ``getRecord`` reached the daemon raw and killed it."""
    publisher = setup.publisher()
    publisher.publish(planned(f"flt-warm-{action}", "Log in first"))
    setup.proxy.inject(GET, action)
    with pytest.raises(TransientError) as caught:
        publisher.lookup(planned("flt-lookup", "Looked up"))
    assert not isinstance(caught.value, OutcomeUnknownError)  # a read: nothing may have been created
    assert publisher.lookup(planned("flt-lookup", "Looked up")) == {}  # and it works again afterwards


def test_503s_on_create_session_never_pause_the_account(setup: Setup) -> None:
    """Defect 5: five 503s to createSession were counted as rejected logins and paused the account."""
    setup.proxy.inject(LOGIN, "status", status=503, times=5, body={"error": "InternalServerError"})
    post = planned("flt-outage", "After the outage")
    for _ in range(5):
        publisher = setup.publisher()
        with pytest.raises(PublishError) as caught:
            publisher.publish(post)
        assert type(caught.value) is TransientError, caught.value
        assert not isinstance(caught.value, AuthError)
    # the hour's login budget is spent: wait until its end, as for a 429 (never a pause)
    with pytest.raises(RateLimitedError) as budget:
        setup.publisher().publish(post)
    assert budget.value.reset_at is not None
    assert setup.proxy.count(LOGIN) == 5
    outcomes = json.loads((setup.ctx.state.path / "logins" / "bsky.json").read_text())["attempts"]
    assert {a["outcome"] for a in outcomes} == {"failed"}


@pytest.mark.parametrize("action", ["drop_after", "truncate"])
def test_a_login_lost_on_the_wire_is_transient_not_a_rejection(setup: Setup, action: str) -> None:
    setup.proxy.inject(LOGIN, action)
    with pytest.raises(TransientError):
        setup.publisher().publish(planned(f"flt-login-{action}", "Logged in later"))
    LoginGuard(setup.ctx.state).check("bsky", setup.account.password)  # no wait for a rejection
    setup.publisher().publish(planned(f"flt-login-{action}", "Logged in later"))


def test_a_corrected_password_is_tried_at_once(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 6: after one rejection, the fixed password waited for the guard's 20 minutes."""
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password-0000")
    publisher = setup.publisher()
    with pytest.raises(AuthError, match="rejected the login") as first:
        publisher.publish(planned("flt-fixed", "Once the password is fixed"))
    assert first.value.fingerprint is not None
    with pytest.raises(AuthError, match="not trying to log in again"):  # the same wrong password waits
        setup.publisher().publish(planned("flt-fixed", "Once the password is fixed"))
    assert setup.proxy.count(LOGIN) == 1

    monkeypatch.setenv(PASSWORD_ENV, setup.account.password)
    result = publisher.publish(planned("flt-fixed", "Once the password is fixed"))  # the same publisher
    assert result.parts[0].id == record_key("flt-fixed", 0, AT)
    assert setup.proxy.count(LOGIN) == 2


def test_a_server_echoing_the_password_never_gets_it_into_a_message(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 7: a 401 whose body repeats the request (the password, the Authorization header)."""
    secret = "echoed-Secret-Pass-42"
    monkeypatch.setenv(PASSWORD_ENV, secret)
    setup.proxy.inject(LOGIN, "echo", status=401)
    with pytest.raises(AuthError) as caught:
        setup.publisher().publish(planned("flt-echo", "Never sent"))
    assert "you sent" in str(caught.value)  # the server's text is there...
    assert secret not in str(caught.value)  # ...without the secret
    assert secret not in repr(caught.value.args)


# --------------------------------------------------------------------------------------------- the daemon

SCHEDULE = """\
campaign:
  name: Bluesky faults
  timezone: UTC
events:
  day:
    name: {{en: The Day}}
    date: 2027-11-01
accounts:
  bsky:
    platform: bluesky
    handle: {handle}
    service: {url}
    password_env: {env}
rules:
  hello:
    kind: once
    at: {at:%Y-%m-%dT%H:%M}
    event: day
    messages: hello
    missed: {{action: post, grace: P1D}}
"""
MESSAGES = """\
sets:
  hello:
    variants:
      - text:
          en: "Hello from the daemon, {{ days_left }} days to go"
"""


def daemon_for(setup: Setup, tmp_path: Path, now: datetime) -> tuple[Any, Any, str]:
    from amplifier.campaign.load import load_campaign
    from amplifier.daemon.loop import Daemon, EventLog
    from amplifier.delivery.ledger.sqlite import SqliteLedger

    folder = tmp_path / "campaign"
    if not folder.exists():
        (folder / "messages").mkdir(parents=True)
        at = now.replace(second=0, microsecond=0)
        (folder / "schedule.yaml").write_text(
            SCHEDULE.format(handle=setup.account.handle, url=setup.proxy.url, env=PASSWORD_ENV, at=at)
        )
        (folder / "messages" / "hello.yaml").write_text(MESSAGES)
    campaign = load_campaign(folder / "schedule.yaml")
    ledger = SqliteLedger.open(tmp_path / "state" / "ledger.sqlite3", now)

    def factory(account: str, settings: Any) -> Any:
        return create_publisher(account, settings, setup.ctx)

    daemon = Daemon(
        campaign,
        ledger,
        factory,
        clock=lambda: now,
        log=EventLog(None, keep=True),
        state_dir=tmp_path / "state",
        environ={},
    )
    post_id = f"hello:bsky:{now.replace(second=0, microsecond=0):%Y-%m-%dT%H:%M}"
    return daemon, ledger, post_id


def test_the_daemon_backs_off_after_dropped_put_records_and_posts_once(setup: Setup, tmp_path: Path) -> None:
    """Defect 3: ten drops gave eleven attempts within a tenth of a second (the bug path, no backoff)."""
    from amplifier.daemon.loop import run_once
    from amplifier.delivery.ledger import State

    setup.proxy.inject(PUT, "drop_after", times=None)
    now = datetime.now(UTC)
    daemon, ledger, post_id = daemon_for(setup, tmp_path, now)
    report = run_once(daemon, now)
    daemon.close()
    assert report.retried == [post_id]
    assert [e["event"] for e in daemon.log.events if e["event"] == "error"] == []  # not the bug path
    row = ledger.get(post_id)
    assert (row.state, row.attempts) == (State.PLANNED, 1)
    assert row.next_attempt_at > now + timedelta(seconds=10)
    assert setup.proxy.count(PUT) == 1
    ledger.close()

    soon = now + timedelta(seconds=5)  # another pass before the backoff ends sends nothing
    daemon, ledger, _ = daemon_for(setup, tmp_path, soon)
    run_once(daemon, soon)
    daemon.close()
    ledger.close()
    assert setup.proxy.count(PUT) == 1

    setup.proxy.clear()
    later = row.next_attempt_at + timedelta(seconds=1)
    daemon, ledger, _ = daemon_for(setup, tmp_path, later)
    report = run_once(daemon, later)
    daemon.close()
    assert report.published == [post_id]
    assert len(setup.records()) == 1  # the dropped write and the retry: one record
    ledger.close()


def test_a_dropped_get_record_at_start_up_does_not_stop_the_daemon(setup: Setup, tmp_path: Path) -> None:
    """Defect 4: a post left claimed by a crash, then a drop on the start-up getRecord: ``run`` exited 1
    with ``internal error: RemoteProtocolError``. Now the row waits for a later look, the daemon runs on."""
    from amplifier.daemon.loop import run_once
    from amplifier.delivery.ledger import State

    now = datetime.now(UTC)
    daemon, ledger, post_id = daemon_for(setup, tmp_path, now)
    daemon.plan(now)
    daemon.close()
    assert ledger.claim(post_id, now, "otherhost:4242:crashed")
    ledger.close()
    setup.publisher().publish(planned("flt-login-first", "Log in first"))  # the session is saved
    setup.proxy.inject(GET, "drop_after")

    daemon, ledger, _ = daemon_for(setup, tmp_path, now)
    report = run_once(daemon, now)  # raises nothing
    daemon.close()
    assert [(r.post_id, r.outcome) for r in report.reconciled] == [(post_id, "unknown")]
    row = ledger.get(post_id)
    assert row.state == State.CLAIMED
    assert row.next_attempt_at > now
    ledger.close()

    later = row.next_attempt_at + timedelta(seconds=1)
    daemon, ledger, _ = daemon_for(setup, tmp_path, later)
    report = run_once(daemon, later)
    daemon.close()
    assert ledger.get(post_id).state == State.PUBLISHED
    assert sum(1 for r in setup.records() if r["value"]["text"].startswith("Hello from the daemon")) == 1
    ledger.close()
