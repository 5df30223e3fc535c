"""Reconciliation: what happened to a post whose outcome is unknown (claimed, then the process died).

A ``claimed`` row means: we may have sent the request, and never recorded the answer. Guessing either way is
wrong (a second copy, or a silent loss), so we ask the platform with the publisher's ``lookup(post)``:

* every part found -> the parts are recorded and the post is marked published;
* some parts found (a thread cut short) -> those parts are recorded and the post goes back to planned: the
  next publish resumes after them;
* nothing found -> back to planned, to be sent again, **when a second send cannot make a second copy**:

  - Bluesky: ``lookup`` reads the record at the post's deterministic key (``getRecord``), so "not found"
    is an answer, and a re-send writes the same key anyway.
  - Mastodon: ``lookup`` cannot search (it returns nothing), but each part is sent with an
    ``Idempotency-Key`` that the server remembers for one hour: a re-send within that hour returns the
    status created by the lost attempt. Older claims (the process was down for more than
    :data:`MASTODON_IDEMPOTENCY_SAFE` since the claim) are marked **failed** with a reason that says to look
    at the account, rather than risk a duplicate.

A lookup that fails (server down) leaves the row claimed; the daemon tries again before it sends anything
for that account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from amplifier.errors import AmplifierError
from amplifier.ledger import Ledger, LedgerError, Row
from amplifier.post import PlannedPost
from amplifier.publish.base import PartResult, Publisher

# Mastodon keeps an Idempotency-Key for 3600 s (post_status_service.rb); leave a margin for clock skew.
MASTODON_IDEMPOTENCY_SAFE = timedelta(minutes=50)
# Platforms whose lookup() answers "not there" with authority.
AUTHORITATIVE_LOOKUP = frozenset({"bluesky", "dry-run"})


@dataclass(frozen=True)
class Reconciled:
    """The fate of one claimed row: ``published``, ``resumed``, ``released``, ``failed`` or ``unknown``."""

    post_id: str
    account: str
    outcome: str
    detail: str = ""
    url: str | None = None


def part_results(parts: Mapping[int, Mapping[str, Any]]) -> dict[int, PartResult]:
    """The ledger's recorded parts (JSON) as :class:`PartResult` (``existed``: they are out already)."""
    results: dict[int, PartResult] = {}
    for index, data in parts.items():
        results[int(index)] = PartResult(
            index=int(index),
            id=str(data.get("id", "")),
            url=data.get("url"),
            uri=data.get("uri"),
            cid=data.get("cid"),
            existed=bool(data.get("existed", True)),
        )
    return results


def reconcile_row(
    ledger: Ledger,
    row: Row,
    post: PlannedPost | None,
    publisher: Publisher | None,
    now: datetime,
) -> Reconciled:
    """Resolve one claimed row (see the module docstring); raises nothing for a platform failure."""
    if post is None or publisher is None:
        reason = (
            "outcome unknown after an interruption, and the post is no longer in the campaign: "
            "check the account for it"
        )
        ledger.mark_failed(row.id, reason, now, token=row.claim_token)
        return Reconciled(row.id, row.account, "failed", reason)
    try:
        found = publisher.lookup(post)
    except AmplifierError as exc:
        return Reconciled(row.id, row.account, "unknown", f"lookup failed: {exc}")
    recorded = part_results(row.parts)
    found = {index: part for index, part in found.items() if 0 <= index < row.part_count}
    for index, part in sorted(found.items()):
        if index not in recorded:
            try:
                ledger.record_part(row.id, index, part.to_json(), now, token=row.claim_token)
            except LedgerError as exc:
                return Reconciled(row.id, row.account, "unknown", f"cannot record part {index}: {exc}")
            recorded[index] = part
    if len(recorded) == row.part_count:
        ledger.mark_published(row.id, None, now, token=row.claim_token)
        return Reconciled(row.id, row.account, "published", "found on the server", recorded[0].url)
    authoritative = row.platform in AUTHORITATIVE_LOOKUP or publisher.platform in AUTHORITATIVE_LOOKUP
    claimed_at = row.claimed_at or row.updated_at
    if not authoritative and now - claimed_at > MASTODON_IDEMPOTENCY_SAFE:
        reason = (
            f"outcome unknown: interrupted while publishing at {claimed_at:%Y-%m-%d %H:%M} UTC, too long ago "
            "to re-send safely (the Idempotency-Key has expired); check the account and post it by hand if "
            "it is missing"
        )
        ledger.mark_failed(row.id, reason, now, token=row.claim_token)
        return Reconciled(row.id, row.account, "failed", reason)
    ledger.release(row.id, now, token=row.claim_token)
    if recorded:
        return Reconciled(
            row.id, row.account, "resumed", f"{len(recorded)} of {row.part_count} part(s) found"
        )
    return Reconciled(row.id, row.account, "released", "not found on the server: will be sent again")
