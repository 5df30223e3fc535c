"""The later SQLite migrations (m009 onwards), in the order they apply after m001-m008 of
:mod:`amplifier.delivery.ledger.migrations`, which appends :data:`LATER_MIGRATIONS` to its list.

Each name is permanent (it is recorded in ``_migrations``): never rename, reorder or edit one; add a new one
at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

LATER_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Register ``fn`` as the next later migration; its ``__name__`` is its permanent name."""
    LATER_MIGRATIONS.append(fn)
    return fn


@migration
def m009_posts_published(conn: sqlite3.Connection) -> None:
    """Published posts by publishing time: the read-back jobs' query (``reads_due``) looks only at recent
    published posts, so finding that nothing is due stays cheap in a large ledger."""
    conn.execute("CREATE INDEX posts_published ON posts (published_at) WHERE state = 'published'")


@migration
def m010_claim_lease(conn: sqlite3.Connection) -> None:
    """``posts.lease_until``: until when the claim's holder vouches for it (it extends the lease while it
    works); past it, another process may take the claim over (``Ledger.take_over``) and reconcile the post."""
    conn.execute("ALTER TABLE posts ADD COLUMN lease_until TEXT")


@migration
def m011_plan_source(conn: sqlite3.Connection) -> None:
    """``plan_source``: which campaign files the plan was last written from (content hash, revision, its time,
    the node), so that a node with older files never overwrites the plan (``Ledger.sync_plan``'s ``source``)."""
    conn.execute(
        """
        CREATE TABLE plan_source (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            content_hash TEXT NOT NULL,
            revision TEXT NOT NULL,
            revised_at TEXT NOT NULL,
            node TEXT NOT NULL,
            planned_at TEXT NOT NULL
        ) STRICT
        """
    )


@migration
def m012_nodes(conn: sqlite3.Connection) -> None:
    """``nodes``: each daemon's last heartbeat in the ledger (a node of several shares it), what it holds."""
    conn.execute(
        """
        CREATE TABLE nodes (
            node TEXT PRIMARY KEY,
            beat_at TEXT NOT NULL,
            leader INTEGER NOT NULL CHECK (leader IN (0, 1)),
            holds TEXT NOT NULL CHECK (json_valid(holds))
        ) STRICT
        """
    )


@migration
def m013_followups(conn: sqlite3.Connection) -> None:
    """``followups``: follow-up writes on published posts (boost / unboost, pin / unpin, delete), one job per post,
    kind and account, planned -> claimed -> done / failed / skipped (see :mod:`.followups`); the due jobs are found
    through the partial index ``followups_due``."""
    conn.execute(
        """
        CREATE TABLE followups (
            post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('boost', 'unboost', 'pin', 'unpin', 'delete')),
            account TEXT NOT NULL,
            platform TEXT NOT NULL,
            due_at TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('planned', 'claimed', 'done', 'failed', 'skipped')),
            reason TEXT,
            detail TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            is_unknown INTEGER NOT NULL DEFAULT 0 CHECK (is_unknown IN (0, 1)),
            next_at TEXT,
            result TEXT CHECK (result IS NULL OR json_valid(result)),
            by_whom TEXT,
            requested_at TEXT,
            updated_at TEXT NOT NULL,
            claim_token TEXT,
            lease_until TEXT,
            PRIMARY KEY (post_id, kind, account)
        ) STRICT
        """
    )
    conn.execute("CREATE INDEX followups_due ON followups (due_at) WHERE state IN ('planned', 'claimed')")


@migration
def m014_report_summary(conn: sqlite3.Connection) -> None:
    """The report's summary (:mod:`amplifier.delivery.ledger.summary`): ``posts.variant`` (the variant the
    planner gave the post; NULL: planned before, the report computes it from the campaign as before), an index
    of the posts without one, the ``report_summary`` table and the triggers that keep it in the same
    transaction as every change, filled once from the posts and readings already here."""
    from amplifier.delivery.ledger.summary import (
        SQLITE_DDL,
        SQLITE_RECOMPUTE,
        SQLITE_TOTALS,
        backfill_sql,
        backfill_totals_sql,
    )

    conn.execute("ALTER TABLE posts ADD COLUMN variant INTEGER CHECK (variant >= 0)")
    conn.execute("CREATE INDEX posts_variant_unknown ON posts (due_at) WHERE variant IS NULL")
    conn.execute("ALTER TABLE posts ADD COLUMN engagement_total INTEGER")
    conn.execute(
        "CREATE INDEX posts_engagement ON posts (engagement_total DESC, due_at, id)"
        " WHERE engagement_total IS NOT NULL"
    )
    for statement in SQLITE_DDL:
        conn.execute(statement)
    conn.execute(backfill_sql(SQLITE_RECOMPUTE))
    conn.execute(backfill_totals_sql(SQLITE_TOTALS))


@migration
def m015_edits(conn: sqlite3.Connection) -> None:
    """``amplifier correct``: each edit of a published post's part, recorded ``pending`` before its request and
    finished (``edited`` / ``failed``) after it, with who, when and the text before and after (``Ledger.begin_edit``,
    ``finish_edit``)."""
    conn.execute(
        """
        CREATE TABLE edits (
            seq INTEGER PRIMARY KEY,
            post_id TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
            part INTEGER NOT NULL CHECK (part >= 0),
            account TEXT NOT NULL,
            by_whom TEXT NOT NULL,
            at TEXT NOT NULL,
            old_text TEXT NOT NULL,
            new_text TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('pending', 'edited', 'failed')),
            detail TEXT NOT NULL,
            done_at TEXT
        ) STRICT
        """
    )
    conn.execute("CREATE INDEX edits_post ON edits (post_id, at)")


@migration
def m016_shared_state(conn: sqlite3.Connection) -> None:
    """``shared_state`` and ``state_locks``: the state store of the nodes of a shared ledger (documents by folder
    and name; a lock per document with a holder and a lease; see :mod:`amplifier.delivery.shared_state`). One
    machine keeps its state folder: in SQLite they stay empty, for the one contract both backends keep."""
    conn.execute(
        """
        CREATE TABLE shared_state (
            sub TEXT NOT NULL,
            name TEXT NOT NULL,
            data BLOB NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (sub, name)
        ) STRICT
        """
    )
    conn.execute(
        """
        CREATE TABLE state_locks (
            sub TEXT NOT NULL,
            name TEXT NOT NULL,
            holder TEXT NOT NULL,
            lock_until TEXT NOT NULL,
            PRIMARY KEY (sub, name)
        ) STRICT
        """
    )
