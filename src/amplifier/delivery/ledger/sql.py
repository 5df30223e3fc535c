"""The SQL ledger: ONE implementation of the :class:`~.base.Ledger` operations over SQLite and PostgreSQL.

:class:`SqlCore` is what every operation stands on: the backend's :class:`~.dialect.Dialect`, its transaction
and its read connection (:meth:`SqlCore._transaction`, :meth:`SqlCore._reading`, given by the backend), and the
row reader. :class:`SqlLedger` assembles the operations, a mixin per concept:

* :mod:`.sql` (here): the plan, its source, the nodes' heartbeats, the queries and the global pause;
* :mod:`.sql_transitions`: claims, leases and the post's transitions;
* :mod:`.sql_ops`: the aggregates of ``status`` and ``history``, an operator's actions, the account pauses;
* :mod:`.sql_records`: gate changes, and moving a ledger (export and import of everything it holds);
* :mod:`.sql_engagement`: engagement readings and totals.

A backend (:class:`~.sqlite.SqliteLedger`, :class:`~.postgres.PostgresLedger`) adds its connection handling,
its lock (``BEGIN IMMEDIATE`` / row locks and an advisory lock), what it writes in whole statements of its own
(a re-plan's bulk writes, the report's queries) and its migrations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from amplifier.delivery.ledger.dialect import Connection, Dialect
from amplifier.delivery.ledger.plandiff import Existing, PlanDiff, PlanKey, diff_plan, plan_keys
from amplifier.delivery.ledger.types import (
    JSONObject,
    NodeBeat,
    PlanEntry,
    PlanSource,
    Row,
    State,
    SyncReport,
    UnknownPost,
    check_reason,
    check_source,
    dump_json,
)

NOT_PAUSED = (
    "NOT EXISTS (SELECT 1 FROM paused_accounts WHERE paused_accounts.account = posts.account)"
    " AND NOT (SELECT paused FROM global_pause WHERE id = 1)"
)

PLAIN_COLUMNS = (
    "id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
    " last_error, claimed_at, claim_token, published_at, result, created_at, updated_at, unknown_since,"
    " lease_until"
)


def write_source(conn: Connection, dialect: Dialect, source: PlanSource, planned_at: Any) -> None:
    """Record ``source`` as the files the plan was made from, planned at ``planned_at`` (as stored)."""
    conn.execute(
        "INSERT INTO plan_source (id, content_hash, revision, revised_at, node, planned_at)"
        " VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET content_hash = excluded.content_hash,"
        " revision = excluded.revision, revised_at = excluded.revised_at, node = excluded.node,"
        " planned_at = excluded.planned_at",
        (source.content_hash, source.revision, dialect.time(source.revised_at), source.node, planned_at),
    )


_T = TypeVar("_T")


def pages(
    fetch: Callable[[tuple[Any, ...] | None], list[_T]], key: Callable[[_T], tuple[Any, ...]], size: int
) -> Iterator[_T]:
    """Keyset pagination: the items of ``fetch(after)`` (at most ``size`` per call, in key order, after the key
    ``after``; None: from the first), one short read at a time, until a page comes back short."""
    after: tuple[Any, ...] | None = None
    while True:
        page = fetch(after)
        yield from page
        if len(page) < size:
            return
        after = key(page[-1])


class SqlCore:
    """The backend's hooks and the shared readers every mixin of :class:`SqlLedger` uses."""

    dialect: ClassVar[Dialect]
    name: str  # how a message names the ledger (a path, or host:port/database: never a password)

    def _transaction(self) -> AbstractContextManager[Connection]:  # pragma: no cover - the backend's
        """One write transaction under the backend's lock: committed if the block returns, else rolled back."""
        raise NotImplementedError

    def _reading(self) -> AbstractContextManager[Connection]:  # pragma: no cover - the backend's
        """The connection, for reads outside a transaction (errors translated as the backend does)."""
        raise NotImplementedError

    def _columns(self) -> str:
        return (
            "id, account, platform, rule, due_at, content_hash, part_count, state, attempts, next_attempt_at,"
            " last_error, claimed_at, claim_token, published_at, result, created_at, updated_at, unknown_since,"
            f" {self.dialect.parts_column} AS parts, late_until, lease_until"
        )

    def _row(self, values: Sequence[Any]) -> Row:
        d = self.dialect
        # A published post's parts are its result, in order (mark_published writes it from post_parts).
        result = None if values[14] is None else tuple(d.read_json(values[14]))
        parts: Mapping[Any, JSONObject] = d.read_json(values[18]) if values[18] else {}
        if result is not None:
            parts = dict(enumerate(result))
        return Row(
            id=values[0],
            account=values[1],
            platform=values[2],
            rule=values[3],
            due_at=d.read_time(values[4]),
            content_hash=values[5],
            part_count=values[6],
            state=State(values[7]),
            attempts=values[8],
            next_attempt_at=d.read_time(values[9]),
            last_error=values[10],
            claimed_at=d.read_optional_time(values[11]),
            claim_token=values[12],
            published_at=d.read_optional_time(values[13]),
            result=result,
            created_at=d.read_time(values[15]),
            updated_at=d.read_time(values[16]),
            parts={int(index): part for index, part in parts.items()},
            unknown_since=d.read_optional_time(values[17]),
            late_until=d.read_optional_time(values[19]),
            lease_until=d.read_optional_time(values[20]),
        )

    def _select(
        self, where: str, params: Sequence[Any] = (), tail: str = "", *, index: str | None = None
    ) -> list[Row]:
        """Rows of ``posts`` matching ``where``; ``index``: the index the query must use (SQLite; see m005)."""
        sql = f"SELECT {self._columns()} FROM posts{self.dialect.indexed(index)} WHERE {where} {tail}"
        with self._reading() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [self._row(values) for values in rows]

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._reading() as conn:
            found = conn.execute(sql, params).fetchone()
        return None if found is None else found[0]


