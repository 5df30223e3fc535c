"""State shared by the nodes of one PostgreSQL ledger (``delivery/shared_state.LedgerState``): a 429's reset one
node got is respected by the other, and two nodes refreshing one Bluesky session against the reference PDS
refresh it once and go on with the same session."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amplifier.campaign.models import BlueskyAccount
from amplifier.delivery.ledger import State
from amplifier.delivery.ledger.postgres import PostgresLedger
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.shared_state import LedgerState
from amplifier.plan.post import Part, PlannedPost
from amplifier.publish import PublishContext, create_publisher
from amplifier.publish.base import RateLimitedError
from amplifier.publish.bluesky import COLLECTION, BlueskyPublisher
from amplifier.publish.secrets import SecretSources
from tests.integration.servers import PdsServer
from tests.integration.servers.postgres import PostgresServer
from tests.integration.test_nodes import Node, campaign, make_node, url
from tests.unit.test_daemon import FakeServer, at

__all__ = ["make_node", "url"]  # the fixtures of test_nodes, used here

PASSWORD_ENV = "AMP_IT_NODES_BSKY_PASSWORD"
_databases = itertools.count()


def test_a_429_one_node_got_holds_the_account_on_the_other(
    make_node: Callable[..., Node], url: str, tmp_path: Path
) -> None:
    """Node one gets a 429 (reset at 09:30) for masto's first post, and the post is then skipped by an operator;
    node two has masto's next post due at 09:05 and sends nothing for masto before 09:30."""
    folder = campaign(tmp_path, "c")
    server = FakeServer()
    stores = [PostgresLedger.open(url, at("2027-10-20T08:00")) for _ in range(2)]
    try:
        first = make_node(folder, server, limiter=RateLimiter(shared=LedgerState(stores[0], "one")))
        second = make_node(folder, server, limiter=RateLimiter(shared=LedgerState(stores[1], "two")))
        reset = at("2027-10-20T09:30")
        server.fail("masto", RateLimitedError("rate limited (HTTP 429)", reset_at=reset, status=429))

        first.tick(at("2027-10-20T09:01"))
        assert server.count("a:masto:2027-10-20T09:00") == 0
        assert server.count("a:sky:2027-10-20T09:00") == 1
        first.ledger.skip_posts(
            ["a:masto:2027-10-20T09:00"], "an operator's skip", at("2027-10-20T09:02"), by="op"
        )

        second.tick(at("2027-10-20T09:06"))
        assert server.count("b:sky:2027-10-20T09:05") == 1  # the other account goes on
        assert [post for account, post in server.calls if account == "masto"] == ["a:masto:2027-10-20T09:00"]
        assert [event["id"] for event in second.events("deferred")] == ["b:masto:2027-10-20T09:05"]
        assert second.ledger.get("b:masto:2027-10-20T09:05").state == State.PLANNED
        assert second.daemon.next_wake(at("2027-10-20T09:06")) == reset

        second.tick(at("2027-10-20T09:31"))
        assert server.count("b:masto:2027-10-20T09:05") == 1
    finally:
        for store in stores:
            store.close()


# -- Bluesky sessions against the reference PDS ---------------------------------------------------------------


def _post(post_id: str, text: str) -> PlannedPost:
    payload = {"$type": COLLECTION, "text": text, "createdAt": "2027-10-01T10:00:00.000Z", "langs": ["en"]}
    return PlannedPost(
        id=post_id,
        at=dt.datetime(2027, 10, 1, 10, 0, tzinfo=dt.UTC),
        rule="r",
        account="bsky",
        platform="bluesky",
        lang="en",
        parts=(Part(text=text, length=len(text), limit=300, payload=payload),),
        message_set="m",
        variant=0,
    )


