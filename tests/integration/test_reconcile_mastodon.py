"""Reconciling Mastodon posts whose outcome was lost, past the Idempotency-Key's hour, against mastodon-mock.

A crash between the request and the ledger write is simulated in-process: the row is claimed at a real instant
T (the ledger's clock), the status is (or is not) published with the real publisher, nothing is marked; a new
daemon then starts with its clock at T + 2 hours. Only a search of the account's statuses can tell what
happened: it must find the status (published, with its URL, and no second one) or not (sent again, once).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import requests.adapters

from amplifier.campaign.load import Campaign, load_campaign
from amplifier.daemon.events import EventLog
from amplifier.daemon.loop import Daemon
from amplifier.daemon.scheduler import run_once
from amplifier.delivery.ledger import Ledger, State, open_ledger
from amplifier.publish import PublishContext, create_publisher
from amplifier.publish.mastodon import MastodonPublisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

from .servers import MastodonServer
from .servers.mastodon import MastodonAccount as ServerAccount

pytestmark = pytest.mark.integration

TOKEN_ENV = "AMP_RECONCILE_MASTO_TOKEN"
BERLIN = ZoneInfo("Europe/Berlin")
LATER = dt.timedelta(hours=2)  # past the Idempotency-Key's hour

SCHEDULE = """\
campaign:
  name: Reconcile integration
  timezone: Europe/Berlin
events:
  day:
    name: {{de: Der Tag}}
    date: 2027-11-01
accounts:
  masto:
    platform: mastodon
    instance: {url}
    token_env: {env}
    language: de
    visibility: unlisted
rules:
  hello:
    kind: once
    at: {at:%Y-%m-%dT%H:%M}
    event: day
    messages: {messages}
    missed: {{action: post, grace: P1D}}
"""

TWIN = """\
  again:
    kind: once
    at: {at:%Y-%m-%dT%H:%M}
    event: day
    messages: {messages}
    missed: {{action: post, grace: P1D}}
"""

MESSAGES = """\
sets:
  hello:
    hashtags: [Rojava]
    content_warning: {de: "Wahlen, Politik"}
    variants:
      - text:
          de: "Noch {{ days_left }} Tage bis {{ event.name }}! **Alle** hin: https://example.org/a/very/long/path/to/the/programme?lang=de&x=1"
  thread:
    variants:
      - text:
          de: >-
            SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE
            SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE
