"""Follow-ups end to end, as an operator runs them, against mastodon-mock and the reference PDS: the language
accounts boost / repost the main accounts' post, it is pinned, and deleted after its event (``delete_after``) or
by ``amplifier retract``; a SIGKILL-like death between each kind of write (boost, pin, delete) and its ledger record
leaves exactly one of each on the servers."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from amplifier.delivery.ledger import open_ledger
from amplifier.publish.bluesky_controls import PROFILE
from amplifier.publish.bluesky_followups import REPOST

from .servers import MastodonServer, PdsServer
from .servers.mastodon import MastodonAccount as ServerAccount
from .test_daemon import PASSWORD_ENV, TOKEN_ENV, Campaign
from .test_daemon import make_campaign as make_campaign  # the fixture

pytestmark = pytest.mark.integration

CRASH = "AMPLIFIER_TEST_CRASH_AFTER_FOLLOWUP"

SCHEDULE = """\
campaign:
  name: Follow-ups
  timezone: Europe/Berlin
events:
  day:
    name: {{en: The Day}}
    date: 2027-10-20
accounts:
  masto:
    platform: mastodon
    instance: {masto_url}
    token_env: {masto_env}
  masto-b:
    platform: mastodon
    instance: {masto_url}
    token_env: AMP_FU_MASTO_B
  sky:
    platform: bluesky
    handle: {sky}
    service: {pds_url}
    password_env: {sky_env}
  sky-b:
    platform: bluesky
    handle: {sky_b}
    service: {pds_url}
    password_env: AMP_FU_SKY_B
rules:
  call:
    kind: once
    at: 2027-10-20T09:00
    event: day
    messages: call
    accounts: [masto, sky]
    boost: [masto-b, sky-b]
"""

MESSAGES = """\
sets:
  call:
    pin: true
    delete_after: 1h
    variants:
      - text:
          en: "Join the day of action {{ account.id }}"
