"""The ledger's SQLite schema as a list of named migrations, each applied once by the shared runner
(:func:`amplifier.delivery.ledger.migrate.run_migrations`; see there for the rules), with SQLite's side of it
(:class:`SqliteMigrations`): each migration in its own ``BEGIN IMMEDIATE`` transaction together with the row
that records it, ``_migrations`` re-read under that write lock.

Timestamps are UTC ISO 8601 text of fixed width (``2027-10-25T10:00:00.000000+00:00``, see
:func:`amplifier.delivery.ledger.to_db_time`), so text order is time order.

m001-m008 are here; m009 onwards are in :mod:`amplifier.delivery.ledger.migrations_later`, appended to
:data:`MIGRATIONS` after them in the same order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from amplifier.delivery.ledger.migrate import SchemaError, run_migrations
from amplifier.delivery.ledger.migrations_later import LATER_MIGRATIONS

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = []

MIGRATIONS_TABLE = "_migrations"


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration; its ``__name__`` is its permanent name."""
    MIGRATIONS.append(fn)
    return fn


def ensure_migrations_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        " name TEXT PRIMARY KEY,"
        " applied_at TEXT NOT NULL"
        ") STRICT"
    )


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations applied to this database, in the order they were applied."""
    rows = conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY rowid").fetchall()
    return [str(row[0]) for row in rows]


class SqliteMigrations:
    """SQLite's ``_migrations`` and locks for the runner (a :class:`~.migrate.MigrationStore`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def applied(self) -> list[str] | None:
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
        ).fetchone()
        return None if exists is None else applied_migrations(self.conn)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        yield  # each step's BEGIN IMMEDIATE is the lock

    @contextmanager
    def step(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def ensure_table(self) -> None:
        ensure_migrations_table(self.conn)

    def is_applied(self, name: str) -> bool:
        found = self.conn.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = ?", (name,)).fetchone()
        return found is not None

    def record(self, name: str, now: datetime) -> None:
        self.conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
            (name, now.astimezone(UTC).isoformat(timespec="microseconds")),
        )


def migrate(
    conn: sqlite3.Connection, now: datetime, migrations: Sequence[Migration] | None = None
) -> list[str]:
    """Apply the migrations not applied yet, each in one transaction; return the names applied now.

    ``conn`` must be in autocommit mode (``isolation_level=None``): this function opens its own transactions.
    ``now`` (aware) is recorded as each migration's ``applied_at``. Raises :class:`SchemaError` when the
    database has applied migrations that ``migrations`` does not contain (a database from a newer version).
    """
    if conn.in_transaction:
        raise RuntimeError("migrate() needs a connection outside any transaction")
    return run_migrations(SqliteMigrations(conn), list(MIGRATIONS if migrations is None else migrations), now)


__all__ = ["MIGRATIONS", "Migration", "SchemaError", "applied_migrations", "migrate", "migration"]


# The states of a post, as stored; amplifier.delivery.ledger.State holds the same values.
_STATES = "'planned', 'claimed', 'published', 'failed', 'expired', 'skipped', 'cancelled'"


@migration
def m001_posts(conn: sqlite3.Connection) -> None:
    """One row per planned post (or thread), and its lifecycle."""
    conn.execute(
        f"""
        CREATE TABLE posts (
            id TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            platform TEXT NOT NULL,
            rule TEXT NOT NULL,
            due_at TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            part_count INTEGER NOT NULL CHECK (part_count >= 1),
            state TEXT NOT NULL CHECK (state IN ({_STATES})),
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            claimed_at TEXT,
            claim_token TEXT,
            published_at TEXT,
            result TEXT CHECK (result IS NULL OR json_valid(result)),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            -- A claim is held exactly while claimed; a finished post keeps who claimed it last.
            CHECK (CASE state
                WHEN 'claimed' THEN claim_token IS NOT NULL AND claimed_at IS NOT NULL
                WHEN 'planned' THEN claim_token IS NULL AND claimed_at IS NULL
                WHEN 'cancelled' THEN claim_token IS NULL AND claimed_at IS NULL
                ELSE 1 END),
            CHECK ((state = 'published') = (published_at IS NOT NULL AND result IS NOT NULL)),
            CHECK (state NOT IN ('failed', 'expired', 'skipped', 'cancelled') OR last_error IS NOT NULL)
        ) STRICT
        """
    )
    # due(): WHERE state = 'planned' AND next_attempt_at <= ?; next_due_at(): MIN(next_attempt_at).
    conn.execute("CREATE INDEX posts_state_next_attempt ON posts (state, next_attempt_at)")
    # history(): WHERE due_at >= ? AND due_at < ?
    conn.execute("CREATE INDEX posts_due_at ON posts (due_at, id)")


@migration
def m002_post_parts(conn: sqlite3.Connection) -> None:
    """The published parts of a thread, so a retry resumes at the first missing part."""
    conn.execute(
        """
        CREATE TABLE post_parts (
            post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            part_index INTEGER NOT NULL CHECK (part_index >= 0),
            result TEXT NOT NULL CHECK (json_valid(result)),
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (post_id, part_index)
        ) STRICT
        """
    )


@migration
def m003_pauses(conn: sqlite3.Connection) -> None:
    """Paused accounts, and the one global pause flag."""
    conn.execute(
        """
        CREATE TABLE paused_accounts (
            account TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            paused_at TEXT NOT NULL
        ) STRICT
        """
    )
    conn.execute(
        """
        CREATE TABLE global_pause (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            paused INTEGER NOT NULL CHECK (paused IN (0, 1)),
            reason TEXT,
            changed_at TEXT
        ) STRICT
        """
    )
    conn.execute("INSERT INTO global_pause (id, paused, reason, changed_at) VALUES (1, 0, NULL, NULL)")


