"""The state folder: private atomic files, saved sessions, the login guard, the limits cache."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplifier.publish.sessions import (
    STATE_ENV,
    Fingerprints,
    LimitsCache,
    LoginGuard,
    LoginRefusedError,
    SessionStore,
    StateDir,
    resolve_state_dir,
    safe_name,
    secret_changed,
    secret_fingerprint,
)

T0 = datetime(2027, 11, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize(
    ("state", "env", "expected"),
    [
        ("/explicit", {STATE_ENV: "/from-env"}, "/explicit"),
        (None, {STATE_ENV: "/from-env"}, "/from-env"),
        (None, {}, "/camp/.amplifier-state"),
        (None, {STATE_ENV: "  "}, "/camp/.amplifier-state"),
    ],
)
def test_resolve_state_dir(state: str | None, env: dict[str, str], expected: str) -> None:
    got = resolve_state_dir(Path("/camp/schedule.yaml"), Path(state) if state else None, env)
    assert got == Path(expected)


def test_files_are_private_and_atomic(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    target = state.write("sessions", "a.session", b"secret")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "sessions").stat().st_mode) == 0o700
    state.write("sessions", "a.session", b"newer")
    assert state.read("sessions", "a.session") == b"newer"
    assert os.listdir(tmp_path / "state" / "sessions") == ["a.session"]  # no temp files left behind


def test_existing_loose_folder_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir(mode=0o755)
    StateDir(tmp_path / "state").ensure()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


@given(st.text(min_size=1, max_size=100))
def test_safe_name_is_a_single_path_component(key: str) -> None:
    name = safe_name(key)
    assert "/" not in name
    assert name not in {"", ".", ".."}
    assert "\x00" not in name


def test_safe_name_keeps_simple_names_and_separates_others() -> None:
    assert safe_name("bluesky-en") == "bluesky-en"
    assert safe_name("a/b") != safe_name("a_b")


def test_session_store_round_trip(tmp_path: Path) -> None:
    store = SessionStore(StateDir(tmp_path))
    assert store.load("bsky") is None
    store.save("bsky", "handle:::did:::a:::r:::url")
    assert store.load("bsky") == "handle:::did:::a:::r:::url"
    store.delete("bsky")
    assert store.load("bsky") is None


def test_login_guard_blocks_after_a_rejection_then_allows(tmp_path: Path) -> None:
    clock = Clock()
    guard = LoginGuard(StateDir(tmp_path), clock=clock)
    guard.check("bsky")
    guard.record("bsky", "rejected")
    with pytest.raises(LoginRefusedError, match="rejected") as caught:
        guard.check("bsky")
    assert caught.value.retry_at == T0 + timedelta(minutes=20)
    # Remembered on disk: a new process (a new guard) refuses too.
    with pytest.raises(LoginRefusedError):
        LoginGuard(StateDir(tmp_path), clock=clock).check("bsky")
    clock.now = T0 + timedelta(minutes=21)
    guard.check("bsky")
    guard.check("other-account")


def test_wrong_credentials_cause_at_most_three_logins_an_hour(tmp_path: Path) -> None:
    clock = Clock()
    guard = LoginGuard(StateDir(tmp_path), clock=clock)
    attempts = 0
    for minute in range(60):
        clock.now = T0 + timedelta(minutes=minute)
        try:
            guard.check("bsky")
        except LoginRefusedError:
            continue
        attempts += 1
        guard.record("bsky", "rejected")
    assert attempts == 3


def test_any_outcome_counts_toward_the_hourly_cap(tmp_path: Path) -> None:
    clock = Clock()
    guard = LoginGuard(StateDir(tmp_path), clock=clock)
    for n in range(5):
        clock.now = T0 + timedelta(minutes=n)
        guard.check("bsky")
        guard.record("bsky", "ok" if n % 2 else "failed")
    with pytest.raises(LoginRefusedError, match="5 logins in the last hour"):
        guard.check("bsky")
    clock.now = T0 + timedelta(hours=1, seconds=1)
    guard.check("bsky")


def test_limits_cache_memory_disk_and_ttl(tmp_path: Path) -> None:
    clock = Clock()
    cache = LimitsCache(StateDir(tmp_path), clock=clock, ttl=timedelta(hours=24))
    assert cache.get("mastodon-x") is None
    cache.put("mastodon-x", {"max_characters": 1000})
    assert cache.get("mastodon-x") == {"max_characters": 1000}
    fresh = LimitsCache(StateDir(tmp_path), clock=clock)
    assert fresh.get("mastodon-x") == {"max_characters": 1000}
    clock.now = T0 + timedelta(hours=25)
    assert fresh.get("mastodon-x") is None


def test_limits_cache_survives_a_damaged_file(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.write("limits", f"{safe_name('k')}.json", b"{not json")
    assert LimitsCache(state, clock=Clock()).get("k") is None


def test_an_unusable_state_folder_is_exit_code_5(tmp_path: Path) -> None:
    from amplifier.errors import ExitCode
    from amplifier.publish.sessions import StateError

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StateError, match="cannot create the state folder") as info:
        StateDir(tmp_path / "file" / "state").ensure()
    assert info.value.exit_code == ExitCode.STATE == 5


def test_a_changed_secret_is_tried_at_once_the_rejected_one_is_not(tmp_path: Path) -> None:
    """Defect 6: after a rejection the guard refuses the same password for 20 minutes, not a corrected one;
    the file keeps a fingerprint, never the password."""
    clock = Clock()
    state = StateDir(tmp_path)
    guard = LoginGuard(state, clock=clock)
    guard.check("bsky", "wrong-password-1")
    guard.record("bsky", "rejected", "wrong-password-1")
    with pytest.raises(LoginRefusedError) as caught:
        guard.check("bsky", "wrong-password-1")
    assert caught.value.rejected
    guard.check("bsky", "fixed-password-2")  # a new secret: no wait
    LoginGuard(state, clock=clock).check("bsky", "fixed-password-2")  # another process too
    saved = (tmp_path / "logins" / "bsky.json").read_text()
    assert "wrong-password-1" not in saved
    assert Fingerprints(state).of("wrong-password-1") in saved
    # the fingerprint is keyed: another state folder (another key) gives another one
    assert Fingerprints(StateDir(tmp_path / "other")).of("wrong-password-1") not in saved


def test_failed_logins_are_never_rejections_and_spend_only_the_hours_budget(tmp_path: Path) -> None:
    """Defect 5: five 503s are no rejected credentials: the guard then only asks to wait for the hour's
    budget (``rejected`` False: the caller waits, it does not pause the account)."""
    clock = Clock()
    guard = LoginGuard(StateDir(tmp_path), clock=clock)
    for n in range(5):
        clock.now = T0 + timedelta(minutes=n)
        guard.check("bsky", "the-password")
        guard.record("bsky", "failed", "the-password")
    with pytest.raises(LoginRefusedError) as caught:
        guard.check("bsky", "the-password")
    assert not caught.value.rejected
    assert caught.value.retry_at == T0 + timedelta(hours=1)


def test_secret_changed_tells_the_daemon_when_a_paused_accounts_secret_was_replaced(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    paused_with = secret_fingerprint(state, "old-token-value")
    assert not secret_changed(state, paused_with, "old-token-value")
    assert secret_changed(state, paused_with, "new-token-value")
    assert not secret_changed(state, paused_with, None)  # removed: still nothing to try
    assert secret_changed(state, None, "now-set-value")  # paused for a missing secret, now set
    assert not secret_changed(state, None, None)
    key = tmp_path / "keys" / "fingerprint.key"
    assert key.stat().st_mode & 0o777 == 0o600


def test_concurrent_first_fingerprints_share_one_key(tmp_path: Path) -> None:
    # Three accounts rejected at once, on a state folder without a key yet: every fingerprint of one secret is
    # the same (before, each thread made its own key and the last one written won: the others' fingerprints
    # matched nothing, and a paused account looked as if its secret had changed).
    import threading

    from amplifier.publish.sessions import StateDir, secret_changed, secret_fingerprint

    for round_ in range(5):
        state = StateDir(tmp_path / f"state{round_}")
        barrier = threading.Barrier(8)
        prints: list[str] = []

        def one(
            state: StateDir = state, barrier: threading.Barrier = barrier, prints: list[str] = prints
        ) -> None:
            barrier.wait()
            prints.append(secret_fingerprint(state, "the-same-secret"))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(prints)) == 1
        assert not secret_changed(state, prints[0], "the-same-secret")
