"""The SQL ledger's records beside the posts, and moving a ledger (a mixin of :class:`~.sql.SqlLedger`): the
operators' gate changes (``amplifier gate``), and the export and import of every post with all it records
(``amplifier ledger migrate``, a dry run's copy of a shared ledger; see
:func:`amplifier.delivery.ledger.copy_contents`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from amplifier.delivery.ledger.dialect import Connection
from amplifier.delivery.ledger.operator_records import (
    AccountPause,
    GateChange,
    OperatorAction,
    check_gate_change,
)
from amplifier.delivery.ledger.sql import PLAIN_COLUMNS, SqlCore, pages, write_source
from amplifier.delivery.ledger.types import EXPORT_BATCH, LedgerError, PlanSource, Row, UnknownPost


class SqlRecords(SqlCore):
    """record_gate_change, gate_changes; export_rows, import_rows, export_actions, and the inserts of
    :meth:`SqlLedger.import_contents`."""

    def record_gate_change(self, change: GateChange) -> None:
        change = check_gate_change(change)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM posts WHERE id = ?", (change.post_id,)).fetchone() is None:
                raise UnknownPost(change.post_id)
            conn.execute(
                "INSERT INTO gate_changes (post_id, account, by_whom, at, replies, quotes, outcome, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    change.post_id,
                    change.account,
                    change.by,
                    self.dialect.time(change.at),
                    change.replies,
                    change.quotes,
                    change.outcome,
                    change.detail,
                ),
            )

    def gate_changes(self, post_id: str | None = None) -> list[GateChange]:
        where, params = ("WHERE post_id = ?", (post_id,)) if post_id is not None else ("", ())
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT post_id, account, by_whom, at, replies, quotes, outcome, detail FROM gate_changes"
                f" {where} ORDER BY at, seq",
                params,
            ).fetchall()
        return [
            GateChange(post, account, by, self.dialect.read_time(at), replies, quotes, outcome, detail)
            for post, account, by, at, replies, quotes, outcome, detail in rows
        ]

    # -- moving a ledger -----------------------------------------------------------------------------------

    def export_rows(self) -> Iterator[Row]:
        def fetch(after: tuple[Any, ...] | None) -> list[Row]:
            if after is None:
                return self._select("1 = 1", (EXPORT_BATCH,), "ORDER BY due_at, id LIMIT ?")
            return self._select(
                "(due_at, id) > (?, ?)", (*after, EXPORT_BATCH), "ORDER BY due_at, id LIMIT ?"
            )

        return pages(fetch, lambda row: (self.dialect.time(row.due_at), row.id), EXPORT_BATCH)

    def import_rows(self, rows: Iterable[Row]) -> int:
        with self._transaction() as conn:
            return self._insert_rows(conn, rows)

    def _insert_rows(self, conn: Connection, rows: Iterable[Row]) -> int:
        d = self.dialect
        count = 0
        for row in rows:
            if conn.execute("SELECT 1 FROM posts WHERE id = ?", (row.id,)).fetchone() is not None:
                raise LedgerError(f"{self.name}: cannot import post {row.id!r}: it is there already")
            conn.execute(
                f"INSERT INTO posts ({PLAIN_COLUMNS}, late_until, variant) VALUES ({', '.join('?' * 21)})",
                (
                    row.id,
                    row.account,
                    row.platform,
                    row.rule,
                    d.time(row.due_at),
                    row.content_hash,
                    row.part_count,
                    row.state.value,
                    row.attempts,
                    d.time(row.next_attempt_at),
                    row.last_error,
                    d.optional_time(row.claimed_at),
                    row.claim_token,
                    d.optional_time(row.published_at),
                    None if row.result is None else d.json(list(row.result)),
                    d.time(row.created_at),
                    d.time(row.updated_at),
                    d.optional_time(row.unknown_since),
                    d.optional_time(row.lease_until),
                    d.optional_time(row.late_until),
                    row.variant,
                ),
            )
            conn.executemany(
                "INSERT INTO post_parts (post_id, part_index, result, recorded_at) VALUES (?, ?, ?, ?)",
                [
                    (row.id, index, d.json(dict(result)), d.time(row.updated_at))
                    for index, result in sorted(row.parts.items())
                ],
            )
            count += 1
        return count

    def export_actions(self) -> list[OperatorAction]:
        with self._reading() as conn:
            found = conn.execute(
                "SELECT at, by, action, target, reason, posts FROM operator_actions ORDER BY seq"
            ).fetchall()
        return [
            OperatorAction(self.dialect.read_time(at), by, action, target, reason, int(posts))
            for at, by, action, target, reason, posts in found
        ]

    def _insert_actions(self, conn: Connection, actions: Iterable[OperatorAction]) -> int:
        rows = [(self.dialect.time(a.at), a.by, a.action, a.target, a.reason, a.posts) for a in actions]
        conn.executemany(
            "INSERT INTO operator_actions (at, by, action, target, reason, posts) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def _insert_pauses(self, conn: Connection, pauses: Iterable[AccountPause]) -> int:
        """The accounts paused as they are (reason, time, who), without recording an operator's action."""
        rows = [(p.account, p.reason, self.dialect.time(p.paused_at), p.by) for p in pauses]
        conn.executemany(
            "INSERT INTO paused_accounts (account, reason, paused_at, paused_by) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (account) DO UPDATE SET reason = excluded.reason,"
            " paused_at = excluded.paused_at, paused_by = excluded.paused_by",
            rows,
        )
        return len(rows)

    def _insert_gate_changes(self, conn: Connection, changes: Iterable[GateChange]) -> int:
        rows = [
            (c.post_id, c.account, c.by, self.dialect.time(c.at), c.replies, c.quotes, c.outcome, c.detail)
            for c in map(check_gate_change, changes)
        ]
        conn.executemany(
            "INSERT INTO gate_changes (post_id, account, by_whom, at, replies, quotes, outcome, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(rows)

    def _insert_source(self, conn: Connection, source: PlanSource) -> None:
        """Record ``source`` (as :meth:`plan_source` returns it, with its ``planned_at``) as it is."""
        if source.planned_at is None:
            raise ValueError("an imported plan source needs the time it was planned")
        write_source(conn, self.dialect, source, self.dialect.time(source.planned_at))
