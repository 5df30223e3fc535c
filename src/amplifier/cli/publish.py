"""The commands that talk to the platforms: ``accounts`` and ``send``.

Registered lazily on the main group by :mod:`amplifier.cli.main`; they read the global options from ``ctx.obj``
(``config``, ``state``, ``now``, ``campaign()``). The work is done by :func:`check_accounts` and
:func:`send_posts`, which return results; the commands only render them.

``send`` records what it does in the delivery ledger the daemon uses (``ledger.sqlite3`` in the state
folder), with the daemon's states and exactly-once rules (:class:`LedgerSend`); ``send --dry-run`` neither
reads nor writes it.

Exit codes: ``accounts`` returns 3 (:attr:`ExitCode.ACCOUNT`) when any account fails; ``send`` returns 3 when
an account's credentials were rejected and 4 (:attr:`ExitCode.PUBLISH`) when a post failed otherwise or was
refused (:class:`SendRefused`: the daemon is sending it, it is finished in the ledger, or posting is paused).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from amplifier.clock import Clock, utcnow
from amplifier.delivery.ledger import LedgerError
from amplifier.errors import AmplifierError, CredentialsError, ExitCode
from amplifier.publish import (
    AccountInfo,
    AuthError,
    PartResult,
    PermanentError,
    PublishContext,
    Publisher,
    PublishError,
    PublishResult,
    RateLimitedError,
    TransientError,
    create_publisher,
)
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir, StateError, resolve_state_dir
from amplifier.redact import redact

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.delivery.ledger import Ledger, Row
    from amplifier.plan.post import PlannedPost

JSON_VERSION = 1

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def publish_context(campaign: Campaign, state: Path | None) -> PublishContext:
    """Secrets, state folder and base folder for the campaign's publishers."""
    state_dir = resolve_state_dir(campaign.schedule_path, state)
    return PublishContext(
        secrets=SecretSources.for_campaign(campaign.root),
        state=StateDir(state_dir),
        base_dir=campaign.root,
    )


# --------------------------------------------------------------------------------------------- accounts


def check_accounts(campaign: Campaign, ctx: PublishContext) -> list[AccountInfo]:
    """Ask each account's server who it is and which limits it has; a failure is a result, not an error."""
    results: list[AccountInfo] = []
    for account_id, settings in campaign.schedule.accounts.items():
        server = str(settings.instance if settings.platform == "mastodon" else settings.service)
        publisher: Publisher | None = None
        try:
            publisher = create_publisher(account_id, settings, ctx)
            results.append(publisher.check())
        except (PublishError, CredentialsError, StateError) as exc:
            results.append(
                AccountInfo(
                    account_id, settings.platform, ok=False, server=server, error=_reason(exc, account_id)
                )
            )
        finally:
            if publisher is not None:
                publisher.close()
    return results


