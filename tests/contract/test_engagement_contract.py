"""The ledger's engagement contract: every backend stores readings as a time series per post and part, never
twice, and sums the latest of them per post for a report window (see
:mod:`amplifier.delivery.ledger.engagement`). Each test runs once per backend (``conftest.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from amplifier.delivery.ledger import Ledger, UnknownPost
from amplifier.delivery.ledger.engagement import EngagementTotal
from amplifier.publish.engagement import Engagement
from tests.contract.conftest import T0, Backend, entry

H1 = T0 + timedelta(hours=1)
H24 = T0 + timedelta(hours=24)
D7 = T0 + timedelta(days=7)


def published(
    ledger: Ledger, post_id: str, *, due: datetime = T0, parts: int = 1, account: str = "m"
) -> None:
    ledger.sync_plan([entry(post_id, due=due, parts=parts, account=account)], due)
    assert ledger.claim(post_id, due, "tok")
    ledger.mark_published(post_id, [{"id": f"{post_id}-{i}"} for i in range(parts)], due, token="tok")


def reading(
    post_id: str,
    at: datetime,
    likes: int | None = 0,
    reposts: int | None = 0,
    *,
    index: int = 0,
    **kw: int | None,
) -> Engagement:
    return Engagement(
        post_id, index, at, likes, reposts, kw.get("replies", 0), kw.get("quotes", 0), bool(kw.get("gone", 0))
    )


def gone(post_id: str, at: datetime, index: int = 0) -> Engagement:
    return Engagement(post_id, index, at, gone=True)


def test_readings_are_a_time_series_per_part(ledger: Ledger) -> None:
    published(ledger, "p", parts=2)
    berlin = timezone(timedelta(hours=1))
    series = [
        reading("p", H1, 1, 0, replies=0, quotes=None),
        reading("p", H24.astimezone(berlin), 5, 2, replies=1, quotes=None),
        reading("p", H1, 0, 0, index=1),
    ]
    assert ledger.record_engagement(series) == 3
    assert ledger.engagement("p") == [
        Engagement("p", 0, H1, 1, 0, 0, None),
        Engagement("p", 0, H24, 5, 2, 1, None),
        Engagement("p", 1, H1, 0, 0, 0, 0),
    ]
    assert all(r.read_at.utcoffset() == timedelta(0) for r in ledger.engagement("p"))
    assert ledger.engagement("other") == []


def test_a_reading_recorded_again_is_stored_once(ledger: Ledger) -> None:
    published(ledger, "p")
    assert ledger.record_engagement([reading("p", H1, 3)]) == 1
    assert ledger.record_engagement([reading("p", H1, 3), reading("p", H24, 4)]) == 1
    assert [r.likes for r in ledger.engagement("p")] == [3, 4]


def test_a_deleted_part_is_recorded_as_gone(ledger: Ledger) -> None:
    published(ledger, "p")
    ledger.record_engagement([reading("p", H1, 2), gone("p", H24)])
    assert ledger.engagement("p")[-1] == Engagement("p", 0, H24, gone=True)


def test_invalid_readings_store_nothing(ledger: Ledger) -> None:
    published(ledger, "p", parts=2)
    with pytest.raises(UnknownPost):
        ledger.record_engagement([reading("p", H1), reading("nope", H1)])
    with pytest.raises(ValueError, match="no part 2"):
        ledger.record_engagement([reading("p", H1), reading("p", H1, index=2)])
    with pytest.raises(ValueError, match="aware"):
        ledger.record_engagement([reading("p", datetime(2027, 10, 25, 9, 0))])
    with pytest.raises(ValueError, match=">= 0"):
        ledger.record_engagement([reading("p", H1, -1)])
    with pytest.raises(ValueError, match="no counts"):
        ledger.record_engagement([Engagement("p", 0, H1, likes=1, gone=True)])
    assert ledger.engagement("p") == []
    assert ledger.record_engagement([]) == 0


def test_totals_sum_the_latest_reading_of_each_part(ledger: Ledger) -> None:
    published(ledger, "thread", parts=3)
    ledger.record_engagement(
        [
            reading("thread", H1, 1, 0, replies=1, quotes=0),
            reading("thread", H24, 10, 3, replies=2, quotes=1),
            reading("thread", H1, 2, 1, index=1),
            reading("thread", H24, 4, 1, index=1, replies=1),
            # part 2 was read once, then deleted: its last counts still count, and it is counted as gone
            reading("thread", H1, 5, 5, index=2, replies=5, quotes=5),
            gone("thread", D7, index=2),
        ]
    )
    (total,) = ledger.engagement_totals(T0, T0 + timedelta(days=1))
    assert total == EngagementTotal(
        post_id="thread",
        account="m",
        platform="mastodon",
        due_at=T0,
        parts_read=3,
        parts_gone=1,
        likes=10 + 4 + 5,
        reposts=3 + 1 + 5,
        replies=2 + 1 + 5,
        quotes=1 + 0 + 5,
        last_read_at=D7,
    )
    assert total.total == 19 + 9 + 8 + 6
    # as it was after the first hour
    (early,) = ledger.engagement_totals(T0, T0 + timedelta(days=1), as_of=H1)
    assert (early.likes, early.reposts, early.replies, early.quotes, early.parts_gone) == (8, 6, 6, 5, 0)
    assert early.last_read_at == H1
    assert ledger.engagement_totals(T0, T0 + timedelta(days=1), as_of=H1 - timedelta(seconds=1)) == []


def test_totals_cover_the_window_by_due_time_and_one_account(ledger: Ledger) -> None:
    published(ledger, "a1", due=T0, account="a")
    published(ledger, "b1", due=T0 + timedelta(hours=2), account="b")
    published(ledger, "a2", due=T0 + timedelta(days=2), account="a")
    published(ledger, "unread", due=T0 + timedelta(hours=3), account="a")
    ledger.record_engagement([reading("a1", D7, 1), reading("b1", D7, 2), reading("a2", D7, 3)])
    day = (T0, T0 + timedelta(days=1))
    assert [t.post_id for t in ledger.engagement_totals(*day)] == ["a1", "b1"]
    assert [t.post_id for t in ledger.engagement_totals(*day, account="b")] == ["b1"]
    assert [t.post_id for t in ledger.engagement_totals(T0, T0 + timedelta(days=3))] == ["a1", "b1", "a2"]
    assert ledger.engagement_totals(T0 + timedelta(days=3), T0 + timedelta(days=4)) == []


def test_a_count_no_part_has_stays_unknown(ledger: Ledger) -> None:
    published(ledger, "p", parts=2)
    ledger.record_engagement([reading("p", H1, 1, quotes=None), reading("p", H1, 2, index=1, quotes=None)])
    (total,) = ledger.engagement_totals(T0, H24)
    assert (total.likes, total.quotes) == (3, None)
    only_gone = "g"
    published(ledger, only_gone, due=T0 + timedelta(minutes=5))
    ledger.record_engagement([gone(only_gone, H1)])
    totals = {t.post_id: t for t in ledger.engagement_totals(T0, H24)}
    assert (totals[only_gone].likes, totals[only_gone].parts_gone, totals[only_gone].parts_read) == (
        None,
        1,
        1,
    )


def test_readings_are_seen_by_another_connection_and_survive_reopening(backend: Backend) -> None:
    with backend.open(T0) as first:
        published(first, "p")
        first.record_engagement([reading("p", H1, 7)])
        with backend.open(T0) as second:
            assert [r.likes for r in second.engagement("p")] == [7]
    with backend.open(T0) as again:
        assert [t.likes for t in again.engagement_totals(T0, H24)] == [7]


def test_engagement_times_are_utc(ledger: Ledger) -> None:
    published(ledger, "p")
    ledger.record_engagement(
        [reading("p", datetime(2027, 10, 25, 12, 0, tzinfo=timezone(timedelta(hours=5))))]
    )
    assert ledger.engagement("p")[0].read_at == datetime(2027, 10, 25, 7, 0, tzinfo=UTC)