@pytest.fixture
def nodes(
    pds: PdsServer, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[PdsServer, list[BlueskyPublisher], list[LedgerState], str]]:
    """Two nodes' Bluesky publishers of one account, each with its own connection to one PostgreSQL ledger."""
    account = pds.create_account("ha")
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    database = postgres.create_database(f"nodes_sessions_{next(_databases)}")
    settings = BlueskyAccount(
        platform="bluesky", handle=account.handle, service=pds.url, password_env=PASSWORD_ENV
    )  # type: ignore[arg-type]
    ledgers = [PostgresLedger.open(database, dt.datetime.now(dt.UTC)) for _ in range(2)]
    stores = [LedgerState(ledger, f"node{n}") for n, ledger in enumerate(ledgers)]
    publishers = []
    for store in stores:
        ctx = PublishContext(secrets=SecretSources(), state=store, timeout=10.0)
        publisher = create_publisher("bsky", settings, ctx)
        assert isinstance(publisher, BlueskyPublisher)
        publishers.append(publisher)
    yield pds, publishers, stores, account.did
    for publisher in publishers:
        publisher.close()
    for ledger in ledgers:
        ledger.close()


def test_two_nodes_refreshing_one_session_refresh_it_once_and_share_it(
    nodes: tuple[PdsServer, list[BlueskyPublisher], list[LedgerState], str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from atproto_client.client.methods_mixin.session import SessionMethodsMixin

    pds, (one, two), stores, did = nodes
    caplog.set_level(logging.DEBUG)
    pds.reset_request_counts()
    one.check()  # logs in; the session is stored in the database
    two.check()  # the stored session: no login
    assert pds.request_count("com.atproto.server.createSession") == 1
    stored = stores[0].read("sessions", "bsky.session")
    assert stored is not None
    assert stored.decode().split(":::")[1] == did
    # The session both hold is due for a refresh (as if its access token were about to expire); told by its
    # refresh token, which every refresh renews (an access token issued in the same second is the same).
    expired = {stored.decode().split(":::")[3]}

    def due(self: SessionMethodsMixin) -> bool:
        return self._session is not None and self._session.refresh_jwt in expired

    monkeypatch.setattr(SessionMethodsMixin, "_should_refresh_session", due)
    pds.reset_request_counts()
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def publish(publisher: BlueskyPublisher, n: int) -> None:
        try:
            start.wait(10)
            publisher.publish(_post(f"ha-refresh-{n}", f"node {n} after the refresh"))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=publish, args=(p, n)) for n, p in enumerate((one, two))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert (
        pds.request_count("com.atproto.server.refreshSession") == 1
    )  # one node refreshed, the other took it
    assert pds.request_count("com.atproto.server.createSession") == 0
    fresh = stores[1].read("sessions", "bsky.session")
    assert fresh is not None
    assert fresh != stored
    sessions = [p._session().export_session_string() for p in (one, two)]
    assert sessions == [fresh.decode(), fresh.decode()]

    # Neither invalidated the other: both go on posting, and the stored refresh token still refreshes.
    for n, publisher in enumerate((one, two)):
        publisher.publish(_post(f"ha-after-{n}", f"node {n} goes on"))
    expired.add(fresh.decode().split(":::")[3])
    two.publish(_post("ha-second-refresh", "a second refresh"))
    assert pds.request_count("com.atproto.server.refreshSession") == 2
    assert pds.request_count("com.atproto.server.createSession") == 0
    texts = {r["value"]["text"] for r in pds.list_records(did, COLLECTION)}
    assert {"node 0 after the refresh", "node 1 after the refresh", "a second refresh"} <= texts

    tokens = [part for session in (stored.decode(), fresh.decode()) for part in session.split(":::")[2:4]]
    assert not any(token in record.getMessage() for record in caplog.records for token in tokens)


@pytest.mark.parametrize("shared", [True, False])
def test_the_store_is_chosen_where_the_ledger_is_opened(
    shared: bool, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run`` on a shared ledger: the publishers' store, the 429 blocks and the pause records in the ledger's
    database; on one machine: the state folder, the blocks in memory (as before)."""
    from amplifier.campaign.load import load_campaign
    from amplifier.daemon.events import EventLog
    from amplifier.daemon.scheduler import open_daemon
    from amplifier.publish.state import StateDir

    monkeypatch.setenv("AMPLIFIER_SECRETS_DIR", str(tmp_path / "no-secrets"))
    if shared:
        monkeypatch.setenv("AMPLIFIER_LEDGER", url)
    else:
        monkeypatch.delenv("AMPLIFIER_LEDGER", raising=False)
    folder = campaign(tmp_path, "c")
    state = tmp_path / "state"
    ctx = PublishContext(secrets=SecretSources(), state=StateDir(state))
    with open_daemon(
        load_campaign(folder / "schedule.yaml"),
        state,
        lambda account, settings: None,
        clock=lambda: at("2027-10-20T08:00"),
        log=EventLog(None),
        publish_ctx=ctx,
        environ={},
    ) as daemon:
        if shared:
            assert isinstance(ctx.state, LedgerState)
            assert daemon.limiter.shared is ctx.state
            assert daemon.state_store is ctx.state
            assert daemon.pause_records.state is ctx.state
        else:
            assert ctx.state == StateDir(state)
            assert daemon.limiter.shared is None
            assert daemon.state_store is None


def test_ledger_migrate_takes_the_state_folders_shared_documents_along(url: str, tmp_path: Path) -> None:
    """The session, the login guard, the fingerprints' key and a pause record of the machine go to the database:
    no node logs in again, and a pause recorded before the move is recognised after it."""
    from amplifier.delivery.ledger import open_ledger
    from amplifier.delivery.move import move_ledger
    from amplifier.publish.sessions import Fingerprints, LoginGuard, SessionStore
    from amplifier.publish.state import StateDir

    now = at("2027-10-20T08:00")
    folder = StateDir(tmp_path / "state")
    with open_ledger(folder.path, now):
        pass
    SessionStore(folder).save("sky", "handle:::did:::access:::refresh:::https://pds.test")
    LoginGuard(folder, clock=lambda: now).record("sky", "rejected", "wrong")
    fingerprint = Fingerprints(folder).of("token")
    folder.write_json("pauses", "masto.json", {"account": "masto", "secret": fingerprint})
    with folder.locked("sessions", "sky.session"):  # a lock file is not a document
        pass

    report = move_ledger(folder.path, url, now)

    assert report.state_documents == 4
    with PostgresLedger.open(url, now) as ledger:
        store = LedgerState(ledger, "n")
        assert SessionStore(store).load("sky") == "handle:::did:::access:::refresh:::https://pds.test"
        assert Fingerprints(store).of("token") == fingerprint
        assert store.read_json("pauses", "masto.json") == {"account": "masto", "secret": fingerprint}
        assert set(store.read_many("sessions", [".sky.session.lock", "sky.session"])) == {"sky.session"}


def test_a_node_whose_session_is_refused_takes_the_stored_one_before_logging_in(
    nodes: tuple[PdsServer, list[BlueskyPublisher], list[LedgerState], str],
) -> None:
    """Another node renewed the session (or logged in again) and this node's copy is refused: it takes the
    stored session and goes on, without a login."""
    from tests.integration.test_publish_bluesky import forged_jwt

    pds, (one, two), _stores, did = nodes
    one.check()
    two.check()
    client = two._session()
    handle = client.export_session_string().split(":::")[0]
    forged = forged_jwt(did)  # well formed, unexpired, not signed by this PDS: refused
    client._import_session_string(":::".join([handle, did, forged, forged, pds.url]))
    pds.reset_request_counts()

    two.publish(_post("ha-adopted", "after the refused session"))

    assert pds.request_count("com.atproto.server.createSession") == 0
    assert two._session().export_session_string() == one._session().export_session_string()
    assert "after the refused session" in {r["value"]["text"] for r in pds.list_records(did, COLLECTION)}


def test_send_and_gate_use_the_shared_store_on_a_shared_ledger(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amplifier.delivery.shared_state import share_state
    from amplifier.publish.state import StateDir

    monkeypatch.setenv("AMPLIFIER_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.delenv("AMPLIFIER_LEDGER", raising=False)
    with PostgresLedger.open(url, at("2027-10-20T08:00")) as ledger:
        ctx = PublishContext(secrets=SecretSources(), state=StateDir(tmp_path / "state"))
        share_state(ctx, ledger, "send")
        assert ctx.state == StateDir(tmp_path / "state")  # one machine: the state folder
        monkeypatch.setenv("AMPLIFIER_LEDGER", url)
        share_state(ctx, ledger, "send")
        assert isinstance(ctx.state, LedgerState)
        assert ctx.state.ledger is ledger
