"""The campaign daemon: every planned post on time, exactly once, through crashes, faults and edits.

One pass (:meth:`Daemon.tick`) does, at an instant ``now``:

1. reconcile any post left ``claimed`` (a crash, or an unexpected error, between request and ledger
   write) with the platform (:mod:`amplifier.delivery.reconcile`), before anything new is sent; a post whose outcome
   is unknown (below) is looked at when its next check is due;
2. take the planned posts that are due, account by account, each account's posts strictly in order (a post
   waiting for a retry holds back the account's later posts), accounts concurrently on a bounded thread pool;
3. for each post: expire it if its window was missed (:meth:`Daemon.deadline`), wait if the account's rate
   limit (:mod:`amplifier.delivery.ratelimit`) or a server's reset time says so, else claim -> publish -> mark.

Errors, as the publishers classify them:

* 429 (:class:`RateLimitedError`): retry at the reset time the server gave; the account sends nothing
  before it.
* transient (5xx, timeouts, network): exponential backoff with jitter (:meth:`DaemonSettings.backoff`), then
  after :attr:`DaemonSettings.max_attempts` attempts the post fails with the reason.
* outcome unknown (:class:`~amplifier.publish.mastodon.StatusOutcomeUnknown`: a status request timed out or
  the connection broke after it may have reached the server; or any non-permanent error while re-sending a
  post whose outcome is still unknown): NO blind retry. The post stays claimed
  (:meth:`~amplifier.delivery.ledger.Ledger.mark_unknown`, which keeps the first unknown moment) and only
  reconciliation moves it on, at its next check (the backoff, or the reset time of a 429): within the
  Idempotency-Key's safe window it is sent again under the same key, after it the account is searched. The
  account's later posts wait behind it. A planned post that is still unknown (released to be re-sent) is
  sent only while the window is open at that very moment, else searched first; it never expires unsearched.
  Bluesky is not concerned: its deterministic record key makes every re-send (``putRecord``) idempotent.
* permanent (400/422, over a limit): fails at once with the reason.
* rejected credentials (:class:`AuthError`, a missing secret): the account is paused in the ledger
  (``amplifier resume --account ID`` after fixing it); the other accounts go on.

Missed windows (a post whose time passed while amplifier was down), per rule:

* ``missed: {action: post, grace: D}``: post late while ``now <= due + D``, then expire.
* ``missed: {action: expire}``: expire unless sent within :attr:`DaemonSettings.on_time` of its time.
* no ``missed`` on a countdown rule: post late only on the same day in the rule's calendar (the event's zone),
  and never after the event started; a "3 days left" post is wrong the next day.
* no ``missed`` on a recurring or once rule: post late within :attr:`DaemonSettings.default_grace` (1 hour).

The same deadline applies to retries: a post still not out by its deadline expires.

The long-running mode (:func:`serve`) uses APScheduler: one date job at the next due instant (re-armed
after each pass, on reload and on pause changes: no busy polling), an interval job that watches the campaign
files and the pause switches every couple of seconds, one that re-plans the rolling window hourly and one
that writes a heartbeat file for ``amplifier status --check``.

Test hooks (environment variables, never to be set outside tests):

* ``AMPLIFIER_TEST_CRASH_AFTER_REQUEST=N``: the process exits at once with status 137 (as if SIGKILLed) right
  after its N-th successful publish, before the ledger records it: the window where only reconciliation can
  tell what happened.
* ``AMPLIFIER_TEST_BACKOFF=S``: every transient retry waits S seconds (+-jitter) instead of growing from 30 s.
* ``AMPLIFIER_TEST_WATCH=S``: check the campaign files and pause switches every S seconds.
* ``AMPLIFIER_TEST_REQUEST_TIMEOUT=S``: the publishers' HTTP timeout (read by ``amplifier run``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from amplifier.campaign.load import Campaign, load_campaign
from amplifier.campaign.models import BlueskyAccount, CountdownRule, MastodonAccount
from amplifier.clock import Clock, localize, utcnow
from amplifier.delivery.ledger import Ledger, LedgerError, PlanEntry, Row, State, SyncReport
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.reconcile import (
    Reconciled,
    claim_holder_alive,
    claim_token,
    needs_search,
    part_results,
    recheck_at,
    reconcile_row,
    resend_is_safe,
    unknown_since,
)
from amplifier.errors import AmplifierError, CampaignError, CredentialsError
from amplifier.plan.post import PlannedPost
from amplifier.plan.schedule import event_start, rule_zone
from amplifier.publish.base import (
    AuthError,
    PermanentError,
    Publisher,
    PublishError,
    PublishResult,
    RateLimitedError,
)
from amplifier.redact import redact

PublisherFactory = Callable[[str, MastodonAccount | BlueskyAccount], Publisher]

PAUSE_NAME = "PAUSE"
HEARTBEAT_NAME = "heartbeat.json"
CRASH_ENV = "AMPLIFIER_TEST_CRASH_AFTER_REQUEST"
FAR_FUTURE = timedelta(days=3660)


def offset_clock(start: datetime) -> Clock:
    """A clock that reads ``start`` now and runs on at real speed from there (``run --now T``)."""
    origin = time.monotonic()

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - origin)

    return clock


@dataclass(frozen=True)
class DaemonSettings:
    lookahead: timedelta = timedelta(days=2)  # how far ahead the rolling window is planned
    default_grace: timedelta = timedelta(hours=1)  # recurring / once rules without `missed`
    on_time: timedelta = timedelta(minutes=10)  # `missed: expire`: how late still counts as on time
    max_attempts: int = 6  # transient errors: attempts before a post fails
    rate_limited_max_attempts: int = 50  # 429s: attempts before a post fails
    backoff_base: timedelta = timedelta(seconds=30)
    backoff_max: timedelta = timedelta(minutes=30)
    jitter: float = 0.2  # +-20 % of each backoff
    workers: int = 128  # accounts published concurrently (threads start only when needed)
    shutdown_timeout: float = 30.0  # seconds to let in-flight posts finish on SIGTERM
    watch_interval: float = 2.0  # seconds between checks of the campaign files and pause switches
    replan_interval: timedelta = timedelta(hours=1)
    heartbeat_interval: float = 30.0  # seconds

    def backoff(self, attempt: int, rng: random.Random) -> timedelta:
        """The wait before retry number ``attempt`` (1-based): base * 2^(attempt-1), capped, with jitter."""
        raw = min(self.backoff_base * (2 ** max(attempt - 1, 0)), self.backoff_max)
        factor: float = 1.0 + self.jitter * rng.uniform(-1.0, 1.0)
        return timedelta(seconds=raw.total_seconds() * factor)


# --------------------------------------------------------------------------------------------- logging


class EventLog:
    """One line per event on ``stream``: ``TIME EVENT key=value ...`` or a JSON object (``fmt="json"``).

    Callers pass only texts that are safe to show (ids, URLs, :class:`AmplifierError` messages): never a
    secret. ``keep`` also keeps the events in :attr:`events` (for tests and the benchmark).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        fmt: str = "text",
        clock: Clock = utcnow,
        *,
        keep: bool = False,
    ) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"unknown log format {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.clock = clock
        self.keep = keep
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        stamp = _iso(self.clock())
        values = {k: _iso(v) if isinstance(v, datetime) else v for k, v in fields.items() if v is not None}
        values = {k: redact(v) if isinstance(v, str) else v for k, v in values.items()}  # no secret echoed
        record = {"time": stamp, "event": event, **values}
        if self.fmt == "json":
            line = json.dumps(record, ensure_ascii=False, default=str)
        else:
            pairs = " ".join(
                f"{key}={_text_value(value)}" for key, value in record.items() if key not in ("time", "event")
            )
            line = f"{stamp} {event}" + (f" {pairs}" if pairs else "")
        with self._lock:
            if self.keep:
                self.events.append(record)
            if self.stream is not None:
                self.stream.write(line + "\n")
                self.stream.flush()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [record for record in self.events if record["event"] == event]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _utc_minute(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(ch.isspace() or ch in "\"'=" for ch in text):
        return json.dumps(text, ensure_ascii=False)
    return text


# --------------------------------------------------------------------------------------------- results


@dataclass
class TickReport:
    """What one pass did, by post id."""

    published: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # rate limit: left planned, not claimed
    released: list[str] = field(default_factory=list)  # shutdown or paused account: back to planned
    unknown: list[str] = field(default_factory=list)  # outcome unknown: claimed until reconciled
    reconciled: list[Reconciled] = field(default_factory=list)
    paused: str | None = None  # why nothing was posted, when everything is paused

    def merge(self, other: TickReport) -> None:
        for name in (
            "published",
            "retried",
            "failed",
            "expired",
            "skipped",
            "deferred",
            "released",
            "unknown",
        ):
            getattr(self, name).extend(getattr(other, name))
        self.reconciled.extend(other.reconciled)
        self.paused = other.paused or self.paused


# --------------------------------------------------------------------------------------------- the daemon


class Daemon:
    """Plans a rolling window into the ledger and publishes what is due; see the module docstring.

    I/O is passed in: the ledger, a publisher factory, the clock, the log, the state folder (for the
    heartbeat, and the ``PAUSE`` file unless ``pause_dir`` says where it is; ``outside_pause`` is one more
    pause switch to obey). Safe to call from one scheduler thread at a time; it publishes on
    its own thread pool.
    """

    def __init__(
        self,
        campaign: Campaign,
        ledger: Ledger,
        publisher_factory: PublisherFactory,
        *,
        clock: Clock = utcnow,
        log: EventLog | None = None,
        settings: DaemonSettings | None = None,
        state_dir: Path | None = None,
        loader: Callable[[Path], Campaign] = load_campaign,
        rng: random.Random | None = None,
        limiter: RateLimiter | None = None,
        environ: Mapping[str, str] | None = None,
        pause_dir: Path | None = None,
        outside_pause: Callable[[], str | None] | None = None,
    ) -> None:
        self.campaign = campaign
        self.ledger = ledger
        self.publisher_factory = publisher_factory
        self.clock = clock
        self.log = log or EventLog(None)
        self.settings = settings or DaemonSettings()
        self.state_dir = state_dir
        # Where the PAUSE file is (default: the state folder), and a further pause switch (a dry run works on
        # a copy of the ledger and a scratch state folder, but obeys the real folder's switches).
        self.pause_dir = pause_dir or state_dir
        self.outside_pause = outside_pause
        self.loader = loader
        self.rng = rng or random.Random()
        self.limiter = limiter or RateLimiter()
        self.token = claim_token("daemon")
        self.stopping = threading.Event()
        self.posts: dict[str, PlannedPost] = {}
        self.failures = 0  # posts failed in this process
        self._publishers: dict[str, Publisher] = {}
        self._publishers_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, self.settings.workers), thread_name_prefix="publish"
        )
        self._files: dict[Path, tuple[int, int] | None] = self._snapshot_files()
        self._pause_state: tuple[str | None, tuple[tuple[str, str], ...]] | None = None
        self._crash_after = _crash_after(os.environ if environ is None else environ)
        self._published_requests = 0
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Wait for the thread pool, then close every publisher."""
        self._executor.shutdown(wait=True)
        with self._publishers_lock:
            publishers, self._publishers = list(self._publishers.values()), {}
        for publisher in publishers:
            with contextlib.suppress(Exception):  # closing must never hide the real outcome
                publisher.close()

    def stop(self) -> None:
        """Stop claiming new posts; posts already being sent finish."""
        self.stopping.set()

    def start(self, now: datetime) -> TickReport:
        """At start-up: seed the rate limiter from the ledger, reconcile claimed posts, plan the window."""
        self._seed_limiter(now)
        self.plan(now)
        report = TickReport()
        report.reconciled = self.reconcile(now)
        return report

    def _seed_limiter(self, now: datetime) -> None:
        rows = self.ledger.history(now - timedelta(days=2), now + FAR_FUTURE, states=[State.PUBLISHED])
        uses = []
        for row in rows:
            if row.published_at is not None and row.published_at > now - timedelta(days=1):
                fresh = sum(1 for part in (row.result or ()) if not part.get("existed"))
                uses.append((row.account, row.platform, row.published_at, fresh))
        self.limiter.seed(uses)

    # ----------------------------------------------------------------------------------------- planning

    def lookback(self, campaign: Campaign | None = None) -> timedelta:
        """How far back the window of ``campaign`` (default: the current one) starts: the longest a missed
        post may still go out."""
        longest = max(self.settings.on_time, self.settings.default_grace)
        for rule in (campaign or self.campaign).schedule.rules.values():
            if rule.missed is not None:
                longest = max(
                    longest, rule.missed.grace if rule.missed.action == "post" else self.settings.on_time
                )
            elif isinstance(rule, CountdownRule):
                longest = max(longest, timedelta(hours=25))  # the rest of a local day, DST included
        return longest

    def plan(self, now: datetime, campaign: Campaign | None = None) -> SyncReport:
        """Plan the window [now - lookback, now + lookahead) of ``campaign`` (default: the current one) into
        the ledger. Raises :class:`CampaignError` when a post cannot be rendered."""
        from amplifier.plan.planner import plan_window

        campaign = campaign or self.campaign
        start = now - self.lookback(campaign)
        end = now + self.settings.lookahead
        plan = plan_window(campaign, start, end)
        if plan.problems:
            raise CampaignError(plan.problems)
        report = self.ledger.sync_plan(
            [PlanEntry.from_post(post) for post in plan.posts], now, start=start, end=end
        )
        self.campaign = campaign
        self.posts = {post.id: post for post in plan.posts}
        if report.inserted or report.updated or report.revived or report.cancelled:
            self.log.emit(
                "planned",
                posts=len(plan.posts),
                new=len(report.inserted),
                changed=len(report.updated),
                revived=len(report.revived),
                cancelled=len(report.cancelled),
                window_from=start,
                window_to=end,
            )
        for post_id in report.cancelled:
            self.log.emit("cancelled", id=post_id, reason="removed from the plan")
        return report

    def post_for(self, row: Row) -> PlannedPost | None:
        """The planned post of a ledger row: from the current plan, else rendered from the campaign."""
        post = self.posts.get(row.id)
        if post is not None:
            return post
        from amplifier.plan.planner import find_posts

        try:
            found = find_posts(self.campaign, [row.id])
        except AmplifierError:
            return None
        return found[0] if found else None

    def deadline(self, row: Row) -> datetime:
        """The last instant at which the post may still go out (see the module docstring)."""
        return self._window(row)[0]

    def _window(self, row: Row) -> tuple[datetime, str]:
        """The post's deadline, and in words the rule behind it (for the reason of an expiry)."""
        schedule = self.campaign.schedule
        rule = schedule.rules.get(row.rule)
        due = row.due_at
        if rule is None:
            return due + self.settings.on_time, f"posted late within {self.settings.on_time} at most"
        if rule.missed is not None:
            if rule.missed.action == "post":
                return due + rule.missed.grace, f"the rule posts late within {rule.missed.grace}"
            return due + self.settings.on_time, "the rule expires missed posts"
        if isinstance(rule, CountdownRule):
            zone = rule_zone(schedule, rule)
            local_day = due.astimezone(zone).date()
            end_of_day = localize(datetime.combine(local_day + timedelta(days=1), datetime.min.time()), zone)
            deadline = end_of_day
            event = schedule.events.get(rule.event)
            if event is not None:
                start = event_start(schedule, event)
                if due < start:
                    deadline = min(deadline, start)
            why = "a countdown post is only posted late on its own day"
            return max(deadline, due + self.settings.on_time), why
        return due + self.settings.default_grace, f"posted late within {self.settings.default_grace} at most"

    # ------------------------------------------------------------------------------------ reconciliation

    def reconcile(self, now: datetime) -> list[Reconciled]:
        """Resolve every claimed post with the platform before anything new is sent; a post claimed by
        another process that still runs (``amplifier send``) is its business, and left alone; a post whose
        outcome is unknown waits for its next check (``next_attempt_at``: a backoff, so a server that is
        down is not hammered)."""
        return [
            self._reconcile_one(row, now)
            for row in self.ledger.claimed()
            if (row.unknown_since is None or row.next_attempt_at <= now)
            and not claim_holder_alive(row, now, own_token=self.token)
        ]

    def _unknown_checks(self, now: datetime) -> dict[str, datetime]:
        """Per account with posts whose outcome is unknown: the earliest instant this daemon looks at one."""
        checks: dict[str, datetime] = {}
        for row in self.ledger.claimed():
            if row.unknown_since is None:
                continue
            at = row.next_attempt_at
            if claim_holder_alive(row, now, own_token=self.token):
                at = max(at, now + self.settings.backoff_base)  # its claimant decides; look now and then
            if row.account not in checks or at < checks[row.account]:
                checks[row.account] = at
        return checks

    def _reconcile_one(
        self, row: Row, now: datetime, *, resend_now: bool | None = None, wait: bool = True
    ) -> Reconciled:
        post = self.post_for(row)
        publisher = None
        outcome: Reconciled | None = None
        if post is not None:
            try:
                publisher = self._publisher(row.account)
            except AmplifierError as exc:
                outcome = Reconciled(row.id, row.account, "unknown", f"no publisher: {exc}")
        if outcome is None and row.state == State.CLAIMED:
            try:
                since = unknown_since(row)
                check_at = recheck_at(
                    since, now, shortest=self.settings.backoff_base, longest=self.settings.backoff_max
                )
                outcome = reconcile_row(
                    self.ledger,
                    row,
                    post,
                    publisher,
                    now,
                    resend_now=resend_now,
                    check_at=check_at,
                    wait=wait,
                )
            except LedgerError as exc:
                outcome = Reconciled(row.id, row.account, "unknown", str(exc))
        if outcome is None:
            outcome = Reconciled(row.id, row.account, row.state.value, "not claimed any more")
        self.log.emit(
            "reconcile",
            id=row.id,
            account=row.account,
            outcome=outcome.outcome,
            detail=outcome.detail,
            url=outcome.url,
        )
        if outcome.outcome == "failed":
            self.failures += 1
        return outcome

    # ----------------------------------------------------------------------------------------- pauses

    @property
    def pause_file(self) -> Path | None:
        return None if self.pause_dir is None else self.pause_dir / PAUSE_NAME

    def paused(self) -> str | None:
        """Why all posting is paused (the ledger's switch or the ``PAUSE`` file), None when it is not."""
        reason = self.ledger.pause_reason()
        if reason is None and self.outside_pause is not None:
            reason = self.outside_pause()
        if reason is not None:
            return reason
        if self.pause_file is not None and self.pause_file.exists():
            return f"the file {self.pause_file} exists"
        return None

    # ----------------------------------------------------------------------------------------- a pass

    def queues(self, now: datetime) -> dict[str, list[Row]]:
        """Per account, its planned posts in order up to the first one that is not due yet (strict order)."""
        queues: dict[str, list[Row]] = {}
        # A post whose outcome is unknown holds back its account's later posts, as a retry does.
        blocked: set[str] = set(self._unknown_checks(now))
        for row in self.ledger.due(now + FAR_FUTURE):
            if row.account in blocked:
                continue
            if row.next_attempt_at > now:
                blocked.add(row.account)
                continue
            queues.setdefault(row.account, []).append(row)
        return queues

    def next_wake(self, now: datetime) -> datetime | None:
        """When the next pass should run: the earliest instant an account's next post may go out, or a post
        whose outcome is unknown is to be checked (that goes on while paused: a check posts nothing new)."""
        checks = self._unknown_checks(now)
        if self.paused() is not None:
            return min(checks.values(), default=None)
        heads: dict[str, Row] = {}
        for row in self.ledger.due(now + FAR_FUTURE):
            if row.account not in checks:  # waits for the check of its unknown post
                heads.setdefault(row.account, row)
        wake: datetime | None = min(checks.values(), default=None)
        for row in heads.values():
            missing = max(row.part_count - len(row.parts), 1)
            at = max(row.next_attempt_at, self.limiter.available_at(row.account, row.platform, missing, now))
            wake = at if wake is None or at < wake else wake
        return wake

    def tick(self, now: datetime) -> TickReport:
        """One pass at ``now``: reconcile, then publish everything due (see the module docstring)."""
        report = TickReport()
        if self.ledger.claimed():
            report.reconciled = self.reconcile(now)
        reason = self.paused()
        if reason is not None:
            report.paused = reason
            return report
        queues = self.queues(now)
        if not queues:
            return report
        futures = [self._executor.submit(self._run_account, rows) for rows in queues.values()]
        for future in futures:
            report.merge(future.result())
        return report

    def _run_account(self, rows: Iterable[Row]) -> TickReport:
        report = TickReport()
        for row in rows:
            if self.stopping.is_set() or self.paused() is not None:
                break
            try:
                outcome = self._process(row, report)
            except LedgerError as exc:  # the ledger refused a change: someone else moved the post
                self.log.emit("error", id=row.id, account=row.account, reason=str(exc))
                break
            if outcome != "done":
                break  # strict order: the account's later posts wait behind this one
        return report

    def _process(self, row: Row, report: TickReport) -> str:
        """Publish one due row; "done" when the account may go on with its next post."""
        now = self.clock()
        post = self.post_for(row)
        if post is None:
            reason = "no longer in the campaign"
            self.ledger.mark_skipped(row.id, reason, now)
            report.skipped.append(row.id)
            self.log.emit("skipped", id=row.id, account=row.account, reason=reason)
            return "done"
        deadline, why = self._window(row)
        if needs_search(row) and not (now <= deadline and resend_is_safe(unknown_since(row), now)):
            # Unknown outcome, and the key no longer covers a re-send (or its window was missed): only a
            # search may tell whether to send it, or to expire it.
            if not self.ledger.claim(row.id, now, self.token):
                return "not claimed"
            outcome = self._reconcile_one(self.ledger.get(row.id), now, resend_now=False, wait=False)
            report.reconciled.append(outcome)
            return "done" if outcome.outcome == "published" else "reconciled"
        if now > deadline:
            reason = (
                f"missed its window: due {_utc_minute(row.due_at)} UTC, not out by {_utc_minute(deadline)} UTC"
                f" ({why})"
            )
            self.ledger.mark_expired(row.id, reason, now)
            report.expired.append(row.id)
            self.log.emit("expired", id=row.id, account=row.account, reason=reason)
            return "done"
        missing = max(row.part_count - len(row.parts), 1)
        available = self.limiter.available_at(row.account, row.platform, missing, now)
        if available > now:
            report.deferred.append(row.id)
            self.log.emit("deferred", id=row.id, account=row.account, until=available, reason="rate limit")
            return "deferred"
        if not self.ledger.claim(row.id, now, self.token):
            return "not claimed"  # its account (or everything) was paused meanwhile, or it is taken
        if self.stopping.is_set():
            self.ledger.release(row.id, now, token=self.token)
            report.released.append(row.id)
            return "stopped"
        try:
            publisher = self._publisher(row.account)
            result = publisher.publish(post, resume=part_results(row.parts) or None)
        except PublishError as exc:
            return self._failed_attempt(row, exc, report)
        except CredentialsError as exc:  # a missing secret, a refused login
            return self._failed_attempt(row, exc, report)
        except AmplifierError as exc:  # the state folder, the ledger...: try again later
            return self._failed_attempt(row, exc, report)
        except Exception as exc:  # a bug: the request may have gone out; ask the platform at once
            self.log.emit("error", id=row.id, account=row.account, reason=f"{type(exc).__name__}: {exc}")
            report.reconciled.append(self._reconcile_one(self.ledger.get(row.id), self.clock()))
            return "error"
        self._after_request()
        self._published(row, result, report)
        return "done"

    def _after_request(self) -> None:
        if self._crash_after is None:
            return
        with self._count_lock:
            self._published_requests += 1
            if self._published_requests >= self._crash_after:
                os._exit(137)  # test hook: die between the request and the ledger write

    def _published(self, row: Row, result: PublishResult, report: TickReport) -> None:
        now = self.clock()
        fresh = sum(1 for part in result.parts if not part.existed and part.index not in row.parts)
        self.limiter.record(row.account, row.platform, fresh, now)
        self.ledger.mark_published(row.id, [part.to_json() for part in result.parts], now, token=self.token)
        report.published.append(row.id)
        late = now - row.due_at
        self.log.emit(
            "posted",
            id=row.id,
            account=row.account,
            url=result.url or (result.parts[0].uri if result.parts else None),
            parts=len(result.parts),
            late=f"{late.total_seconds():.0f}s" if late > timedelta(seconds=60) else None,
            dry_run=True if result.dry_run else None,
            already_published=True if result.already_published else None,
        )

    def _record_done(self, row: Row, exc: AmplifierError) -> None:
        done = getattr(exc, "done", None) or {}
        now = self.clock()
        for index, part in sorted(done.items()):
            if index in row.parts:
                continue
            try:
                self.ledger.record_part(row.id, index, part.to_json(), now, token=self.token)
            except LedgerError as error:
                self.log.emit("error", id=row.id, account=row.account, reason=str(error))
        fresh = sum(1 for index, part in done.items() if index not in row.parts and not part.existed)
        if fresh:
            self.limiter.record(row.account, row.platform, fresh, now)

    def _failed_attempt(self, row: Row, exc: AmplifierError, report: TickReport) -> str:
        from amplifier.publish.mastodon import StatusOutcomeUnknown
        from amplifier.publish.sessions import LoginRefusedError

        self._record_done(row, exc)
        now = self.clock()
        reason = str(exc)
        attempt = row.attempts + 1
        if isinstance(exc, AuthError | CredentialsError) and not isinstance(exc, LoginRefusedError):
            self.ledger.release(row.id, now, token=self.token)
            self.ledger.pause_account(row.account, reason, now)
            report.released.append(row.id)
            self.log.emit("paused", account=row.account, reason=reason)
            return "paused"
        if isinstance(exc, PermanentError):
            return self._fail(row, reason, report)
        if isinstance(exc, StatusOutcomeUnknown) or needs_search(row):
            return self._unknown(row, exc, attempt, report)
        if isinstance(exc, RateLimitedError | LoginRefusedError):
            reset = exc.reset_at if isinstance(exc, RateLimitedError) else exc.retry_at
            retry_at = (
                reset if reset is not None and reset > now else now + self.settings.backoff(attempt, self.rng)
            )
            self.limiter.block(row.account, retry_at)
            if attempt >= self.settings.rate_limited_max_attempts:
                return self._fail(row, reason, report)
        else:
            if attempt >= self.settings.max_attempts:
                return self._fail(row, f"{reason} (gave up after {attempt} attempts)", report)
            retry_at = now + self.settings.backoff(attempt, self.rng)
        # A retry past the post's window stays planned: the pass at retry_at records it as expired.
        self.ledger.schedule_retry(row.id, reason, retry_at, now, token=self.token)
        report.retried.append(row.id)
        self.log.emit("retry", id=row.id, account=row.account, attempt=attempt, at=retry_at, reason=reason)
        return "retry"

    def _unknown(self, row: Row, exc: AmplifierError, attempt: int, report: TickReport) -> str:
        """The attempt may have created the post: keep it claimed until reconciliation, at the next check
        (the reset time of a 429, else the backoff, which also gives a slow server time to finish)."""
        now = self.clock()
        check_at = now + self.settings.backoff(attempt, self.rng)
        if isinstance(exc, RateLimitedError) and exc.reset_at is not None and exc.reset_at > now:
            check_at = exc.reset_at
            self.limiter.block(row.account, check_at)
        self.ledger.mark_unknown(row.id, str(exc), now, check_at=check_at, token=self.token)
        report.unknown.append(row.id)
        self.log.emit(
            "unknown", id=row.id, account=row.account, attempt=attempt, check=check_at, reason=str(exc)
        )
        return "unknown"

    def _fail(self, row: Row, reason: str, report: TickReport) -> str:
        self.ledger.mark_failed(row.id, reason, self.clock(), token=self.token)
        report.failed.append(row.id)
        self.failures += 1
        self.log.emit("failed", id=row.id, account=row.account, reason=reason)
        return "done"

    def _publisher(self, account: str) -> Publisher:
        with self._publishers_lock:
            publisher = self._publishers.get(account)
            if publisher is None:
                publisher = self.publisher_factory(account, self.campaign.account(account))
                self._publishers[account] = publisher
            return publisher

    # ----------------------------------------------------------------------------------------- reload

    def _snapshot_files(self) -> dict[Path, tuple[int, int] | None]:
        campaign = self.campaign
        paths = set(campaign.files) | {campaign.schedule_path}
        for pattern in campaign.schedule.messages:
            paths.update(campaign.root.glob(pattern))
        snapshot: dict[Path, tuple[int, int] | None] = {}
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                snapshot[path] = None
            else:
                snapshot[path] = (stat.st_mtime_ns, stat.st_size)
        return snapshot

    def reload(self, now: datetime) -> bool:
        """Load the campaign again: a valid one is planned (True); an invalid one is logged, the last valid
        campaign stays (False)."""
        try:
            campaign = self.loader(self.campaign.schedule_path)
            old_accounts = dict(self.campaign.schedule.accounts)
            report = self.plan(now, campaign)
        except CampaignError as exc:
            for problem in exc.problems:
                self.log.emit("reload invalid", problem=str(problem))
            self.log.emit(
                "reload invalid", problems=len(exc.problems), action="keeping the last valid campaign"
            )
            return False
        except AmplifierError as exc:
            self.log.emit("reload invalid", problem=str(exc), action="keeping the last valid campaign")
            return False
        with self._publishers_lock:
            stale = [
                account
                for account in self._publishers
                if campaign.schedule.accounts.get(account) != old_accounts.get(account)
            ]
            closing = [self._publishers.pop(account) for account in stale]
        for publisher in closing:
            publisher.close()
        self.log.emit(
            "reload ok",
            new=len(report.inserted),
            changed=len(report.updated),
            cancelled=len(report.cancelled),
            revived=len(report.revived),
        )
        return True

    def watch(self, now: datetime) -> bool:
        """Check the campaign files and the pause switches; True when the next wake must be recomputed."""
        changed = False
        snapshot = self._snapshot_files()
        if snapshot != self._files:
            self.reload(now)
            # The files as they were before the load read them (a write during the load differs from them
            # and is loaded at the next look); stats taken now only for files the new campaign added.
            after = self._snapshot_files()
            self._files = {path: snapshot.get(path, stat) for path, stat in after.items()}
            changed = True
        paused = self.paused()
        accounts = self.ledger.paused_accounts()
        state = (paused, tuple(sorted(accounts.items())))
        if state != self._pause_state:
            was_paused, were_paused = self._pause_state or (None, ())
            if paused != was_paused:
                if paused is None:
                    self.log.emit("resumed")
                else:
                    self.log.emit("paused", reason=paused)
            for account, reason in state[1]:
                if (account, reason) not in were_paused:
                    self.log.emit("paused", account=account, reason=reason)
            for account, _reason in were_paused:
                if account not in accounts:
                    self.log.emit("resumed", account=account)
            self._pause_state = state
            changed = True
        return changed

    # ----------------------------------------------------------------------------------------- heartbeat

    def heartbeat(self, now: datetime) -> None:
        """Write ``heartbeat.json`` in the state folder (atomically): the daemon is alive at ``now``."""
        if self.state_dir is None:
            return
        from amplifier.publish.sessions import StateDir, StateError

        wake = self.next_wake(now)
        data = {
            "version": 1,
            "pid": os.getpid(),
            "at": now.astimezone(UTC).isoformat(),
            "written_at": utcnow().isoformat(),
            "next_wake": wake.isoformat() if wake else None,
            "campaign": self.campaign.name,
        }
        try:
            StateDir(self.state_dir).write_json("", HEARTBEAT_NAME, data)
        except StateError as exc:
            self.log.emit("error", reason=str(exc))


