"""What the SQL ledger's two databases truly write differently: a :class:`Dialect` per backend.

The shared operations (:mod:`.sql` and its mixins) write their SQL once, with ``?`` placeholders and the
dialect's fragments where the databases differ, and pass every value through the dialect's adapters:

* placeholders: ``?`` (SQLite) / ``%s`` (psycopg), rewritten once per statement text (:meth:`Dialect.sql`);
* times: UTC ISO 8601 text of fixed width (SQLite, see :func:`.types.to_db_time`) / ``timestamptz``;
* JSON: canonical text (SQLite) / ``jsonb``; booleans: 0 and 1 / ``boolean``;
* a list of values: ``IN (?, ?, ...)`` / ``= ANY(?)``; a change of many rows: ``executemany`` / ``ANY``;
* index hints: SQLite's ``INDEXED BY`` (the plans ``tests/unit/test_ledger_plans.py`` checks) / none;
* row locks: none (SQLite's ``BEGIN IMMEDIATE`` holds the write lock) / ``FOR UPDATE``.

What differs in whole statements (a re-plan's bulk writes, the report's queries, the migrations) stays in
the backend's module. No database driver is imported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

from amplifier.delivery.ledger.types import dump_json, from_db_time, to_db_time


class Cursor(Protocol):
    """What the shared operations read of a statement's result (sqlite3's and psycopg's cursors)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The connection the shared operations write to (sqlite3's, or :class:`PgConnection`)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any: ...


_NAMED = re.compile(r"(?<![:\w]):(\w+)")


class Dialect:
    """SQLite's dialect; :class:`PostgresDialect` overrides what PostgreSQL writes differently."""

    name: ClassVar[str] = "sqlite"
    for_update: ClassVar[str] = ""  # appended to a SELECT that must lock its rows
    no_limit: ClassVar[Any] = -1  # LIMIT without a limit
    distinct: ClassVar[str] = "IS NOT"  # null-safe "differs from"
    max_time: ClassVar[Any] = "9999"  # later than every stored time
    parts_column: ClassVar[str] = (
        "CASE WHEN result IS NULL THEN"
        " (SELECT json_group_object(part_index, json(result)) FROM post_parts WHERE post_id = posts.id) END"
    )

    def sql(self, text: str) -> str:
        """``text`` (``?`` and ``:name`` placeholders) as this database's driver takes it."""
        return text

    def time(self, value: datetime) -> Any:
        """An aware time as stored (a naive one is a ``ValueError``)."""
        return to_db_time(value)

    def optional_time(self, value: datetime | None) -> Any:
        return None if value is None else self.time(value)

    def read_time(self, value: Any) -> datetime:
        return from_db_time(value)

    def read_optional_time(self, value: Any) -> datetime | None:
        return None if value is None else self.read_time(value)

    def json(self, value: Any) -> Any:
        """A JSON value as stored."""
        return dump_json(value)

    def read_json(self, value: Any) -> Any:
        return json.loads(value)

    def flag(self, value: bool) -> Any:
        return int(value)

    def is_false(self, column: str) -> str:
        return f"{column} = 0"

    def count_true(self, column: str) -> str:
        return f"SUM({column})"

    def json_field(self, column: str, key: str) -> str:
        """The text of ``column``'s top-level ``key``."""
        return f"json_extract({column}, '$.{key}')"

    def indexed(self, index: str | None) -> str:
        """The hint that makes a query over ``posts`` use ``index`` (None: the planner's choice)."""
        return f" INDEXED BY {index}" if index else ""

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values`` (not empty): the condition and its parameters."""
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    def update_ids(self, conn: Connection, sql: str, params: Sequence[Any], ids: Sequence[str]) -> None:
        """Run ``sql`` (shared SQL with a condition ``id = ?`` last among its parameters) for every id of
        ``ids``, each with ``params`` then the id: SQLite's ``executemany``."""
        conn.executemany(sql, [(*params, post_id) for post_id in ids])

    def int_or_none(self, value: Any) -> int | None:
        return None if value is None else int(value)


class PostgresDialect(Dialect):
    """PostgreSQL's: ``timestamptz``, ``jsonb``, ``boolean``, ``= ANY``, row locks, no index hints."""

    name: ClassVar[str] = "postgresql"
    for_update: ClassVar[str] = " FOR UPDATE"
    no_limit: ClassVar[Any] = None
    distinct: ClassVar[str] = "IS DISTINCT FROM"
    max_time: ClassVar[Any] = "infinity"
    parts_column: ClassVar[str] = (
        "(SELECT jsonb_object_agg(part_index, result) FROM post_parts WHERE post_id = posts.id)"
    )

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    def sql(self, text: str) -> str:
        found = self._texts.get(text)
        if found is None:
            found = _NAMED.sub(r"%(\1)s", text.replace("%", "%%").replace("?", "%s"))
            self._texts[text] = found
        return found

    def time(self, value: datetime) -> Any:
        to_db_time(value)  # refuses a naive time, as SQLite's does
        return value

    def read_time(self, value: Any) -> datetime:
        found: datetime = value
        return found

    def json(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(json.loads(dump_json(value)))

    def read_json(self, value: Any) -> Any:
        return value

    def flag(self, value: bool) -> Any:
        return value

    def is_false(self, column: str) -> str:
        return f"NOT {column}"

    def count_true(self, column: str) -> str:
        return f"COUNT(*) FILTER (WHERE {column})"

    def json_field(self, column: str, key: str) -> str:
        return f"{column} ->> '{key}'"

    def indexed(self, index: str | None) -> str:
        return ""

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def update_ids(self, conn: Connection, sql: str, params: Sequence[Any], ids: Sequence[str]) -> None:
        conn.execute(sql.replace("id = ?", "id = ANY(?)", 1), (*params, list(ids)))


class PgConnection:
    """A psycopg connection that takes the shared SQL (``?`` placeholders) and has ``executemany``."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self.raw = conn
        self._dialect = dialect

    def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = (), /) -> Any:
        return self.raw.execute(self._dialect.sql(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any:
        with self.raw.cursor() as cursor:
            cursor.executemany(self._dialect.sql(sql), list(parameters))
            return cursor


SQLITE = Dialect()
