""":class:`SqlLedger`: the :class:`~.base.Ledger` operations written once in SQL, assembled from a mixin per
concept (see :mod:`.sql`); a backend subclasses it with its connection, its lock and its dialect."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from amplifier.delivery.ledger.sql import SqlPlan, SqlQueries
from amplifier.delivery.ledger.sql_engagement import SqlEngagement
from amplifier.delivery.ledger.sql_followups import SqlFollowups
from amplifier.delivery.ledger.sql_ops import SqlOperations
from amplifier.delivery.ledger.sql_records import SqlRecords
from amplifier.delivery.ledger.sql_transitions import SqlTransitions


class SqlLedger(SqlTransitions, SqlOperations, SqlRecords, SqlEngagement, SqlFollowups, SqlPlan, SqlQueries):
    """Every shared operation; the backend adds :meth:`close`, the transaction and the read connection."""

    def close(self) -> None:  # pragma: no cover - the backend's
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