"""


@dataclass
class Setup:
    server: MastodonServer
    account: ServerAccount
    folder: Path
    campaign: Campaign
    ctx: PublishContext
    ledger: Ledger
    post_id: str

    def publisher(self) -> MastodonPublisher:
        publisher = create_publisher("masto", self.campaign.account("masto"), self.ctx)
        assert isinstance(publisher, MastodonPublisher)
        return publisher

    def daemon(self, now: dt.datetime) -> Daemon:
        def factory(account: str, settings: Any) -> Any:
            return create_publisher(account, settings, self.ctx)

        return Daemon(
            self.campaign,
            self.ledger,
            factory,
            clock=lambda: now,
            log=EventLog(None, keep=True),
            state_dir=self.folder / "state",
            environ={},
        )

    def crash_after_request(self, claimed_at: dt.datetime, *, send: bool, parts: int | None = None) -> None:
        """Plan and claim the post at ``claimed_at``; publish it (its first ``parts`` parts) when ``send``;
        record nothing, as a process killed right after the request would."""
        daemon = self.daemon(claimed_at)
        daemon.plan(claimed_at)
        post = daemon.posts[self.post_id]
        daemon.close()
        assert self.ledger.claim(self.post_id, claimed_at, "otherhost:4242:crashed")
        if send:
            publisher = self.publisher()
            try:
                if parts is not None:
                    post = replace(post, parts=post.parts[:parts])
                publisher.publish(post)
            finally:
                publisher.close()

    def statuses(self) -> list[dict[str, Any]]:
        return self.server.statuses(self.account)


@pytest.fixture
def make(
    mastodon_faults: MastodonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def factory(messages: str = "hello", twin: bool = False) -> Setup:
        account = mastodon_faults.create_account(mastodon_faults.unique_username("recon"))
        monkeypatch.setenv(TOKEN_ENV, account.access_token)
        folder = tmp_path / f"campaign{len(made)}"
        (folder / "messages").mkdir(parents=True)
        # The slot: now, to the minute (the mock stamps statuses with the real time).
        at = dt.datetime.now(BERLIN).replace(second=0, microsecond=0)
        schedule = SCHEDULE.format(url=mastodon_faults.url, env=TOKEN_ENV, at=at, messages=messages)
        if twin:  # a second rule, the same text a minute later
            schedule += TWIN.format(at=at + dt.timedelta(minutes=1), messages=messages)
        (folder / "schedule.yaml").write_text(schedule)
        (folder / "messages" / "hello.yaml").write_text(
            MESSAGES.replace("SENTENCE", "Wir stehen zu den Menschen, die Widerstand leisteten.")
        )
        campaign = load_campaign(folder / "schedule.yaml")
        ctx = PublishContext(
            secrets=SecretSources(), state=StateDir(folder / "state"), timeout=5.0, base_dir=folder
        )
        ledger = open_ledger(folder / "state", dt.datetime.now(dt.UTC))
        setup = Setup(
            mastodon_faults, account, folder, campaign, ctx, ledger, f"hello:masto:{at:%Y-%m-%dT%H:%M}"
        )
        made.append(setup)
        return setup

    yield factory
    for setup in made:
        setup.ledger.close()


def test_a_lost_answer_is_found_among_the_statuses_after_the_key_expired(make: Callable[..., Setup]) -> None:
    setup = make()
    claimed_at = dt.datetime.now(dt.UTC)
    setup.crash_after_request(claimed_at, send=True)
    (status,) = setup.statuses()
    assert "<a href=" in status["content"]  # HTML, not the text we sent: matched after normalization
    assert status["spoiler_text"] == "Wahlen, Politik"

    setup.server.reset_request_counts()
    daemon = setup.daemon(claimed_at + LATER)
    report = run_once(daemon, claimed_at + LATER)
    daemon.close()

    assert [(r.post_id, r.outcome, r.url) for r in report.reconciled] == [
        (setup.post_id, "published", status["url"])
    ]
    row = setup.ledger.get(setup.post_id)
    assert row.state == State.PUBLISHED
    assert row.result is not None
    assert [(p["id"], p["url"]) for p in row.result] == [(str(status["id"]), status["url"])]
    assert len(setup.statuses()) == 1
    assert setup.server.request_count("/api/v1/statuses") == 0  # nothing posted
    # verify_credentials, then pages back to the claim (here: the one status, then the empty end)
    assert setup.server.request_count("/api/v1/accounts/") == 3


def test_a_request_that_never_arrived_is_sent_again_once(make: Callable[..., Setup]) -> None:
    setup = make()
    claimed_at = dt.datetime.now(dt.UTC)
    setup.crash_after_request(claimed_at, send=False)
    assert setup.statuses() == []

    daemon = setup.daemon(claimed_at + LATER)
    report = run_once(daemon, claimed_at + LATER)
    daemon.close()

    assert [(r.post_id, r.outcome) for r in report.reconciled] == [(setup.post_id, "released")]
    assert report.published == [setup.post_id]
    (status,) = setup.statuses()
    row = setup.ledger.get(setup.post_id)
    assert row.state == State.PUBLISHED
    assert row.result is not None
    assert row.result[0]["url"] == status["url"]
    assert status["language"] == "de"
    assert status["visibility"] == "unlisted"


def test_a_thread_cut_short_resumes_at_the_first_missing_part(make: Callable[..., Setup]) -> None:
    setup = make("thread")
    claimed_at = dt.datetime.now(dt.UTC)
    setup.crash_after_request(claimed_at, send=True, parts=2)
    first_two = sorted(setup.statuses(), key=lambda s: int(s["id"]))
    assert len(first_two) == 2

    daemon = setup.daemon(claimed_at + LATER)
    report = run_once(daemon, claimed_at + LATER)
    daemon.close()

    assert [r.outcome for r in report.reconciled] == ["resumed"]
    row = setup.ledger.get(setup.post_id)
    assert row.state == State.PUBLISHED
    assert row.result is not None
    assert row.part_count >= 3
    statuses = sorted(setup.statuses(), key=lambda s: int(s["id"]))
    assert len(statuses) == row.part_count  # one status per part: the first two were not sent again
    assert [p["id"] for p in row.result] == [str(s["id"]) for s in statuses]
    for previous, current in itertools.pairwise(statuses):
        assert str(current["in_reply_to_id"]) == str(previous["id"])


def test_an_identical_status_from_before_the_claim_is_not_taken_for_it(make: Callable[..., Setup]) -> None:
    """The same text posted earlier (say, by hand) is older than the claim: not this post; it is sent."""
    setup = make()
    earlier = dt.datetime.now(dt.UTC)
    daemon = setup.daemon(earlier)
    daemon.plan(earlier)
    post = daemon.posts[setup.post_id]
    daemon.close()
    publisher = setup.publisher()
    try:
        publisher.publish(replace(post, id="posted-by-hand"))
    finally:
        publisher.close()
    claimed_at = earlier + dt.timedelta(minutes=30)  # the claim, 30 minutes after that status
    assert setup.ledger.claim(setup.post_id, claimed_at, "otherhost:4242:crashed")

    daemon = setup.daemon(claimed_at + LATER)
    report = run_once(daemon, claimed_at + LATER)
    daemon.close()

    assert [r.outcome for r in report.reconciled] == ["released"]
    assert setup.ledger.get(setup.post_id).state == State.PUBLISHED
    assert len(setup.statuses()) == 2


def test_statuses_posted_since_are_paged_through(make: Callable[..., Setup]) -> None:
    """More statuses than one page were posted after the lost one: the search pages back to it."""
    setup = make()
    claimed_at = dt.datetime.now(dt.UTC)
    setup.crash_after_request(claimed_at, send=True)
    (lost,) = setup.statuses()
    from mastodon import Mastodon

    client = Mastodon(api_base_url=setup.server.url, access_token=setup.account.access_token)
    for n in range(45):
        client.status_post(f"Something else, number {n}", visibility="public")

    setup.server.reset_request_counts()
    daemon = setup.daemon(claimed_at + LATER)
    report = run_once(daemon, claimed_at + LATER)
    daemon.close()

    assert [(r.outcome, r.url) for r in report.reconciled] == [("published", lost["url"])]
    assert setup.server.request_count("/api/v1/statuses") == 0
    assert setup.server.request_count("/api/v1/accounts/") == 1 + 3  # verify_credentials, 40 + 6 + the end
    assert len(setup.statuses()) == 46


class LoseAnswers(requests.adapters.HTTPAdapter):
    """Lets the next ``times`` status requests reach the server (which creates the status), then loses the
    answer as a read timeout would: the case mastodon-mock's own latency faults cannot make (it drops a
    request whose client left, where a real server may still finish it)."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(request, *args, **kwargs)
        if (
            self.times > 0
            and request.method == "POST"
            and (request.path_url or "").startswith("/api/v1/statuses")
        ):
            self.times -= 1
            raise requests.exceptions.ReadTimeout("read timed out (the answer was lost)")
        return response


