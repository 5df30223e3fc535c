"""Follow-up writes on published posts: boosts / reposts, pins, deletions (issue 13), carried like a post.

* **Planned once.** When a post is published, its follow-ups (:attr:`PlannedPost.followups`: the boosts
  ``delay`` after publishing, the pin at once, the unpin and a ``delete_after`` deletion at their times) become
  jobs in the ledger (:func:`jobs_for`, :meth:`Ledger.plan_followups`): one per post, kind and account, so
  planning them again (:func:`catch_up` after a crash between the two ledger writes) adds nothing.
* **Found by one indexed query** (:meth:`Ledger.followups_due`), run in each daemon pass after the posts.
* **Exactly once, through the one delivery path.** :meth:`FollowupRunner.run` carries the job as a
  :class:`JobWrite` through :class:`~amplifier.delivery.write.Writer`, like a post: claimed (committed before
  the request, with a lease), written through the account's publisher (:mod:`amplifier.publish.followups`: every
  write is safe to repeat), the outcome recorded. A job whose claim's holder died (its lease ran out) is taken
  over as *unknown*: the server is read first (``is_done``) and the write made only when it is not there.
* **Within budgets, posts first.** No job for an account that has a post due, is paused, or is blocked by a
  server's 429 reset; each write counts in the account's rate budget (the posts' limiter); Mastodon deletes also
  in :data:`DELETE_BUDGETS` (30 per 30 minutes per account). Errors are classified as a post's
  (:func:`~amplifier.delivery.outcomes.classify`, under :data:`RETRIES`): a 429 (or a refused login) blocks the
  account until its reset and is no attempt; another transient fault backs off (1 min doubling to 1 h) and
  fails after :data:`MAX_ATTEMPTS`; an unknown outcome backs off the same way and, like a post's, is never
  recorded failed while the write may be there; rejected or missing credentials back off too (never failed).
* **Retraction.** A ``delete`` job first plans the rest of the retraction (:meth:`Ledger.retract`: pending
  boosts and pins skipped, boosts and pin made undone), then deletes every part. ``amplifier retract`` plans
  the same jobs (:func:`amplifier.delivery.retract.retract`) and runs them at once (:meth:`FollowupRunner.run_jobs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from amplifier.delivery.ledger import Ledger, LedgerError, Row, State, UnknownPost
from amplifier.delivery.ledger.followups import FollowupClaimLost, FollowupJob, FollowupState
from amplifier.delivery.outcomes import Attempt, Failure, Outcome, Retries
from amplifier.delivery.ratelimit import Budget, RateLimiter, Window
from amplifier.delivery.write import Writer
from amplifier.errors import AmplifierError, UsageError
from amplifier.plan.post import PlannedPost
from amplifier.publish.base import OutcomeUnknownError, PermanentError
from amplifier.publish.followups import Target, WriteOutcome, WritesFollowups

DELETE_BUDGETS: Mapping[str, Budget] = {"mastodon": Budget((Window(30, timedelta(minutes=30)),))}
LEASE = timedelta(minutes=5)
BACKOFF_MIN = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
MAX_ATTEMPTS = 8
JOBS_PER_PASS = 100
ROUNDS = 3  # queries of the due jobs in one pass (a deletion's undoing of boosts comes due in it)
DELETE_AFTER = "delete_after"  # the ``by`` of a deletion the campaign's delete_after asked for


def backoff(attempt: int) -> timedelta:
    """The wait after ``attempt`` failed attempts of a job: 1 minute, doubling, at most an hour."""
    return min(BACKOFF_MIN * (1 << min(max(attempt - 1, 0), 10)), BACKOFF_MAX)


RETRIES = Retries(backoff=backoff, max_attempts=MAX_ATTEMPTS)
"""What follows a failed follow-up write (:func:`~amplifier.delivery.outcomes.classify`): the backoff, failed
after :data:`MAX_ATTEMPTS` faults; a 429 is no attempt; rejected credentials are released (tried again after
the backoff) unless ``pause_account``."""

PublisherOf = Callable[[str], object]
Emit = Callable[..., None]


def find(ledger: Ledger, post_id: str) -> Row | None:
    try:
        return ledger.get(post_id)
    except UnknownPost:
        return None


def jobs_for(post: PlannedPost, published_at: datetime) -> list[FollowupJob]:
    """The follow-up jobs of ``post``, published at ``published_at``."""
    jobs = []
    for followup in post.followups:
        due = followup.at if followup.at is not None else published_at + followup.delay
        delete = followup.kind == "delete"
        jobs.append(
            FollowupJob(
                post_id=post.id,
                kind=followup.kind,
                account=followup.account,
                platform=post.platform,
                due_at=max(due, published_at) if followup.kind in ("boost", "pin") else due,
                by=DELETE_AFTER if delete else None,
                reason="the campaign's delete_after" if delete else None,
            )
        )
    return jobs


def plan_after_publish(ledger: Ledger, post: PlannedPost, published_at: datetime, emit: Emit) -> None:
    """Plan ``post``'s follow-ups now that it is published; a ledger error is reported, never raised (the re-plan's
    :func:`catch_up` plans them later)."""
    try:
        ledger.plan_followups(jobs_for(post, published_at))
    except (AmplifierError, LedgerError) as exc:
        emit("error", id=post.id, account=post.account, reason=f"its follow-ups were not planned: {exc}")


def catch_up(ledger: Ledger, posts: Iterable[PlannedPost], now: datetime) -> int:
    """Plan the follow-ups of published posts that have none recorded (a crash between recording the post and
    its follow-ups); how many jobs were added. Only posts whose time has come are looked up."""
    wanted = [post for post in posts if post.followups and post.at <= now]
    if not wanted:
        return 0
    have = {job.post_id for job in ledger.followups([post.id for post in wanted])}
    jobs: list[FollowupJob] = []
    for post in wanted:
        if post.id in have:
            continue
        row = find(ledger, post.id)
        if row is not None and row.state is State.PUBLISHED and row.published_at is not None:
            jobs.extend(jobs_for(post, row.published_at))
    return ledger.plan_followups(jobs) if jobs else 0


def target_of(row: Row, servers: Mapping[str, str]) -> Target:
    if not row.result:
        raise PermanentError(f"{row.id}: the ledger has no platform id for its parts")
    return Target.from_result(
        row.id, row.account, [dict(part) for part in row.result], servers.get(row.account)
    )


@dataclass
class FollowupReport:
    """What one pass (or one retraction) did, as ``"POST kind by ACCOUNT"`` texts."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # budget, posts first, a wait; still planned
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"done": self.done, "failed": self.failed, "deferred": self.deferred, "skipped": self.skipped}


