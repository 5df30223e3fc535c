"""The later PostgreSQL migrations (m009 onwards), in the order they apply after m001-m008 of
:mod:`amplifier.delivery.ledger.pg_migrations`, which appends :data:`LATER_MIGRATIONS` to its list.

Each name is permanent (it is recorded in ``_migrations``): never rename, reorder or edit one; add a new one
at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

LATER_MIGRATIONS: list[Callable[[psycopg.Connection], None]] = []


def migration(fn: Callable[[psycopg.Connection], None]) -> Callable[[psycopg.Connection], None]:
    """Register ``fn`` as the next later migration; its ``__name__`` is its permanent name."""
    LATER_MIGRATIONS.append(fn)
    return fn


@migration
def m009_nodes(conn: psycopg.Connection) -> None:
    """``nodes`` (as SQLite's m012): each node's last heartbeat, whether it leads, what it holds."""
    conn.execute(
        """
        CREATE TABLE nodes (
            node text PRIMARY KEY,
            beat_at timestamptz NOT NULL,
            leader boolean NOT NULL,
            holds text NOT NULL
        )
        """
    )


@migration
def m010_followups(conn: psycopg.Connection) -> None:
    """``followups`` (as SQLite's m014): follow-up writes on published posts, one job per post, kind and account."""
    conn.execute(
        """
        CREATE TABLE followups (
            post_id text NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            kind text NOT NULL CHECK (kind IN ('boost', 'unboost', 'pin', 'unpin', 'delete')),
            account text NOT NULL,
            platform text NOT NULL,
            due_at timestamptz NOT NULL,
            state text NOT NULL CHECK (state IN ('planned', 'claimed', 'done', 'failed', 'skipped')),
            reason text,
            detail text,
            attempts integer NOT NULL DEFAULT 0,
            is_unknown boolean NOT NULL DEFAULT false,
            next_at timestamptz,
            result jsonb,
            by_whom text,
            requested_at timestamptz,
            updated_at timestamptz NOT NULL,
            claim_token text,
            lease_until timestamptz,
            PRIMARY KEY (post_id, kind, account)
        )
        """
    )
    conn.execute("CREATE INDEX followups_due ON followups (due_at) WHERE state IN ('planned', 'claimed')")


@migration
def m011_report_summary(conn: psycopg.Connection) -> None:
    """The report's summary and ``posts.variant`` (as SQLite's m014_report_summary): the table, the trigger
    functions that keep it in the same transaction as every change, filled once from what is here."""
    from amplifier.delivery.ledger.summary import (
        PG_DDL,
        PG_RECOMPUTE,
        PG_TOTALS,
        backfill_sql,
        backfill_totals_sql,
    )

    conn.execute("ALTER TABLE posts ADD COLUMN variant integer CHECK (variant >= 0)")
    conn.execute("CREATE INDEX posts_variant_unknown ON posts (due_at) WHERE variant IS NULL")
    conn.execute("ALTER TABLE posts ADD COLUMN engagement_total bigint")
    conn.execute(
        "CREATE INDEX posts_engagement ON posts (engagement_total DESC, due_at, id)"
        " WHERE engagement_total IS NOT NULL"
    )
    for statement in PG_DDL:
        conn.execute(statement)
    conn.execute(backfill_sql(PG_RECOMPUTE))
    conn.execute(backfill_totals_sql(PG_TOTALS))


@migration
def m012_edits(conn: psycopg.Connection) -> None:
    """``edits`` (as SQLite's m015): each edit of a published post's part (``amplifier correct``), pending before
    its request, finished after it."""
    conn.execute(
        """
        CREATE TABLE edits (
            seq bigserial PRIMARY KEY,
            post_id text NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            part integer NOT NULL CHECK (part >= 0),
            account text NOT NULL,
            by_whom text NOT NULL,
            at timestamptz NOT NULL,
            old_text text NOT NULL,
            new_text text NOT NULL,
            outcome text NOT NULL CHECK (outcome IN ('pending', 'edited', 'failed')),
            detail text NOT NULL,
            done_at timestamptz
        )
        """
    )
    conn.execute("CREATE INDEX edits_post ON edits (post_id, at)")


@migration
def m013_shared_state(conn: psycopg.Connection) -> None:
    """``shared_state`` and ``state_locks`` (as SQLite's m014): the nodes' state store: Bluesky sessions (their
    tokens: protect the database as the state folder), the login guard, limits, 429 blocks; a lock per document."""
    conn.execute(
        """
        CREATE TABLE shared_state (
            sub text NOT NULL,
            name text NOT NULL,
            data bytea NOT NULL,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (sub, name)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE state_locks (
            sub text NOT NULL,
            name text NOT NULL,
            holder text NOT NULL,
            lock_until timestamptz NOT NULL,
            PRIMARY KEY (sub, name)
        )
        """
    )


@migration
def m014_summary_lock_order(conn: psycopg.Connection) -> None:
    """The summary trigger of a post's update moves it between its two groups in the order of their keys (see
    :data:`~amplifier.delivery.ledger.summary.PG_POSTS_IN_KEY_ORDER`): a claim and a release of two posts of one
    group never deadlock on the group's rows."""
    from amplifier.delivery.ledger.summary import PG_POSTS_IN_KEY_ORDER

    conn.execute(PG_POSTS_IN_KEY_ORDER)