@migration
def m004_unknown_since(conn: sqlite3.Connection) -> None:
    """``posts.unknown_since``: the first moment a publish attempt of the post ended with its outcome unknown
    (the request may have created the status), kept across re-claims until the post is published or a
    lookup proves it absent. A re-send under the same Mastodon Idempotency-Key is safe only within the key's
    hour from that first moment, never from the latest claim."""
    conn.execute("ALTER TABLE posts ADD COLUMN unknown_since TEXT")


@migration
def m005_posts_account(conn: sqlite3.Connection) -> None:
    """``Ledger.remote_ids``: the parts recorded for an account's posts (WHERE account = ?, joined to
    ``post_parts`` by its primary key)."""
    conn.execute("CREATE INDEX posts_account ON posts (account, id)")


@migration
def m006_engagement(conn: sqlite3.Connection) -> None:
    """The engagement read back from the platforms: one row per reading of a post's part (see
    :mod:`amplifier.delivery.ledger.engagement`). The primary key makes a repeated reading a no-op and serves
    the latest-reading-per-part lookups; ``engagement_read_at`` the readings of a time window."""
    conn.execute(
        """
        CREATE TABLE engagement (
            post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            part_index INTEGER NOT NULL CHECK (part_index >= 0),
            read_at TEXT NOT NULL,
            likes INTEGER CHECK (likes >= 0),
            reposts INTEGER CHECK (reposts >= 0),
            replies INTEGER CHECK (replies >= 0),
            quotes INTEGER CHECK (quotes >= 0),
            gone INTEGER NOT NULL CHECK (gone IN (0, 1)),
            CHECK (NOT gone OR (likes IS NULL AND reposts IS NULL AND replies IS NULL AND quotes IS NULL)),
            PRIMARY KEY (post_id, part_index, read_at)
        ) STRICT, WITHOUT ROWID
        """
    )
    conn.execute("CREATE INDEX engagement_read_at ON engagement (read_at)")


@migration
def m007_operator_actions(conn: sqlite3.Connection) -> None:
    """What operators did (``skip``, ``cancel``, ``retry``, ``pause``, ``resume``): who, when, why, to what.
    ``paused_accounts.paused_by``: the operator who paused the account (NULL: the daemon paused it after a
    credential problem, which ``status --check`` reports). ``posts.late_until``: an operator's ``retry --late``
    lets the post go out after its window, until then. And the indexes ``status``, ``status --check`` and
    ``history`` need on a ledger of a million rows (``tests/unit/test_ledger_plans.py``)."""
    conn.execute(
        """
        CREATE TABLE operator_actions (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            by TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            reason TEXT,
            posts INTEGER NOT NULL DEFAULT 0
        ) STRICT
        """
    )
    conn.execute("CREATE INDEX operator_actions_at ON operator_actions (at)")
    conn.execute("ALTER TABLE paused_accounts ADD COLUMN paused_by TEXT")
    conn.execute("ALTER TABLE posts ADD COLUMN late_until TEXT")
    # SQLite keeps no histogram of ``state`` (no STAT4): with statistics it takes ``state = 'planned'`` for a
    # fifth of the ledger and scans. Partial indexes hold only the few planned or claimed posts, and the
    # ledger's queries name their index (INDEXED BY), so no statistics can make the planner scan.
    conn.execute("CREATE INDEX posts_planned_next ON posts (next_attempt_at) WHERE state = 'planned'")
    conn.execute("CREATE INDEX posts_planned ON posts (account, next_attempt_at) WHERE state = 'planned'")
    conn.execute("CREATE INDEX posts_claimed ON posts (claimed_at, id) WHERE state = 'claimed'")
    # status: per account and state, the count and the last publication (a covering index: no table reads)
    conn.execute("CREATE INDEX posts_account_state ON posts (account, state, published_at)")
    # status: the last published, the latest failures; --check: failures since
    conn.execute("CREATE INDEX posts_state_published ON posts (state, published_at)")
    conn.execute("CREATE INDEX posts_state_updated ON posts (state, updated_at)")
    # history of one account
    conn.execute("CREATE INDEX posts_account_due_at ON posts (account, due_at)")
    if conn.execute("SELECT 1 FROM posts LIMIT 1").fetchone() is not None:
        # an upgraded ledger: statistics for the planner, from a bounded sample (quick on a million rows);
        # an empty one gets none (statistics of empty tables would mislead the planner once they grow)
        conn.execute("PRAGMA analysis_limit = 1000")
        conn.execute("ANALYZE")


@migration
def m008_gate_changes(conn: sqlite3.Connection) -> None:
    """``amplifier gate``: each change of a published post's reply / quote controls, who made it and when, and
    how it went (``Ledger.record_gate_change``)."""
    conn.execute(
        """
        CREATE TABLE gate_changes (
            seq INTEGER PRIMARY KEY,
            post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            account TEXT NOT NULL,
            by_whom TEXT NOT NULL,
            at TEXT NOT NULL,
            replies TEXT,
            quotes TEXT,
            outcome TEXT NOT NULL CHECK (outcome IN ('done', 'partial', 'failed')),
            detail TEXT NOT NULL
        ) STRICT
        """
    )
    conn.execute("CREATE INDEX gate_changes_post ON gate_changes (post_id, at)")


# m009 onwards live in migrations_later.py, applied after the ones above in this order.
MIGRATIONS.extend(LATER_MIGRATIONS)