#: How a node of several holds the jobs of a pass (see :meth:`FollowupRunner.run_due`): given the ready jobs, the
#: moment and the pass's report, the context in which those of them it holds run.
Hold = Callable[[list[FollowupJob], datetime, FollowupReport], AbstractContextManager[Sequence[FollowupJob]]]


class FollowupRunner:
    """Runs follow-up jobs (see the module docstring). ``servers``: account -> its Mastodon instance's base URL
    (a booster on another instance finds the status by its URL)."""

    def __init__(
        self,
        ledger: Ledger,
        publisher_of: PublisherOf,
        limiter: RateLimiter,
        *,
        token: str,
        servers: Mapping[str, str] | None = None,
        emit: Emit | None = None,
        lease: timedelta = LEASE,
        after_request: Callable[[FollowupJob], None] = lambda job: None,
        retries: Retries = RETRIES,
    ) -> None:
        self.ledger = ledger
        self.publisher_of = publisher_of
        self.limiter = limiter
        self.deletes = RateLimiter(DELETE_BUDGETS)
        self.token = token
        self.servers = dict(servers or {})
        self.emit: Emit = emit or (lambda event, **fields: None)
        self.lease = lease
        self.after_request = after_request
        self.retries = retries
        self._seeded = False

    # ------------------------------------------------------------------ which

    def run_due(
        self, now: datetime, *, limit: int = JOBS_PER_PASS, hold: Hold | None = None
    ) -> FollowupReport:
        """Run the jobs due at ``now`` for which there is budget; never for an account with a post due. A
        deletion plans the undoing of its boosts and pin (:meth:`Ledger.retract`): they run in the same pass.

        ``hold(ready, now, report)``: a node of several, which runs only the jobs it holds; it gives, for the time
        of running them, those of the ``ready`` jobs that are its own (the others stay planned, not deferred)."""
        report = FollowupReport()
        seen: set[tuple[str, str, str]] = set()
        busy: set[str] | None = None
        paused: set[str] = set()
        for _ in range(ROUNDS):
            jobs = [job for job in self.ledger.followups_due(now, limit=limit) if job.key not in seen]
            if not jobs:
                break
            if busy is None:
                busy = {row.account for row in self.ledger.due(now, limit=1000)}
                paused = set(self.ledger.paused_accounts())
            seen.update(job.key for job in jobs)
            waiting = busy | paused
            ready = [job for job in jobs if job.account not in waiting]
            held = hold(ready, now, report) if hold is not None else nullcontext(ready)
            with held as mine:
                chosen = {job.key for job in mine}
                for job in jobs:
                    if job.account in waiting:
                        report.deferred.append(job.key_text)
                    elif job.key not in chosen:
                        continue  # another node's, or past a budget held across nodes: it stays planned
                    elif self._held_back(job, now):
                        report.deferred.append(job.key_text)
                    else:
                        self.run(job, now, report)
            if not any(job.kind == "delete" for job in jobs):
                break
        return report

    def run_jobs(self, jobs: Sequence[FollowupJob], now: datetime) -> FollowupReport:
        """Run ``jobs`` now (``amplifier retract``), within the rate budgets and a server's reset: what they hold
        back stays planned for the daemon."""
        report = FollowupReport()
        for job in jobs:
            if self._held_back(job, now):
                report.deferred.append(job.key_text)
                continue
            self.run(job, now, report)
        return report

    def _seed_deletes(self, now: datetime) -> None:
        """The Mastodon deletes of the last window, from the ledger (another process may have made them)."""
        if self._seeded:
            return
        self._seeded = True
        span = max(window.span for budget in DELETE_BUDGETS.values() for window in budget.windows)
        for job in self.ledger.followups_done_since("delete", now - span):
            if job.platform in DELETE_BUDGETS and job.updated_at is not None:
                count = int((job.result or {}).get("deleted", 1))
                self.deletes.record(job.account, job.platform, count, job.updated_at)

    def _held_back(self, job: FollowupJob, now: datetime) -> bool:
        if self.limiter.blocked_until(job.account, now) is not None:
            return True
        if self.limiter.available_at(job.account, job.platform, 1, now) > now:
            return True
        if job.kind == "delete" and job.platform in DELETE_BUDGETS:
            self._seed_deletes(now)
            parts = self._parts(job)
            return self.deletes.available_at(job.account, job.platform, parts, now) > now
        return False

    def _parts(self, job: FollowupJob) -> int:
        row = find(self.ledger, job.post_id)
        return row.part_count if row is not None else 1

    # ------------------------------------------------------------------ one job

    def run(self, job: FollowupJob, now: datetime, report: FollowupReport | None = None) -> str:
        """Claim ``job`` and carry it through the delivery path (:class:`JobWrite`); its outcome: done, failed,
        skipped, retry, unknown, waiting or lost (not claimable)."""
        report = report if report is not None else FollowupReport()
        writer = Writer(self.retries, clock=lambda: now, limiter=self.limiter)
        try:
            return writer.carry(JobWrite(self, job, now, report))
        except FollowupClaimLost:
            self.emit("followup-lost", id=job.post_id, kind=job.kind, account=job.account)
            return "lost"

    def writes_of(self, account: str) -> Any:
        """The account's follow-up writer (:class:`PermanentError` when the account or its publisher has none)."""
        try:
            publisher = self.publisher_of(account)
        except KeyError:
            raise PermanentError(f"{account} is not an account of the campaign any more") from None
        except UsageError as exc:  # the same, said by the caller's publisher_of
            raise PermanentError(str(exc)) from None
        if not isinstance(publisher, WritesFollowups):
            raise PermanentError(f"{account}: this publisher makes no follow-up writes")
        return publisher.followups()


