"""Reconciliation: what happened to a post whose outcome is unknown.

A ``claimed`` row means: we may have sent the request, and never recorded the answer, either because the
process died, or because the attempt ended without an answer (a Mastodon status request that timed out:
:meth:`amplifier.delivery.ledger.Ledger.mark_unknown` keeps such a row claimed, with ``unknown_since``, the first
moment an attempt could have created the post). Guessing either way is wrong (a second copy, or a silent
loss), so we ask the platform:

* every part found -> the parts are recorded and the post is marked published;
* some parts found (a thread cut short) -> those parts are recorded and the post goes back to planned: the
  next publish resumes after them;
* nothing found -> back to planned, to be sent again, **because a second send cannot make a second copy**:

  - Bluesky: ``lookup`` reads the record at the post's deterministic key (``getRecord``), so "not found"
    is an answer, and a re-send writes the same key anyway.
  - Mastodon, unknown for less than :data:`MASTODON_IDEMPOTENCY_SAFE` (measured from ``unknown_since``, or
    from the claim of a row a crash left behind, NEVER from a later re-claim: the server keeps the key an
    hour from when it first created the status, and a repeat does not extend that) and about to be sent
    again at once (it is due, or ``amplifier send`` is sending it now): nothing is asked. Each part is sent
    with an ``Idempotency-Key``, so the re-send returns the status the lost attempt created, if any: the
    cheapest answer. The row is released with ``unknown_since`` kept, and whoever sends it checks again,
    at the moment of sending, that the key's window is still open (:func:`resend_is_safe`).
  - Mastodon otherwise (unknown for longer, or a post that would only be sent again later, when the key may
    have expired): the publisher looks for the post among the account's own statuses since the first
    unknown moment (:class:`SearchesStatuses`,
    :meth:`amplifier.publish.mastodon.MastodonPublisher.find_published`, which reaches back a margin more),
    never taking a status the ledger already gives to another post (:meth:`Ledger.remote_ids`: two posts
    with the same text must not both claim the first one's status);
    "not found" there is an answer too, and the row is released with ``unknown_since`` cleared, to be sent
    once. When the search cannot reach back that far (too much posted since), the post is marked **failed**
    with a reason that says to check the account, rather than risk a duplicate. A row whose next check
    (``next_attempt_at``) is still ahead is not searched yet: the pause lets a slow server finish a request
    the client gave up on.

A lookup that fails (server down, a dropped connection, any exception) leaves the row claimed and unknown,
with its next check at ``check_at`` (default: :func:`recheck_at`, a wait that doubles with the time the outcome
has been unknown), or at the reset a 429 gave if that is later; the daemon looks again then, before it sends
anything else for that account. While the account is blocked by a server-given reset (``blocked_until``), no
lookup goes out at all.

A row claimed by a process that is still running (``amplifier send`` while the daemon runs, or the other way
round) is not reconciled: :func:`claim_holder_alive` tells, from the claim token ``host:pid:nonce``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from amplifier.delivery.ledger import Ledger, LedgerError, Row
from amplifier.errors import AmplifierError
from amplifier.plan.post import PlannedPost
from amplifier.publish.base import PartResult, PermanentError, Publisher, RateLimitedError

# Mastodon keeps an Idempotency-Key for 3600 s (post_status_service.rb); leave a margin for clock skew.
MASTODON_IDEMPOTENCY_SAFE = timedelta(minutes=50)
# The shortest and longest wait before a failed lookup is tried again (the daemon passes its own backoff).
RECHECK_MIN = timedelta(seconds=30)
RECHECK_MAX = timedelta(minutes=30)
# Platforms whose lookup() answers "not there" with authority.
AUTHORITATIVE_LOOKUP = frozenset({"bluesky", "dry-run"})
# A claim this old is abandoned even if a process with the claimant's pid runs (the pid was reused): no
# publish takes that long (every request has a timeout).
CLAIM_ABANDONED_AFTER = timedelta(minutes=30)


@runtime_checkable
class SearchesStatuses(Protocol):
    """A publisher that can look for a post among the account's posts made since a given instant."""

    def find_published(
        self,
        post: PlannedPost,
        *,
        since: datetime,
        known: Mapping[int, PartResult] | None = None,
        taken: Collection[str] = frozenset(),
    ) -> dict[int, PartResult]: ...


