"""Moving a running campaign's ledger from the state folder's SQLite file to a shared PostgreSQL database, with
every post still published exactly once across the move.

The steps (:func:`move_ledger`):

1. The SQLite ledger's global pause is switched on ("moving to ..."), so no daemon of this machine claims a post
   from it any more; a dry run and ``status`` still read it.
2. If a live process still holds a claim (a post on its way out), the move stops, the pause stays, and the
   operator is told to stop the daemon or wait: the outcome of that post must be recorded first. A claim whose
   holder died is copied as it is: the new ledger's daemon reconciles it as after any crash.
3. The target must hold no posts. Everything the ledger holds (every post with its states, attempts, claims,
   leases, published parts, ``retry --late`` windows and times; the paused accounts; the operators' actions;
   the gate changes; the edits of published posts; the engagement readings; the plan's source: see
   :func:`~amplifier.delivery.ledger.copy_contents`) goes over in one transaction, then the global pause as it
   was before step 1.
   The state folder's documents the nodes share (Bluesky sessions, the login guard and the fingerprints' key,
   limits, credential pause records) are copied into the database's state store
   (:func:`amplifier.delivery.shared_state.copy_state`), so no node logs in again and a credential pause
   recorded before the move is still recognised.
4. The SQLite ledger stays paused with a reason that says where the campaign moved, so a daemon started without
   ``AMPLIFIER_LEDGER`` posts nothing twice.

A failure at any step leaves the target unchanged (one transaction) and the source paused (safe: nothing posts
twice; the reason says how to go back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from amplifier.delivery.ledger import (
    LedgerError,
    State,
    copy_contents,
    describe_url,
    open_ledger,
    open_local_ledger,
)
from amplifier.delivery.reconcile import claim_holder_alive
from amplifier.delivery.shared_state import LedgerState, copy_state
from amplifier.errors import StateError
from amplifier.publish.state import StateDir


@dataclass(frozen=True)
class MoveReport:
    target: str  # host:port/database, never the password
    posts: int
    by_state: dict[str, int]
    paused_accounts: tuple[str, ...]
    paused: bool
    state_documents: int = 0  # the state folder's shared documents copied into the database


def move_ledger(state_dir: Path, url: str, now: datetime) -> MoveReport:
    """Move the SQLite ledger of ``state_dir`` into the PostgreSQL ledger at ``url`` (see the module)."""
    target_name = describe_url(url)
    source = open_local_ledger(state_dir, now)
    with source:
        was_paused, old_reason = source.is_paused(), source.pause_reason()
        moving = f"moving the ledger to {target_name}"
        if not was_paused or old_reason != moving:
            source.set_paused(True, moving, now)
        busy = [row.id for row in source.claimed() if claim_holder_alive(row, now)]
        if busy:
            raise LedgerError(
                f"{len(busy)} post(s) are being published right now ({', '.join(busy[:3])}): stop the daemon "
                "(or wait a minute) and run the move again; posting stays paused meanwhile"
            )
        with open_ledger(state_dir, now, url=url) as target:
            if sum(target.counts_by_state().values()):
                raise LedgerError(
                    f"{target_name} holds posts already: a ledger moves only into an empty database "
                    "(posting stays paused here; resume it with 'amplifier resume' to go on with this ledger)"
                )
            count = copy_contents(source, target, now)
            try:
                documents = copy_state(
                    StateDir(state_dir), LedgerState(target, "ledger-migrate", lambda: now)
                )
            except (StateError, LedgerError):
                documents = 0  # the nodes log in again and read the limits afresh: no post depends on it
            paused_accounts = source.paused_accounts()
            keep_paused = was_paused and old_reason != moving
            if keep_paused:
                target.set_paused(True, old_reason, now)
            counts = target.counts_by_state()
        source.set_paused(
            True,
            f"this ledger moved to {target_name} on {now:%Y-%m-%d %H:%M} UTC: run every node with "
            "AMPLIFIER_LEDGER set; do not resume here (posts would go out twice)",
            now,
        )
    return MoveReport(
        target=target_name,
        posts=count,
        by_state={state.value: counts[state] for state in State if counts[state]},
        paused_accounts=tuple(sorted(paused_accounts)),
        paused=keep_paused,
        state_documents=documents,
    )


def target_url(variable: str) -> str:
    """The PostgreSQL URL to move to, from ``variable`` (``--to-env``: an environment variable or a file of that
    name in the secrets folder; ``AMPLIFIER_LEDGER`` as every command reads it). A usage error when it is not
    set or is not a PostgreSQL URL; the URL (a secret) is never in a message."""
    from amplifier.delivery.ledger import LEDGER_ENV, ledger_url
    from amplifier.errors import UsageError
    from amplifier.publish.secrets import SecretSources

    if variable == LEDGER_ENV:
        url = ledger_url()
    else:
        url = SecretSources.for_campaign(None).get(variable).get_secret_value().strip()
    if not url:
        raise UsageError(
            f"--to-env: {variable} is not set: export {variable}=postgresql://user@host/database"
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"--to-env: {variable} must hold a PostgreSQL URL (postgresql://user@host/database)")
    return url
