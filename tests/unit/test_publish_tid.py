"""Deterministic record keys: valid TIDs, stable per post id and part, near the slot time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplifier.publish.bluesky_tid import TID_PATTERN, decode_tid, encode_tid, record_key

SLOT = datetime(2027, 11, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("micros", "clock_id", "tid"),
    [
        (0, 0, "2222222222222"),
        (0, 1, "2222222222223"),
        (1, 0, "2222222222322"),  # one microsecond = 1 << 10 = 32 * 32
        ((1 << 53) - 1, 1023, "bzzzzzzzzzzzz"),  # the largest TID (top bit 0)
    ],
)
def test_encode_known_values(micros: int, clock_id: int, tid: str) -> None:
    assert encode_tid(micros, clock_id) == tid
    assert decode_tid(tid) == (micros, clock_id)


@given(st.integers(0, (1 << 53) - 1), st.integers(0, 1023))
def test_every_tid_is_valid_and_round_trips(micros: int, clock_id: int) -> None:
    tid = encode_tid(micros, clock_id)
    assert TID_PATTERN.match(tid)
    assert decode_tid(tid) == (micros, clock_id)


@given(st.integers(0, (1 << 53) - 2), st.integers(0, 1023), st.integers(0, 1023))
def test_tids_sort_by_time(micros: int, a: int, b: int) -> None:
    assert encode_tid(micros, a) < encode_tid(micros + 1, b)


@pytest.mark.parametrize(("micros", "clock_id"), [(-1, 0), (1 << 53, 0), (0, 1024), (0, -1)])
def test_out_of_range_is_refused(micros: int, clock_id: int) -> None:
    with pytest.raises(ValueError, match="TID"):
        encode_tid(micros, clock_id)


@given(st.text(min_size=1, max_size=80), st.integers(0, 20))
def test_record_key_is_stable_valid_and_near_the_slot(post_id: str, index: int) -> None:
    key = record_key(post_id, index, SLOT)
    assert key == record_key(post_id, index, SLOT)
    assert TID_PATTERN.match(key)
    micros, _clock = decode_tid(key)
    at = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    assert SLOT <= at < SLOT + timedelta(seconds=1)


def test_thread_parts_sort_in_order_and_posts_differ() -> None:
    keys = [record_key("rule:acct:2027-11-01T10:00", i, SLOT) for i in range(5)]
    assert keys == sorted(keys)
    assert len(set(keys)) == 5
    others = {record_key(f"rule:acct-{n}:2027-11-01T10:00", 0, SLOT) for n in range(200)}
    assert len(others) == 200


def test_record_key_ignores_the_zone_of_the_same_instant() -> None:
    from zoneinfo import ZoneInfo

    local = SLOT.astimezone(ZoneInfo("Europe/Berlin"))
    assert record_key("p", 0, local) == record_key("p", 0, SLOT)


def test_keys_of_today_look_like_bluesky_keys() -> None:
    # Real record keys of 2023-2030 start with "3" (e.g. 3jzfcijpj2z2a); ours are TIDs of the slot time.
    assert record_key("p", 0, datetime(2027, 11, 1, tzinfo=UTC))[0] == "3"
