"""Sending chosen posts now (``amplifier send``), through the ledger and the one delivery path.

``send`` decides *which* posts go out; :class:`~amplifier.delivery.deliver.Delivery` carries each one through
claim -> publish -> outcome -> ledger exactly as for the daemon, so the daemon and ``send`` share the ledger,
its states and its exactly-once rules. What ``send`` adds: the post is planned into the ledger first (nothing
else in the plan changes), a post that is finished or held by another process is refused with the reason,
and a failed attempt keeps the post's own time (the daemon sends it then; a 429 moves it to the reset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amplifier.clock import Clock, utcnow
from amplifier.delivery.deliver import Delivery, Outcome, Retries
from amplifier.delivery.ledger import Ledger, LedgerError, PlanEntry, Row, State
from amplifier.delivery.reconcile import claim_holder, claim_holder_alive, claim_token, part_results
from amplifier.errors import AmplifierError, CredentialsError, ExitCode
from amplifier.plan.post import PlannedPost
from amplifier.publish import (
    AuthError,
    PartResult,
    PublishContext,
    Publisher,
    PublishError,
    PublishResult,
    RateLimitedError,
    TransientError,
    create_publisher,
)
from amplifier.publish.sessions import StateError
from amplifier.redact import redact

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign


class SendRefused(AmplifierError):
    """The ledger says the post must not be sent now: another process is sending it, it is finished
    (failed, expired, skipped), or posting is paused."""

    exit_code = ExitCode.PUBLISH
    kind = "refused"


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one post id."""

    post: PlannedPost
    result: PublishResult | None
    error: AmplifierError | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            if isinstance(self.error, SendRefused):
                return "refused"
            if getattr(self.error, "kind", None) == "waiting":  # it quotes a post not published yet
                return "waiting"
            return "failed" if not isinstance(self.error, RateLimitedError) else "rate limited"
        assert self.result is not None
        if self.result.dry_run:
            return "dry run"
        return "already published" if self.result.already_published else "published"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.post.id,
            "account": self.post.account,
            "platform": self.post.platform,
            "status": self.status,
            "url": self.result.url if self.result else None,
            "parts": [p.to_json() for p in self.result.parts] if self.result else [],
            "error": None,
        }
        if self.error is not None:
            message = redact(str(self.error))  # a server's text may echo a secret
            error: dict[str, Any] = {"kind": getattr(self.error, "kind", "error"), "message": message}
            reset_at = getattr(self.error, "reset_at", None)
            if reset_at is not None:
                error["retry_at"] = reset_at.isoformat()
            done = getattr(self.error, "done", {})
            data["parts"] = [done[i].to_json() for i in sorted(done)]
            data["error"] = error
        return data


def send_posts(
    posts: list[PlannedPost],
    campaign: Campaign,
    ctx: PublishContext,
    *,
    dry_run: bool,
    ledger: Ledger | None = None,
    clock: Clock = utcnow,
) -> list[SendOutcome]:
    """Publish ``posts`` now, in order, recorded in ``ledger`` (the daemon's); see :class:`LedgerSend`.

    A dry run needs no ledger and writes none: it shows what would be sent. An account whose credentials
    are rejected gets no further posts in this run."""
    if not dry_run and ledger is None:
        raise ValueError("sending for real needs the ledger")
    sender = LedgerSend(campaign, ctx, ledger, clock=clock, dry_run=dry_run)
    try:
        return [sender.send(post) for post in posts]
    finally:
        sender.close()


