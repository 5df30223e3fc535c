"""The delivery ledger: what makes publishing exactly-once, behind one small typed interface.

* :mod:`.base`: the interface: the :class:`Ledger` protocol (the operations delivery, the daemon and the CLI
  use), the post's :class:`State` and its legal transitions, :class:`Row`, :class:`PlanEntry`,
  :class:`SyncReport`, the errors, and the time helpers. No database driver.
* :mod:`.sqlite`: :class:`SqliteLedger`, the implementation in one SQLite file in the state folder, with its
  schema in :mod:`.migrations`; its aggregate queries and an operator's actions in :mod:`.sqlite_ops`.
* :mod:`.postgres`: :class:`PostgresLedger`, the same in PostgreSQL (:mod:`.pg_migrations`, :mod:`.postgres_ops`).

Callers outside this package open a ledger with :func:`open_ledger` (and, for a dry run,
:func:`open_ledger_copy` and :func:`outside_pause_reason`) and use only :class:`Ledger`: nothing outside this
package knows which database holds the ledger. A new backend (PostgreSQL, say) is one more module here that
implements :class:`Ledger`, one more branch in these three functions, and one more factory in the contract
tests' fixture (``tests/contract/test_ledger_contract.py``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from amplifier.delivery.ledger.base import (
    CANCELLED_REASON,
    TRANSITIONS,
    AccountPause,
    AccountSummary,
    ClaimMismatch,
    IllegalTransition,
    JSONObject,
    Ledger,
    LedgerBusy,
    LedgerError,
    OperatorAction,
    PartConflict,
    PlanEntry,
    PostBusy,
    Row,
    State,
    SyncReport,
    UnknownPost,
    content_hash,
    from_db_time,
    to_db_time,
)
from amplifier.delivery.ledger.sqlite import LEDGER_NAME, SqliteLedger, copy_ledger, read_pause_reason

__all__ = [
    "CANCELLED_REASON",
    "TRANSITIONS",
    "AccountPause",
    "AccountSummary",
    "ClaimMismatch",
    "IllegalTransition",
    "JSONObject",
    "Ledger",
    "LedgerBusy",
    "LedgerError",
    "OperatorAction",
    "PartConflict",
    "PlanEntry",
    "PostBusy",
    "Row",
    "State",
    "SyncReport",
    "UnknownPost",
    "content_hash",
    "from_db_time",
    "ledger_exists",
    "open_ledger",
    "open_ledger_copy",
    "outside_pause_reason",
    "to_db_time",
]


def ledger_exists(state_dir: Path) -> bool:
    """Whether the state folder ``state_dir`` has a ledger (the daemon, ``send`` or an operator wrote one):
    checked without creating anything."""
    return (state_dir / LEDGER_NAME).exists()


def open_ledger(state_dir: Path, now: datetime) -> Ledger:
    """The ledger of the state folder ``state_dir``, opened (created and migrated if needed) at ``now``."""
    return SqliteLedger.open(state_dir / LEDGER_NAME, now)


def open_ledger_copy(state_dir: Path, scratch: Path, now: datetime) -> Ledger:
    """A private copy, in the folder ``scratch``, of the ledger of ``state_dir`` (empty if it has none yet):
    what a dry run works on, so that it never changes the real one."""
    copy_ledger(state_dir / LEDGER_NAME, scratch / LEDGER_NAME)
    return SqliteLedger.open(scratch / LEDGER_NAME, now)


def outside_pause_reason(state_dir: Path) -> str | None:
    """Why the ledger of ``state_dir`` has all posting paused, read without opening it for writing and
    without creating it (None: not paused, or no usable ledger): the switch a dry run obeys."""
    return read_pause_reason(state_dir / LEDGER_NAME)