def _reason(exc: BaseException, account_id: str) -> str:
    text = redact(str(exc))
    for prefix in (f"{account_id}: ", f"{account_id}:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def _limits_text(limits: dict[str, int]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(limits.items()))


@click.command()
@format_option
@click.pass_context
def accounts(ctx: click.Context, fmt: str) -> None:
    """Check each account: do its credentials work, who is it, which limits does its server have.

    Exit code 3 when any account fails, with the reason per account; 5 when the state folder is unusable."""
    from amplifier.cli.render import console, dump_json

    campaign: Campaign = ctx.obj.campaign()
    context = publish_context(campaign, ctx.obj.state)
    context.state.ensure()  # an unusable state folder is exit 5, not every account failing (3)
    results = check_accounts(campaign, context)
    if fmt == "json":
        dump_json({"version": JSON_VERSION, "accounts": [info.to_json() for info in results]})
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{campaign.name}: accounts")
        for column in ("account", "platform", "ok", "who", "limits / reason"):
            table.add_column(column, overflow="fold")
        for info in results:
            who = " ".join(x for x in (info.handle, f"({info.id})" if info.id else None) if x)
            detail = _limits_text(dict(info.limits)) if info.ok else (info.error or "")
            table.add_row(
                info.account,
                info.platform,
                Text("yes" if info.ok else "NO", style="green" if info.ok else "bold red"),
                Text(who),
                Text(detail),
            )
        console().print(table)
    failed = [info for info in results if not info.ok]
    if failed:
        for info in failed:
            click.echo(f"{info.account}: {info.error}", err=True)
        sys.exit(ExitCode.ACCOUNT)


# --------------------------------------------------------------------------------------------- send


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
            message = redact(str(self.error))
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
    * claimed by a process that died -> reconciled first (:func:`amplifier.delivery.reconcile.reconcile_row`: the
      platform is asked), then sent only if it is not out;
    * failed, expired or skipped -> refused, with the ledger's reason;
    * planned -> claimed, published, marked published. On an error: parts already out are recorded; a 429 or
      a server error puts it back to planned (an attempt counted, the daemon retries at its time or at the
      reset time); rejected credentials release it; a refusal (400/422) marks it failed; a Mastodon network
      failure or timeout while sending a status (:class:`~amplifier.publish.mastodon.StatusOutcomeUnknown`:
      it may have been created), or any non-permanent error while re-sending a post whose outcome is still
      unknown, is recorded as the daemon records it (:meth:`~amplifier.delivery.ledger.Ledger.mark_unknown`: it stays
      claimed, unknown since the first such attempt), for the next ``send`` or the daemon to reconcile;
    * planned but still unknown (released to be re-sent under its Idempotency-Key): sent only while the key's
      safe window, counted from the FIRST unknown attempt, is open at this moment; after it, the account is
      searched first (:func:`amplifier.delivery.reconcile.reconcile_row`), exactly as the daemon does.
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
        from amplifier.delivery.reconcile import claim_token

        self.campaign = campaign
        self.ctx = ctx
        self.ledger = ledger
        self.clock = clock
        self.dry_run = dry_run
        self.token = claim_token("send")
        self.publishers: dict[str, Publisher] = {}
        self.stopped: dict[str, AmplifierError] = {}

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
            if self.ledger is None:  # a dry run
                return SendOutcome(post, self.publisher(post.account).publish(post))
            return self._send(post, self.ledger)
        except (AuthError, CredentialsError) as exc:
            self.stopped[post.account] = exc
            return SendOutcome(post, None, exc)
        except (PublishError, StateError, LedgerError, SendRefused) as exc:
            return SendOutcome(post, None, exc)

    def _send(self, post: PlannedPost, ledger: Ledger) -> SendOutcome:
        from amplifier.delivery.ledger import PlanEntry, State
        from amplifier.delivery.reconcile import needs_search, resend_is_safe, unknown_since

        now = self.clock()
        # Only this post: an empty window [now, now) cancels nothing else in the plan.
        ledger.sync_plan([PlanEntry.from_post(post)], now, start=now, end=now)
        row = ledger.get(post.id)
        if row.state == State.CLAIMED:
            row = self._reconcile(post, ledger, row)
        if row.state == State.PUBLISHED:
            return SendOutcome(post, self._stored(post, row))
        if row.state != State.PLANNED:
            reason = f": {row.last_error}" if row.last_error else ""
            raise SendRefused(f"{post.id}: {row.state.value} in the ledger{reason}; not sent")
        if not ledger.claim(post.id, now, self.token):
            raise self._not_claimed(post, ledger)
        row = ledger.get(post.id)
        if needs_search(row) and not resend_is_safe(unknown_since(row), self.clock()):
            # Still unknown, and the key may have expired: only a search may tell whether to send it.
            row = self._reconcile(post, ledger, row, wait=False)
            if row.state == State.PUBLISHED:
                return SendOutcome(post, self._stored(post, row))
            if row.state != State.PLANNED:
                reason = f": {row.last_error}" if row.last_error else ""
                raise SendRefused(f"{post.id}: {row.state.value} in the ledger{reason}; not sent")
            if not ledger.claim(post.id, self.clock(), self.token):
                raise self._not_claimed(post, ledger)
            row = ledger.get(post.id)
        return self._publish(post, ledger, row)

    def _reconcile(self, post: PlannedPost, ledger: Ledger, row: Row, *, wait: bool = True) -> Row:
        """A claimed row: refused while its claimant runs, else reconciled with the platform."""
        from amplifier.delivery.ledger import State
        from amplifier.delivery.reconcile import claim_holder, claim_holder_alive, reconcile_row

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
        outcome = reconcile_row(
            ledger, row, post, self.publisher(post.account), now, resend_now=True, wait=wait
        )
        row = ledger.get(post.id)
        if row.state == State.CLAIMED:
            raise TransientError(
                f"{post.id}: an earlier attempt was interrupted and its outcome is still unknown "
                f"({outcome.detail}); not sent, try again later"
            )
        return row

    def _not_claimed(self, post: PlannedPost, ledger: Ledger) -> AmplifierError:
        from amplifier.delivery.ledger import State

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

    def _stored(self, post: PlannedPost, row: Row) -> PublishResult:
        """The result the ledger recorded for a published post (nothing is asked of the platform)."""
        from amplifier.delivery.reconcile import part_results

        recorded = part_results(dict(enumerate(row.result or ())))
        parts = tuple(
            PartResult(index=r.index, id=r.id, url=r.url, uri=r.uri, cid=r.cid, existed=True)
            for _, r in sorted(recorded.items())
        )
        return PublishResult(post.id, post.account, post.platform, parts)

    def _publish(self, post: PlannedPost, ledger: Ledger, row: Row) -> SendOutcome:
        from amplifier.delivery.reconcile import part_results

        try:
            publisher = self.publisher(post.account)
            result = publisher.publish(post, resume=part_results(row.parts) or None)
        except PublishError as exc:
            self._failed(ledger, row, exc)
            raise
        except (CredentialsError, StateError):  # before any request: nothing can be out
            ledger.release(row.id, self.clock(), token=self.token)
            raise
        ledger.mark_published(
            row.id, [part.to_json() for part in result.parts], self.clock(), token=self.token
        )
        return SendOutcome(post, result)

    def _failed(self, ledger: Ledger, row: Row, exc: PublishError) -> None:
        from amplifier.delivery.reconcile import RECHECK_MIN, needs_search
        from amplifier.publish.mastodon import StatusOutcomeUnknown

        now = self.clock()
        for index, part in sorted(exc.done.items()):
            if index not in row.parts:
                ledger.record_part(row.id, index, part.to_json(), now, token=self.token)
        if isinstance(exc, AuthError):
            ledger.release(row.id, now, token=self.token)
        elif isinstance(exc, PermanentError):
            ledger.mark_failed(row.id, str(exc), now, token=self.token)
        elif isinstance(exc, StatusOutcomeUnknown) or needs_search(row):
            # The status may exist: left claimed, reconciled (the key, or a search) before any re-send.
            check_at = now + RECHECK_MIN
            if isinstance(exc, RateLimitedError) and exc.reset_at is not None:
                check_at = max(check_at, exc.reset_at)
            ledger.mark_unknown(row.id, str(exc), now, check_at=check_at, token=self.token)
        elif isinstance(exc, RateLimitedError):
            retry_at = max(row.next_attempt_at, exc.reset_at or now)
            ledger.schedule_retry(row.id, str(exc), retry_at, now, token=self.token)
        else:
            ledger.schedule_retry(row.id, str(exc), row.next_attempt_at, now, token=self.token)


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; publish nothing, record nothing.")
@format_option
@click.pass_context
def send(ctx: click.Context, ids: tuple[str, ...], dry_run: bool, fmt: str) -> None:
    """Publish the planned posts with these ids (from `preview --format json`) now, and print where.

    Each post is recorded in the state folder's ledger, the one `amplifier run` uses: a post already
    published is not posted again (its address is printed, without asking the server), and a post the
    daemon is sending at this moment is refused."""
    from amplifier.cli.render import console, dump_json
    from amplifier.daemon.loop import offset_clock
    from amplifier.delivery.ledger import open_ledger
    from amplifier.plan.planner import find_posts

    campaign: Campaign = ctx.obj.campaign()
    posts = find_posts(campaign, ids)
    publish_ctx = publish_context(campaign, ctx.obj.state)
    clock: Clock = offset_clock(ctx.obj.now) if ctx.obj.now_option else utcnow
    publish_ctx.clock = clock
    if dry_run:
        outcomes = send_posts(posts, campaign, publish_ctx, dry_run=True)
    else:
        with open_ledger(publish_ctx.state.path, clock()) as ledger:
            outcomes = send_posts(posts, campaign, publish_ctx, dry_run=False, ledger=ledger, clock=clock)
    if fmt == "json":
        dump_json({"version": JSON_VERSION, "dry_run": dry_run, "posts": [o.to_json() for o in outcomes]})
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{campaign.name}: send{' (dry run)' if dry_run else ''}")
        for column in ("id", "account", "status", "where / what"):
            table.add_column(column, overflow="fold")
        for outcome in outcomes:
            if outcome.error is not None:
                detail = redact(str(outcome.error))
            elif outcome.result is not None and outcome.result.dry_run:
                detail = "\n---\n".join(part.text for part in outcome.post.parts)
            else:
                assert outcome.result is not None
                detail = "\n".join(p.url or p.uri or p.id for p in outcome.result.parts)
            style = "bold red" if outcome.error else ("green" if outcome.status == "published" else "")
            table.add_row(
                outcome.post.id, outcome.post.account, Text(outcome.status, style=style), Text(detail)
            )
        console().print(table)
    failures = [o.error for o in outcomes if o.error is not None]
    if failures:
        for error in failures:
            click.echo(redact(str(error)), err=True)
        auth = any(isinstance(e, CredentialsError) for e in failures)
        sys.exit(ExitCode.ACCOUNT if auth else ExitCode.PUBLISH)