@dataclass(frozen=True)
class Reconciled:
    """The fate of one claimed row: ``published``, ``resumed``, ``released``, ``failed`` or ``unknown``."""

    post_id: str
    account: str
    outcome: str
    detail: str = ""
    url: str | None = None
    blocked_until: datetime | None = None  # a lookup was rate limited: nothing for the account before then


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


# --------------------------------------------------------------------------------------------- claimants


def claim_token(kind: str) -> str:
    """A claim token for this process: ``host:pid:kind-nonce`` (see :func:`claim_holder_alive`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{kind}-{os.urandom(4).hex()}"


def claim_holder(token: str | None) -> tuple[str, int] | None:
    """``(host, pid)`` of a claim token ``host:pid:...``; None when the token has another form."""
    if not token:
        return None
    fields = token.split(":")
    if len(fields) < 3 or not fields[1].isdigit():
        return None
    return fields[0], int(fields[1])


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a zombie does not count)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rsplit(")", 1)[-1].split()
    return not state or state[0] not in ("Z", "X")


def claim_holder_alive(row: Row, now: datetime, *, own_token: str | None = None) -> bool:
    """Whether another process that is still running holds ``row``'s claim (so its outcome is not lost but
    on its way).

    A claim with a lease (``lease_until``, which its holder extends while it works) is alive until the lease
    passes, on any machine, unless its holder is a process of this machine that is gone. A claim without a
    lease (an older version, ``amplifier send``) older than :data:`CLAIM_ABANDONED_AFTER`, of another machine
    (which we cannot ask) or with a token of another form counts as abandoned. Whoever then reconciles it
    takes the claim over first (:meth:`Ledger.take_over`): the old holder can record nothing after that."""
    if row.claim_token is None or row.claim_token == own_token:
        return False
    holder = claim_holder(row.claim_token)
    local = holder is not None and holder[0] == socket.gethostname()
    if row.lease_until is not None:
        if local and holder is not None and holder[1] != os.getpid() and not process_alive(holder[1]):
            return False
        return now < row.lease_until
    claimed_at = row.claimed_at or row.updated_at
    if now - claimed_at > CLAIM_ABANDONED_AFTER:
        return False
    if holder is None or not local:
        return False
    return holder[1] != os.getpid() and process_alive(holder[1])


# --------------------------------------------------------------------------------------------- reconciling


def unknown_since(row: Row) -> datetime:
    """The first moment the row's post may have been created: ``unknown_since`` when an attempt ended
    unknown, else (a crash left it claimed) its claim time."""
    return row.unknown_since or row.claimed_at or row.updated_at


def resend_is_safe(since: datetime, now: datetime) -> bool:
    """Whether a re-send at ``now`` under the same Idempotency-Key cannot make a second status, for a post
    whose outcome has been unknown since ``since`` (the key lives an hour from the first creation)."""
    return now - since < MASTODON_IDEMPOTENCY_SAFE


def needs_search(row: Row) -> bool:
    """Whether ``row`` (a planned or claimed post) may only be sent after a check on the platform: its
    outcome is unknown and its platform's key does not make every re-send safe (Mastodon)."""
    return row.unknown_since is not None and row.platform not in AUTHORITATIVE_LOOKUP


def recheck_at(
    since: datetime, now: datetime, *, shortest: timedelta = RECHECK_MIN, longest: timedelta = RECHECK_MAX
) -> datetime:
    """When to look again after a failed lookup of a post unknown since ``since``: after as long as it has
    been unknown (so the waits double), at least ``shortest`` and at most ``longest``."""
    return now + min(max(now - since, shortest), longest)


