"""The ledger's PostgreSQL schema as a list of named migrations, each applied once by the shared runner
(:func:`amplifier.delivery.ledger.migrate.run_migrations`, the same rules as SQLite's), with PostgreSQL's side of
it (:class:`PostgresMigrations`): each migration in one transaction together with its record, and the whole run
under a session advisory lock (:data:`MIGRATION_LOCK`), so of two nodes that start together against a new
database the second waits, then finds everything applied. Never edit or rename a migration that has shipped:
add one.

Times are ``timestamptz`` (the connection's time zone is UTC); results are ``jsonb``.

m001-m008 are here; m009 onwards are in :mod:`amplifier.delivery.ledger.pg_migrations_later`, appended to
:data:`MIGRATIONS` after them in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import psycopg

from amplifier.delivery.ledger.migrate import SchemaError, run_migrations
from amplifier.delivery.ledger.pg_migrations_later import LATER_MIGRATIONS

Migration = Callable[[psycopg.Connection], None]

MIGRATIONS: list[Migration] = []

MIGRATIONS_TABLE = "_migrations"
#: The advisory lock key held while migrating (an arbitrary constant: "amplifier" in ASCII, folded).
MIGRATION_LOCK = 0x616D706C


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration; its ``__name__`` is its permanent name."""
    MIGRATIONS.append(fn)
    return fn


def applied_migrations(conn: psycopg.Connection) -> list[str]:
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,)).fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY applied_order").fetchall()
    return [str(row[0]) for row in rows]