class SqlPlan(SqlCore):
    """The plan (:meth:`sync_plan`), the files it was made from, and the nodes' heartbeats."""

    def _lock_plan(self, conn: Connection) -> None:
        """Make re-plans of several processes take turns (PostgreSQL's advisory lock; SQLite's write lock
        does it already)."""

    def _existing_query(
        self, plan: Mapping[str, PlanKey], start: datetime | None, end: datetime | None
    ) -> tuple[str, Sequence[Any]]:  # pragma: no cover - the backend's
        """What a re-plan must read: the posts due in [start, end) (it may cancel them) and the posts of the
        plan (by id), never the rest of the ledger; everything when a bound is open."""
        raise NotImplementedError

    def _write_plan(self, conn: Connection, diff: PlanDiff, stamp: Any) -> None:  # pragma: no cover
        """Apply ``diff`` (the backend's bulk statements)."""
        raise NotImplementedError

    def sync_plan(
        self,
        entries: Iterable[PlanEntry],
        now: datetime,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        source: PlanSource | None = None,
    ) -> SyncReport:
        """Make the planned posts match ``entries``, in one transaction (see :meth:`Ledger.sync_plan`).

        Posts that are claimed, finished (published, failed, expired, skipped) or planned with parts already
        published (a thread waiting for a retry) are never changed or cancelled; when the plan would change or
        drop one, its id is in :attr:`SyncReport.ignored`.
        """
        d = self.dialect
        stamp = d.time(now)
        plan = plan_keys(entries, d.time)
        with self._transaction() as conn:
            self._lock_plan(conn)
            if source is not None:
                self._record_source(conn, source, stamp)
            existing = (
                Existing(
                    id=values[0],
                    key=tuple(values[1:7]),
                    state=State(values[7]),
                    attempts=values[8],
                    next_attempt_at=values[9],
                    started=bool(values[10]),
                )
                for values in conn.execute(*self._existing_query(plan, start, end))
            )
            diff = diff_plan(existing, plan, d.optional_time(start), d.optional_time(end))
            self._write_plan(conn, diff, stamp)
        return diff.report()

    def _record_source(self, conn: Connection, source: PlanSource, stamp: Any) -> None:
        """Refuse (:class:`StalePlan`) files older than the recorded ones, else record ``source``."""
        check_source(self._read_source(conn), source)
        write_source(conn, self.dialect, source, stamp)

    def _read_source(self, conn: Connection) -> PlanSource | None:
        found = conn.execute(
            "SELECT content_hash, revision, revised_at, node, planned_at FROM plan_source WHERE id = 1"
        ).fetchone()
        if found is None:
            return None
        d = self.dialect
        return PlanSource(found[0], found[1], d.read_time(found[2]), found[3], d.read_optional_time(found[4]))

    def plan_source(self) -> PlanSource | None:
        with self._reading() as conn:
            return self._read_source(conn)

    def beat_node(self, node: str, now: datetime, *, leader: bool, holds: Sequence[str]) -> None:
        stamp = self.dialect.time(now)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO nodes (node, beat_at, leader, holds) VALUES (?, ?, ?, ?) ON CONFLICT (node)"
                " DO UPDATE SET beat_at = excluded.beat_at, leader = excluded.leader, holds = excluded.holds",
                (node, stamp, self.dialect.flag(leader), dump_json(list(holds))),
            )

    def nodes(self) -> list[NodeBeat]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT node, beat_at, leader, holds FROM nodes ORDER BY beat_at DESC, node"
            ).fetchall()
        return [
            NodeBeat(
                values[0], self.dialect.read_time(values[1]), bool(values[2]), tuple(json.loads(values[3]))
            )
            for values in rows
        ]