def losing_daemon(setup: Setup, now: dt.datetime, adapter: requests.adapters.HTTPAdapter) -> Daemon:
    daemon = setup.daemon(now)

    def factory(account: str, settings: Any) -> Any:
        publisher = create_publisher(account, settings, setup.ctx)
        assert isinstance(publisher, MastodonPublisher)
        publisher._requests_session().mount(setup.server.url, adapter)
        return publisher

    daemon.publisher_factory = factory
    return daemon


def first_run_ends_unknown(setup: Setup, daemon: Daemon, start: dt.datetime) -> None:
    report = run_once(daemon, start)
    daemon.close()
    assert report.unknown == [setup.post_id]
    assert report.published == []
    row = setup.ledger.get(setup.post_id)
    assert row.state == State.CLAIMED  # no blind retry: only reconciliation moves it on
    assert row.unknown_since is not None
    assert start - dt.timedelta(seconds=1) <= row.unknown_since <= start + dt.timedelta(seconds=1)


def test_a_status_whose_answer_was_lost_is_found_after_the_hour_not_sent_again(
    make: Callable[..., Setup],
) -> None:
    """The server created the status, the client timed out. Two hours later (the key is gone) the daemon
    searches the account, finds it, and posts nothing a second time."""
    setup = make()
    start = dt.datetime.now(dt.UTC)
    first_run_ends_unknown(setup, losing_daemon(setup, start, LoseAnswers(1)), start)
    (status,) = setup.statuses()

    setup.server.reset_request_counts()
    later = start + LATER
    again = setup.daemon(later)
    report = run_once(again, later)
    again.close()

    assert [(r.outcome, r.url) for r in report.reconciled] == [("published", status["url"])]
    assert setup.server.request_count("/api/v1/statuses") == 0  # searched, not sent
    assert len(setup.statuses()) == 1
    row = setup.ledger.get(setup.post_id)
    assert row.state == State.PUBLISHED
    assert row.unknown_since is None


