"""The SQL ledger's edits of published posts (``amplifier correct``; a mixin of :class:`~.sql_ledger.SqlLedger`):
each edit recorded ``pending`` before its request and finished (``edited`` / ``failed``) after it, so a process
killed in between leaves a record the next correction settles without a second request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from amplifier.delivery.ledger.dialect import Connection
from amplifier.delivery.ledger.operator_records import EditRecord, check_edit, check_finish
from amplifier.delivery.ledger.sql import SqlCore
from amplifier.delivery.ledger.types import LedgerError, UnknownPost
from amplifier.redact import redact

_COLUMNS = "post_id, part, account, by_whom, at, old_text, new_text, outcome, detail, done_at"


class SqlEdits(SqlCore):
    """begin_edit, finish_edit, edits; the inserts of moving a ledger (``_insert_edits``)."""

    def begin_edit(self, edit: EditRecord) -> int:
        edit = check_edit(edit)
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM posts WHERE id = ?", (edit.post_id,)).fetchone() is None:
                raise UnknownPost(edit.post_id)
            return self._insert_edit(conn, edit)

    def _insert_edit(self, conn: Connection, edit: EditRecord) -> int:
        d = self.dialect
        found = conn.execute(
            f"INSERT INTO edits ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            (
                edit.post_id,
                edit.part,
                edit.account,
                edit.by,
                d.time(edit.at),
                edit.old_text,
                edit.new_text,
                edit.outcome,
                edit.detail,
                d.optional_time(edit.done_at),
            ),
        ).fetchone()
        assert found is not None
        return int(found[0])

    def finish_edit(self, edit_id: int, outcome: str, detail: str, now: datetime) -> None:
        check_finish(outcome, now)
        with self._transaction() as conn:
            found = conn.execute("SELECT outcome FROM edits WHERE seq = ?", (edit_id,)).fetchone()
            if found is None:
                raise LedgerError(f"no edit {edit_id} in the ledger")
            if found[0] != "pending":
                raise LedgerError(f"edit {edit_id} is already finished ({found[0]})")
            conn.execute(
                "UPDATE edits SET outcome = ?, detail = ?, done_at = ? WHERE seq = ?",
                (outcome, redact(detail), self.dialect.time(now), edit_id),
            )

    def edits(self, post_id: str | None = None) -> list[EditRecord]:
        where, params = ("WHERE post_id = ?", (post_id,)) if post_id is not None else ("", ())
        d = self.dialect
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT seq, {_COLUMNS} FROM edits {where} ORDER BY at, seq", params
            ).fetchall()
        return [
            EditRecord(
                post,
                int(part),
                account,
                by,
                d.read_time(at),
                old,
                new,
                outcome,
                detail,
                int(seq),
                d.read_optional_time(done),
            )
            for seq, post, part, account, by, at, old, new, outcome, detail, done in rows
        ]

    def import_edits(self, edits: Iterable[EditRecord]) -> int:
        with self._transaction() as conn:
            return self._insert_edits(conn, edits)

    def _insert_edits(self, conn: Connection, edits: Iterable[EditRecord]) -> int:
        count = 0
        for edit in edits:
            self._insert_edit(conn, replace(edit, detail=redact(edit.detail)))
            count += 1
        return count
