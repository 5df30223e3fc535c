"""The state store's documents and locks in the ledger's database (:class:`~.protocols.LedgerSharedState`), for the
nodes of a shared ledger (:mod:`amplifier.delivery.shared_state`): written once for both databases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from amplifier.delivery.ledger.sql import SqlCore


class SqlState(SqlCore):
    """``shared_state`` (documents by folder and name) and ``state_locks`` (a holder and a lease per document)."""

    def state_read(self, sub: str, names: Sequence[str]) -> dict[str, bytes]:
        if not names:
            return {}
        condition, params = self.dialect.in_list("name", list(names))
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT name, data FROM shared_state WHERE sub = ? AND {condition}", [sub, *params]
            ).fetchall()
        return {str(name): bytes(data) for name, data in rows}

    def state_write(self, sub: str, name: str, data: bytes, now: datetime) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO shared_state (sub, name, data, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sub, name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (sub, name, data, self.dialect.time(now)),
            )

    def state_delete(self, sub: str, name: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM shared_state WHERE sub = ? AND name = ?", (sub, name))

    def state_create(self, sub: str, name: str, data: bytes, now: datetime) -> bytes:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO shared_state (sub, name, data, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sub, name) DO NOTHING",
                (sub, name, data, self.dialect.time(now)),
            )
            stored = conn.execute(
                "SELECT data FROM shared_state WHERE sub = ? AND name = ?", (sub, name)
            ).fetchone()
        return bytes(stored[0])

    def state_lock(self, sub: str, name: str, holder: str, until: datetime, now: datetime) -> bool:
        with self._transaction() as conn:
            taken = conn.execute(
                "INSERT INTO state_locks AS l (sub, name, holder, lock_until) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sub, name) DO UPDATE SET holder = excluded.holder, lock_until = excluded.lock_until"
                " WHERE l.holder = excluded.holder OR l.lock_until <= ? RETURNING holder",
                (sub, name, holder, self.dialect.time(until), self.dialect.time(now)),
            ).fetchone()
        return taken is not None

    def state_unlock(self, sub: str, name: str, holder: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM state_locks WHERE sub = ? AND name = ? AND holder = ?", (sub, name, holder)
            )
