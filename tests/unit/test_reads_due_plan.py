"""The read-back query is cheap when nothing is due: one statement, on the index of published posts (SQLite's
query plan), not a scan of every post."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from amplifier.delivery.ledger.report import ReadAges
from amplifier.delivery.ledger.sqlite import SqliteLedger

T0 = datetime(2027, 10, 25, 8, 0, tzinfo=UTC)


def test_reads_due_is_one_query_on_the_published_index(tmp_path: Path) -> None:
    with SqliteLedger.open(tmp_path / "ledger.sqlite3", T0) as ledger:
        statements: list[str] = []
        ledger._conn.set_trace_callback(statements.append)
        ages = ReadAges(
            (timedelta(hours=1), timedelta(days=7)), since=T0 - timedelta(days=30), after={"r": T0}
        )
        assert ledger.reads_due(T0 + timedelta(hours=2), ages) == []
        ledger._conn.set_trace_callback(None)
        assert len(statements) == 1
        plan = " ".join(str(row) for row in ledger._conn.execute("EXPLAIN QUERY PLAN " + statements[0]))
    assert "posts_published" in plan
    assert "SCAN posts" not in plan
