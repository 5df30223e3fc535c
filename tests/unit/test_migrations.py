"""The ledger schema: named migrations applied once each, and the fresh schema pinned column by column."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amplifier.delivery.ledger.migrations import (
    MIGRATIONS,
    Migration,
    SchemaError,
    applied_migrations,
    migrate,
)
from amplifier.delivery.ledger.sqlite import SqliteLedger

T0 = datetime(2027, 10, 25, 8, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    yield connection
    connection.close()


def columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, str, bool, int]]:
    """(name, type, not null, primary key position) of each column, in order."""
    return [
        (str(name), str(kind), bool(notnull), int(pk))
        for _, name, kind, notnull, _, pk in conn.execute(f"PRAGMA table_info({table})").fetchall()
    ]


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(name) for (name,) in rows}


FRESH_SCHEMA: dict[str, list[tuple[str, str, bool, int]]] = {
    "_migrations": [("name", "TEXT", True, 1), ("applied_at", "TEXT", True, 0)],
    "posts": [
        ("id", "TEXT", True, 1),
        ("account", "TEXT", True, 0),
        ("platform", "TEXT", True, 0),
        ("rule", "TEXT", True, 0),
        ("due_at", "TEXT", True, 0),
        ("content_hash", "TEXT", True, 0),
        ("part_count", "INTEGER", True, 0),
        ("state", "TEXT", True, 0),
        ("attempts", "INTEGER", True, 0),
        ("next_attempt_at", "TEXT", True, 0),
        ("last_error", "TEXT", False, 0),
        ("claimed_at", "TEXT", False, 0),
        ("claim_token", "TEXT", False, 0),
        ("published_at", "TEXT", False, 0),
        ("result", "TEXT", False, 0),
        ("created_at", "TEXT", True, 0),
        ("updated_at", "TEXT", True, 0),
        ("unknown_since", "TEXT", False, 0),
        ("late_until", "TEXT", False, 0),
        ("lease_until", "TEXT", False, 0),
        ("variant", "INTEGER", False, 0),
        ("engagement_total", "INTEGER", False, 0),
    ],
    "post_parts": [
        ("post_id", "TEXT", True, 1),
        ("part_index", "INTEGER", True, 2),
        ("result", "TEXT", True, 0),
        ("recorded_at", "TEXT", True, 0),
    ],
    "paused_accounts": [
        ("account", "TEXT", True, 1),
        ("reason", "TEXT", True, 0),
        ("paused_at", "TEXT", True, 0),
        ("paused_by", "TEXT", False, 0),
    ],
    "operator_actions": [
        ("seq", "INTEGER", False, 1),
        ("at", "TEXT", True, 0),
        ("by", "TEXT", True, 0),
        ("action", "TEXT", True, 0),
        ("target", "TEXT", True, 0),
        ("reason", "TEXT", False, 0),
        ("posts", "INTEGER", True, 0),
    ],
    "global_pause": [
        ("id", "INTEGER", False, 1),
        ("paused", "INTEGER", True, 0),
        ("reason", "TEXT", False, 0),
        ("changed_at", "TEXT", False, 0),
    ],
    "engagement": [
        ("post_id", "TEXT", True, 1),
        ("part_index", "INTEGER", True, 2),
        ("read_at", "TEXT", True, 3),
        ("likes", "INTEGER", False, 0),
        ("reposts", "INTEGER", False, 0),
        ("replies", "INTEGER", False, 0),
        ("quotes", "INTEGER", False, 0),
        ("gone", "INTEGER", True, 0),
    ],
    "gate_changes": [
        ("seq", "INTEGER", False, 1),
        ("post_id", "TEXT", True, 0),
        ("account", "TEXT", True, 0),
        ("by_whom", "TEXT", True, 0),
        ("at", "TEXT", True, 0),
        ("replies", "TEXT", False, 0),
        ("quotes", "TEXT", False, 0),
        ("outcome", "TEXT", True, 0),
        ("detail", "TEXT", True, 0),
    ],
    "plan_source": [
        ("id", "INTEGER", False, 1),
        ("content_hash", "TEXT", True, 0),
        ("revision", "TEXT", True, 0),
        ("revised_at", "TEXT", True, 0),
        ("node", "TEXT", True, 0),
        ("planned_at", "TEXT", True, 0),
    ],
    "nodes": [
        ("node", "TEXT", True, 1),
        ("beat_at", "TEXT", True, 0),
        ("leader", "INTEGER", True, 0),
        ("holds", "TEXT", True, 0),
    ],
    "followups": [
        ("post_id", "TEXT", True, 1),
        ("kind", "TEXT", True, 2),
        ("account", "TEXT", True, 3),
        ("platform", "TEXT", True, 0),
        ("due_at", "TEXT", True, 0),
        ("state", "TEXT", True, 0),
        ("reason", "TEXT", False, 0),
        ("detail", "TEXT", False, 0),
        ("attempts", "INTEGER", True, 0),
        ("is_unknown", "INTEGER", True, 0),
        ("next_at", "TEXT", False, 0),
        ("result", "TEXT", False, 0),
        ("by_whom", "TEXT", False, 0),
        ("requested_at", "TEXT", False, 0),
        ("updated_at", "TEXT", True, 0),
        ("claim_token", "TEXT", False, 0),
        ("lease_until", "TEXT", False, 0),
    ],
    "report_summary": [
        ("due_day", "TEXT", True, 7),
        ("rule", "TEXT", True, 2),
        ("account", "TEXT", True, 3),
        ("platform", "TEXT", True, 4),
        ("state", "TEXT", True, 5),
        ("variant", "INTEGER", True, 6),
        ("day", "TEXT", True, 1),
        ("posts", "INTEGER", True, 0),
        ("read", "INTEGER", True, 0),
        ("likes", "INTEGER", True, 0),
        ("likes_known", "INTEGER", True, 0),
        ("reposts", "INTEGER", True, 0),
        ("reposts_known", "INTEGER", True, 0),
        ("replies", "INTEGER", True, 0),
        ("replies_known", "INTEGER", True, 0),
        ("quotes", "INTEGER", True, 0),
        ("quotes_known", "INTEGER", True, 0),
    ],
    "edits": [
        ("seq", "INTEGER", False, 1),
        ("post_id", "TEXT", True, 0),
        ("part", "INTEGER", True, 0),
        ("account", "TEXT", True, 0),
        ("by_whom", "TEXT", True, 0),
        ("at", "TEXT", True, 0),
        ("old_text", "TEXT", True, 0),
        ("new_text", "TEXT", True, 0),
        ("outcome", "TEXT", True, 0),
        ("detail", "TEXT", True, 0),
        ("done_at", "TEXT", False, 0),
    ],
    "shared_state": [
        ("sub", "TEXT", True, 1),
        ("name", "TEXT", True, 2),
        ("data", "BLOB", True, 0),
        ("updated_at", "TEXT", True, 0),
    ],
    "state_locks": [
        ("sub", "TEXT", True, 1),
        ("name", "TEXT", True, 2),
        ("holder", "TEXT", True, 0),
        ("lock_until", "TEXT", True, 0),
    ],
}


def test_fresh_schema_is_pinned(conn: sqlite3.Connection) -> None:
    applied = migrate(conn, T0)

    assert applied == [
        "m001_posts",
        "m002_post_parts",
        "m003_pauses",
        "m004_unknown_since",
        "m005_posts_account",
        "m006_engagement",
        "m007_operator_actions",
        "m008_gate_changes",
        "m009_posts_published",
        "m010_claim_lease",
        "m011_plan_source",
        "m012_nodes",
        "m013_followups",
        "m014_report_summary",
        "m015_edits",
        "m016_shared_state",
    ]
    assert tables(conn) == set(FRESH_SCHEMA)
    for table, expected in FRESH_SCHEMA.items():
        assert columns(conn, table) == expected, table
    indexes = {
        str(name): [str(col) for (_, _, col) in conn.execute(f"PRAGMA index_info({name})").fetchall()]
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
    }
    assert indexes == {
        "posts_state_next_attempt": ["state", "next_attempt_at"],
        "posts_due_at": ["due_at", "id"],
        "posts_account": ["account", "id"],
        "engagement_read_at": ["read_at"],
        "posts_planned_next": ["next_attempt_at"],
        "posts_planned": ["account", "next_attempt_at"],
        "posts_claimed": ["claimed_at", "id"],
        "posts_account_state": ["account", "state", "published_at"],
        "posts_state_published": ["state", "published_at"],
        "posts_state_updated": ["state", "updated_at"],
        "posts_account_due_at": ["account", "due_at"],
        "operator_actions_at": ["at"],
        "gate_changes_post": ["post_id", "at"],
        "posts_published": ["published_at"],
        "followups_due": ["due_at"],
        "posts_variant_unknown": ["due_at"],
        "posts_engagement": ["engagement_total", "due_at", "id"],
        "edits_post": ["post_id", "at"],
    }
    foreign_keys = conn.execute("PRAGMA foreign_key_list(post_parts)").fetchall()
    assert [(row[2], row[3], row[4], row[6]) for row in foreign_keys] == [
        ("posts", "post_id", "id", "CASCADE")
    ]
    assert conn.execute("SELECT id, paused, reason FROM global_pause").fetchall() == [(1, 0, None)]


def test_a_database_of_the_previous_version_gains_unknown_since_and_keeps_its_rows(
    conn: sqlite3.Connection,
) -> None:
    """A ledger written before ``m004_unknown_since`` upgrades in place: its rows keep every value, the new
    column is NULL (no outcome unknown), and the upgrade runs once."""
    old = MIGRATIONS[:3]
    assert migrate(conn, T0, old) == ["m001_posts", "m002_post_parts", "m003_pauses"]
    stamp = "2027-10-25T08:00:00.000000+00:00"
    conn.execute(
        "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
        " next_attempt_at, claimed_at, claim_token, created_at, updated_at)"
        " VALUES ('p', 'masto', 'mastodon', 'r', ?, 'h', 1, 'claimed', ?, ?, 'host:1:x', ?, ?)",
        (stamp, stamp, stamp, stamp, stamp),
    )

    assert migrate(conn, T0) == [
        "m004_unknown_since",
        "m005_posts_account",
        "m006_engagement",
        "m007_operator_actions",
        "m008_gate_changes",
        "m009_posts_published",
        "m010_claim_lease",
        "m011_plan_source",
        "m012_nodes",
        "m013_followups",
        "m014_report_summary",
        "m015_edits",
        "m016_shared_state",
    ]
    assert migrate(conn, T0) == []
    assert conn.execute("SELECT id, state, claim_token, unknown_since FROM posts").fetchall() == [
        ("p", "claimed", "host:1:x", None)
    ]


def test_a_ledger_before_operator_actions_gains_them_keeps_its_pauses_and_is_analyzed(
    conn: sqlite3.Connection,
) -> None:
    """``m007_operator_actions`` on a ledger with rows: a pause stays (as the daemon's: no operator), the rows
    keep their values, and the planner gets statistics (``sqlite_stat1``) for the new indexes."""
    assert migrate(conn, T0, MIGRATIONS[:6])[-1] == "m006_engagement"
    stamp = "2027-10-25T08:00:00.000000+00:00"
    conn.execute(
        "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
        " next_attempt_at, created_at, updated_at)"
        " VALUES ('p', 'masto', 'mastodon', 'r', ?, 'h', 1, 'planned', ?, ?, ?)",
        (stamp, stamp, stamp, stamp),
    )
    conn.execute("INSERT INTO paused_accounts VALUES ('masto', 'token rejected', ?)", (stamp,))

    assert migrate(conn, T0) == [
        "m007_operator_actions",
        "m008_gate_changes",
        "m009_posts_published",
        "m010_claim_lease",
        "m011_plan_source",
        "m012_nodes",
        "m013_followups",
        "m014_report_summary",
        "m015_edits",
        "m016_shared_state",
    ]
    assert conn.execute("SELECT account, reason, paused_by FROM paused_accounts").fetchall() == [
        ("masto", "token rejected", None)
    ]
    assert conn.execute("SELECT id, state, late_until FROM posts").fetchall() == [("p", "planned", None)]
    assert columns(conn, "posts") == FRESH_SCHEMA["posts"]
    analyzed = {str(row[0]) for row in conn.execute("SELECT idx FROM sqlite_stat1").fetchall()}
    assert "posts_account_state" in analyzed


def test_a_database_before_engagement_gains_its_table_and_keeps_its_posts(conn: sqlite3.Connection) -> None:
    """A ledger written before ``m006_engagement`` upgrades in place; readings then refer to its posts (a
    reading of a post that is not there is refused by the foreign key)."""
    assert migrate(conn, T0, MIGRATIONS[:5])[-1] == "m005_posts_account"
    stamp = "2027-10-25T08:00:00.000000+00:00"
    conn.execute(
        "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
        " next_attempt_at, created_at, updated_at) VALUES ('p', 'm', 'mastodon', 'r', ?, 'h', 1, 'planned', ?, ?, ?)",
        (stamp, stamp, stamp, stamp),
    )
    assert migrate(conn, T0) == [
        "m006_engagement",
        "m007_operator_actions",
        "m008_gate_changes",
        "m009_posts_published",
        "m010_claim_lease",
        "m011_plan_source",
        "m012_nodes",
        "m013_followups",
        "m014_report_summary",
        "m015_edits",
        "m016_shared_state",
    ]
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(
        "INSERT INTO engagement (post_id, part_index, read_at, likes, gone) VALUES ('p', 0, ?, 1, 0)",
        (stamp,),
    )
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO engagement (post_id, part_index, read_at, gone) VALUES ('x', 0, ?, 0)", (stamp,)
        )
    with pytest.raises(sqlite3.IntegrityError):  # a deleted part has no counts
        conn.execute(
            "INSERT INTO engagement (post_id, part_index, read_at, likes, gone) VALUES ('p', 0, 'z', 1, 1)"
        )
    assert conn.execute("SELECT id FROM posts").fetchall() == [("p",)]


def test_migrations_are_recorded_with_their_time_in_order(conn: sqlite3.Connection) -> None:
    migrate(conn, T0)

    rows = conn.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid").fetchall()
    assert rows == [(fn.__name__, "2027-10-25T08:00:00.000000+00:00") for fn in MIGRATIONS]
    assert applied_migrations(conn) == [fn.__name__ for fn in MIGRATIONS]


def test_migrate_again_applies_nothing_and_keeps_the_records(conn: sqlite3.Connection) -> None:
    migrate(conn, T0)
    before = conn.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid").fetchall()

    assert migrate(conn, T0 + timedelta(days=1)) == []
    assert conn.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid").fetchall() == before


def test_reopening_the_ledger_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger.open(path, T0):
        pass
    with SqliteLedger.open(path, T0 + timedelta(hours=5)):
        pass

    with sqlite3.connect(path) as check:
        rows = check.execute("SELECT name, applied_at FROM _migrations").fetchall()
    assert rows == [(fn.__name__, "2027-10-25T08:00:00.000000+00:00") for fn in MIGRATIONS]


def test_a_new_migration_is_applied_on_its_own(conn: sqlite3.Connection) -> None:
    migrate(conn, T0)

    def m900_extra(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE extra (x INTEGER) STRICT")

    assert migrate(conn, T0, [*MIGRATIONS, m900_extra]) == ["m900_extra"]
    assert "extra" in tables(conn)
    assert migrate(conn, T0, [*MIGRATIONS, m900_extra]) == []


def test_a_failing_migration_is_rolled_back_whole_and_not_recorded(conn: sqlite3.Connection) -> None:
    def m001_first(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE first (x INTEGER)")

    def m002_broken(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE half (x INTEGER)")
        connection.execute("INSERT INTO half VALUES (1)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        migrate(conn, T0, [m001_first, m002_broken])

    assert not conn.in_transaction
    assert applied_migrations(conn) == ["m001_first"]
    assert tables(conn) == {"_migrations", "first"}

    def m002_broken_fixed(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE half (x INTEGER)")

    m002_broken_fixed.__name__ = "m002_broken"
    assert migrate(conn, T0, [m001_first, m002_broken_fixed]) == ["m002_broken"]
    assert "half" in tables(conn)


def test_a_database_from_a_newer_version_is_refused(conn: sqlite3.Connection) -> None:
    def m999_future(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE future (x INTEGER)")

    migrate(conn, T0, [*MIGRATIONS, m999_future])

    with pytest.raises(SchemaError, match=r"m999_future.*newer version"):
        migrate(conn, T0)


def test_newer_database_is_a_user_facing_error_on_open(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger.open(path, T0):
        pass
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_future', 'x')")
    raw.close()

    with pytest.raises(SchemaError, match="upgrade amplifier"):
        SqliteLedger.open(path, T0)


def test_migrate_needs_an_aware_now(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="aware"):
        migrate(conn, datetime(2027, 1, 1))


def test_duplicate_migration_names_are_refused(conn: sqlite3.Connection) -> None:
    def m001(connection: sqlite3.Connection) -> None:
        pass

    twice: list[Migration] = [m001, m001]
    with pytest.raises(ValueError, match="duplicate"):
        migrate(conn, T0, twice)
    assert "_migrations" not in tables(conn)


def test_migrate_refuses_a_connection_inside_a_transaction(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    with pytest.raises(RuntimeError, match="outside any transaction"):
        migrate(conn, T0)
    conn.execute("ROLLBACK")


def test_two_connections_migrating_a_fresh_database_at_once_apply_each_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    calls: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def m001_slow(connection: sqlite3.Connection) -> None:
        with lock:
            calls.append("m001_slow")
        connection.execute("CREATE TABLE slow (x INTEGER)")

    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        connection = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        try:
            start.wait()
            done = migrate(connection, T0, [m001_slow])
            with lock:
                results.append(done)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results) == [[], ["m001_slow"]]
    assert calls == ["m001_slow"]


def test_schema_checks_reject_inconsistent_rows(tmp_path: Path) -> None:
    """The CHECK constraints hold the invariants even against a buggy writer."""
    connection = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    migrate(connection, T0)
    connection.execute("PRAGMA foreign_keys = ON")
    base = (
        "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
        " next_attempt_at, created_at, updated_at, claim_token, claimed_at, last_error, published_at, result)"
        " VALUES (?, 'a', 'mastodon', 'r', 't', 'h', 1, ?, 't', 't', 't', ?, ?, ?, ?, ?)"
    )
    bad = [
        ("claimed-without-token", "claimed", None, None, None, None, None),
        ("planned-with-token", "planned", "tok", "t", None, None, None),
        ("published-without-result", "published", None, None, None, "t", None),
        ("failed-without-reason", "failed", None, None, None, None, None),
        ("unknown-state", "lost", None, None, None, None, None),
        ("bad-json", "published", None, None, None, "t", "{not json"),
    ]
    for row in bad:
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(base, row)
    connection.execute(base, ("ok", "published", "tok", "t", None, "t", "[]"))
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        connection.execute("INSERT INTO post_parts VALUES ('missing', 0, '{}', 't')")
    connection.execute("INSERT INTO post_parts VALUES ('ok', 0, '{}', 't')")
    connection.execute("DELETE FROM posts WHERE id = 'ok'")
    assert connection.execute("SELECT COUNT(*) FROM post_parts").fetchone() == (0,)
    connection.close()


def test_a_ledger_with_posts_and_readings_gains_the_report_summary_filled_from_them(
    conn: sqlite3.Connection,
) -> None:
    """``m014_report_summary`` on a ledger written before it: its posts get no variant (the report computes it
    as before: summary variant -1), the summary holds them with their latest readings' counts, each read
    post its engagement total; and the triggers keep both from then on."""
    assert migrate(conn, T0, MIGRATIONS[:13])[-1] == "m013_followups"
    stamp = "2027-10-25T08:00:00.000000+00:00"
    for post_id, state in (("r:a:2027-10-25T10:00", "published"), ("r:a:2027-10-25T11:00", "failed")):
        conn.execute(
            "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
            " next_attempt_at, last_error, published_at, result, created_at, updated_at)"
            " VALUES (?, 'a', 'mastodon', 'r', ?, 'h', 2, ?, ?, ?, ?, ?, ?, ?)",
            (post_id, stamp, state, stamp, None if state == "published" else "x",
             stamp if state == "published" else None, "[]" if state == "published" else None, stamp, stamp),
        )  # fmt: skip
    readings = [
        (0, "2027-10-25T09", 1, 0, None),
        (0, "2027-10-25T10", 4, 1, None),
        (1, "2027-10-25T09", 2, 0, 3),
    ]
    for part, hour, likes, reposts, quotes in readings:
        conn.execute(
            "INSERT INTO engagement VALUES ('r:a:2027-10-25T10:00', ?, ?, ?, ?, 0, ?, 0)",
            (part, f"{hour}:00:00.000000+00:00", likes, reposts, quotes),
        )
    assert migrate(conn, T0, MIGRATIONS[:14]) == ["m014_report_summary"]
    day = "2027-10-25"
    key = (day, "r", "a", "mastodon")
    summary = conn.execute("SELECT * FROM report_summary ORDER BY state").fetchall()
    assert summary == [
        (*key, "failed", -1, day, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (*key, "published", -1, day, 1, 1, 6, 2, 1, 2, 0, 2, 3, 1),
    ]
    totals = conn.execute("SELECT id, variant, engagement_total FROM posts ORDER BY id").fetchall()
    assert totals == [("r:a:2027-10-25T10:00", None, 10), ("r:a:2027-10-25T11:00", None, None)]
    conn.execute("UPDATE posts SET state = 'expired' WHERE id = 'r:a:2027-10-25T11:00'")
    conn.execute(
        "INSERT INTO engagement VALUES ('r:a:2027-10-25T10:00', 1, ?, 5, 0, 0, 3, 0)",
        (f"{day}T12:00:00.000000+00:00",),
    )
    assert conn.execute("SELECT state, posts, likes FROM report_summary ORDER BY state").fetchall() == [
        ("expired", 1, 0),
        ("published", 1, 9),
    ]
    assert conn.execute("SELECT engagement_total FROM posts WHERE state = 'published'").fetchone() == (13,)
