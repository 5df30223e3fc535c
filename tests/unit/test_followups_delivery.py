"""The follow-up runner (delivery/followups.py) over a real SQLite ledger, with an in-process writer standing in
for the platform (the HTTP side is tested against the servers in tests/integration/test_publish_followups.py):
jobs planned once when a post is published, run exactly once, an unknown outcome checked on the server before
writing again, posts first, 429 resets and the Mastodon delete budget respected, retractions planned."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amplifier.delivery.followups import FollowupRunner, catch_up, jobs_for
from amplifier.delivery.ledger import Ledger, PlanEntry, SqliteLedger, open_ledger
from amplifier.delivery.ledger.followups import FollowupJob
from amplifier.delivery.ratelimit import RateLimiter
from amplifier.delivery.retract import retract
from amplifier.plan.post import Followup, Part, PlannedPost
from amplifier.publish.base import OutcomeUnknownError, PermanentError, RateLimitedError
from amplifier.publish.followups import Target, WriteOutcome
from tests.unit.test_daemon_cli import DAY1
from tests.unit.test_daemon_cli import campaign as campaign  # the fixture

T0 = datetime(2027, 11, 1, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


class Writer:
    def __init__(self, account: str, log: list[tuple[str, str, str]], errors: list[Exception]) -> None:
        self.account = account
        self.log = log
        self.errors = errors
        self.done: set[tuple[str, str]] = set()

    def write(self, kind: str, target: Target, when: datetime) -> WriteOutcome:
        self.log.append((kind, self.account, target.post_id))
        self.done.add((kind, target.post_id))
        if self.errors:
            raise self.errors.pop(0)
        return WriteOutcome(f"{kind} made", {"by": self.account})

    def is_done(self, kind: str, target: Target, when: datetime) -> bool:
        self.log.append((f"check {kind}", self.account, target.post_id))
        return (kind, target.post_id) in self.done


class Publisher:
    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def followups(self) -> Writer:
        return self.writer


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with SqliteLedger.open(tmp_path / "ledger.sqlite3", T0) as opened:
        yield opened


class World:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.log: list[tuple[str, str, str]] = []
        self.errors: list[Exception] = []
        self.writers: dict[str, Writer] = {}
        self.limiter = RateLimiter()
        self.runner = FollowupRunner(ledger, self.publisher, self.limiter, token="daemon-1")

    def publisher(self, account: str) -> Publisher:
        if account not in self.writers:
            self.writers[account] = Writer(account, self.log, self.errors)
        return Publisher(self.writers[account])

    def publish(
        self,
        post_id: str,
        account: str = "masto-en",
        platform: str = "mastodon",
        parts: int = 1,
        due: datetime = T0,
    ) -> None:
        self.ledger.sync_plan(
            [PlanEntry(post_id, account, platform, "r", due, "h", parts)], due, start=due - MIN, end=due + MIN
        )
        assert self.ledger.claim(post_id, due, "t")
        result = [
            {"index": i, "id": f"{post_id}-{i}", "url": f"https://x/{post_id}/{i}"} for i in range(parts)
        ]
        self.ledger.mark_published(post_id, result, due, token="t")


def post(post_id: str, *followups: Followup, platform: str = "mastodon") -> PlannedPost:
    part = Part("text", 4, 500, {"status": "text"})
    return PlannedPost(post_id, T0, "r", "masto-en", platform, "en", (part,), "m", 0, followups=followups)  # type: ignore[arg-type]


def test_jobs_for_counts_boosts_from_publishing_and_the_rest_from_their_time() -> None:
    late = T0 + 30 * MIN
    jobs = jobs_for(
        post(
            "p",
            Followup("boost", "masto-de", delay=10 * MIN),
            Followup("pin", "masto-en"),
            Followup("unpin", "masto-en", at=T0 + 600 * MIN),
            Followup("delete", "masto-en", at=T0 + 1440 * MIN),
        ),
        late,
    )
    assert [(j.kind, j.account, j.due_at) for j in jobs] == [
        ("boost", "masto-de", late + 10 * MIN),
        ("pin", "masto-en", late),
        ("unpin", "masto-en", T0 + 600 * MIN),
        ("delete", "masto-en", T0 + 1440 * MIN),
    ]
    assert (jobs[3].by, jobs[1].by) == ("delete_after", None)


def test_a_boost_runs_once_when_due(ledger: Ledger) -> None:
    world = World(ledger)
    world.publish("p")
    ledger.plan_followups(jobs_for(post("p", Followup("boost", "masto-de", delay=10 * MIN)), T0))
    assert world.runner.run_due(T0 + 5 * MIN).done == []
    report = world.runner.run_due(T0 + 10 * MIN)
    assert report.done == ["p boost by masto-de"]
    assert world.runner.run_due(T0 + 20 * MIN).done == []
    assert world.log == [("boost", "masto-de", "p")]
    (done,) = ledger.followups(["p"])
    assert (done.state, done.detail, done.result) == ("done", "boost made", {"by": "masto-de"})


def test_an_unknown_outcome_is_checked_on_the_server_before_writing_again(ledger: Ledger) -> None:
    world = World(ledger)
    world.publish("p")
    ledger.plan_followups([FollowupJob("p", "boost", "masto-de", "mastodon", T0)])
    world.errors.append(OutcomeUnknownError("the answer was lost"))
    report = world.runner.run_due(T0)
    assert report.deferred == ["p boost by masto-de"]
    (waiting,) = ledger.followups(["p"])
    assert (waiting.state, waiting.unknown, waiting.attempts) == ("planned", True, 1)
    assert world.runner.run_due(T0 + timedelta(seconds=30)).done == []  # backoff: not before 1 min
    report = world.runner.run_due(T0 + 2 * MIN)
    assert report.done == ["p boost by masto-de"]
    assert world.log == [("boost", "masto-de", "p"), ("check boost", "masto-de", "p")]  # written once


def test_a_crashed_claim_is_taken_over_and_checked(ledger: Ledger) -> None:
    world = World(ledger)
    world.publish("p")
    ledger.plan_followups([FollowupJob("p", "pin", "masto-en", "mastodon", T0)])
    assert ledger.claim_followup(("p", "pin", "masto-en"), "crashed", T0, T0 + 5 * MIN)
    assert world.runner.run_due(T0 + MIN).done == []  # its lease runs
    world.publisher("masto-en").writer.done.add(("pin", "p"))  # the crashed one had pinned it
    assert world.runner.run_due(T0 + 6 * MIN).done == ["p pin by masto-en"]
    assert world.log == [("check pin", "masto-en", "p")]
    assert ledger.followups(["p"])[0].detail == "found done on the server"


def test_posts_first_429_waits_and_refusals_fail(ledger: Ledger) -> None:
    world = World(ledger)
    world.publish("p")
    ledger.sync_plan(
        [PlanEntry("q", "masto-de", "mastodon", "r", T0, "h", 1)], T0, start=T0 - MIN, end=T0 + MIN
    )  # masto-de has a post due: its boost waits
    ledger.plan_followups(
        [
            FollowupJob("p", "boost", "masto-de", "mastodon", T0),
            FollowupJob("p", "pin", "masto-en", "mastodon", T0),
        ]
    )
    world.errors.append(RateLimitedError("slow down", reset_at=T0 + 15 * MIN))
    report = world.runner.run_due(T0)
    assert report.deferred == ["p boost by masto-de", "p pin by masto-en"]
    assert world.limiter.blocked_until("masto-en", T0) == T0 + 15 * MIN
    pin = next(j for j in ledger.followups(["p"]) if j.kind == "pin")
    assert (pin.attempts, pin.next_at) == (0, T0 + 15 * MIN)  # a 429 is no attempt
    world.errors.append(PermanentError("the server refused it (HTTP 422): Validation failed"))
    assert ledger.claim("q", T0, "t")
    ledger.mark_published("q", [{"index": 0, "id": "9"}], T0, token="t")
    report = world.runner.run_due(T0 + 15 * MIN)
    assert report.failed == ["p boost by masto-de: the server refused it (HTTP 422): Validation failed"]
    assert report.done == ["p pin by masto-en"]


def test_mastodon_deletes_keep_to_30_per_30_minutes(ledger: Ledger) -> None:
    world = World(ledger)
    for n in range(31):
        world.publish(f"p{n:02d}")
    ledger.plan_followups([FollowupJob(f"p{n:02d}", "delete", "masto-en", "mastodon", T0) for n in range(31)])
    report = world.runner.run_due(T0 + MIN)
    assert len(report.done) == 30
    assert report.deferred == ["p30 delete by masto-en"]
    assert len(world.runner.run_due(T0 + 31 * MIN).done) == 1


def test_a_delete_retracts_first_and_a_post_not_yet_recorded_waits(ledger: Ledger) -> None:
    world = World(ledger)
    world.publish("p", account="sky-en", platform="bluesky")
    ledger.plan_followups(
        [
            FollowupJob("p", "boost", "sky-ku", "bluesky", T0 + 60 * MIN),
            FollowupJob(
                "p", "delete", "sky-en", "bluesky", T0 + 30 * MIN, by="delete_after", reason="delete_after"
            ),
        ]
    )
    assert world.runner.run_due(T0 + 30 * MIN).done == ["p delete by sky-en"]
    states = {j.kind: (j.state, j.detail) for j in ledger.followups(["p"])}
    assert states["boost"] == ("skipped", "retracted")
    assert ledger.retractions()["p"].by == "delete_after"

    ledger.sync_plan([PlanEntry("q", "sky-en", "bluesky", "r", T0, "h", 1)], T0, start=T0 - MIN, end=T0 + MIN)
    assert ledger.claim("q", T0, "daemon")  # being published: its outcome not recorded yet
    ledger.plan_followups([FollowupJob("q", "pin", "sky-en", "bluesky", T0)])
    assert world.runner.run_due(T0 + 31 * MIN).deferred == ["q pin by sky-en"]
    assert ledger.followups(["q"])[0].state == "planned"


def test_retract_plans_deletes_of_published_posts_and_refuses_the_rest(ledger: Ledger) -> None:
    world = World(ledger)
    world.publish("p", parts=2)
    ledger.sync_plan(
        [PlanEntry("q", "masto-en", "mastodon", "r", T0, "h", 1)], T0, start=T0 - MIN, end=T0 + MIN
    )
    dry = retract(ledger, ["p", "q", "nope"], by="ana", reason="moved", now=T0, dry_run=True)
    assert dry.posts == ("p",)
    assert [j.kind for j in dry.jobs] == ["delete"]
    assert dry.refused == ("q: it is planned, not published: nothing to delete", "nope: not in the ledger")
    assert ledger.followups(["p"]) == []  # a dry run changes nothing
    plan = retract(ledger, ["p"], by="ana", reason="moved", now=T0)
    assert [j.key for j in plan.jobs] == [("p", "delete", "masto-en")]
    for job in plan.jobs:
        world.runner.run(job, T0)
    assert world.log == [("delete", "masto-en", "p")]
    assert ledger.retractions()["p"].state == "done"


@pytest.mark.parametrize(
    ("author", "platform", "booster"), [("masto-en", "mastodon", "masto-de"), ("sky-en", "bluesky", "sky-ku")]
)
def test_a_dry_run_lists_the_jobs_the_retraction_then_runs(
    ledger: Ledger, author: str, platform: str, booster: str
) -> None:
    """The dry run listed an unboost and an unpin on Mastodon (which removes them with the status, so the real run
    plans none), and a delete again for a post already retracted (the real run does nothing)."""
    world = World(ledger)
    world.publish("p", account=author, platform=platform)
    ledger.plan_followups(
        [FollowupJob("p", "boost", booster, platform, T0), FollowupJob("p", "pin", author, platform, T0)]
    )
    assert len(world.runner.run_due(T0).done) == 2

    def keys(plan: Any) -> list[tuple[str, str]]:
        return sorted((job.kind, job.account) for job in plan.jobs)

    for _ in range(2):  # the first retraction, then again once it is done
        dry = retract(ledger, ["p"], by="ana", reason="moved", now=T0 + MIN, dry_run=True)
        real = retract(ledger, ["p"], by="ana", reason="moved", now=T0 + MIN)
        assert keys(dry) == keys(real)
        for job in real.jobs:
            world.runner.run(job, T0 + MIN)
    expected = [("delete", author)] + (
        [("unboost", booster), ("unpin", author)] if platform == "bluesky" else []
    )
    assert sorted((j.kind, j.account) for j in ledger.followups(["p"]) if j.state == "done") == sorted(
        [*expected, ("boost", booster), ("pin", author)]
    )
    again = retract(ledger, ["p"], by="ana", reason="moved", now=T0 + 2 * MIN, dry_run=True)
    assert again.posts == ("p",)
    assert again.jobs == ()


def test_catch_up_plans_what_a_crash_lost_once(ledger: Ledger) -> None:
    world = World(ledger)
    world.publish("p")
    posts = [post("p", Followup("boost", "masto-de")), post("later", Followup("boost", "masto-de"))]
    assert catch_up(ledger, posts, T0) == 1
    assert catch_up(ledger, posts, T0) == 0


def test_the_delete_budget_counts_what_another_process_deleted(ledger: Ledger) -> None:
    first = World(ledger)
    for n in range(31):
        first.publish(f"p{n:02d}")
    ledger.plan_followups([FollowupJob(f"p{n:02d}", "delete", "masto-en", "mastodon", T0) for n in range(31)])
    for n in range(30):  # as `amplifier retract` in another process did them, with the count of statuses
        key = (f"p{n:02d}", "delete", "masto-en")
        assert ledger.claim_followup(key, "retract", T0, T0 + MIN)
        ledger.finish_followup(key, "retract", "done", "deleted 1 status(es)", T0, {"deleted": 1})
    daemon = World(ledger)
    (last,) = ledger.followups_due(T0 + MIN)
    assert daemon.runner.run_jobs([last], T0 + MIN).deferred == ["p30 delete by masto-en"]
    assert daemon.runner.run_jobs([last], T0 + 31 * MIN).done == ["p30 delete by masto-en"]


def test_status_and_history_tables_show_a_retraction(
    run_cli: Callable[..., Any], campaign: list[str], tmp_path: Path
) -> None:
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    post_id = DAY1.format(account="masto")
    at = datetime(2027, 10, 29, 10, 30, tzinfo=UTC)
    with open_ledger(tmp_path / "state", at) as opened:
        (job,) = opened.retract(post_id, by="ana", reason="rally moved", now=at)
        assert opened.claim_followup(job.key, "t", at, at + MIN)
        opened.finish_followup(job.key, "t", "done", "deleted 1 status(es)", at)
    history = run_cli(
        *campaign, "history", "--now", "2027-10-29T11:00", "--from", "2027-10-29", "--to", "2027-10-30"
    )
    assert history.code == 0, history.err
    lines = history.out.splitlines()
    at = next(index for index, text in enumerate(lines) if "retracted" in text)
    assert "by ana at 2027-10-29" in lines[at + 1]  # under the post's id
    status = run_cli(*campaign, "status", "--now", "2027-10-29T11:00")
    assert "retracted (deleted on the platforms)" in status.out
    assert "rally moved" in status.out


def test_retracting_a_retracted_post_says_so(
    run_cli: Callable[..., Any], campaign: list[str], tmp_path: Path
) -> None:
    """It printed ``retracting ID`` and nothing else, as if a deletion were under way."""
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    post_id = DAY1.format(account="masto")
    at = datetime(2027, 10, 29, 10, 30, tzinfo=UTC)
    with open_ledger(tmp_path / "state", at) as opened:
        (job,) = opened.retract(post_id, by="ana", reason="rally moved", now=at)
        assert opened.claim_followup(job.key, "t", at, at + MIN)
        opened.finish_followup(job.key, "t", "done", "deleted 1 status(es)", at)
    for dry in ((), ("--dry-run",)):
        again = run_cli(*campaign, "retract", post_id, "--now", "2027-10-29T11:00", *dry)
        assert again.code == 0, again.err
        assert f"{post_id}: already retracted, nothing left to delete" in again.out


def test_retract_without_the_secret_says_why_and_leaves_the_delete_to_the_daemon(
    run_cli: Callable[..., Any], campaign: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the account's secret the delete failed for good; now it waits, and the line says why."""
    from amplifier.errors import CredentialsError
    from amplifier.publish import REGISTRY

    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0

    def no_secret(account: str, settings: Any, context: Any) -> Any:
        raise CredentialsError("the secret TEST_MASTO_TOKEN is not set")

    monkeypatch.setitem(REGISTRY, "mastodon", no_secret)
    post_id = DAY1.format(account="masto")
    result = run_cli(*campaign, "retract", post_id, "--now", "2027-10-29T11:00")
    assert result.code == 0, result.err
    assert (
        f"retracting {post_id}\n"
        "  delete by masto: waiting: the secret TEST_MASTO_TOKEN is not set (the daemon finishes it)\n"
        in result.out
    )


