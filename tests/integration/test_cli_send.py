"""``amplifier send`` and ``amplifier accounts`` as a user runs them, against the loopback servers."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from amplifier.campaign.load import load_campaign
from amplifier.delivery.ledger import Ledger, PlanEntry, State
from amplifier.delivery.ledger.sqlite import LEDGER_NAME, SqliteLedger
from amplifier.errors import ExitCode
from amplifier.plan.planner import find_posts
from amplifier.plan.post import PlannedPost
from amplifier.publish import PublishContext, create_publisher
from amplifier.publish.secrets import SecretSources
from amplifier.publish.sessions import StateDir

from .servers import Account, MastodonServer, PdsServer
from .servers.mastodon import MastodonAccount as ServerAccount

pytestmark = pytest.mark.integration

TOKEN_ENV = "AMP_CLI_MASTO_TOKEN"
PASSWORD_ENV = "AMP_CLI_BSKY_PASSWORD"


@dataclass
class Campaign:
    folder: Path
    state: Path
    env: dict[str, str]
    masto: ServerAccount
    bsky: Account

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "amplifier",
                "--config",
                str(self.folder),
                "--state",
                str(self.state),
                *args,
            ],
            capture_output=True,
            text=True,
            env=env or self.env,
            cwd=self.folder,
            timeout=120,
            check=False,
        )

    def json(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        out = self.run(*args, "--format", "json", env=env)
        assert out.stdout, out.stderr
        return out.returncode, json.loads(out.stdout)

    def ids(self) -> list[str]:
        code, data = self.json("preview", "--from", "2027-10-29", "--to", "2027-10-31")
        assert code == 0
        return [post["id"] for post in data["posts"]]


SCHEDULE = """\
campaign:
  name: CLI test campaign
  timezone: Europe/Berlin
events:
  day:
    name: {{en: The Day}}
    date: 2027-11-01
accounts:
  masto:
    platform: mastodon
    instance: {masto_url}
    token_env: {token_env}
  bsky:
    platform: bluesky
    handle: {handle}
    service: {pds_url}
    password_env: {password_env}
rules:
  hello:
    kind: once
    at: 2027-10-30T10:00
    event: day
    messages: hello
  day-thread:
    kind: once
    at: 2027-11-01T09:00
    event: day
    messages: day
"""

MESSAGES = """\
sets:
  hello:
    hashtags: [Rojava]
    variants:
      - text:
          en: "{{ days_left }} days until {{ event.name }}! https://example.org/"
  day:
    images:
      - path: images/poster.png
        alt: {en: "Poster: The Day, November 1"}
    variants:
      - text:
          en: >-
            Today is {{ event.name }}. SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE
            SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE
