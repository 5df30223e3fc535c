"""The state store's contract (``publish/state.StateStore``), for each place: the state folder (one machine) and
the ledger's database (``delivery/shared_state.LedgerState``) over SQLite and PostgreSQL. Each test makes two
stores over one place, as two processes or two nodes have, and checks that what one writes the other reads:
documents, the first-writer-wins key, locks, and what is built on them (sessions, the login guard, the
fingerprints' key, instance limits, the 429 blocks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amplifier.delivery.ledger import Ledger
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.shared_state import LOCK_LEASE, LedgerState
from amplifier.errors import StateError
from amplifier.publish.sessions import (
    Fingerprints,
    LimitsCache,
    LoginGuard,
    LoginRefusedError,
    SessionStore,
)
from amplifier.publish.state import StateDir, StateStore
from tests.contract.conftest import Backend, PostgresBackend, SqliteBackend
from tests.integration.servers.postgres import PostgresServer

T0 = datetime(2027, 11, 1, 12, 0, tzinfo=UTC)
Pair = tuple[StateStore, StateStore]

_databases = iter(range(10_000))


@pytest.fixture(params=["folder", "sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    """Two stores over one place: the state folder, or one ledger's database opened twice."""
    if request.param == "folder":
        yield StateDir(tmp_path / "state"), StateDir(tmp_path / "state")
        return
    backend: Backend
    if request.param == "sqlite":
        backend = SqliteBackend(tmp_path)
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        backend = PostgresBackend(server, f"state_{next(_databases)}")
    first, second = backend.open(T0), backend.open(T0)
    try:
        yield LedgerState(first, "n1:1:a"), LedgerState(second, "n2:2:b")
    finally:
        first.close()
        second.close()


def test_documents_round_trip_between_the_two(pair: Pair) -> None:
    one, other = pair
    assert one.read("limits", "x.json") is None
    one.write("limits", "x.json", b"\x00first")
    assert other.read("limits", "x.json") == b"\x00first"
    other.write("limits", "x.json", b"second")
    assert one.read("limits", "x.json") == b"second"
    assert one.read("sessions", "x.json") is None  # folders are apart
    one.write_json("logins", "a.json", {"attempts": [1, 2]})
    assert other.read_json("logins", "a.json") == {"attempts": [1, 2]}
    one.write("logins", "b.json", b"{damaged")
    assert other.read_json("logins", "b.json") is None  # a damaged document is none
    assert other.read_many("logins", ["a.json", "b.json", "c.json"]) == {
        "a.json": one.read("logins", "a.json"),
        "b.json": b"{damaged",
    }
    assert other.read_many("logins", []) == {}
    one.delete("logins", "a.json")
    one.delete("logins", "never.json")  # nothing to delete: nothing happens
    assert other.read("logins", "a.json") is None
    assert "logins" in one.where("logins", "a.json")
    assert "a.json" in one.where("logins", "a.json")


def test_create_keeps_the_first_writers_document(pair: Pair) -> None:
    one, other = pair
    assert one.create("keys", "k", b"first") == b"first"
    assert other.create("keys", "k", b"second") == b"first"
    assert other.read("keys", "k") == b"first"


def test_a_lock_excludes_the_other_until_released(pair: Pair) -> None:
    one, other = pair
    order: list[str] = []
    inside = threading.Event()

    def hold() -> None:
        with one.locked("sessions", "s"):
            order.append("one in")
            inside.set()
            time.sleep(0.3)
            order.append("one out")

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(10)
    with other.locked("sessions", "s"):
        order.append("other in")
    thread.join()
    assert order == ["one in", "one out", "other in"]
    with one.locked("sessions", "other-document"), other.locked("sessions", "another"):
        pass  # locks are per document


def test_a_lock_not_released_in_time_is_a_state_error_and_an_error_releases_it(pair: Pair) -> None:
    one, other = pair
    with one.locked("sessions", "s"):
        waited = other.locked("sessions", "s", wait=0.2)
        with pytest.raises(StateError, match="locked"):
            waited.__enter__()
    with pytest.raises(RuntimeError), one.locked("sessions", "s"):
        raise RuntimeError("boom")
    with other.locked("sessions", "s", wait=1):
        pass


