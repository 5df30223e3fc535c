"""The delivery ledger: what makes publishing exactly-once, behind one small typed interface.

* :mod:`.base` (with :mod:`.protocols`): the interface, the :class:`Ledger` protocol made of small protocols by
  concept; :mod:`.types`: its vocabulary (the post's :class:`State` and its legal transitions, :class:`Row`,
  :class:`PlanEntry`, :class:`SyncReport`, the errors, the time helpers); :mod:`.plandiff`: a re-plan's
  arithmetic. No database driver.
* :mod:`.sql_ledger`: :class:`~.sql_ledger.SqlLedger`, every operation written once in SQL (a mixin per concept:
  :mod:`.sql`, :mod:`.sql_transitions`, :mod:`.sql_aggregates`, :mod:`.sql_ops`, :mod:`.sql_records`,
  :mod:`.sql_edits`, :mod:`.sql_engagement`), with a
  :class:`~.dialect.Dialect` per database for what truly differs (:mod:`.dialect`).
* :mod:`.sqlite`: :class:`SqliteLedger`, in one SQLite file in the state folder (the default: one machine), its
  schema in :mod:`.migrations`, its report queries in :mod:`.sqlite_report`.
* :mod:`.postgres`: :class:`PostgresLedger`, in a PostgreSQL database that several nodes share, its schema in
  :mod:`.pg_migrations`, its report queries in :mod:`.pg_report`; chosen by ``AMPLIFIER_LEDGER=postgresql://...``
  (:func:`ledger_url`). The migration runner of both is :mod:`.migrate`.

Callers outside this package open a ledger with :func:`open_ledger` (and, for a dry run,
:func:`open_ledger_copy` and :func:`outside_pause_reason`) and use only :class:`Ledger`: nothing outside this
package knows which database holds the ledger. A new backend is a :class:`~.dialect.Dialect` and one more module
here that subclasses :class:`~.sql_ledger.SqlLedger`, one more branch in these functions, and one more branch in
the contract tests' ``backend`` fixture (``tests/contract/conftest.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from amplifier.delivery.ledger.base import Ledger
from amplifier.delivery.ledger.operator_records import AccountPause, EditRecord, GateChange, OperatorAction
from amplifier.delivery.ledger.protocols import Contents
from amplifier.delivery.ledger.sqlite import LEDGER_NAME, SqliteLedger, copy_ledger, read_pause_reason
from amplifier.delivery.ledger.types import (
    CANCELLED_REASON,
    TRANSITIONS,
    AccountSummary,
    ClaimMismatch,
    IllegalTransition,
    JSONObject,
    LedgerBusy,
    LedgerError,
    LedgerUnreachable,
    NodeBeat,
    PartConflict,
    PlanEntry,
    PlanSource,
    PostBusy,
    Row,
    StalePlan,
    State,
    SyncReport,
    UnknownPost,
    content_hash,
    from_db_time,
    to_db_time,
)

__all__ = [
    "CANCELLED_REASON",
    "LEDGER_ENV",
    "LEDGER_NAME",
    "TRANSITIONS",
    "AccountPause",
    "AccountSummary",
    "ClaimMismatch",
    "Contents",
    "EditRecord",
    "GateChange",
    "IllegalTransition",
    "JSONObject",
    "Ledger",
    "LedgerBusy",
    "LedgerError",
    "LedgerUnreachable",
    "NodeBeat",
    "OperatorAction",
    "PartConflict",
    "PlanEntry",
    "PlanSource",
    "PostBusy",
    "Row",
    "StalePlan",
    "State",
    "SyncReport",
    "UnknownPost",
    "content_hash",
    "copy_contents",
    "describe_url",
    "from_db_time",
    "ledger_exists",
    "ledger_url",
    "open_ledger",
    "open_ledger_copy",
    "open_local_ledger",
    "outside_pause_reason",
    "to_db_time",
]


def ledger_exists(state_dir: Path) -> bool:
    """Whether there is a ledger (the daemon, ``send`` or an operator wrote one), checked without creating
    anything: the state folder's file, or a configured shared database (which the daemons create)."""
    return ledger_url() is not None or (state_dir / LEDGER_NAME).exists()


LEDGER_ENV = "AMPLIFIER_LEDGER"


