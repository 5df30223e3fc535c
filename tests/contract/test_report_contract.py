"""The ledger's read-back and report contract: which published posts a read-back job is due for, and the
report's groups and top posts, the same in every backend (see :mod:`amplifier.delivery.ledger.report`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from amplifier.delivery.ledger import Ledger
from amplifier.delivery.ledger.report import ReadAges, ReportRow
from amplifier.publish.engagement import Engagement
from tests.contract.conftest import T0, entry

H = timedelta(hours=1)
AGES = (H, 24 * H, timedelta(days=7))


def publish(
    ledger: Ledger, post_id: str, at: datetime, *, parts: int = 1, account: str = "m", rule: str = "r"
) -> None:
    ledger.sync_plan([entry(post_id, due=at, parts=parts, account=account, rule=rule)], at)
    assert ledger.claim(post_id, at, "tok")
    ledger.mark_published(post_id, [{"id": f"{post_id}-{i}"} for i in range(parts)], at, token="tok")


def due_ids(ledger: Ledger, now: datetime, **kw: object) -> list[str]:
    ages = ReadAges(AGES, since=T0 - timedelta(days=30), **kw)  # type: ignore[arg-type]
    return [row.id for row in ledger.reads_due(now, ages)]


def test_a_read_is_due_once_per_age_passed(ledger: Ledger) -> None:
    publish(ledger, "r:m:a", T0)
    assert due_ids(ledger, T0 + 59 * timedelta(minutes=1)) == []
    assert due_ids(ledger, T0 + H) == ["r:m:a"]
    ledger.record_engagement([Engagement("r:m:a", 0, T0 + H + timedelta(seconds=3), 1, 0, 0, 0)])
    assert due_ids(ledger, T0 + 2 * H) == []  # read at its 1 h age: nothing until 24 h
    assert due_ids(ledger, T0 + 24 * H) == ["r:m:a"]
    # a reading taken late (after 7 days) satisfies every age before it: one read, not three
    ledger.record_engagement([Engagement("r:m:a", 0, T0 + timedelta(days=8), 2, 0, 0, 0)])
    assert due_ids(ledger, T0 + timedelta(days=9)) == []


def test_a_reading_before_an_age_does_not_satisfy_it(ledger: Ledger) -> None:
    publish(ledger, "r:m:a", T0)
    ledger.record_engagement([Engagement("r:m:a", 0, T0 + 24 * H - timedelta(seconds=1), 1, 0, 0, 0)])
    assert due_ids(ledger, T0 + 24 * H) == ["r:m:a"]
    ledger.record_engagement([Engagement("r:m:a", 0, T0 + 24 * H, 1, 0, 0, 0)])
    assert due_ids(ledger, T0 + 24 * H) == []


def test_only_published_recent_posts_are_read(ledger: Ledger) -> None:
    ledger.sync_plan([entry("r:m:planned", due=T0, account="m", rule="r")], T0)
    publish(ledger, "r:m:old", T0 - timedelta(days=31))
    publish(ledger, "r:m:new", T0)
    assert due_ids(ledger, T0 + 2 * H) == ["r:m:new"]
    assert ledger.reads_due(T0 + 2 * H, ReadAges((), since=T0)) == []


def test_the_event_read_is_due_once_after_its_instant(ledger: Ledger) -> None:
    publish(ledger, "r:m:a", T0, rule="r")
    publish(ledger, "s:m:a", T0, rule="s")
    ledger.record_engagement([Engagement(p, 0, T0 + H, 0, 0, 0, 0) for p in ("r:m:a", "s:m:a")])
    after = {"r": T0 + 3 * H}
    assert due_ids(ledger, T0 + 2 * H, after=after) == []
    assert due_ids(ledger, T0 + 3 * H, after=after) == ["r:m:a"]
    ledger.record_engagement([Engagement("r:m:a", 0, T0 + 3 * H, 0, 0, 0, 0)])
    assert due_ids(ledger, T0 + 4 * H, after=after) == []


def test_reads_due_are_bounded_and_in_publishing_order(ledger: Ledger) -> None:
    for minute in (3, 1, 2):
        publish(ledger, f"r:m:{minute}", T0 + timedelta(minutes=minute))
    ages = ReadAges(AGES, since=T0)
    assert [row.id for row in ledger.reads_due(T0 + 2 * H, ages, limit=2)] == ["r:m:1", "r:m:2"]


def test_report_rows_group_posts_with_their_latest_counts(ledger: Ledger) -> None:
    publish(ledger, "r:a:2027-10-25T10:00", T0, parts=2, account="a")
    publish(ledger, "r:b:2027-10-25T10:00", T0, account="b")
    publish(ledger, "r:b:2027-10-25T11:00", T0 + H, account="b")
    ledger.sync_plan([entry("r:a:2027-10-26T10:00", due=T0 + 24 * H, account="a", rule="r")], T0)
    ledger.mark_expired("r:a:2027-10-26T10:00", "missed", T0 + 25 * H)
    ledger.record_engagement(
        [
            Engagement("r:a:2027-10-25T10:00", 0, T0 + H, 1, 1, 0, None),
            Engagement("r:a:2027-10-25T10:00", 0, T0 + 24 * H, 5, 2, 1, None),
            Engagement("r:a:2027-10-25T10:00", 1, T0 + 24 * H, 3, 0, 0, None),
            Engagement("r:a:2027-10-25T10:00", 1, T0 + 48 * H, gone=True),
            Engagement("r:b:2027-10-25T10:00", 0, T0 + H, 2, 0, 0, 1),
            Engagement("r:b:2027-10-25T11:00", 0, T0 + 2 * H, 4, 1, 0, 0),
        ]
    )
    variants = {("r", "2027-10-25T10:00"): 0, ("r", "2027-10-25T11:00"): 1, ("r", "2027-10-26T10:00"): 0}
    rows = ledger.report_rows(T0, T0 + 48 * H, variants=variants)
    day1, day2 = "2027-10-25", "2027-10-26"
    assert rows == [
        ReportRow("r", "a", "mastodon", "published", 0, day1, 1, 1, 8, 2, 1, None),
        ReportRow("r", "b", "mastodon", "published", 0, day1, 1, 1, 2, 0, 0, 1),
        ReportRow("r", "b", "mastodon", "published", 1, day1, 1, 1, 4, 1, 0, 0),
        ReportRow("r", "a", "mastodon", "expired", 0, day2, 1, 0, None, None, None, None),
    ]
    # without variants, b's two posts of one day are one group
    merged = ledger.report_rows(T0, T0 + 48 * H)
    assert [(r.account, r.variant, r.posts, r.likes) for r in merged] == [
        ("a", None, 1, 8),
        ("b", None, 2, 6),
        ("a", None, 1, None),
    ]
    # as of an earlier instant, the earlier readings
    early = ledger.report_rows(T0, T0 + 48 * H, as_of=T0 + 2 * H, variants=variants)
    assert (early[0].likes, early[0].reposts) == (1, 1)
    assert ledger.report_rows(T0 + 48 * H, T0 + 49 * H) == []


def test_top_posts_are_the_most_engaged_first(ledger: Ledger) -> None:
    for name, likes in (("x", 1), ("y", 9), ("z", 4)):
        publish(ledger, f"r:{name}:k", T0, account=name)
        ledger.record_engagement([Engagement(f"r:{name}:k", 0, T0 + H, likes, 0, 0, None)])
    top = ledger.top_posts(T0, T0 + H, limit=2)
    assert [(t.post_id, t.total) for t in top] == [("r:y:k", 9), ("r:z:k", 4)]


def test_report_posts_streams_every_post_of_the_window_with_its_engagement(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amplifier.delivery.ledger import sql_report_posts

    monkeypatch.setattr(sql_report_posts, "PAGE", 2)  # pages end between posts due at the same instant
    for name in ("a", "b", "c"):
        publish(ledger, f"r:{name}:2027-10-25T10:00", T0, account=name, parts=2 if name == "b" else 1)
    later = [
        entry("r:d:2027-10-25T11:00", due=T0 + H, account="d", rule="r"),
        entry("r:e:2027-10-27T11:00", due=T0 + 50 * H, account="e", rule="r"),
    ]
    ledger.sync_plan(later, T0, start=T0 + H, end=T0 + 51 * H)
    ledger.record_engagement(
        [
            Engagement("r:b:2027-10-25T10:00", 0, T0 + H, 3, 1, 0, None),
            Engagement("r:b:2027-10-25T10:00", 1, T0 + H, 2, 0, 1, None),
            Engagement("r:b:2027-10-25T10:00", 0, T0 + 3 * H, 7, 1, 0, None),
            Engagement("r:c:2027-10-25T10:00", 0, T0 + H, gone=True),
        ]
    )
    posts = list(ledger.report_posts(T0, T0 + 48 * H))
    assert [(p.post_id, p.state, p.url) for p in posts] == [
        ("r:a:2027-10-25T10:00", "published", None),
        ("r:b:2027-10-25T10:00", "published", None),
        ("r:c:2027-10-25T10:00", "published", None),
        ("r:d:2027-10-25T11:00", "planned", None),
    ]
    totals = {t.post_id: t for t in ledger.engagement_totals(T0, T0 + 48 * H)}
    assert {p.post_id: p.total for p in posts if p.total is not None} == totals
    b = posts[1].total
    assert b is not None
    assert (b.likes, b.reposts, b.replies, b.quotes, b.parts_read) == (9, 1, 1, None, 2)
    early = {p.post_id: p.total for p in ledger.report_posts(T0, T0 + 48 * H, as_of=T0 + 2 * H)}
    assert early["r:b:2027-10-25T10:00"] is not None
    assert early["r:b:2027-10-25T10:00"].likes == 5
    assert list(ledger.report_posts(T0 + 100 * H, T0 + 101 * H)) == []
