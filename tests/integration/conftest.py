"""Fixtures: real servers on loopback for integration tests.

Session-scoped servers, started on first use and stopped at the end of the session (and, should the test
process die, the servers notice their stdin closing and exit by themselves):

``pds`` -> :class:`~.servers.pds.PdsServer`
    The reference Bluesky PDS (``@atproto/pds`` 0.5.35) with an in-memory PLC directory, real rate limits
    on. The first use on a machine installs it into a cache outside the checkout (about 1-3 minutes,
    announced on the terminal); later sessions start it in about 2 seconds. Main API::

        account = pds.create_account("alice")          # Account(did, handle, password), no login used
        client = atproto.Client(base_url=pds.url + "/xrpc")
        client.login(account.handle, account.password, fetch_bsky_profile=False)
        pds.get_record(account.did, "app.bsky.feed.post", rkey)   # {"uri", "cid", "value"} | None
        pds.list_records(account.did, "app.bsky.feed.post")       # [{"uri", "cid", "value"}, ...]
        pds.reset_request_counts(); ...; pds.request_count("com.atproto.repo.putRecord")

``mastodon_server`` -> :class:`~.servers.mastodon.MastodonServer`
    ``mastodon-mock`` 0.6.1 under uvicorn. Main API::

        account = mastodon_server.create_account()              # MastodonAccount(account_id, access_token)
        client = Mastodon(api_base_url=mastodon_server.url, access_token=account.access_token)
        mastodon_server.statuses(account)                       # raw JSON, newest first
        mastodon_server.inject(status=502, times=1, path="/api/v1/statuses", method="POST")
        mastodon_server.request_count("/api/v1/statuses")

``mastodon_faults`` -> the same :class:`MastodonServer`, with every fault rule cleared after the test.
Use it (rather than ``mastodon_server``) in any test that calls ``inject``.

``appview`` -> :class:`~.servers.appview.AppViewNetwork`
    A separate Bluesky network with the reference AppView: in-memory PLC, PDS 0.5.35 (rate limits off) and
    ``@atproto/bsky`` 0.0.280 on a database of the ``postgres`` fixture's cluster, the PDS proxying
    ``app.bsky.*`` queries to the AppView, which indexes the PDS's firehose (as ``@atproto/dev-env``'s
    ``TestNetwork`` does, without Redis, bsync and ozone). Started only when a test asks for it: mark such
    tests ``@pytest.mark.appview``. Its own install in the cache (about 25-60 s the first time); a start
    takes about 4 s. Main API::

        campaign = appview.create_account("campaign")           # log in at appview.url like the PDS
        appview.like(reader, uri, cid); appview.repost(...); appview.reply(reader, parent, "text")
        appview.quote(reader, uri, cid, "text")
        appview.sync()                                          # wait until the AppView indexed every write
        appview.get_posts([uri], viewer=reader)                 # app.bsky.* through the PDS's proxy

For faults on the Bluesky side (or any HTTP server), put a :class:`~.servers.fault_proxy.FaultProxy` in front
of it, per test: ``proxy = FaultProxy.start(pds.url)``, use ``proxy.url`` as the account's service, then
``proxy.inject("com.atproto.repo.putRecord", "drop_after")`` (see its docstring), ``proxy.stop()``.

Both servers are shared by every test of the session: create a fresh account per test, call
``reset_request_counts()`` before measuring, never expect an empty server. Server logs: ``pds.log_path``,
``mastodon_server.log_path`` (under pytest's temp folder).

Environment: ``AMPLIFIER_TEST_CACHE`` moves the install cache (default
``${XDG_CACHE_HOME:-~/.cache}/amplifier-tests``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.integration.servers.postgres import PostgresServer

from .servers.appview import AppViewNetwork
from .servers.appview import ensure_installed as ensure_appview_installed
from .servers.mastodon import MastodonServer
from .servers.pds import PdsServer, ensure_installed


def _announcer(config: pytest.Config) -> Callable[[str], None]:
    """A function that prints one line on the terminal, even while output is captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def announce(message: str) -> None:
        line = f"[integration servers] {message}"
        if reporter is None or capture is None:
            print(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(line, bold=True, yellow=True)

    return announce


@pytest.fixture(scope="session")
def pds(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdsServer]:
    """The reference Bluesky PDS + PLC on loopback (session scope). See the module docstring."""
    install_dir = ensure_installed(_announcer(pytestconfig))
    server = PdsServer.start(install_dir=install_dir, work_dir=tmp_path_factory.mktemp("pds"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mastodon_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MastodonServer]:
    """``mastodon-mock`` on loopback (session scope). See the module docstring."""
    server = MastodonServer.start(work_dir=tmp_path_factory.mktemp("mastodon"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mastodon_faults(mastodon_server: MastodonServer) -> Iterator[MastodonServer]:
    """The Mastodon server, with all injected faults cleared after the test."""
    mastodon_server.clear_faults()
    try:
        yield mastodon_server
    finally:
        mastodon_server.clear_faults()


@pytest.fixture(scope="session")
def appview(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer
) -> Iterator[AppViewNetwork]:
    """PLC + PDS + the reference AppView on PostgreSQL (session scope), started only when a test asks for
    it. Mark such tests ``@pytest.mark.appview``. See :mod:`.servers.appview`."""
    install_dir = ensure_appview_installed(_announcer(pytestconfig))
    network = AppViewNetwork.start(
        install_dir=install_dir,
        work_dir=tmp_path_factory.mktemp("appview"),
        database_url=postgres.create_database("appview"),
    )
    try:
        yield network
    finally:
        network.stop()
