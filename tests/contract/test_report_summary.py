"""The report's summary (:mod:`amplifier.delivery.ledger.summary`) never drifts from the posts and readings it
sums: after random plans, re-plans, claims, publications, failures, expiries, skips, cancellations, retries and
readings (in and out of time order, gone, with unknown counts), the table the triggers keep equals a full
recomputation from the posts and readings, in every backend; and the report's fast path (the summary) answers
what its exact path (the posts and readings) answers."""

from __future__ import annotations

import random
from contextlib import suppress
from datetime import timedelta
from typing import Any

import pytest

from amplifier.delivery.ledger import Ledger, LedgerError, PlanEntry
from amplifier.delivery.ledger.sql import SqlCore
from amplifier.delivery.ledger.summary import KEY, PG_RECOMPUTE, PG_TOTALS, SQLITE_RECOMPUTE, SQLITE_TOTALS
from amplifier.publish.engagement import Engagement
from tests.contract.conftest import T0, Backend

H = timedelta(hours=1)
ACCOUNTS = ("ma", "mb", "sky")
RULES = ("r", "long")


def summary_and_recomputed(ledger: Ledger) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    assert isinstance(ledger, SqlCore)
    recompute = SQLITE_RECOMPUTE if ledger.dialect.name == "sqlite" else PG_RECOMPUTE
    totals_sql = SQLITE_TOTALS if ledger.dialect.name == "sqlite" else PG_TOTALS
    order = ", ".join(KEY)
    with ledger._reading() as conn:
        kept = conn.execute(f"SELECT * FROM report_summary ORDER BY {order}").fetchall()
        full = conn.execute(f"SELECT * FROM ({recompute}) t ORDER BY 1, 2, 3, 4, 5, 6, 7").fetchall()
        totals = conn.execute(
            "SELECT id, engagement_total FROM posts WHERE engagement_total IS NOT NULL ORDER BY id"
        )
        kept.append(("totals", *(f"{post_id}={int(total)}" for post_id, total in totals.fetchall())))
        totals = conn.execute(f"SELECT * FROM ({totals_sql}) t ORDER BY 1")
        full.append(("totals", *(f"{post_id}={int(total)}" for post_id, total in totals.fetchall())))

    def plain(rows: list[Any]) -> list[tuple[Any, ...]]:
        return [
            tuple(row) if row[0] == "totals" else tuple(row[:7]) + tuple(int(v) for v in row[7:])
            for row in rows
        ]

    return plain(kept), plain(full)


def entries(rng: random.Random, ids: list[str]) -> list[PlanEntry]:
    """A plan of some of ``ids`` (id = rule:account:key), with random times, parts and variants."""
    chosen = rng.sample(ids, rng.randrange(len(ids) // 2, len(ids)))
    found = []
    for post_id in chosen:
        rule, account, key = post_id.split(":", 2)
        # the key's day, at 08:00 UTC, or later: 17 h later is the next UTC day (one local day, two UTC days)
        day = int(key[9]) - 5
        due = T0 + timedelta(days=day, hours=rng.choice((0, 0, 1, 17)))
        found.append(
            PlanEntry(
                post_id, account, "bluesky" if account == "sky" else "mastodon", rule, due,
                rng.choice(("h1", "h2")), rng.choice((1, 1, 2)), rng.choice((None, 0, 1)),
            )
        )  # fmt: skip
    return found


def step(ledger: Ledger, rng: random.Random, ids: list[str], now: Any) -> None:
    post_id = rng.choice(ids)
    action = rng.randrange(10)
    with suppress(LedgerError, ValueError):
        if action == 0:
            ledger.sync_plan(entries(rng, ids), now)
        elif action == 1:
            ledger.claim(post_id, now, "tok")
        elif action == 2:
            row = ledger.get(post_id)
            results = [{"id": f"{post_id}-{i}"} for i in range(row.part_count)]
            ledger.mark_published(post_id, results, now, token="tok")
        elif action == 3:
            ledger.mark_failed(post_id, "broken", now, token="tok")
        elif action == 4:
            ledger.mark_expired(post_id, "late", now)
        elif action == 5:
            ledger.skip_posts([post_id], "no", now, by="op")
        elif action == 6:
            ledger.retry_post(post_id, "again", now, by="op")
        elif action == 7:
            ledger.cancel_posts("stop", now, by="op", target="x", account=rng.choice(ACCOUNTS))
        else:
            part_count = ledger.get(post_id).part_count
            readings = []
            for _ in range(rng.randrange(1, 4)):
                at = now + timedelta(minutes=rng.randrange(-120, 120))  # out of order too
                if rng.random() < 0.15:
                    readings.append(Engagement(post_id, rng.randrange(part_count), at, gone=True))
                    continue
                counts = [
                    rng.choice((None, rng.randrange(20))) if n == 3 else rng.randrange(50) for n in range(4)
                ]
                readings.append(Engagement(post_id, rng.randrange(part_count), at, *counts))
            ledger.record_engagement(readings)


@pytest.mark.parametrize("seed", range(4))
def test_the_summary_equals_a_full_recomputation_after_random_changes(backend: Backend, seed: int) -> None:
    rng = random.Random(seed)
    ids = [
        f"{rule}:{account}:2027-10-2{d}T1{h}:00"
        for rule in RULES
        for account in ACCOUNTS
        for d in (5, 6)
        for h in (0, 9)
    ]
    with backend.fresh(T0) as ledger:
        ledger.sync_plan(entries(rng, ids), T0)
        now = T0
        for n in range(160):
            now += timedelta(minutes=rng.randrange(1, 30))
            step(ledger, rng, ids, now)
            if n % 40 == 39:
                kept, full = summary_and_recomputed(ledger)
                assert kept == full
        kept, full = summary_and_recomputed(ledger)
        assert kept == full
        assert sum(row[7] for row in kept if row[0] != "totals") > 0
        # the fast path (whole days from the summary, partial days and posts without a variant from the
        # posts) answers what the exact path (everything from the posts and readings) answers
        for start, end in ((T0 - 48 * H, T0 + 96 * H), (T0 + 3 * H, T0 + 30 * H), (T0, T0 + 2 * H)):
            assert ledger.report_rows(start, end) == ledger.report_rows(start, end, exact=True)
            assert ledger.top_posts(start, end, limit=5) == ledger.top_posts(start, end, limit=5, exact=True)