class SqlQueries(SqlCore):
    """What delivery, the daemon and the CLI read, and the global pause."""

    def get(self, post_id: str) -> Row:
        rows = self._select("id = ?", (post_id,))
        if not rows:
            raise UnknownPost(post_id)
        return rows[0]

    def due(self, now: datetime, limit: int | None = None) -> list[Row]:
        """Planned posts whose next attempt is at or before ``now``, by due time then id; none of a paused
        account, and none at all while everything is paused."""
        return self._select(
            f"state = 'planned' AND next_attempt_at <= ? AND {NOT_PAUSED}",
            (self.dialect.time(now), self.dialect.no_limit if limit is None else limit),
            "ORDER BY due_at, id LIMIT ?",
            index="posts_planned_next",
        )

    def next_due_at(self) -> datetime | None:
        """The earliest next attempt of a planned post that :meth:`due` could return (pauses considered)."""
        found = self._scalar(
            f"SELECT MIN(next_attempt_at) FROM posts{self.dialect.indexed('posts_planned_next')}"
            f" WHERE state = 'planned' AND {NOT_PAUSED}"
        )
        return self.dialect.read_optional_time(found)

    def claimed(self, older_than: datetime | None = None) -> list[Row]:
        """Claimed posts (claimed before ``older_than``, if given), by claim time: after a crash, their fate
        is unknown and must be reconciled with the platform."""
        if older_than is None:
            return self._select("state = 'claimed'", (), "ORDER BY claimed_at, id", index="posts_claimed")
        return self._select(
            "state = 'claimed' AND claimed_at < ?",
            (self.dialect.time(older_than),),
            "ORDER BY claimed_at, id",
            index="posts_claimed",
        )

    def unknown_due(self, now: datetime) -> list[Row]:
        """Claimed posts whose outcome is unknown (:meth:`mark_unknown`) and whose next check is at or before
        ``now``, by that time then id."""
        return self._select(
            "state = 'claimed' AND unknown_since IS NOT NULL AND next_attempt_at <= ?",
            (self.dialect.time(now),),
            "ORDER BY next_attempt_at, id",
            index="posts_claimed",
        )

    def next_check_at(self) -> datetime | None:
        """The earliest next check of a claimed post whose outcome is unknown (None: there is none)."""
        found = self._scalar(
            f"SELECT MIN(next_attempt_at) FROM posts{self.dialect.indexed('posts_claimed')}"
            " WHERE state = 'claimed' AND unknown_since IS NOT NULL"
        )
        return self.dialect.read_optional_time(found)

    def history(
        self,
        start: datetime,
        end: datetime,
        account: str | None = None,
        states: Iterable[State] | None = None,
    ) -> list[Row]:
        """Posts due in [``start``, ``end``), by due time then id; optionally of one account, some states."""
        where = "due_at >= ? AND due_at < ?"
        params: list[Any] = [self.dialect.time(start), self.dialect.time(end)]
        if account is not None:
            where += " AND account = ?"
            params.append(account)
        if states is not None:
            wanted = sorted({State(state).value for state in states})
            if not wanted:
                return []
            condition, values = self.dialect.in_list("state", wanted)
            where += f" AND {condition}"
            params.extend(values)
        index = "posts_due_at" if account is None else "posts_account_due_at"
        return self._select(where, params, "ORDER BY due_at, id", index=index)

    def remote_ids(self, account: str, *, except_post: str | None = None) -> frozenset[str]:
        """The platform ids (Mastodon status ids, Bluesky record keys) recorded for any part of any post of
        ``account``, leaving out ``except_post``'s own: a search for a post must never take one of these."""
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {self.dialect.json_field('pp.result', 'id')} FROM posts p"
                " JOIN post_parts pp ON pp.post_id = p.id"
                f" WHERE p.account = ? AND p.id {self.dialect.distinct} ?",
                (account, except_post),
            ).fetchall()
        return frozenset(str(value) for (value,) in rows if value not in (None, ""))

    def counts_by_state(self) -> dict[State, int]:
        """How many posts are in each state (every state present, 0 included)."""
        with self._reading() as conn:
            rows = conn.execute("SELECT state, COUNT(*) FROM posts GROUP BY state").fetchall()
        found = {str(state): int(count) for state, count in rows}
        return {state: found.get(state.value, 0) for state in State}

    # -- the global pause ----------------------------------------------------------------------------------

    def set_paused(self, paused: bool, reason: str | None, now: datetime) -> None:
        """Pause (or resume) all publishing; a pause needs a reason."""
        stamp = self.dialect.time(now)
        if paused:
            reason = check_reason(reason or "")
        with self._transaction() as conn:
            conn.execute(
                "UPDATE global_pause SET paused = ?, reason = ?, changed_at = ? WHERE id = 1",
                (self.dialect.flag(paused), reason if paused else None, stamp),
            )

    def is_paused(self) -> bool:
        return bool(self._scalar("SELECT paused FROM global_pause WHERE id = 1"))

    def pause_reason(self) -> str | None:
        """Why everything is paused, None when it is not."""
        with self._reading() as conn:
            found = conn.execute("SELECT paused, reason FROM global_pause WHERE id = 1").fetchone()
        return str(found[1]) if found and found[0] else None
