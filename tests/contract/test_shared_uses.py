"""The accounts' shared budget uses (``delivery/shared_state.SharedUses``) over every state store: what one node
notes and flushes the other loads, each budget's uses kept for its window only, a damaged or foreign document
read as none; and the follow-up runner's view of the posts' limiter (``daemon/followups.TalliedLimiter``)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from amplifier.daemon.followups import TalliedLimiter
from amplifier.delivery.ratelimit import BUDGETS, RateLimiter
from amplifier.delivery.shared_state import POSTS_BUDGET, READS_BUDGET, USES, SharedUses, Use
from amplifier.publish.state import StateDir, safe_name
from tests.contract.test_state_store import T0, Pair
from tests.contract.test_state_store import pair as pair  # the fixture

KEEP = {POSTS_BUDGET: timedelta(days=1), READS_BUDGET: timedelta(minutes=5)}
MIN = timedelta(minutes=1)


def test_what_one_node_flushes_the_other_loads(pair: Pair) -> None:
    one, other = SharedUses(pair[0], KEEP), SharedUses(pair[1], KEEP)
    one.note("a@x", Use(POSTS_BUDGET, "mastodon", T0, 1))
    one.note("a@x", Use(READS_BUDGET, "mastodon", T0 + MIN, 2))
    one.note("b", Use(POSTS_BUDGET, "bluesky", T0, 1))
    assert other.load(["a@x", "b"], T0 + MIN) == {"a@x": [], "b": []}  # noted, not written yet
    assert one.flush(["a@x"]) == 2
    assert other.load(["a@x", "b"], T0 + MIN) == {
        "a@x": [Use(POSTS_BUDGET, "mastodon", T0, 1), Use(READS_BUDGET, "mastodon", T0 + MIN, 2)],
        "b": [],
    }
    other.note("a@x", Use(POSTS_BUDGET, "mastodon", T0 + 2 * MIN, 1))
    other.flush()
    assert one.flush() == 1  # b's, kept for the next flush
    loaded = one.load(["a@x", "b"], T0 + 2 * MIN)
    assert [use.at for use in loaded["a@x"]] == [T0, T0 + MIN, T0 + 2 * MIN]  # both nodes' uses
    assert loaded["b"] == [Use(POSTS_BUDGET, "bluesky", T0, 1)]


def test_each_budgets_uses_are_kept_for_its_window_only(pair: Pair) -> None:
    uses = SharedUses(pair[0], KEEP)
    uses.note("a", Use(READS_BUDGET, "mastodon", T0, 1))
    uses.note("a", Use(POSTS_BUDGET, "mastodon", T0, 1))
    uses.flush()
    later = T0 + 10 * MIN
    assert uses.load(["a"], later)["a"] == [Use(POSTS_BUDGET, "mastodon", T0, 1)]  # the read's window passed
    uses.note("a", Use(READS_BUDGET, "mastodon", later, 1))
    uses.flush()
    stored = json.loads(pair[1].read(USES, safe_name("a") + ".json") or b"{}")
    assert [item[0] for item in stored["uses"]] == [POSTS_BUDGET, READS_BUDGET]  # the old read was dropped
    assert uses.load(["a"], T0 + timedelta(days=2))["a"] == []


def test_a_damaged_or_foreign_document_counts_as_none(pair: Pair) -> None:
    store = pair[0]
    name = safe_name("a") + ".json"
    store.write(USES, name, b"not json")
    uses = SharedUses(pair[1], KEEP)
    assert uses.load(["a"], T0) == {"a": []}
    store.write_json(
        USES, name, {"account": "someone else", "uses": [[POSTS_BUDGET, "mastodon", T0.isoformat(), 1]]}
    )
    assert uses.load(["a"], T0) == {"a": []}
    store.write_json(USES, name, {"account": "a", "uses": [["posts", "mastodon", "yesterday", 1], [1]]})
    assert uses.load(["a"], T0) == {"a": []}
    uses.note("a", Use(POSTS_BUDGET, "mastodon", T0, 1))
    uses.flush()  # the damaged items are dropped, the new one kept
    assert uses.load(["a"], T0) == {"a": [Use(POSTS_BUDGET, "mastodon", T0, 1)]}


def test_the_runners_limiter_is_the_posts_and_notes_each_write(tmp_path: Path) -> None:
    posts = RateLimiter({"mastodon": BUDGETS["mastodon"]})
    uses = SharedUses(StateDir(tmp_path / "state"), KEEP)
    tallied = TalliedLimiter(posts, uses)
    tallied.record("a", "mastodon", 1, T0)
    assert posts.available_at("a", "mastodon", 299, T0) == T0
    assert posts.available_at("a", "mastodon", 300, T0) > T0  # the write counts in the posts' budget
    tallied.block("a", T0 + MIN)
    assert posts.blocked_until("a", T0) == T0 + MIN
    assert tallied.blocked_until("a", T0) == T0 + MIN
    assert tallied.available_at("b", "mastodon", 1, T0) == T0
    tallied.record("a", "unknown-platform", 1, T0)  # costs nothing: not noted
    assert uses.flush() == 1
    assert uses.load(["a"], T0)["a"] == [Use(POSTS_BUDGET, "mastodon", T0, 1)]
