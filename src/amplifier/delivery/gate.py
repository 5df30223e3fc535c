"""Changing who may reply to and quote a published post (``amplifier gate``), for when a pile-on starts.

One function, :func:`change_gates`: it reads the post from the ledger (it must be published, its account not
paused), asks the account's publisher to change the controls and records the change in the ledger (who, when,
what, how it went) whether it worked or not. The publisher's errors are the delivery path's classified
:class:`~amplifier.publish.base.PublishError` classes; a 429 is reported with the server's reset time and nothing
is retried before it.

* Bluesky: the threadgate on the post's root (``replies``; ``everyone`` deletes it) and a postgate on each part
  (``quotes``: followers or nobody turn quoting off, everyone deletes the postgate).
* Mastodon: ``quote_approval_policy`` of each part (``PUT /api/v1/statuses/:id/interaction_policy``, Mastodon
  4.5+). Mastodon has no control over who may reply: a ``replies`` change is reported as not possible there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from amplifier.delivery.ledger import GateChange, Ledger, State
from amplifier.errors import AmplifierError, ExitCode
from amplifier.plan.gates import quotes_off
from amplifier.publish.base import PublishError, RateLimitedError

MASTODON_NO_REPLIES = (
    "Mastodon has no control over who may reply to a post: replies on Mastodon stay as they are (you can still "
    "mute or block accounts, or delete the post)"
)


class GateRefused(AmplifierError):
    """The post cannot have its controls changed (not published, account paused, nothing to change)."""

    exit_code = ExitCode.PUBLISH


@dataclass(frozen=True)
class GateRequest:
    """What to change: ``replies`` (rules, ``()`` = nobody; ``None`` = unchanged, or everyone with
    ``everyone_replies``) and ``quotes`` (public / followers / nobody; ``None`` = unchanged)."""

    replies: tuple[str, ...] | None = None
    everyone_replies: bool = False
    quotes: str | None = None

    def replies_text(self) -> str | None:
        if self.everyone_replies:
            return "everyone"
        if self.replies is None:
            return None
        return ", ".join(self.replies) or "nobody"


@dataclass(frozen=True)
class GateOutcome:
    post_id: str
    account: str
    platform: str
    done: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.post_id,
            "account": self.account,
            "platform": self.platform,
            "done": list(self.done),
            "notes": list(self.notes),
        }


@runtime_checkable
class SetsGates(Protocol):
    def set_gates(self, rkeys: Sequence[str], **change: Any) -> list[str]: ...


@runtime_checkable
class SetsQuotePolicy(Protocol):
    def set_quote_policy(self, status_ids: Sequence[str], policy: str) -> list[str]: ...


def created_at(now: datetime) -> str:
    instant = now.astimezone(UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def change_gates(
    ledger: Ledger, publisher: object, post_id: str, request: GateRequest, *, by: str, now: datetime
) -> GateOutcome:
    """Change the controls of published post ``post_id`` through ``publisher`` (its account's) and record it."""
    row = ledger.get(post_id)
    if row.state is not State.PUBLISHED or not row.result:
        raise GateRefused(
            f"{post_id}: it is {row.state.value}, not published; only a published post has controls"
        )
    paused = ledger.paused_accounts().get(row.account)
    if paused is not None:
        raise GateRefused(f"{post_id}: the account {row.account} is paused ({paused}); resume it first")
    ids = [str(part.get("id") or "") for part in row.result]
    if not all(ids):
        raise GateRefused(f"{post_id}: the ledger has no platform id for every part (a dry run?)")
    notes: list[str] = []
    done: list[str] = []
    wanted_replies = request.replies is not None or request.everyone_replies

    def record(outcome: str, detail: str) -> None:
        ledger.record_gate_change(
            GateChange(post_id, row.account, by, now, request.replies_text(), request.quotes, outcome, detail)
        )

    try:
        if row.platform == "bluesky" and isinstance(publisher, SetsGates):
            done += publisher.set_gates(
                ids,
                replies=request.replies,
                everyone_replies=request.everyone_replies,
                quotes_off=None if request.quotes is None else quotes_off(request.quotes),
                created_at=created_at(now),
            )
        elif row.platform == "mastodon" and isinstance(publisher, SetsQuotePolicy):
            if wanted_replies:
                notes.append(MASTODON_NO_REPLIES)
            if request.quotes is not None:
                done += publisher.set_quote_policy(ids, request.quotes)
        else:
            raise GateRefused(f"{post_id}: {row.platform} posts have no reply or quote controls here")
    except PublishError as exc:
        reason = str(exc)
        if isinstance(exc, RateLimitedError) and exc.reset_at is not None:
            reason += f"; the server allows no more before {exc.reset_at:%Y-%m-%d %H:%M:%S} UTC"
        record("partial" if done else "failed", "; ".join([*done, reason]))
        raise
    if not done:
        record("failed", "; ".join(notes) or "nothing to change")
        raise GateRefused(
            f"{post_id}: nothing was changed: {'; '.join(notes) or 'give --replies or --quotes'}"
        )
    record("done", "; ".join([*done, *notes]))
    return GateOutcome(post_id, row.account, row.platform, tuple(done), tuple(notes))