class PostgresMigrations:
    """PostgreSQL's ``_migrations`` and locks for the runner (a :class:`~.migrate.MigrationStore`)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def applied(self) -> list[str] | None:
        return applied_migrations(self.conn)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        self.conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            yield
        finally:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    @contextmanager
    def step(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def ensure_table(self) -> None:
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            " name text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL,"
            " applied_order bigint GENERATED ALWAYS AS IDENTITY)"
        )

    def is_applied(self, name: str) -> bool:
        found = self.conn.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = %s", (name,)).fetchone()
        return found is not None

    def record(self, name: str, now: datetime) -> None:
        self.conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (%s, %s)", (name, now))


def migrate(
    conn: psycopg.Connection, now: datetime, migrations: Sequence[Migration] | None = None
) -> list[str]:
    """Apply the migrations not applied yet, each in one transaction; return the names applied now.

    ``conn`` must be in autocommit mode. Raises :class:`SchemaError` for a database written by a newer version.
    """
    return run_migrations(
        PostgresMigrations(conn), list(MIGRATIONS if migrations is None else migrations), now
    )


__all__ = ["MIGRATIONS", "Migration", "SchemaError", "applied_migrations", "migrate", "migration"]


_STATES = "'planned', 'claimed', 'published', 'failed', 'expired', 'skipped', 'cancelled'"


@migration
def m001_schema(conn: psycopg.Connection) -> None:
    """Posts and their lifecycle, the published parts of threads, paused accounts and the global pause: the
    schema the SQLite ledger reached with its migrations m001 to m004."""
    conn.execute(
        f"""
        CREATE TABLE posts (
            id text PRIMARY KEY,
            account text NOT NULL,
            platform text NOT NULL,
            rule text NOT NULL,
            due_at timestamptz NOT NULL,
            content_hash text NOT NULL,
            part_count integer NOT NULL CHECK (part_count >= 1),
            state text NOT NULL CHECK (state IN ({_STATES})),
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at timestamptz NOT NULL,
            last_error text,
            claimed_at timestamptz,
            claim_token text,
            published_at timestamptz,
            result jsonb,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            unknown_since timestamptz,
            CHECK (CASE state
                WHEN 'claimed' THEN claim_token IS NOT NULL AND claimed_at IS NOT NULL
                WHEN 'planned' THEN claim_token IS NULL AND claimed_at IS NULL
                WHEN 'cancelled' THEN claim_token IS NULL AND claimed_at IS NULL
                ELSE true END),
            CHECK ((state = 'published') = (published_at IS NOT NULL AND result IS NOT NULL)),
            CHECK (state NOT IN ('failed', 'expired', 'skipped', 'cancelled') OR last_error IS NOT NULL)
        )
        """
    )
    conn.execute("CREATE INDEX posts_state_next_attempt ON posts (state, next_attempt_at)")
    conn.execute("CREATE INDEX posts_due_at ON posts (due_at, id)")
    conn.execute("CREATE INDEX posts_account_due_at ON posts (account, due_at)")  # also remote_ids()
    conn.execute(
        """
        CREATE TABLE post_parts (
            post_id text NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            part_index integer NOT NULL CHECK (part_index >= 0),
            result jsonb NOT NULL,
            recorded_at timestamptz NOT NULL,
            PRIMARY KEY (post_id, part_index)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE paused_accounts (
            account text PRIMARY KEY,
            reason text NOT NULL,
            paused_at timestamptz NOT NULL
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE global_pause (
            id integer PRIMARY KEY CHECK (id = 1),
            paused boolean NOT NULL,
            reason text,
            changed_at timestamptz
        )
        """
    )
    conn.execute("INSERT INTO global_pause (id, paused) VALUES (1, false)")


@migration
def m002_engagement(conn: psycopg.Connection) -> None:
    """The engagement read back from the platforms, as SQLite's ``m006_engagement``."""
    conn.execute(
        """
        CREATE TABLE engagement (
            post_id text NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            part_index integer NOT NULL CHECK (part_index >= 0),
            read_at timestamptz NOT NULL,
            likes integer CHECK (likes >= 0),
            reposts integer CHECK (reposts >= 0),
            replies integer CHECK (replies >= 0),
            quotes integer CHECK (quotes >= 0),
            gone boolean NOT NULL,
            CHECK (NOT gone OR (likes IS NULL AND reposts IS NULL AND replies IS NULL AND quotes IS NULL)),
            PRIMARY KEY (post_id, part_index, read_at)
        )
        """
    )
    conn.execute("CREATE INDEX engagement_read_at ON engagement (read_at)")


@migration
def m003_operator_actions(conn: psycopg.Connection) -> None:
    """The operators' actions, who paused an account, ``retry --late``, and the indexes of ``status`` (the
    SQLite ledger's m007_operator_actions)."""
    conn.execute(
        """
        CREATE TABLE operator_actions (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL,
            by text NOT NULL,
            action text NOT NULL,
            target text NOT NULL,
            reason text,
            posts integer NOT NULL DEFAULT 0
        )
        """
    )
    conn.execute("CREATE INDEX operator_actions_at ON operator_actions (at)")
    conn.execute("ALTER TABLE paused_accounts ADD COLUMN paused_by text")
    conn.execute("ALTER TABLE posts ADD COLUMN late_until timestamptz")
    conn.execute("CREATE INDEX posts_planned_next ON posts (next_attempt_at) WHERE state = 'planned'")
    conn.execute("CREATE INDEX posts_planned ON posts (account, next_attempt_at) WHERE state = 'planned'")
    conn.execute("CREATE INDEX posts_claimed ON posts (claimed_at, id) WHERE state = 'claimed'")
    conn.execute("CREATE INDEX posts_account_state ON posts (account, state, published_at)")
    conn.execute("CREATE INDEX posts_state_published ON posts (state, published_at)")
    conn.execute("CREATE INDEX posts_state_updated ON posts (state, updated_at)")


@migration
def m004_gate_changes(conn: psycopg.Connection) -> None:
    """``amplifier gate``: each change of a published post's reply / quote controls, who made it and when, and
    how it went (``Ledger.record_gate_change``)."""
    conn.execute(
        """
        CREATE TABLE gate_changes (
            seq bigserial PRIMARY KEY,
            post_id text NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            account text NOT NULL,
            by_whom text NOT NULL,
            at timestamptz NOT NULL,
            replies text,
            quotes text,
            outcome text NOT NULL CHECK (outcome IN ('done', 'partial', 'failed')),
            detail text NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX gate_changes_post ON gate_changes (post_id, at)")


@migration
def m005_posts_published(conn: psycopg.Connection) -> None:
    """Published posts by publishing time, as SQLite's ``m009_posts_published``."""
    conn.execute("CREATE INDEX posts_published ON posts (published_at) WHERE state = 'published'")


@migration
def m006_claim_lease(conn: psycopg.Connection) -> None:
    """``posts.lease_until`` (as SQLite's m010): until when the claim's holder vouches for it; past it, another
    node may take the claim over (``Ledger.take_over``, a compare-and-swap of the token) and reconcile it."""
    conn.execute("ALTER TABLE posts ADD COLUMN lease_until timestamptz")


@migration
def m007_plan_source(conn: psycopg.Connection) -> None:
    """``plan_source`` (as SQLite's m011): which campaign files the plan was last written from, so that a node
    with older files never overwrites it."""
    conn.execute(
        """
        CREATE TABLE plan_source (
            id integer PRIMARY KEY CHECK (id = 1),
            content_hash text NOT NULL,
            revision text NOT NULL,
            revised_at timestamptz NOT NULL,
            node text NOT NULL,
            planned_at timestamptz NOT NULL
        )
        """
    )


@migration
def m008_account_leases(conn: psycopg.Connection) -> None:
    """``account_leases``: which node publishes for an account now, and until when (its lease; see
    :mod:`amplifier.delivery.pg_coordination`): one node per account at a time, across nodes."""
    conn.execute(
        """
        CREATE TABLE account_leases (
            account text PRIMARY KEY,
            holder text NOT NULL,
            lease_until timestamptz NOT NULL
        )
        """
    )


# m009 onwards live in pg_migrations_later.py, applied after the ones above in this order.
MIGRATIONS.extend(LATER_MIGRATIONS)