class LedgerSend:
    """``amplifier send`` through the delivery ledger, with the daemon's states and the same exactly-once rules.

    For each post: the post is planned into the ledger (nothing else in the plan changes), then

    * published already -> its stored result is reported; no network request at all;
    * claimed by another process that runs (the daemon) -> refused, nothing sent;
    * claimed by a process that died -> reconciled first (:meth:`Delivery.reconcile`: the platform is asked),
      then sent only if it is not out;
    * failed, expired or skipped -> refused, with the ledger's reason;
    * planned -> delivered (:meth:`Delivery.deliver`), which records every outcome as the daemon does (an
      unknown outcome stays claimed for reconciliation; rejected credentials release it), except that a
      retry keeps the post's own time;
    * planned but still unknown (released to be re-sent under its Idempotency-Key): sent only while the key's
      safe window, counted from the FIRST unknown attempt, is open at this moment; after it, the account is
      searched first, exactly as the daemon does.
    """

    def __init__(
        self,
        campaign: Campaign,
        ctx: PublishContext,
        ledger: Ledger | None,
        *,
        clock: Clock = utcnow,
        dry_run: bool = False,
    ) -> None:
        self.campaign = campaign
        self.ctx = ctx
        self.ledger = ledger
        self.clock = clock
        self.dry_run = dry_run
        self.token = claim_token("send")
        self.publishers: dict[str, Publisher] = {}
        self.stopped: dict[str, AmplifierError] = {}
        self.delivery = (
            None
            if ledger is None
            else Delivery(ledger, self.publisher, token=self.token, retries=Retries(), clock=clock)
        )

    def close(self) -> None:
        for publisher in self.publishers.values():
            publisher.close()
        self.publishers.clear()

    def publisher(self, account: str) -> Publisher:
        publisher = self.publishers.get(account)
        if publisher is None:
            settings = self.campaign.account(account)
            publisher = create_publisher(account, settings, self.ctx, dry_run=self.dry_run)
            self.publishers[account] = publisher
        return publisher

    def send(self, post: PlannedPost) -> SendOutcome:
        if post.account in self.stopped:
            return SendOutcome(post, None, self.stopped[post.account])
        try:
            if self.ledger is None or self.delivery is None:  # a dry run
                return SendOutcome(post, self.publisher(post.account).publish(post))
            return self._send(post, self.ledger, self.delivery)
        except (AuthError, CredentialsError) as exc:
            self.stopped[post.account] = exc
            return SendOutcome(post, None, exc)
        except (PublishError, StateError, LedgerError, SendRefused) as exc:
            return SendOutcome(post, None, exc)

    def _send(self, post: PlannedPost, ledger: Ledger, delivery: Delivery) -> SendOutcome:
        now = self.clock()
        # Only this post: an empty window [now, now) cancels nothing else in the plan.
        ledger.sync_plan([PlanEntry.from_post(post)], now, start=now, end=now)
        row = ledger.get(post.id)
        if row.state == State.CLAIMED:
            row = self._reconcile(post, delivery, row)
        search = delivery.must_search(row, self.clock())
        if row.state == State.PUBLISHED:
            return SendOutcome(post, self._stored(post, row))
        self._refuse_unless_planned(post, row)
        done = delivery.deliver(row, post, search=search)
        if done.outcome is Outcome.NOT_CLAIMED:
            raise self._not_claimed(post, ledger)
        if done.reconciled is not None:  # searched first: still unknown, published, or released to be sent
            row = ledger.get(post.id)
            if row.state == State.CLAIMED:
                raise self._still_unknown(post, done.reconciled.detail)
            if row.state == State.PUBLISHED:
                return SendOutcome(post, self._stored(post, row))
            self._refuse_unless_planned(post, row)
            done = delivery.deliver(row, post)
            if done.outcome is Outcome.NOT_CLAIMED:
                raise self._not_claimed(post, ledger)
        if done.error is not None:
            raise done.error
        return SendOutcome(post, done.result)

    @staticmethod
    def _refuse_unless_planned(post: PlannedPost, row: Row) -> None:
        if row.state != State.PLANNED:
            reason = f": {row.last_error}" if row.last_error else ""
            raise SendRefused(f"{post.id}: {row.state.value} in the ledger{reason}; not sent")

    def _reconcile(self, post: PlannedPost, delivery: Delivery, row: Row) -> Row:
        """A claimed row: refused while its claimant runs, else reconciled with the platform."""
        now = self.clock()
        if claim_holder_alive(row, now, own_token=self.token):
            holder = claim_holder(row.claim_token)
            who = f"pid {holder[1]}" if holder else "another process"
            since = row.claimed_at or row.updated_at
            raise SendRefused(
                f"{post.id}: being published by another amplifier process ({who}, claimed at "
                f"{since:%Y-%m-%d %H:%M:%S} UTC, probably `amplifier run`); not sent: let it finish, then "
                "`amplifier status` shows where it went"
            )
        self.publisher(post.account)  # credentials that cannot work stop the account here, as a send would
        outcome = delivery.reconcile(row, post, now, resend_now=True)
        row = delivery.ledger.get(post.id)
        if row.state == State.CLAIMED:
            raise self._still_unknown(post, outcome.detail)
        return row

    @staticmethod
    def _still_unknown(post: PlannedPost, detail: str) -> TransientError:
        return TransientError(
            f"{post.id}: an earlier attempt was interrupted and its outcome is still unknown "
            f"({detail}); not sent, try again later"
        )

    def _not_claimed(self, post: PlannedPost, ledger: Ledger) -> AmplifierError:
        paused = ledger.pause_reason()
        if paused is not None:
            return SendRefused(f"{post.id}: all posting is paused ({paused}); `amplifier resume` ends it")
        reason = ledger.paused_accounts().get(post.account)
        if reason is not None:
            return SendRefused(
                f"{post.id}: the account {post.account} is paused ({reason}); "
                f"`amplifier resume --account {post.account}` after fixing it"
            )
        row = ledger.get(post.id)
        if row.state == State.CLAIMED:
            return SendRefused(f"{post.id}: another amplifier process took it just now; not sent")
        return SendRefused(f"{post.id}: {row.state.value} in the ledger meanwhile; not sent")

    @staticmethod
    def _stored(post: PlannedPost, row: Row) -> PublishResult:
        """The result the ledger recorded for a published post (nothing is asked of the platform)."""
        recorded = part_results(dict(enumerate(row.result or ())))
        parts = tuple(
            PartResult(index=r.index, id=r.id, url=r.url, uri=r.uri, cid=r.cid, existed=True)
            for _, r in sorted(recorded.items())
        )
        return PublishResult(post.id, post.account, post.platform, parts)