"""


@pytest.fixture
def campaign(tmp_path: Path, mastodon_server: MastodonServer, pds: PdsServer) -> Campaign:
    masto = mastodon_server.create_account(mastodon_server.unique_username("cli"))
    bsky = pds.create_account("cli")
    folder = tmp_path / "campaign"
    (folder / "messages").mkdir(parents=True)
    (folder / "schedule.yaml").write_text(
        SCHEDULE.format(
            masto_url=mastodon_server.url,
            token_env=TOKEN_ENV,
            handle=bsky.handle,
            pds_url=pds.url,
            password_env=PASSWORD_ENV,
        )
    )
    (folder / "messages" / "hello.yaml").write_text(
        MESSAGES.replace("SENTENCE", "We stand with the people who resisted, and we will not forget.")
    )
    (folder / "images").mkdir()
    PILImage.new("RGB", (300, 200), "orange").save(folder / "images" / "poster.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLIFIER_")}
    env |= {TOKEN_ENV: masto.access_token, PASSWORD_ENV: bsky.password, "COLUMNS": "200"}
    env["AMPLIFIER_SECRETS_DIR"] = str(tmp_path / "no-secrets")
    return Campaign(folder, tmp_path / "state", env, masto, bsky)


def test_send_publishes_once_and_reports_where(
    campaign: Campaign, mastodon_server: MastodonServer, pds: PdsServer
) -> None:
    ids = campaign.ids()
    assert sorted(ids) == ["hello:bsky:2027-10-30T10:00", "hello:masto:2027-10-30T10:00"]

    code, first = campaign.json("send", *ids)
    assert code == ExitCode.OK
    assert [p["status"] for p in first["posts"]] == ["published", "published"]
    statuses = mastodon_server.statuses(campaign.masto)
    records = pds.list_records(campaign.bsky.did, "app.bsky.feed.post")
    assert len(statuses) == 1
    assert len(records) == 1
    by_id = {p["id"]: p for p in first["posts"]}
    assert by_id["hello:masto:2027-10-30T10:00"]["url"] == statuses[0]["url"]
    assert by_id["hello:bsky:2027-10-30T10:00"]["parts"][0]["uri"] == records[0]["uri"]
    assert records[0]["value"]["text"] == "2 days until The Day! https://example.org/\n\n#Rojava"
    assert records[0]["value"]["facets"][1]["features"][0]["tag"] == "Rojava"
    assert statuses[0]["language"] == "en"

    code, second = campaign.json("send", *ids)
    assert code == ExitCode.OK
    again = {p["id"]: p for p in second["posts"]}
    assert again["hello:bsky:2027-10-30T10:00"]["status"] == "already published"
    assert again["hello:bsky:2027-10-30T10:00"]["url"] == by_id["hello:bsky:2027-10-30T10:00"]["url"]
    assert again["hello:masto:2027-10-30T10:00"]["url"] == by_id["hello:masto:2027-10-30T10:00"]["url"]
    assert len(mastodon_server.statuses(campaign.masto)) == 1
    assert len(pds.list_records(campaign.bsky.did, "app.bsky.feed.post")) == 1

    table = campaign.run("send", *ids)
    assert table.returncode == 0
    assert "already published" in table.stdout
    assert campaign.masto.access_token not in table.stdout + table.stderr
    assert campaign.bsky.password not in table.stdout + table.stderr


def test_send_dry_run_shows_the_payload_and_touches_no_server(
    campaign: Campaign, mastodon_server: MastodonServer, pds: PdsServer
) -> None:
    ids = campaign.ids()
    mastodon_server.reset_request_counts()
    pds.reset_request_counts()
    code, data = campaign.json("send", "--dry-run", *ids)
    assert code == ExitCode.OK
    assert data["dry_run"] is True
    assert {p["status"] for p in data["posts"]} == {"dry run"}
    bsky = next(p for p in data["posts"] if p["platform"] == "bluesky")
    assert bsky["parts"][0]["payload"]["$type"] == "app.bsky.feed.post"
    assert mastodon_server.request_count() == 0
    assert pds.request_count() == 0


def test_unknown_id_is_a_usage_error(campaign: Campaign) -> None:
    out = campaign.run("send", "hello:masto:2031-01-01T10:00")
    assert out.returncode == ExitCode.INVALID
    assert "no planned post" in out.stderr


def test_accounts_reports_who_and_limits(campaign: Campaign) -> None:
    code, data = campaign.json("accounts")
    assert code == ExitCode.OK
    by_id = {a["account"]: a for a in data["accounts"]}
    assert by_id["masto"]["ok"]
    assert by_id["bsky"]["ok"]
    assert by_id["masto"]["id"] == campaign.masto.account_id
    assert by_id["masto"]["limits"]["max_characters"] == 500
    assert by_id["bsky"]["id"] == campaign.bsky.did
    assert by_id["bsky"]["handle"] == campaign.bsky.handle


def test_accounts_fails_with_exit_3_and_the_reason_per_account(campaign: Campaign) -> None:
    env = dict(campaign.env)
    env[TOKEN_ENV] = "revoked-token-value"
    del env[PASSWORD_ENV]
    code, data = campaign.json("accounts", env=env)
    assert code == ExitCode.ACCOUNT
    by_id = {a["account"]: a for a in data["accounts"]}
    assert not by_id["masto"]["ok"]
    assert "rejected the access token" in by_id["masto"]["error"]
    assert not by_id["bsky"]["ok"]
    assert PASSWORD_ENV in by_id["bsky"]["error"]
    out = campaign.run("accounts", env=env)
    assert "revoked-token-value" not in out.stdout + out.stderr
    assert f"bsky: the secret {PASSWORD_ENV} is not set" in out.stderr


def test_password_from_the_campaign_env_file(campaign: Campaign) -> None:
    env = dict(campaign.env)
    password = env.pop(PASSWORD_ENV)
    (campaign.folder / ".env").write_text(f"{PASSWORD_ENV}={password}\n")
    code, data = campaign.json("accounts", env=env)
    assert code == ExitCode.OK, data


def test_send_thread_with_image(campaign: Campaign, mastodon_server: MastodonServer, pds: PdsServer) -> None:
    ids = ["day-thread:masto:2027-11-01T09:00", "day-thread:bsky:2027-11-01T09:00"]
    code, data = campaign.json("send", *ids)
    assert code == ExitCode.OK, data
    by_id = {p["id"]: p for p in data["posts"]}

    masto_parts = by_id[ids[0]]["parts"]
    assert len(masto_parts) >= 2
    statuses = {str(s["id"]): s for s in mastodon_server.statuses(campaign.masto)}
    assert len(statuses) == len(masto_parts)
    first = statuses[masto_parts[0]["id"]]
    assert [m["description"] for m in first["media_attachments"]] == ["Poster: The Day, November 1"]
    for previous, current in itertools.pairwise(masto_parts):
        assert str(statuses[current["id"]]["in_reply_to_id"]) == previous["id"]

    bsky_parts = by_id[ids[1]]["parts"]
    assert len(bsky_parts) >= 3
    records = {r["uri"]: r for r in pds.list_records(campaign.bsky.did, "app.bsky.feed.post")}
    assert len(records) == len(bsky_parts)
    root = records[bsky_parts[0]["uri"]]["value"]
    (image,) = root["embed"]["images"]
    assert image["alt"] == "Poster: The Day, November 1"
    assert image["aspectRatio"] == {"width": 300, "height": 200}
    root_ref = {"uri": bsky_parts[0]["uri"], "cid": bsky_parts[0]["cid"]}
    for previous, current in itertools.pairwise(bsky_parts):
        reply = records[current["uri"]]["value"]["reply"]
        assert reply == {"root": root_ref, "parent": {"uri": previous["uri"], "cid": previous["cid"]}}


# --------------------------------------------------------------------------------------------- the ledger


HELLO_MASTO = "hello:masto:2027-10-30T10:00"
HELLO_BSKY = "hello:bsky:2027-10-30T10:00"


def ledger_of(campaign: Campaign) -> Ledger:
    return SqliteLedger.open(campaign.state / LEDGER_NAME, dt.datetime.now(dt.UTC))


def plan_into_ledger(campaign: Campaign, post_id: str, ledger: Ledger, now: dt.datetime) -> PlannedPost:
    (post,) = find_posts(load_campaign(campaign.folder / "schedule.yaml"), [post_id])
    ledger.sync_plan([PlanEntry.from_post(post)], now, start=now, end=now)
    return post


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("post_id", [HELLO_MASTO, HELLO_BSKY])
def test_send_twice_records_once_and_the_second_send_asks_no_server(
    campaign: Campaign, mastodon_server: MastodonServer, pds: PdsServer, post_id: str
) -> None:
    code, first = campaign.json("send", post_id)
    assert code == ExitCode.OK, first
    (sent,) = first["posts"]
    assert sent["status"] == "published"
    with ledger_of(campaign) as ledger:
        row = ledger.get(post_id)
        assert row.state == State.PUBLISHED
        assert row.result is not None
        assert row.result[0]["url"] == sent["url"]
        assert row.claim_token is not None
        assert ":send-" in row.claim_token

    mastodon_server.reset_request_counts()
    pds.reset_request_counts()
    code, second = campaign.json("send", post_id)
    assert code == ExitCode.OK, second
    (again,) = second["posts"]
    assert again["status"] == "already published"
    assert again["url"] == sent["url"]
    assert [p["id"] for p in again["parts"]] == [p["id"] for p in sent["parts"]]
    assert mastodon_server.request_count() == 0  # the ledger answered: no request at all
    assert pds.request_count() == 0
    assert len(mastodon_server.statuses(campaign.masto)) == (1 if post_id == HELLO_MASTO else 0)
    assert len(pds.list_records(campaign.bsky.did, "app.bsky.feed.post")) == (
        1 if post_id == HELLO_BSKY else 0
    )


def test_send_dry_run_writes_no_ledger(campaign: Campaign) -> None:
    code, data = campaign.json("send", "--dry-run", HELLO_MASTO, HELLO_BSKY)
    assert code == ExitCode.OK, data
    assert not (campaign.state / LEDGER_NAME).exists()


@pytest.mark.parametrize("post_id", [HELLO_MASTO, HELLO_BSKY])
def test_send_is_refused_while_the_daemon_holds_the_claim(
    campaign: Campaign, mastodon_server: MastodonServer, pds: PdsServer, post_id: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    with ledger_of(campaign) as ledger:
        plan_into_ledger(campaign, post_id, ledger, now)
        # This test process stands for `amplifier run`: it is running, on this host, and holds the claim.
        assert ledger.claim(post_id, now, f"{socket.gethostname()}:{os.getpid()}:daemon")
    mastodon_server.reset_request_counts()
    pds.reset_request_counts()

    out = campaign.run("send", post_id)
    assert out.returncode == ExitCode.PUBLISH
    assert "being published by another amplifier process" in out.stderr
    assert f"pid {os.getpid()}" in out.stderr
    code, data = campaign.json("send", post_id)
    assert code == ExitCode.PUBLISH
    (post,) = data["posts"]
    assert post["status"] == "refused"
    assert post["error"]["kind"] == "refused"
    assert mastodon_server.request_count() == 0
    assert pds.request_count() == 0
    with ledger_of(campaign) as ledger:
        row = ledger.get(post_id)
        assert row.state == State.CLAIMED
        assert row.claim_token == f"{socket.gethostname()}:{os.getpid()}:daemon"


@pytest.mark.parametrize("post_id", [HELLO_MASTO, HELLO_BSKY])
def test_send_reconciles_a_claim_left_by_a_dead_process_and_sends_once(
    campaign: Campaign, mastodon_server: MastodonServer, pds: PdsServer, post_id: str
) -> None:
    """The claimant died before its request: ``send`` asks the platform (or relies on the key) and sends once."""
    now = dt.datetime.now(dt.UTC)
    with ledger_of(campaign) as ledger:
        plan_into_ledger(campaign, post_id, ledger, now)
        assert ledger.claim(post_id, now, f"{socket.gethostname()}:{dead_pid()}:daemon")
    code, data = campaign.json("send", post_id)
    assert code == ExitCode.OK, data
    (post,) = data["posts"]
    assert post["status"] == "published"
    code, data = campaign.json("send", post_id)
    assert data["posts"][0]["status"] == "already published"
    assert len(mastodon_server.statuses(campaign.masto)) == (1 if post_id == HELLO_MASTO else 0)
    assert len(pds.list_records(campaign.bsky.did, "app.bsky.feed.post")) == (
        1 if post_id == HELLO_BSKY else 0
    )


def test_send_finds_a_mastodon_status_whose_answer_was_lost_hours_ago(
    campaign: Campaign, mastodon_server: MastodonServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the request, more than an hour ago (``--now``): the key has expired, so ``send`` looks
    for the status among the account's own and records it instead of posting a second one."""
    now = dt.datetime.now(dt.UTC)
    with ledger_of(campaign) as ledger:
        post = plan_into_ledger(campaign, HELLO_MASTO, ledger, now)
        assert ledger.claim(HELLO_MASTO, now, "otherhost:1:daemon")
    monkeypatch.setenv(TOKEN_ENV, campaign.masto.access_token)
    settings = load_campaign(campaign.folder / "schedule.yaml").account("masto")
    ctx = PublishContext(secrets=SecretSources(), state=StateDir(campaign.state / "it"))
    publisher = create_publisher("masto", settings, ctx)
    try:
        published = publisher.publish(post)  # the request whose answer was lost
    finally:
        publisher.close()

    mastodon_server.reset_request_counts()
    later = (now + dt.timedelta(hours=2)).isoformat()
    code, data = campaign.json("--now", later, "send", HELLO_MASTO)
    assert code == ExitCode.OK, data
    (sent,) = data["posts"]
    assert sent["status"] == "already published"
    assert sent["url"] == published.url
    assert mastodon_server.request_count("/api/v1/statuses") == 0  # not even a re-send under the key
    assert mastodon_server.request_count("/api/v1/accounts/") >= 2  # verify_credentials, statuses
    assert len(mastodon_server.statuses(campaign.masto)) == 1
    with ledger_of(campaign) as ledger:
        assert ledger.get(HELLO_MASTO).state == State.PUBLISHED