"""


class World:
    def __init__(self, campaign: Campaign, masto: MastodonServer, pds: PdsServer) -> None:
        self.campaign, self.masto, self.pds = campaign, masto, pds
        self.masto_b = masto.create_account(masto.unique_username("booster"))
        self.sky_b = pds.create_account("booster")
        campaign.env["AMP_FU_MASTO_B"] = self.masto_b.access_token
        campaign.env["AMP_FU_SKY_B"] = self.sky_b.password
        assert campaign.sky is not None
        (campaign.folder / "schedule.yaml").write_text(
            SCHEDULE.format(
                masto_url=masto.url,
                masto_env=TOKEN_ENV,
                sky=campaign.sky.handle,
                sky_b=self.sky_b.handle,
                pds_url=pds.url,
                sky_env=PASSWORD_ENV,
            )
        )
        (campaign.folder / "messages" / "call.yaml").write_text(MESSAGES)

    @property
    def author(self) -> ServerAccount:
        assert self.campaign.masto is not None
        return self.campaign.masto

    def run(self, now: str, crash: str | None = None) -> int:
        out = self.campaign.run("run", "--once", "--now", now, env={CRASH: crash} if crash else None)
        if out.returncode not in (0, 137):
            raise AssertionError(out.stderr)
        return out.returncode

    def jobs(self) -> dict[tuple[str, str], tuple[str, str | None]]:
        with open_ledger(
            self.campaign.state, __import__("datetime").datetime.now(__import__("datetime").UTC)
        ) as ledger:
            posts = [row.id for row in ledger.export_rows()]
            return {
                (job.post_id.split(":")[1], f"{job.kind} {job.account}"): (job.state, job.detail)
                for job in ledger.followups(posts)
            }

    def masto_status(self, token: str | None = None) -> dict[str, object] | None:
        (status,) = [s for s in self.masto.statuses(self.author) if not s.get("reblog")]
        return self.masto.get_status(str(status["id"]), token or self.author.access_token)

    def sky_records(self, collection: str, did: str | None = None) -> list[dict[str, object]]:
        assert self.campaign.sky is not None
        return self.pds.list_records(did or self.campaign.sky.did, collection)


@pytest.fixture
def world(request: pytest.FixtureRequest, mastodon_server: MastodonServer, pds: PdsServer) -> World:
    make: Callable[..., Campaign] = request.getfixturevalue("make_campaign")
    return World(make(pds=pds), mastodon_server, pds)


def test_boosts_and_pins_exactly_once_through_deaths_then_deleted_after_the_event(world: World) -> None:
    assert world.run("2027-10-20T09:00", crash="boost") == 137  # died after the first boost's request
    assert (
        world.run("2027-10-20T09:10", crash="pin") == 137
    )  # the boost checked and recorded; died after a pin
    assert world.run("2027-10-20T09:20") == 0

    jobs = world.jobs()
    assert {key: state for key, (state, _) in jobs.items()} == {
        ("masto", "boost masto-b"): "done",
        ("masto", "pin masto"): "done",
        ("masto", "unpin masto"): "planned",
        ("masto", "delete masto"): "planned",
        ("sky", "boost sky-b"): "done",
        ("sky", "pin sky"): "done",
        ("sky", "unpin sky"): "planned",
        ("sky", "delete sky"): "planned",
    }
    assert sum(detail == "found done on the server" for _, detail in jobs.values()) == 2
    status = world.masto_status(world.masto_b.access_token)
    assert status is not None
    assert (status["reblogs_count"], status["reblogged"]) == (1, True)
    own = world.masto_status()
    assert own is not None
    assert own["pinned"]
    (sky_post,) = world.sky_records("app.bsky.feed.post")
    (repost,) = world.sky_records(REPOST, world.sky_b.did)
    assert repost["value"]["subject"]["uri"] == sky_post["uri"]  # type: ignore[index]
    (profile,) = world.sky_records(PROFILE)
    assert profile["value"]["pinnedPost"]["uri"] == sky_post["uri"]  # type: ignore[index]

    # The day ends at midnight: unpinned; an hour later (delete_after: 1h) deleted, reposts and all.
    assert world.run("2027-10-21T01:00", crash="delete") == 137
    assert world.run("2027-10-21T01:10") == 0
    assert {key: state for key, (state, _) in world.jobs().items() if state != "done"} == {}
    assert [s for s in world.masto.statuses(world.author) if not s.get("reblog")] == []
    assert world.sky_records("app.bsky.feed.post") == []
    assert world.sky_records(REPOST, world.sky_b.did) == []
    (profile,) = world.sky_records(PROFILE)
    assert "pinnedPost" not in profile["value"]  # type: ignore[operator]

    history = world.campaign.run("history", "--from", "2027-10-20", "--to", "2027-10-22", "--format", "json")
    posts = json.loads(history.stdout)["posts"]
    assert [(p["retracted"]["by"], p["retracted"]["state"]) for p in posts] == [("delete_after", "done")] * 2


def test_retract_deletes_once_through_a_death_and_records_who_and_why(world: World) -> None:
    assert world.run("2027-10-20T09:00") == 0
    dry = world.campaign.run("retract", "--event", "day", "--dry-run", "--now", "2027-10-20T10:00")
    assert dry.returncode == 0, dry.stderr
    assert "would retract call:masto:" in dry.stdout
    assert world.masto_status() is not None  # a dry run deletes nothing

    args = ("retract", "--event", "day", "--reason", "rally moved", "--by", "ana")
    died = world.campaign.run(*args, "--now", "2027-10-20T10:00", env={CRASH: "delete"})
    assert died.returncode == 137
    again = world.campaign.run(*args, "--now", "2027-10-20T10:10", "--format", "json")
    assert again.returncode == 0, again.stderr
    outcome = json.loads(again.stdout)["outcome"]
    assert outcome["failed"] == []
    assert outcome["deferred"] == []
    assert [s for s in world.masto.statuses(world.author) if not s.get("reblog")] == []
    assert world.sky_records("app.bsky.feed.post") == []
    assert world.sky_records(REPOST, world.sky_b.did) == []
    jobs = world.jobs()
    assert jobs[("masto", "delete masto")][0] == "done"
    assert jobs[("sky", "unboost sky-b")][0] == "done"
    assert jobs[("masto", "unpin masto")] == ("skipped", "retracted")

    status = world.campaign.run("status", "--format", "json", "--now", "2027-10-20T10:20")
    retractions = json.loads(status.stdout)["retractions"]
    assert {(r["by"], r["reason"], r["state"]) for r in retractions} == {("ana", "rally moved", "done")}