def _seconds(environ: Mapping[str, str], name: str) -> float | None:
    value = environ.get(name, "").strip()
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


def settings_from_environ(environ: Mapping[str, str]) -> DaemonSettings:
    """The default settings, changed by the test hooks ``AMPLIFIER_TEST_BACKOFF`` / ``_WATCH`` (see above)."""
    changes: dict[str, Any] = {}
    backoff = _seconds(environ, "AMPLIFIER_TEST_BACKOFF")
    if backoff is not None:
        changes["backoff_base"] = changes["backoff_max"] = timedelta(seconds=backoff)
    watch = _seconds(environ, "AMPLIFIER_TEST_WATCH")
    if watch is not None:
        changes["watch_interval"] = watch
    return DaemonSettings(**changes)


def request_timeout_from_environ(environ: Mapping[str, str]) -> float | None:
    return _seconds(environ, "AMPLIFIER_TEST_REQUEST_TIMEOUT")


def _crash_after(environ: Mapping[str, str]) -> int | None:
    value = environ.get(CRASH_ENV, "").strip()
    if not value:
        return None
    try:
        count = int(value)
    except ValueError:
        return None
    return count if count > 0 else None


# --------------------------------------------------------------------------------------------- running


def run_once(daemon: Daemon, now: datetime) -> TickReport:
    """Start-up (reconcile, plan), then one pass at ``now``: everything due is handled, then return."""
    report = daemon.start(now)
    report.merge(daemon.tick(now))
    daemon.heartbeat(now)
    return report


