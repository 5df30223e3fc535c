""":class:`SqlLedger`: the :class:`~.base.Ledger` operations written once in SQL, assembled from a mixin per
concept (see :mod:`.sql`); a backend subclasses it with its connection, its lock and its dialect."""

from __future__ import annotations

from itertools import islice
from types import TracebackType
from typing import Self

from amplifier.delivery.ledger.engagement import checked_readings
from amplifier.delivery.ledger.protocols import Contents
from amplifier.delivery.ledger.sql import SqlPlan, SqlQueries
from amplifier.delivery.ledger.sql_aggregates import SqlAggregates
from amplifier.delivery.ledger.sql_edits import SqlEdits
from amplifier.delivery.ledger.sql_engagement import SqlEngagement
from amplifier.delivery.ledger.sql_followups import SqlFollowups
from amplifier.delivery.ledger.sql_ops import SqlOperations
from amplifier.delivery.ledger.sql_records import SqlRecords
from amplifier.delivery.ledger.sql_report_posts import SqlReportPosts
from amplifier.delivery.ledger.sql_retractions import SqlRetractions
from amplifier.delivery.ledger.sql_state import SqlState
from amplifier.delivery.ledger.sql_transitions import SqlTransitions
from amplifier.delivery.ledger.types import EXPORT_BATCH


class SqlLedger(
    SqlTransitions,
    SqlOperations,
    SqlAggregates,
    SqlRecords,
    SqlEdits,
    SqlEngagement,
    SqlReportPosts,
    SqlFollowups,
    SqlRetractions,
    SqlState,
    SqlPlan,
    SqlQueries,
):
    """Every shared operation; the backend adds :meth:`close`, the transaction and the read connection."""

    def import_contents(self, contents: Contents) -> int:
        counted = contents.counted
        with self._transaction() as conn:
            counted["posts"] = self._insert_rows(conn, contents.rows)
            counted["paused accounts"] = self._insert_pauses(conn, contents.pauses)
            counted["operator actions"] = self._insert_actions(conn, contents.actions)
            counted["gate changes"] = self._insert_gate_changes(conn, contents.gate_changes)
            counted["edits"] = self._insert_edits(conn, contents.edits)
            added = 0
            readings = iter(contents.readings)
            while batch := list(islice(readings, EXPORT_BATCH)):
                added += self._insert_readings(conn, checked_readings(batch))
            counted["engagement readings"] = added
            counted["follow-ups"] = self._insert_followups(conn, contents.followups)
            if contents.source is not None:
                self._insert_source(conn, contents.source)
        return counted["posts"]

    def close(self) -> None:  # pragma: no cover - the backend's
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