def ledger_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The shared ledger's PostgreSQL URL, None for the SQLite ledger of the state folder.

    It is a secret (it may hold a password): ``$AMPLIFIER_LEDGER``, or a file ``AMPLIFIER_LEDGER`` in the
    secrets folder (``$AMPLIFIER_SECRETS_DIR``, default ``/run/secrets``); never the campaign files. Anything but a
    ``postgresql://`` URL is a :class:`LedgerError` that does not echo the value."""
    from amplifier.errors import CredentialsError
    from amplifier.publish.secrets import DEFAULT_SECRETS_DIR, SECRETS_DIR_ENV

    env = os.environ if environ is None else environ
    value = env.get(LEDGER_ENV, "").strip()
    if not value:
        folder = env.get(SECRETS_DIR_ENV, "").strip()
        secrets_dir = Path(folder) if folder else DEFAULT_SECRETS_DIR
        if _absent(secrets_dir / LEDGER_ENV):  # the one place left holds nothing: no lookup to import
            return None
        from amplifier.publish.secrets import SecretSources

        sources = SecretSources(secrets_dir=secrets_dir)
        try:
            value = sources.get(LEDGER_ENV).get_secret_value().strip()
        except CredentialsError:
            return None
    if not value.startswith(("postgresql://", "postgres://")):
        raise LedgerError(f"{LEDGER_ENV} must be a PostgreSQL URL (postgresql://user@host/database)")
    return value


def _absent(path: Path) -> bool:
    """Whether ``path`` surely does not exist (a folder that cannot be searched: not sure, so False)."""
    try:
        return not path.exists()
    except OSError:
        return False


def open_ledger(state_dir: Path, now: datetime, *, url: str | None = None) -> Ledger:
    """The ledger, opened (created and migrated if needed) at ``now``: the PostgreSQL ledger at ``url`` or
    :func:`ledger_url` when one is configured, else the SQLite ledger of the state folder ``state_dir``."""
    url = url or ledger_url()
    if url is not None:
        from amplifier.delivery.ledger.postgres import PostgresLedger

        return PostgresLedger.open(url, now)
    return SqliteLedger.open(state_dir / LEDGER_NAME, now)


def open_local_ledger(state_dir: Path, now: datetime) -> Ledger:
    """The SQLite ledger of the state folder ``state_dir``, whatever :func:`ledger_url` says (to move it)."""
    return SqliteLedger.open(state_dir / LEDGER_NAME, now)


def describe_url(url: str) -> str:
    """How a message names the PostgreSQL ledger at ``url``: host, port and database, never the password."""
    from amplifier.delivery.ledger.postgres import describe

    return describe(url)


def open_ledger_copy(state_dir: Path, scratch: Path, now: datetime) -> Ledger:
    """A private copy, in the folder ``scratch``, of the ledger (empty if there is none yet): what a dry run
    works on, so that it never changes the real one. A shared PostgreSQL ledger is copied into SQLite."""
    url = ledger_url()
    if url is None:
        copy_ledger(state_dir / LEDGER_NAME, scratch / LEDGER_NAME)
        return SqliteLedger.open(scratch / LEDGER_NAME, now)
    copy = SqliteLedger.open(scratch / LEDGER_NAME, now)
    with open_ledger(state_dir, now, url=url) as shared:
        copy_contents(shared, copy, now)
        copy.set_paused(shared.is_paused(), shared.pause_reason(), now)
    return copy


def copy_contents(source: Ledger, target: Ledger, now: datetime) -> int:
    """Copy everything ``source`` holds into ``target``, exactly once and in one transaction of ``target``:
    every post (states, attempts, claims with their leases, parts, unknown outcomes, ``retry --late``
    windows, times), the paused accounts (reason, time, who), the operators' actions, the gate changes, the
    edits of published posts, the engagement readings, the follow-up jobs and the plan's source. A post ``target`` has already: :class:`LedgerError`, nothing
    copied. The global pause is the caller's to decide; the nodes' heartbeats are not copied (each node beats
    into the ledger it uses). Returns how many posts (``now``: when the copy is made, for the record)."""
    to_db_time(now)
    return target.import_contents(
        Contents(
            rows=source.export_rows(),
            pauses=source.account_pauses(),
            actions=source.export_actions(),
            gate_changes=source.gate_changes(),
            edits=source.edits(),
            readings=source.export_engagement(),
            followups=source.export_followups(),
            source=source.plan_source(),
        )
    )


def outside_pause_reason(state_dir: Path) -> str | None:
    """Why the ledger has all posting paused, read without creating it (None: not paused, or no usable
    ledger): the switch a dry run obeys."""
    url = ledger_url()
    if url is None:
        return read_pause_reason(state_dir / LEDGER_NAME)
    try:
        with open_ledger(state_dir, datetime.now(UTC), url=url) as shared:
            return shared.pause_reason()
    except LedgerError:
        return None