def test_the_health_check_reports_a_failed_deletion(
    run_cli: Callable[..., Any], campaign: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deletion refused by the server left the post up, and ``status --check`` said healthy."""
    monkeypatch.setenv("TEST_MASTO_TOKEN", "t0ken")
    monkeypatch.setenv("TEST_SKY_PASSWORD", "passw0rd")
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    post_id = DAY1.format(account="masto")
    at = datetime(2027, 10, 29, 10, 30, tzinfo=UTC)
    with open_ledger(tmp_path / "state", at) as opened:
        (job,) = opened.retract(post_id, by="ana", reason="rally moved", now=at)
        assert opened.claim_followup(job.key, "t", at, at + MIN)
        opened.finish_followup(job.key, "t", "failed", "HTTP 403: not allowed", at)
    check = run_cli(*campaign, "status", "--check", "--now", "2027-10-29T11:00", "--max-age", "999999999")
    assert check.code == 1, check.err
    assert (
        f"unhealthy: {post_id} delete by masto failed at 2027-10-29T10:30:00+00:00: HTTP 403: not allowed"
        in (check.err)
    )
    later = run_cli(*campaign, "status", "--check", "--now", "2027-10-29T20:00", "--max-age", "999999999")
    assert later.code == 0, later.err  # older than --failed-within (6 h)


def test_history_at_80_columns_keeps_each_due_time_on_one_line(
    run_cli: Callable[..., Any], campaign: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The due column was the full ISO time, folded mid-time at 80 columns (``2027-10-29T10:0`` / ``0:00+02:00``)."""
    assert run_cli(*campaign, "run", "--once", "--now", "2027-10-29T10:00").code == 0
    monkeypatch.setenv("COLUMNS", "80")
    history = run_cli(
        *campaign, "history", "--now", "2027-10-29T11:00", "--from", "2027-10-29", "--to", "2027-10-30"
    )
    assert history.code == 0, history.err
    lines = history.out.splitlines()
    assert all(len(line) <= 80 for line in lines), history.out
    assert any("│ 2027-10-29 10:00 │" in line for line in lines), history.out
    # each id whole on its line (the account is in it), its link under it
    masto = DAY1.format(account="masto")
    at = next(index for index, line in enumerate(lines) if f"│ {masto} " in line)
    assert "│ https://example.test/countdown:masto:" in lines[at + 1], history.out


def test_a_missing_secret_retries_later_instead_of_failing_for_good(ledger: Ledger) -> None:
    """A secret not set (``amplifier retract`` run without it) failed the delete for good: the daemon, which has
    the secret, never deleted the post, not even at its ``delete_after`` time (the same job)."""
    from amplifier.errors import CredentialsError

    world = World(ledger)
    world.publish("p")
    ledger.plan_followups([FollowupJob("p", "delete", "masto-en", "mastodon", T0, by="delete_after")])
    world.errors.append(CredentialsError("the secret AMP_TOKEN is not set"))
    assert world.runner.run_due(T0).deferred == ["p delete by masto-en"]
    (job,) = ledger.followups(["p"])
    assert (job.state, job.detail) == ("planned", "the secret AMP_TOKEN is not set")
    assert world.runner.run_due(T0 + 2 * MIN).done == ["p delete by masto-en"]


def test_rejected_credentials_retry_later_and_a_removed_account_fails(ledger: Ledger) -> None:
    from amplifier.publish.base import AuthError

    world = World(ledger)
    world.publish("p")
    ledger.plan_followups([FollowupJob("p", "boost", "masto-de", "mastodon", T0)])
    world.errors.append(AuthError("the server rejected the credentials (HTTP 401)"))
    assert world.runner.run_due(T0).deferred == ["p boost by masto-de"]
    assert ledger.followups(["p"])[0].attempts == 1

    def gone(account: str) -> Publisher:
        raise KeyError(account)

    world.runner.publisher_of = gone
    report = world.runner.run_due(T0 + 2 * MIN)
    assert report.failed == ["p boost by masto-de: masto-de is not an account of the campaign any more"]
