"""End to end: ``amplifier run --once`` publishes to the Bluesky PDS (with the reference AppView) and to
mastodon-mock; other accounts like, repost, reply to and quote the posts through the real APIs; the read-back
job runs at its age (a later ``run --once``), once; ``amplifier report --format json`` shows those counts."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from mastodon import Mastodon

from amplifier.delivery.ledger import open_ledger

from .servers import MastodonServer
from .servers.appview import AppViewNetwork
from .test_daemon import Campaign, events, make_campaign

__all__ = ["make_campaign"]  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.appview]


def iso(at: dt.datetime) -> str:
    return at.isoformat(timespec="seconds")


def test_counts_read_back_at_their_age_reach_the_report(
    make_campaign: Callable[..., Campaign], mastodon_server: MastodonServer, appview: AppViewNetwork
) -> None:
    campaign = make_campaign(pds=appview, zone="UTC")
    # near the real time: the AppView indexes posts by their createdAt
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)).replace(second=0, microsecond=0)
    campaign.write(f"  r:\n    kind: once\n    at: {due:%Y-%m-%dT%H:%M}\n    messages: hello\n")

    out = campaign.run("run", "--once", "--now", iso(due), "--log-format", "json")
    assert out.returncode == 0, out.stderr
    assert {e["id"] for e in events(out.stderr) if e["event"] == "posted"} == {
        f"r:masto:{due:%Y-%m-%dT%H:%M}",
        f"r:sky:{due:%Y-%m-%dT%H:%M}",
    }
    assert not [e for e in events(out.stderr) if e["event"].startswith("read")]  # nothing to read yet

    with open_ledger(campaign.state, due) as ledger:
        sky = ledger.get(f"r:sky:{due:%Y-%m-%dT%H:%M}").parts[0]
        masto = ledger.get(f"r:masto:{due:%Y-%m-%dT%H:%M}").parts[0]

    # Bluesky: three likes, two reposts, a reply and a quote from other accounts, through the PDS
    readers = [appview.create_account(f"fan{i}") for i in range(3)]
    for reader in readers:
        appview.like(reader, sky["uri"], sky["cid"])
    appview.repost(readers[0], sky["uri"], sky["cid"])
    appview.repost(readers[1], sky["uri"], sky["cid"])
    appview.reply(readers[2], {"uri": sky["uri"], "cid": sky["cid"]}, "See you there.")
    appview.quote(readers[0], sky["uri"], sky["cid"], "Everyone, come!")
    appview.sync()
    # Mastodon: two favourites, a boost and a reply through the API of mastodon-mock
    fans = [
        Mastodon(
            api_base_url=mastodon_server.url, access_token=account.access_token, version_check_mode="none"
        )
        for account in (mastodon_server.create_account(), mastodon_server.create_account())
    ]
    for fan in fans:
        fan.status_favourite(masto["id"])
    fans[0].status_reblog(masto["id"])
    fans[1].status_post("Boosting this.", in_reply_to_id=masto["id"])

    early = campaign.run(
        "run", "--once", "--now", iso(due + dt.timedelta(minutes=30)), "--log-format", "json"
    )
    assert early.returncode == 0, early.stderr
    assert not [e for e in events(early.stderr) if e["event"] == "read"]  # before the 1 h age

    for minutes in (61, 62):  # the second pass finds the 1 h read done: no second reading
        later = campaign.run(
            "run", "--once", "--now", iso(due + dt.timedelta(minutes=minutes)), "--log-format", "json"
        )
        assert later.returncode == 0, later.stderr
        read = {e["id"]: e for e in events(later.stderr) if e["event"] == "read"}
        if minutes == 61:
            assert set(read) == {f"r:masto:{due:%Y-%m-%dT%H:%M}", f"r:sky:{due:%Y-%m-%dT%H:%M}"}
        else:
            assert read == {}

    with open_ledger(campaign.state, due) as ledger:
        assert len(ledger.engagement(f"r:sky:{due:%Y-%m-%dT%H:%M}")) == 1
        assert len(ledger.engagement(f"r:masto:{due:%Y-%m-%dT%H:%M}")) == 1

    report = campaign.run(
        "report", "--now", iso(due + dt.timedelta(hours=2)), "--from", iso(due - dt.timedelta(hours=1)),
        "--by", "platform", "--format", "json",
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    by_platform = {g["key"]: g for g in data["groups"]}
    counts = ("published", "read", "likes", "reposts", "replies", "quotes")
    assert {key: tuple(g[c] for c in counts) for key, g in by_platform.items()} == {
        "bluesky": (1, 1, 3, 2, 1, 1),
        "mastodon": (1, 1, 2, 1, 1, 0),  # mastodon-mock does not count quotes
    }
    assert data["totals"]["engagement"] == 7 + 4
    assert [t["post_id"] for t in data["top"]] == [
        f"r:sky:{due:%Y-%m-%dT%H:%M}",
        f"r:masto:{due:%Y-%m-%dT%H:%M}",
    ]
    assert data["top"][0]["url"].startswith("https://")
