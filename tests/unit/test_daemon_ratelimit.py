"""The client-side rate limiter: documented platform budgets, server blocks, the sliding-window invariant."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplifier.delivery.ratelimit import BUDGETS, Budget, RateLimiter, Window

T0 = dt.datetime(2027, 10, 20, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("platform", "used_parts", "asked", "wait"),
    [
        ("mastodon", 299, 1, dt.timedelta(0)),
        ("mastodon", 300, 1, dt.timedelta(hours=3)),
        ("mastodon", 298, 3, dt.timedelta(hours=3)),
        ("bluesky", 1665, 1, dt.timedelta(0)),  # 4995 points + 3 <= 5000
        ("bluesky", 1666, 1, dt.timedelta(hours=1)),  # 4998 points + 3 > 5000
        ("dry-run", 10_000, 1, dt.timedelta(0)),  # no budget, no wait
    ],
)
def test_documented_budgets(platform: str, used_parts: int, asked: int, wait: dt.timedelta) -> None:
    limiter = RateLimiter()
    limiter.record("acct", platform, used_parts, T0)
    assert limiter.available_at("acct", platform, asked, T0) == T0 + wait


def test_the_bluesky_daily_budget() -> None:
    limiter = RateLimiter()
    # 7 hours of 1666 creates each: under 5000 points an hour, but 34986 points a day.
    for hour in range(7):
        limiter.record("sky", "bluesky", 1666, T0 + dt.timedelta(hours=hour))
    now = T0 + dt.timedelta(hours=7)
    assert limiter.available_at("sky", "bluesky", 4, now) == now  # 34998 points
    assert limiter.available_at("sky", "bluesky", 5, now) == T0 + dt.timedelta(days=1)  # 35001 points


def test_a_server_block_wins_and_ends() -> None:
    limiter = RateLimiter()
    reset = T0 + dt.timedelta(minutes=7)
    limiter.block("acct", reset)
    limiter.block("acct", T0 + dt.timedelta(minutes=2))  # an earlier block does not shorten it
    assert limiter.available_at("acct", "mastodon", 1, T0) == reset
    assert limiter.blocked_until("acct", T0) == reset
    assert limiter.available_at("other", "mastodon", 1, T0) == T0
    assert limiter.available_at("acct", "mastodon", 1, reset) == reset
    assert limiter.blocked_until("acct", reset) is None


def test_seed_from_history() -> None:
    limiter = RateLimiter()
    limiter.seed([("acct", "mastodon", T0 - dt.timedelta(hours=1), 150)] * 2)
    assert limiter.available_at("acct", "mastodon", 1, T0) == T0 + dt.timedelta(hours=2)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=600), st.integers(min_value=1, max_value=4)),
        min_size=1,
        max_size=80,
    )
)
def test_following_available_at_never_exceeds_a_window(steps: list[tuple[int, int]]) -> None:
    """Whatever the arrivals, publishing when available_at says so keeps every window within its limit."""
    budget = Budget(
        (Window(10, dt.timedelta(minutes=10)), Window(25, dt.timedelta(hours=1))), cost_per_part=1
    )
    limiter = RateLimiter({"p": budget})
    now = T0
    history: list[tuple[dt.datetime, int]] = []
    for gap, parts in steps:
        now = now + dt.timedelta(seconds=gap)
        when = limiter.available_at("a", "p", parts, now)
        assert when >= now
        limiter.record("a", "p", parts, when)
        history.append((when, parts))
        now = when
        for window in budget.windows:
            used = sum(units for at, units in history if at > when - window.span)
            assert used <= window.limit


def test_budgets_match_the_notes() -> None:
    assert BUDGETS["mastodon"].windows == (Window(300, dt.timedelta(hours=3)),)
    assert BUDGETS["bluesky"].cost_per_part == 3
    assert [w.limit for w in BUDGETS["bluesky"].windows] == [5000, 35000]