def test_a_status_request_that_timed_out_on_a_slow_server_is_sent_once(make: Callable[..., Setup]) -> None:
    """A client timeout against a slow server (``inject(delay=..)``): the mock drops the request, so the
    search two hours later finds nothing and the post is sent once, then and only then."""
    setup = make()
    setup.ctx.timeout = 0.5
    setup.server.inject(delay=1.5, path="/api/v1/statuses", method="POST")
    start = dt.datetime.now(dt.UTC)
    first_run_ends_unknown(setup, setup.daemon(start), start)
    time.sleep(1.5)  # let the server finish (and drop) the request the client left
    assert setup.statuses() == []

    setup.ctx.timeout = 5.0
    later = start + LATER
    again = setup.daemon(later)
    report = run_once(again, later)
    again.close()

    assert [r.outcome for r in report.reconciled] == ["released"]
    assert report.published == [setup.post_id]
    assert len(setup.statuses()) == 1
    assert setup.ledger.get(setup.post_id).state == State.PUBLISHED


def test_a_twin_whose_request_never_arrived_is_not_given_the_first_ones_status(
    make: Callable[..., Setup],
) -> None:
    """Defect 1: two rules post the same text a minute apart. The first is published and recorded; the
    second is claimed and dies before its request. Two hours later the search finds the first one's status
    (same text, in the window), which the ledger already gives to the first post: the second is sent."""
    setup = make(twin=True)
    start = dt.datetime.now(dt.UTC)
    daemon = setup.daemon(start)
    report = run_once(daemon, start)
    daemon.close()
    assert report.published == [setup.post_id]
    (first,) = setup.statuses()
    day = dt.timedelta(days=1)
    (twin_row,) = [r for r in setup.ledger.history(start - day, start + day) if r.id.startswith("again:")]
    claimed_at = twin_row.due_at
    assert setup.ledger.claim(twin_row.id, claimed_at, "otherhost:4242:crashed")

    later = claimed_at + LATER
    again = setup.daemon(later)
    report = run_once(again, later)
    again.close()

    assert [(r.post_id, r.outcome) for r in report.reconciled] == [(twin_row.id, "released")]
    assert report.published == [twin_row.id]
    statuses = setup.statuses()
    assert len(statuses) == 2  # the twin went out: nothing lost
    row = setup.ledger.get(twin_row.id)
    assert row.state == State.PUBLISHED
    assert row.result is not None
    assert row.result[0]["id"] != str(first["id"])
    assert {row.result[0]["id"], str(first["id"])} == {str(s["id"]) for s in statuses}


def test_a_search_answered_429_is_not_repeated_before_the_servers_reset(make: Callable[..., Setup]) -> None:
    """Defect 2: the status search after a 429 with ``X-RateLimit-Reset`` went out again before the reset."""
    from amplifier.delivery.reconcile import reconcile_row
    from amplifier.publish.base import RateLimitedError

    setup = make()
    now = dt.datetime.now(dt.UTC)
    claimed_at = now - LATER
    setup.crash_after_request(claimed_at, send=False)
    setup.server.inject(429, path_regex=r"^/api/v1/accounts/[^/]+/statuses$", ratelimit_reset_in=3600)
    daemon = setup.daemon(now)
    daemon.plan(now)
    post = daemon.posts[setup.post_id]
    daemon.close()
    publisher = setup.publisher()
    try:
        with pytest.raises(RateLimitedError) as caught:
            publisher.find_published(post, since=claimed_at)
        assert caught.value.reset_at is not None
        assert caught.value.reset_at > now + dt.timedelta(minutes=59)

        setup.server.inject(429, path_regex=r"^/api/v1/accounts/[^/]+/statuses$", ratelimit_reset_in=3600)
        outcome = reconcile_row(
            setup.ledger, setup.ledger.get(setup.post_id), post, publisher, now, resend_now=False
        )
    finally:
        publisher.close()
    assert outcome.outcome == "unknown"
    row = setup.ledger.get(setup.post_id)
    assert row.state == State.CLAIMED
    assert row.next_attempt_at > now + dt.timedelta(minutes=59)  # the reset, not the 30-minute recheck
    assert setup.statuses() == []