def serve(daemon: Daemon, stop: threading.Event, *, on_ready: Callable[[], None] | None = None) -> None:
    """Run until ``stop`` is set: APScheduler wakes the daemon at the next due instant (see the module
    docstring). On stop: no new claims, in-flight posts get ``shutdown_timeout`` seconds to finish."""
    import logging

    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger

    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    settings = daemon.settings
    lock = threading.Lock()
    scheduler = BackgroundScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    )

    def guarded(job: Callable[[], bool]) -> Callable[[], None]:
        """Run ``job`` under the lock; re-arm the batch when it says the next wake may have moved."""

        def run() -> None:
            if stop.is_set():
                return
            with lock:
                if stop.is_set():
                    return
                try:
                    moved = job()
                except AmplifierError as exc:
                    daemon.log.emit("error", reason=str(exc))
                    moved = True
                except Exception as exc:  # keep running: one bad pass must not end the daemon
                    daemon.log.emit("error", reason=f"{type(exc).__name__}: {exc}")
                    moved = True
                if moved:
                    arm()

        return run

    def arm() -> None:
        now = daemon.clock()
        wake = daemon.next_wake(now)
        if wake is None:
            if scheduler.get_job("batch") is not None:
                scheduler.remove_job("batch")
            return
        delay = max((wake - now).total_seconds(), 0.0)
        run_date = utcnow() + timedelta(seconds=delay)
        scheduler.add_job(batch, DateTrigger(run_date), id="batch", replace_existing=True)

    def tick() -> bool:
        daemon.tick(daemon.clock())
        daemon.heartbeat(daemon.clock())
        return True

    def watch() -> bool:  # every couple of seconds: re-arm only on a reload or a pause change
        return daemon.watch(daemon.clock())

    def replan() -> bool:
        daemon.plan(daemon.clock())
        return True

    def beat() -> None:
        daemon.heartbeat(daemon.clock())

    batch = guarded(tick)
    scheduler.add_job(guarded(watch), "interval", seconds=settings.watch_interval, id="watch")
    scheduler.add_job(
        guarded(replan), "interval", seconds=settings.replan_interval.total_seconds(), id="replan"
    )
    scheduler.add_job(beat, "interval", seconds=settings.heartbeat_interval, id="heartbeat")
    with lock:
        daemon.watch(daemon.clock())
        scheduler.start()
        arm()
    daemon.heartbeat(daemon.clock())
    daemon.log.emit("started", pid=os.getpid(), campaign=daemon.campaign.name)
    if on_ready is not None:
        on_ready()
    while not stop.wait(3600):
        pass
    daemon.stop()
    daemon.log.emit("stopping", reason="signal")
    acquired = lock.acquire(timeout=settings.shutdown_timeout)
    scheduler.shutdown(wait=False)
    if acquired:
        lock.release()
    else:
        daemon.log.emit("stopping", reason=f"posts still in flight after {settings.shutdown_timeout:.0f}s")
    leftover = [row for row in daemon.ledger.claimed() if row.claim_token == daemon.token]
    daemon.log.emit("stopped", in_flight=len(leftover) or None)
    if not acquired:
        sys.stderr.flush()
        os._exit(0)  # threads still blocked in a request: their posts are reconciled at the next start
