"""Chaos across nodes: three ``amplifier run`` daemons (each with its own copy of the campaign files and its own
state folder) on one PostgreSQL ledger publish a burst to the reference PDS and mastodon-mock, while nodes are
SIGKILLed at random instants and right after a request (before its ledger write), one is SIGSTOPped for longer
than its lease and resumed, and PostgreSQL drops every node's connections. Every post is on the servers exactly
once, and each account's posts went out in order."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from amplifier.delivery.ledger import State
from amplifier.delivery.ledger.postgres import PostgresLedger
from amplifier.publish.bluesky import record_key

from .servers import MastodonServer, PdsServer
from .servers.postgres import PostgresServer
from .test_daemon import BERLIN, Campaign, events, make_campaign, masto_texts, once_rules, wait_for

__all__ = ["make_campaign"]  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BURST = 30
LEASE = 2.0  # seconds: short, so that failover is quick here
CHAOS = 25.0  # seconds of chaos at most; then the nodes run undisturbed until everything is out


def test_three_nodes_under_chaos_publish_every_post_exactly_once_in_order(
    make_campaign: Callable[..., Campaign],
    mastodon_server: MastodonServer,
    pds: PdsServer,
    postgres: PostgresServer,
) -> None:
    campaign = make_campaign(pds=pds)
    # Due from half an hour ago, one a minute: all due at once, in an order each account must keep.
    first = (dt.datetime.now(BERLIN) - dt.timedelta(minutes=30)).replace(second=0, microsecond=0)
    campaign.write(once_rules(BURST, first))
    database = "chaos_nodes"
    url = postgres.create_database(database)
    rng = random.Random(int(os.environ.get("AMPLIFIER_TEST_SEED", "12")))
    env = {
        "AMPLIFIER_LEDGER": url,
        "AMPLIFIER_CLAIM_LEASE": str(LEASE),
        "AMPLIFIER_TEST_WATCH": "0.5",
        "AMPLIFIER_TEST_BACKOFF": "1",
        "AMPLIFIER_TEST_REQUEST_TIMEOUT": "5",
    }
    nodes: list[Campaign] = []
    for n in range(3):  # each node its own copy of the files (as from git) and its own state folder
        folder = campaign.folder.parent / f"node{n}"
        shutil.copytree(campaign.folder, folder)
        nodes.append(
            Campaign(folder, folder / "state", {**campaign.env, **env}, campaign.masto, campaign.sky)
        )
    procs: list[subprocess.Popen[str] | None] = [None, None, None]

    starts = [0, 0, 0]

    def start(n: int, crash_after: int | None = None) -> None:
        extra = {"AMPLIFIER_TEST_CRASH_AFTER_REQUEST": str(crash_after)} if crash_after else None
        procs[n] = nodes[n].start(env=extra)
        starts[n] += 1

    def running(n: int) -> bool:
        """Whether node ``n``'s latest process is up (or died by its crash hook)."""
        proc = procs[n]
        if proc is not None and proc.poll() is not None:
            return True
        log = nodes[n].log_path
        return log.exists() and log.read_text().count('"started"') >= starts[n]

    for n in range(3):  # the first dies right after its first request, before the ledger write
        start(n, crash_after=1 if n == 0 else None)
    ids = [
        f"r{n:02d}:{account}:{first + dt.timedelta(minutes=n):%Y-%m-%dT%H:%M}"
        for n in range(BURST)
        for account in ("masto", "sky")
    ]

    def published() -> int:
        with PostgresLedger.open(url, dt.datetime.now(dt.UTC)) as ledger:
            return ledger.counts_by_state()[State.PUBLISHED]

    # The chaos, in a random order (the drop of every connection early): SIGKILLs, one SIGSTOP past the lease.
    actions = ["kill"] * 5 + ["stop"]
    rng.shuffle(actions)
    actions.insert(rng.randrange(2), "drop")
    actions += ["kill"] * 2  # spares, for a node that died by its hook when it was picked
    done: list[str] = []
    began = time.monotonic()
    try:
        for action in actions:
            if time.monotonic() - began > CHAOS:
                break
            for n, proc in enumerate(procs):  # a node that died (a crash hook) comes back up
                if proc is not None and proc.poll() is not None:
                    start(n, crash_after=rng.choice([None, 1, 2]))
            n = rng.randrange(3)
            wait_for(lambda n=n: running(n), 60, f"node {n}")
            time.sleep(rng.uniform(0.0, 0.4))  # a random point of its work
            proc = procs[n]
            assert proc is not None
            if proc.poll() is not None:
                start(n)
                continue
            if action == "stop":
                proc.send_signal(signal.SIGSTOP)  # longer than its lease: the others take over
                time.sleep(LEASE * 2 + 1)
                proc.send_signal(signal.SIGCONT)
            elif action == "drop":
                postgres.terminate_connections(database)
            else:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                start(n, crash_after=rng.choice([None, 1, 2]))
            done.append(action)
        for n, proc in enumerate(procs):  # undisturbed from here on, and no crash hooks
            if proc is None or proc.poll() is not None:
                start(n)
        # every node's latest start has logged "started" before any is stopped (the count below needs it)
        wait_for(lambda: all(running(n) for n in range(3)), 60, "every node started")
        wait_for(lambda: published() == len(ids), 90, "every post published")
    finally:
        for n, proc in enumerate(procs):
            if proc is not None and proc.poll() is None:
                nodes[n].stop(proc)
    assert done.count("drop") == done.count("stop") == 1
    assert done.count("kill") >= 3

    with PostgresLedger.open(url, dt.datetime.now(dt.UTC)) as ledger:
        rows = {row.id: row for row in ledger.export_rows()}
    assert {post_id: rows[post_id].state for post_id in ids} == dict.fromkeys(ids, State.PUBLISHED)
    for account in ("masto", "sky"):  # in order, as the ledger recorded them
        mine = [rows[post_id] for post_id in ids if f":{account}:" in post_id]
        times = [row.published_at for row in mine]
        assert times == sorted(times), account  # type: ignore[type-var]

    assert campaign.masto is not None
    statuses = mastodon_server.statuses(campaign.masto)
    assert len(statuses) == BURST, masto_texts(mastodon_server, campaign.masto)
    masto = [rows[post_id] for post_id in ids if ":masto:" in post_id]
    recorded = [int(row.result[0]["id"]) for row in masto if row.result]
    assert sorted(recorded) == sorted(int(status["id"]) for status in statuses)
    assert recorded == sorted(recorded)  # created in the accounts' order
    assert campaign.sky is not None
    records = pds.list_records(campaign.sky.did, "app.bsky.feed.post")
    assert len(records) == BURST
    keys = {
        record_key(
            f"r{n:02d}:sky:{first + dt.timedelta(minutes=n):%Y-%m-%dT%H:%M}",
            0,
            first + dt.timedelta(minutes=n),
        )
        for n in range(BURST)
    }
    assert {record["uri"].rsplit("/", 1)[1] for record in records} == keys
    logs = [event for node in nodes for event in events(node.log_path.read_text())]
    assert sum(event["event"] == "started" for event in logs) >= 3 + done.count("kill")
