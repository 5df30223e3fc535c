"""The coordinator of nodes that share a PostgreSQL ledger (see :mod:`amplifier.delivery.coordination`).

Each node keeps ONE dedicated connection for its locks (not the ledger's: a lock must outlive transactions,
and die with the node). On it:

* the planning lock (:data:`LEADER_LOCK`): ``pg_try_advisory_lock``, a session lock: the node that holds it is
  the leader and writes the plan; when the leader dies (or its connection does), PostgreSQL releases it and the
  next node that asks becomes the leader;
* one lease per account (a row of ``account_leases``: holder, until when), taken with one conditional upsert
  (free, or its lease passed) for as long as the node publishes for the account, extended with its claims'
  leases, and deleted after. A lease rather than an advisory lock: a node that is paused (SIGSTOP, a long
  stall) keeps its connection, and so would keep an advisory lock for as long as it is paused; a lease passes.
  Before each post the node checks it still holds the account (:meth:`PostgresCoordinator.holds`): against
  the lease it last wrote (only its passing lets another node take the account, so no query is needed).
* a pass's accounts taken in one statement (:meth:`PostgresCoordinator.take`): at most the node's share of
  the due accounts, the free ones in random order, so a burst spreads over the nodes and no node spends a
  round trip per account it does not get.

When the connection breaks, the planning lock is gone: the node is no longer the leader, and connects again at
the next question.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta

import psycopg
from psycopg import conninfo

from amplifier.delivery.ledger.postgres import CONNECT_TIMEOUT

LEADER_LOCK = 0x616D706C616E  # "amplan": the planning lock


class PostgresCoordinator:
    """Advisory locks on a dedicated connection to the ledger's database (see the module docstring)."""

    shared = True

    def __init__(self, url: str, node: str, lease: timedelta) -> None:
        self._url = url
        self.node = node
        self.lease = lease
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._leader = False
        self._accounts: set[str] = set()
        self._taken: set[str] = set()  # taken for a pass (take), until release
        self._until: dict[str, datetime] = {}  # account -> the lease this node last wrote for it

    @property
    def is_leader(self) -> bool:
        return self._leader

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._leader = False
        self._conn = psycopg.connect(
            conninfo.make_conninfo(
                self._url, connect_timeout=CONNECT_TIMEOUT, application_name=f"amplifier-locks {self.node}"
            ),
            autocommit=True,
        )
        return self._conn

    def _ask(self, sql: str, *params: object) -> bool:
        """One question on the lock connection; a broken connection loses every lock and answers False."""
        try:
            found = self._connection().execute(sql, params).fetchone()
        except psycopg.Error:
            self._drop()
            return False
        return bool(found and found[0])

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()
        self._conn = None
        self._leader = False

    def may_plan(self) -> bool:
        with self._lock:
            if self._leader:
                # Still ours only if the connection that holds it is alive.
                self._leader = self._ask("SELECT true")
            if not self._leader:
                self._leader = self._ask("SELECT pg_try_advisory_lock(%s::bigint)", LEADER_LOCK)
            return self._leader

    def resign(self) -> None:
        with self._lock:
            if self._leader:
                self._ask("SELECT pg_advisory_unlock(%s::bigint)", LEADER_LOCK)
            self._leader = False

    @contextmanager
    def account(self, account: str, now: datetime) -> Iterator[bool]:
        with self._lock:
            if account in self._taken and self._until.get(account, now) > now:
                taken = True  # for the pass: released by release()
                held = False
            else:
                taken = False
                held = account not in self._accounts and self._ask(
                    "INSERT INTO account_leases AS l (account, holder, lease_until) VALUES (%s, %s, %s)"
                    " ON CONFLICT (account) DO UPDATE SET holder = excluded.holder,"
                    " lease_until = excluded.lease_until"
                    " WHERE l.holder = excluded.holder OR l.lease_until <= %s RETURNING true",
                    account,
                    self.node,
                    now + self.lease,
                    now,
                )
                if held:
                    self._accounts.add(account)
                    self._until[account] = now + self.lease
        try:
            yield taken or held
        finally:
            if held:
                with self._lock:
                    self._accounts.discard(account)
                    self._until.pop(account, None)
                    self._ask(
                        "DELETE FROM account_leases WHERE account = %s AND holder = %s RETURNING true",
                        account,
                        self.node,
                    )

    def take(self, accounts: Iterable[str], now: datetime, limit: int) -> set[str]:
        wanted = sorted(set(accounts) - self._accounts - self._taken)
        if not wanted or limit <= 0:
            return set()
        until = now + self.lease
        with self._lock:
            try:
                rows = (
                    self._connection()
                    .execute(
                        "WITH free AS (SELECT a FROM unnest(%s::text[]) AS a WHERE NOT EXISTS (SELECT 1 FROM"
                        " account_leases l WHERE l.account = a AND l.holder <> %s AND l.lease_until > %s)"
                        " ORDER BY random() LIMIT %s)"
                        " INSERT INTO account_leases AS l (account, holder, lease_until)"
                        " SELECT a, %s, %s FROM free ORDER BY a"
                        " ON CONFLICT (account) DO UPDATE SET holder = excluded.holder,"
                        " lease_until = excluded.lease_until"
                        " WHERE l.holder = excluded.holder OR l.lease_until <= %s RETURNING account",
                        (wanted, self.node, now, limit, self.node, until, now),
                    )
                    .fetchall()
                )
            except psycopg.Error:
                self._drop()
                return set()
            taken = {str(row[0]) for row in rows}
            self._taken |= taken
            for account in taken:
                self._until[account] = until
        return taken

    def release(self, accounts: Iterable[str]) -> None:
        with self._lock:
            mine = sorted(set(accounts) & self._taken)
            if not mine:
                return
            self._taken -= set(mine)
            for account in mine:
                self._until.pop(account, None)
            with suppress(psycopg.Error):
                self._connection().execute(
                    "DELETE FROM account_leases WHERE account = ANY(%s::text[]) AND holder = %s",
                    (mine, self.node),
                )

    def holds(self, account: str, now: datetime) -> bool:
        with self._lock:
            until = self._until.get(account)
        return until is not None and until > now

    def extend(self, now: datetime) -> None:
        with self._lock:
            try:
                rows = (
                    self._connection()
                    .execute(
                        "UPDATE account_leases SET lease_until = %s WHERE holder = %s AND lease_until < %s"
                        " RETURNING account",
                        (now + self.lease, self.node, now + self.lease),
                    )
                    .fetchall()
                )
            except psycopg.Error:
                self._drop()
                return
            for row in rows:
                if str(row[0]) in self._until:
                    self._until[str(row[0])] = now + self.lease

    def accounts(self) -> list[str]:
        with self._lock:
            return sorted(self._accounts | self._taken)

    def close(self) -> None:
        with self._lock:
            self._drop()