def test_a_dead_holders_lock_passes_with_its_lease(backend: Backend) -> None:
    with backend.open(T0) as ledger:
        assert ledger.state_lock("sessions", "s", "dead", T0 + LOCK_LEASE, T0)
        assert not ledger.state_lock("sessions", "s", "alive", T0 + 2 * LOCK_LEASE, T0 + timedelta(seconds=1))
        assert ledger.state_lock("sessions", "s", "dead", T0 + LOCK_LEASE, T0)  # its holder may renew it
        later = T0 + LOCK_LEASE
        assert ledger.state_lock("sessions", "s", "alive", later + LOCK_LEASE, later)
        ledger.state_unlock("sessions", "s", "dead")  # not its lock any more: nothing happens
        assert not ledger.state_lock("sessions", "s", "third", later + LOCK_LEASE, later)
        ledger.state_unlock("sessions", "s", "alive")
        assert ledger.state_lock("sessions", "s", "third", later + LOCK_LEASE, later)


def _clock(now: datetime) -> Callable[[], datetime]:
    return lambda: now


def test_what_one_node_learns_the_other_knows(pair: Pair) -> None:
    one, other = pair
    # the fingerprints' key: one key for both, so a fingerprint made by one is checked by the other
    assert Fingerprints(one).of("secret") == Fingerprints(other).of("secret")
    # the login guard: a rejection seen by one refuses the same password on the other
    LoginGuard(one, clock=_clock(T0)).record("sky", "rejected", "wrong")
    with pytest.raises(LoginRefusedError) as refused:
        LoginGuard(other, clock=_clock(T0 + timedelta(minutes=1))).check("sky", "wrong")
    assert refused.value.rejected
    LoginGuard(other, clock=_clock(T0 + timedelta(minutes=1))).check("sky", "corrected")
    stored = str(other.read("logins", "sky.json"))
    assert "wrong" not in stored
    assert "corrected" not in stored
    # instance limits
    LimitsCache(one, clock=_clock(T0)).put("https://masto.test", {"max_characters": 500})
    assert LimitsCache(other, clock=_clock(T0)).get("https://masto.test") == {"max_characters": 500}
    # sessions, and the lock a refresh runs under
    SessionStore(one).save("sky", "session-1")
    with SessionStore(other).refreshing("sky") as current:
        assert current == "session-1"
        SessionStore(other).save("sky", "session-2")
    with SessionStore(one).refreshing("sky") as current:
        assert current == "session-2"  # the refreshed one: not to be refreshed again


def test_a_429_block_one_node_got_holds_on_the_other(pair: Pair) -> None:
    one, other = pair
    first, second = RateLimiter(shared=one), RateLimiter(shared=other)
    first.block("masto", T0 + timedelta(minutes=30))
    first.block("masto", T0 + timedelta(minutes=10))  # an earlier one does not shorten it
    assert second.available_at("masto", "mastodon", 1, T0) == T0  # not read yet
    second.load_blocks(T0, ["masto", "sky"])
    assert second.available_at("masto", "mastodon", 1, T0) == T0 + timedelta(minutes=30)
    assert second.blocked_until("sky", T0) is None
    second.load_blocks(T0 + timedelta(hours=1), ["masto"])  # a block that ended is not loaded again
    assert second.blocked_until("masto", T0 + timedelta(hours=1)) is None


def test_memory_only_without_a_shared_store(tmp_path: Path) -> None:
    limiter = RateLimiter()
    limiter.block("masto", T0 + timedelta(minutes=5))
    limiter.load_blocks(T0, ["masto"])
    assert limiter.blocked_until("masto", T0) == T0 + timedelta(minutes=5)
    assert not list(tmp_path.iterdir())


def test_the_ledger_store_names_the_database_never_a_password(ledger: Ledger) -> None:
    where = LedgerState(ledger, "n").where("sessions", "sky.session")
    assert "sessions/sky.session" in where
    assert "password" not in where
    assert "@" not in where.split("(", 1)[1]
