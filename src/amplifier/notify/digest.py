"""The daily digest: what went out in the last day, what failed or expired, what is paused, what is next.

Read from the delivery ledger; :func:`digest_message` is what :meth:`Notifier.maybe_digest
<amplifier.notify.notifier.Notifier.maybe_digest>` sends.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from amplifier.delivery.ledger import Ledger, Row, State
from amplifier.notify.alerts import Message

PERIOD = timedelta(days=1)
UPCOMING = 5  # next posts named
LOOKBACK = timedelta(days=3)  # posts due this long ago may have gone out within the period (late, retried)
MAX_LISTED = 10


@dataclass(frozen=True)
class Digest:
    since: datetime
    until: datetime
    published: list[Row]
    failed: list[Row]
    expired: list[Row]
    upcoming: list[Row]
    paused_accounts: dict[str, str]
    paused: str | None  # all posting paused, with the reason


def build_digest(
    ledger: Ledger, now: datetime, *, period: timedelta = PERIOD, upcoming: int = UPCOMING
) -> Digest:
    """The digest of the ``period`` before ``now``."""
    since = now - period
    done = ledger.history(
        since - LOOKBACK, now + timedelta(seconds=1), states=[State.PUBLISHED, State.FAILED, State.EXPIRED]
    )

    def within(row: Row) -> bool:
        at = row.published_at if row.state is State.PUBLISHED and row.published_at else row.updated_at
        return since <= at <= now

    recent = [row for row in done if within(row)]
    nexts = ledger.history(now, now + timedelta(days=60), states=[State.PLANNED])[:upcoming]
    return Digest(
        since=since,
        until=now,
        published=[row for row in recent if row.state is State.PUBLISHED],
        failed=[row for row in recent if row.state is State.FAILED],
        expired=[row for row in recent if row.state is State.EXPIRED],
        upcoming=nexts,
        paused_accounts=ledger.paused_accounts(),
        paused=ledger.pause_reason() if ledger.is_paused() else None,
    )


def _url(row: Row) -> str | None:
    for part in row.result or ():
        url = part.get("url") or part.get("uri")
        if isinstance(url, str):
            return url
    return None


def digest_message(digest: Digest, campaign: str, zone: str) -> Message:
    """The digest as a short message, times in the campaign's zone."""
    tz = ZoneInfo(zone)

    def when(at: datetime) -> str:
        return at.astimezone(tz).strftime("%a %d %b %H:%M")

    lines: list[str] = []
    per_account = Counter(row.account for row in digest.published)
    out = ", ".join(f"{account} {count}" for account, count in sorted(per_account.items()))
    lines.append(f"Published in the last 24 hours: {len(digest.published)}" + (f" ({out})." if out else "."))
    for row in digest.published[:MAX_LISTED]:
        lines.append(f"  {when(row.published_at or row.due_at)} {row.account}: {_url(row) or row.id}")
    if len(digest.published) > MAX_LISTED:
        lines.append(f"  ... and {len(digest.published) - MAX_LISTED} more (`amplifier history`)")
    for label, rows in (("Failed", digest.failed), ("Expired", digest.expired)):
        if rows:
            lines.append(f"{label}: {len(rows)} (`amplifier history` gives each reason).")
            lines += [
                f"  {row.id} ({row.account}): {row.last_error or ''}".rstrip(": ")
                for row in rows[:MAX_LISTED]
            ]
    if digest.paused:
        lines.append(f"ALL POSTING IS PAUSED: {digest.paused} (`amplifier resume` to go on).")
    for account, reason in sorted(digest.paused_accounts.items()):
        lines.append(f"Account {account} is paused: {reason}")
    if digest.upcoming:
        lines.append("Next:")
        lines += [f"  {when(row.due_at)} {row.account}: {row.id}" for row in digest.upcoming]
    else:
        lines.append("Nothing is planned in the next 60 days.")
    problems = (
        len(digest.failed) + len(digest.expired) + len(digest.paused_accounts) + (1 if digest.paused else 0)
    )
    status = "all well" if not problems else f"{problems} to look at"
    title = f"amplifier · {campaign}: daily digest, {len(digest.published)} published, {status}"
    return Message(title=title, body="\n".join(lines))