@dataclass
class JobWrite:
    """A follow-up job as a :class:`~amplifier.delivery.write.Write` of ``runner``: claimed with a lease; a job
    whose outcome is unknown is looked for on the server first (``is_done``); a deletion first plans the rest of
    the retraction. What its records look like: the job finished (done, failed, skipped) or released to a later
    time (a wait, a retry, an unknown outcome), and the report of the pass."""

    runner: FollowupRunner
    job: FollowupJob
    now: datetime
    report: FollowupReport
    row: Row | None = None
    _prepared: tuple[Any, Target] | None = None

    def attempt(self) -> Attempt:
        job = self.job
        return Attempt(job.account, job.attempts + 1, job.unknown, (OutcomeUnknownError,), job.next_at)

    def begin(self, now: datetime) -> str | None:
        claimed = self.runner.ledger.claim_followup(
            self.job.key, self.runner.token, now, now + self.runner.lease
        )
        if claimed is None:
            return "lost"
        self.job = claimed
        row = self.row = find(self.runner.ledger, claimed.post_id)
        if row is not None and row.state in (State.PLANNED, State.CLAIMED):  # its outcome is being recorded
            return self._release(now + BACKOFF_MIN, "the post is not published yet", attempt=False)
        if row is None or row.state is not State.PUBLISHED:
            state = "not in the ledger" if row is None else row.state.value
            return self._finish("skipped", f"the post is {state}, not published")
        return None

    def _prepare(self) -> tuple[Any, Target]:
        """The account's writer and the post's target; a deletion plans the rest of its retraction first."""
        if self._prepared is None:
            job, ledger = self.job, self.runner.ledger
            writer = self.runner.writes_of(job.account)
            target = target_of(self.row or ledger.get(job.post_id), self.runner.servers)
            if job.kind == "delete":
                ledger.retract(job.post_id, by=job.by or DELETE_AFTER, reason=job.reason or "", now=self.now)
            self._prepared = (writer, target)
        return self._prepared

    def done_before(self) -> bool:
        writer, target = self._prepare()
        return bool(writer.is_done(self.job.kind, target, self.job.due_at))

    def request(self) -> WriteOutcome:
        writer, target = self._prepare()
        outcome: WriteOutcome = writer.write(self.job.kind, target, self.job.due_at)
        return outcome

    def found(self) -> str:
        return self._finish("done", "found done on the server")

    def done(self, answer: WriteOutcome) -> str:
        job, runner = self.job, self.runner
        runner.after_request(job)
        runner.limiter.record(job.account, job.platform, 1, self.now)
        if job.kind == "delete" and job.platform in DELETE_BUDGETS:
            runner.deletes.record(job.account, job.platform, len(self._prepare()[1].parts), self.now)
        return self._finish("done", answer.detail, answer.record)

    def failed(self, failure: Failure) -> str:
        if failure.outcome is Outcome.FAILED:
            return self._finish("failed", failure.reason)
        if failure.outcome is Outcome.PAUSED:  # rejected credentials: an operator resumes the account
            self.runner.ledger.pause_account(self.job.account, failure.reason, self.now)
            self.runner.emit("paused", account=self.job.account, reason=failure.reason)
        # credentials (released, fixed by an operator: meanwhile tried again less and less often), a retry, an
        # unknown outcome (looked for on the server before writing again)
        unknown = failure.outcome is Outcome.UNKNOWN or self.job.unknown
        self._release(failure.at, failure.reason, attempt=failure.counts, unknown=unknown)
        if not failure.counts:
            return "waiting"
        return "unknown" if unknown else "retry"

    def _finish(self, state: FollowupState, reason: str, result: dict[str, Any] | None = None) -> str:
        job, report = self.job, self.report
        self.runner.ledger.finish_followup(job.key, self.runner.token, state, reason, self.now, result)
        text = job.key_text if state == "done" else f"{job.key_text}: {reason}"
        {"done": report.done, "failed": report.failed, "skipped": report.skipped}[state].append(text)
        self.runner.emit(
            f"followup-{state}", id=job.post_id, kind=job.kind, account=job.account, reason=reason
        )
        return state

    def _release(
        self, until: datetime, reason: str, *, attempt: bool = True, unknown: bool | None = None
    ) -> str:
        job = self.job
        self.runner.ledger.release_followup(
            job.key,
            self.runner.token,
            self.now,
            next_at=until,
            detail=reason,
            unknown=job.unknown if unknown is None else unknown,
            attempt=attempt,
        )
        self.report.deferred.append(job.key_text)
        self.runner.emit(
            "followup-retry", id=job.post_id, kind=job.kind, account=job.account, until=until, reason=reason
        )
        return "waiting"