def reconcile_row(
    ledger: Ledger,
    row: Row,
    post: PlannedPost | None,
    publisher: Publisher | None,
    now: datetime,
    *,
    resend_now: bool | None = None,
    check_at: datetime | None = None,
    wait: bool = True,
    blocked_until: datetime | None = None,
) -> Reconciled:
    """Resolve one claimed row (see the module docstring); raises nothing for a platform failure.

    ``resend_now``: whether a post released now is sent again at once (so within the Idempotency-Key's
    hour); by default, whether it is due at ``now``. ``check_at``: when to look again if the lookup fails
    (default :func:`recheck_at`). ``wait``: a row marked unknown whose next check is still ahead is left
    alone (False: searched now, for a post about to be sent whose key window closed). ``blocked_until``: the
    account may send no request before then (a server-given reset): no lookup now, the next check then."""
    if post is None or publisher is None:
        reason = (
            "outcome unknown after an interruption, and the post is no longer in the campaign: "
            "check the account for it"
        )
        ledger.mark_failed(row.id, reason, now, token=row.claim_token)
        return Reconciled(row.id, row.account, "failed", reason)
    recorded = part_results(row.parts)
    claimed_at = unknown_since(row)
    authoritative = row.platform in AUTHORITATIVE_LOOKUP or publisher.platform in AUTHORITATIVE_LOOKUP
    if resend_now is None:
        resend_now = row.due_at <= now
    if not authoritative and resend_now and resend_is_safe(claimed_at, now):
        # unknown_since is kept (or set to the claim): whoever sends it checks the window again then.
        ledger.release(row.id, now, token=row.claim_token, unknown=True)
        return Reconciled(
            row.id,
            row.account,
            "resumed" if recorded else "released",
            f"outcome unknown since {claimed_at:%H:%M:%S} UTC: sent again under the same Idempotency-Key, "
            "which returns the status if the interrupted attempt created it",
        )
    if wait and not authoritative and row.unknown_since is not None and now < row.next_attempt_at:
        return Reconciled(
            row.id,
            row.account,
            "unknown",
            f"outcome unknown since {claimed_at:%H:%M:%S} UTC: the account is searched at "
            f"{row.next_attempt_at:%H:%M:%S} UTC",
        )
    if blocked_until is not None and blocked_until > now:
        return _look_later(
            ledger,
            row,
            now,
            max(check_at or recheck_at(claimed_at, now), blocked_until),
            blocked_until,
            f"outcome unknown since {claimed_at:%Y-%m-%d %H:%M} UTC; the server asked to wait",
            f"rate limited until {blocked_until:%H:%M:%S} UTC",
        )
    try:
        if authoritative:
            found = publisher.lookup(post)
        elif isinstance(publisher, SearchesStatuses):
            taken = ledger.remote_ids(row.account, except_post=row.id)
            found = publisher.find_published(post, since=claimed_at, known=recorded, taken=taken)
        else:
            reason = (
                f"outcome unknown: interrupted while publishing at {claimed_at:%Y-%m-%d %H:%M} UTC, too long "
                f"ago to re-send safely, and {publisher.platform} cannot be searched; check the account and "
                "post it by hand if it is missing"
            )
            ledger.mark_failed(row.id, reason, now, token=row.claim_token)
            return Reconciled(row.id, row.account, "failed", reason)
    except PermanentError as exc:
        reason = (
            f"outcome unknown: interrupted while publishing at {claimed_at:%Y-%m-%d %H:%M} UTC, and the "
            f"account's statuses cannot tell ({exc}); check the account and post it by hand if it is missing"
        )
        ledger.mark_failed(row.id, reason, now, token=row.claim_token)
        return Reconciled(row.id, row.account, "failed", reason)
    except Exception as exc:  # the server, the network, an exception nobody classified: ask again later
        text = str(exc) if isinstance(exc, AmplifierError) else f"{type(exc).__name__}: {exc}"
        again = check_at or recheck_at(claimed_at, now)
        reset = exc.reset_at if isinstance(exc, RateLimitedError) else None
        if reset is None or reset <= now:
            reset = None
        return _look_later(
            ledger,
            row,
            now,
            again if reset is None else max(again, reset),
            reset,
            f"outcome unknown since {claimed_at:%Y-%m-%d %H:%M} UTC; lookup failed: {text}",
            f"lookup failed: {text}",
        )
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
    ledger.release(row.id, now, token=row.claim_token, absent=True)
    if recorded:
        return Reconciled(
            row.id, row.account, "resumed", f"{len(recorded)} of {row.part_count} part(s) found"
        )
    return Reconciled(row.id, row.account, "released", "not found on the server: will be sent again")


def _look_later(
    ledger: Ledger, row: Row, now: datetime, again: datetime, blocked: datetime | None, reason: str, why: str
) -> Reconciled:
    """The lookup could not answer now: the row stays claimed and unknown, checked again at ``again`` (never
    before ``blocked``, a server-given reset, which the caller passes on to its rate limiter)."""
    ledger.mark_unknown(row.id, reason, now, check_at=again, token=row.claim_token, attempt=False)
    return Reconciled(
        row.id, row.account, "unknown", f"{why}; looking again at {again:%H:%M:%S} UTC", blocked_until=blocked
    )
