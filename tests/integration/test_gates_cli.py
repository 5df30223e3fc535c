"""Reply / quote controls end to end, as an operator runs amplifier: set in the YAML, published by the daemon
exactly once through a crash between the request and the ledger write (post and gates found, nothing written
twice), then changed with ``amplifier gate`` and recorded in the ledger; read back from the servers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest

from amplifier.delivery.ledger import State, open_ledger
from amplifier.plan.gates import POSTGATE, THREADGATE
from amplifier.publish.bluesky import record_key

from .servers import MastodonServer, PdsServer
from .test_daemon import NINE, Campaign, make_campaign, masto_texts, once_rules

__all__ = ["make_campaign"]  # the fixture, shared with test_daemon

pytestmark = pytest.mark.integration

GATED = """\
sets:
  hello:
    replies: [mentioned, followers]
    quotes: false
    labels: [graphic-media]
    variants:
      - text:
          en: "Gated post of {{ at }} on {{ account.id }}"
"""


def gated_campaign(make: Callable[..., Campaign], pds: PdsServer) -> Campaign:
    campaign = make(pds=pds)
    campaign.write(once_rules(1, NINE))
    (campaign.folder / "messages" / "hello.yaml").write_text(GATED)
    return campaign


def test_a_crash_after_the_request_publishes_post_and_gates_once_and_gate_changes_them(
    make_campaign: Callable[..., Campaign], mastodon_server: MastodonServer, pds: PdsServer
) -> None:
    campaign = gated_campaign(make_campaign, pds)
    now = "2027-10-20T09:30"
    crashed = 0
    for _ in range(4):  # each run dies right after its first successful publish, before the ledger write
        out = campaign.run("run", "--once", "--now", now, env={"AMPLIFIER_TEST_CRASH_AFTER_REQUEST": "1"})
        assert out.returncode in (0, 137), out.stderr
        crashed += out.returncode == 137
    assert crashed >= 2
    final = campaign.run("run", "--once", "--now", now)
    assert final.returncode == 0, final.stderr

    sky_id, masto_id = "r00:sky:2027-10-20T09:00", "r00:masto:2027-10-20T09:00"
    states = campaign.ledger_states()
    assert (states[sky_id], states[masto_id]) == (State.PUBLISHED, State.PUBLISHED)
    assert campaign.sky is not None
    assert campaign.masto is not None
    did = campaign.sky.did
    rkey = record_key(sky_id, 0, NINE)
    assert [r["uri"].rsplit("/", 1)[1] for r in pds.list_records(did, "app.bsky.feed.post")] == [rkey]
    assert [r["uri"].rsplit("/", 1)[1] for r in pds.list_records(did, THREADGATE)] == [rkey]
    assert [r["uri"].rsplit("/", 1)[1] for r in pds.list_records(did, POSTGATE)] == [rkey]
    post = pds.get_record(did, "app.bsky.feed.post", rkey)
    assert post is not None
    assert post["value"]["labels"]["values"] == [{"val": "graphic-media"}]
    gate = pds.get_record(did, THREADGATE, rkey)
    assert gate is not None
    assert [rule["$type"].split("#")[1] for rule in gate["value"]["allow"]] == ["mentionRule", "followerRule"]
    assert len(masto_texts(mastodon_server, campaign.masto)) == 1
    (status,) = mastodon_server.statuses(campaign.masto)
    assert status["quote_approval_policy"] == "nobody"

    # A pile-on starts: nobody may reply any more on Bluesky, quotes open again on Mastodon.
    out = campaign.run("gate", sky_id, "--replies", "nobody", "--by", "ana")
    assert out.returncode == 0, out.stderr
    gate = pds.get_record(did, THREADGATE, rkey)
    assert gate is not None
    assert gate["value"]["allow"] == []
    out = campaign.run(
        "gate", masto_id, "--replies", "nobody", "--quotes", "on", "--format", "json", "--by", "bo"
    )
    assert out.returncode == 0, out.stderr
    assert "Mastodon has no control over who may reply" in json.loads(out.stdout)["gates"][0]["notes"][0]
    status = mastodon_server.get_status(status["id"], campaign.masto.access_token)
    assert status is not None
    assert status["quote_approval_policy"] == "public"

    with open_ledger(campaign.state, dt.datetime.now(dt.UTC)) as ledger:
        changes = ledger.gate_changes()
    assert [(c.post_id, c.by, c.replies, c.quotes, c.outcome) for c in changes] == [
        (sky_id, "ana", "nobody", None, "done"),
        (masto_id, "bo", "nobody", "public", "done"),
    ]


def test_gate_refuses_a_post_that_is_not_published(
    make_campaign: Callable[..., Campaign], pds: PdsServer
) -> None:
    campaign = gated_campaign(make_campaign, pds)
    # Planned in the ledger (a run before its time), not published yet.
    assert campaign.run("run", "--once", "--now", "2027-10-20T08:00").returncode == 0
    out = campaign.run("gate", "r00:sky:2027-10-20T09:00", "--replies", "nobody")
    assert out.returncode == 4
    assert "it is planned, not published" in out.stderr
    assert campaign.sky is not None
    assert pds.list_records(campaign.sky.did, THREADGATE) == []
    out = campaign.run("gate", "r00:sky:2027-10-20T09:00")
    assert out.returncode == 2
    assert "nothing to change" in out.stderr


def test_accounts_warns_about_undisclosed_automation_and_fix_sets_it(
    make_campaign: Callable[..., Campaign], mastodon_server: MastodonServer, pds: PdsServer
) -> None:
    campaign = gated_campaign(make_campaign, pds)
    out = campaign.run("accounts", "--format", "json")
    assert out.returncode == 0, out.stderr
    by_id = {a["account"]: a for a in json.loads(out.stdout)["accounts"]}
    assert (by_id["masto"]["bot"], by_id["sky"]["bot"]) == (False, False)
    assert "masto: warning: does not disclose automation" in out.stderr
    assert "sky: warning: does not disclose automation" in out.stderr
    assert "amplifier accounts --fix" in by_id["sky"]["warnings"][0]

    out = campaign.run("accounts", "--fix")
    assert out.returncode == 0, out.stderr
    assert "does not disclose automation" not in out.stderr
    assert campaign.sky is not None
    profile = pds.get_record(campaign.sky.did, "app.bsky.actor.profile", "self")
    assert profile is not None
    assert profile["value"]["labels"]["values"] == [{"val": "bot"}]

    out = campaign.run("accounts", "--format", "json")
    by_id = {a["account"]: a for a in json.loads(out.stdout)["accounts"]}
    assert (by_id["masto"]["bot"], by_id["sky"]["bot"]) == (True, True)
    assert by_id["masto"]["warnings"] == by_id["sky"]["warnings"] == []
