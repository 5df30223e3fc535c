"""The ledger's follow-up jobs (boosts, pins, retractions), against every backend: planned once, found when
due, claimed by one, finished or released with the claim's token only, taken over as unknown when a claim's
lease ran out, retractions planned in one transaction, moved with the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from amplifier.delivery.ledger import IllegalTransition, Ledger, UnknownPost, copy_contents
from amplifier.delivery.ledger.followups import FollowupClaimLost, FollowupJob

from .conftest import T0, T1, T2, Backend, entry

MIN = timedelta(minutes=1)


def published(
    ledger: Ledger, post_id: str = "p", *, platform: str = "bluesky", account: str = "sky-en"
) -> None:
    ledger.sync_plan([entry(post_id, account=account, platform=platform)], T0)
    assert ledger.claim(post_id, T0, "t")
    ledger.mark_published(
        post_id, [{"index": 0, "id": "3k", "uri": "at://d/p/3k", "cid": "c"}], T0, token="t"
    )


def job(kind: str, account: str, due: datetime, post_id: str = "p", **kw: object) -> FollowupJob:
    return FollowupJob(post_id, kind, account, "bluesky", due, **kw)  # type: ignore[arg-type]


def test_jobs_are_planned_once_and_found_when_due_in_order(backend: Backend) -> None:
    with backend.open(T0) as ledger, backend.open(T0) as other:
        published(ledger)
        jobs = [job("boost", "sky-ku", T1), job("pin", "sky-en", T0), job("unpin", "sky-en", T2 + MIN)]
        assert ledger.plan_followups(jobs) == 3
        assert ledger.plan_followups([*jobs, job("boost", "sky-ckb", T1)]) == 1  # only the new one
        assert [j.key for j in other.followups_due(T1)] == [
            ("p", "pin", "sky-en"),
            ("p", "boost", "sky-ckb"),
            ("p", "boost", "sky-ku"),
        ]
        assert other.followups_due(T0 - MIN) == []
        assert [j.kind for j in other.followups(["p"])] == ["pin", "boost", "boost", "unpin"]
        with pytest.raises(UnknownPost):
            ledger.plan_followups([job("boost", "x", T0, post_id="nope")])


def test_one_claimant_wins_and_only_its_token_finishes(backend: Backend) -> None:
    with backend.open(T0) as ledger, backend.open(T0) as other:
        published(ledger)
        ledger.plan_followups([job("boost", "sky-ku", T0)])
        key = ("p", "boost", "sky-ku")
        claimed = ledger.claim_followup(key, "a", T0, T0 + 5 * MIN)
        assert claimed is not None
        assert (claimed.state, claimed.token, claimed.unknown) == ("claimed", "a", False)
        assert other.claim_followup(key, "b", T1, T1 + 5 * MIN) is None  # held, lease running
        assert other.followups_due(T1) == []
        with pytest.raises(FollowupClaimLost):
            other.finish_followup(key, "b", "done", "reposted", T1)
        ledger.finish_followup(key, "a", "done", "reposted as 3kx", T1, {"uri": "at://x"})
        (done,) = other.followups(["p"])
        assert (done.state, done.detail, done.result) == ("done", "reposted as 3kx", {"uri": "at://x"})
        assert other.claim_followup(key, "b", T2, T2 + MIN) is None  # finished: never again


def test_a_lapsed_claim_is_taken_over_as_unknown(backend: Backend) -> None:
    with backend.open(T0) as ledger, backend.open(T0) as other:
        published(ledger)
        ledger.plan_followups([job("delete", "sky-en", T0)])
        key = ("p", "delete", "sky-en")
        assert ledger.claim_followup(key, "crashed", T0, T0 + MIN) is not None
        assert other.followups_due(T0 + MIN) == []  # the lease runs until then
        assert [j.key for j in other.followups_due(T2)] == [key]
        taken = other.claim_followup(key, "next", T2, T2 + MIN)
        assert taken is not None
        assert (taken.token, taken.unknown) == ("next", True)
        with pytest.raises(FollowupClaimLost):
            ledger.finish_followup(key, "crashed", "done", "deleted", T2)


def test_a_released_job_waits_and_counts_its_attempts(backend: Backend) -> None:
    with backend.open(T0) as ledger:
        published(ledger)
        ledger.plan_followups([job("boost", "sky-ku", T0)])
        key = ("p", "boost", "sky-ku")
        assert ledger.claim_followup(key, "a", T0, T0 + MIN)
        again = ledger.release_followup(
            key, "a", T0, next_at=T2, detail="server error token=abcdefabcdefabcdefabcdef", unknown=True
        )
        assert (again.state, again.attempts, again.unknown, again.next_at) == ("planned", 1, True, T2)
        assert "abcdefabcdefabcdefabcdef" not in (again.detail or "")  # redacted
        assert ledger.followups_due(T1) == []
        assert ledger.claim_followup(key, "a", T1, T1 + MIN) is None  # not before next_at
        claimed = ledger.claim_followup(key, "a", T2, T2 + MIN)
        assert claimed is not None
        assert claimed.unknown  # still: read the server before writing
        waited = ledger.release_followup(
            key, "a", T2, next_at=T2 + MIN, detail="429", unknown=True, attempt=False
        )
        assert waited.attempts == 1


def test_a_retraction_skips_pending_boosts_undoes_made_ones_and_records_who_when_why(
    backend: Backend,
) -> None:
    with backend.open(T0) as ledger, backend.open(T0) as other:
        published(ledger)
        ledger.plan_followups(
            [
                job("boost", "sky-ku", T0),
                job("boost", "sky-ckb", T2),
                job("pin", "sky-en", T0),
                job("unpin", "sky-en", T2 + 60 * MIN),
                job("delete", "sky-en", T2 + 90 * MIN, by="delete_after", reason="delete_after"),
            ]
        )
        for key in (("p", "boost", "sky-ku"), ("p", "pin", "sky-en")):
            assert ledger.claim_followup(key, "t", T0, T1)
            ledger.finish_followup(key, "t", "done", "made", T0)
        assert other.retractions() == {}  # a delete_after still to come is not a retraction

        jobs = ledger.retract("p", by="ana@laptop", reason="rally moved", now=T1)
        assert sorted(j.key for j in jobs) == [
            ("p", "delete", "sky-en"),
            ("p", "unboost", "sky-ku"),
            ("p", "unpin", "sky-en"),
        ]
        assert all(j.due_at == T1 and j.state == "planned" for j in jobs)
        states = {(j.kind, j.account): (j.state, j.detail) for j in other.followups(["p"])}
        assert states[("boost", "sky-ckb")] == ("skipped", "retracted")
        assert states[("boost", "sky-ku")][0] == "done"
        retraction = other.retractions(["p"])["p"]
        assert (retraction.by, retraction.at, retraction.reason, retraction.state) == (
            "ana@laptop",
            T1,
            "rally moved",
            "planned",
        )
        # Again: the same jobs, nothing added.
        assert sorted(j.key for j in ledger.retract("p", by="bo", reason="again", now=T2)) == sorted(
            j.key for j in jobs
        )
        assert len(other.followups(["p"])) == 6
        key = ("p", "delete", "sky-en")
        assert ledger.claim_followup(key, "t", T2, T2 + MIN)
        ledger.finish_followup(key, "t", "done", "deleted 1 post(s)", T2)
        done = other.retractions()["p"]
        assert (done.state, done.done_at, done.reason) == ("done", T2, "again")
        assert ledger.retract("p", by="bo", reason="third", now=T2 + MIN) == [
            j for j in ledger.followups(["p"]) if j.state == "planned" and j.kind != "boost"
        ]  # the done delete is not planned again


def test_a_mastodon_retraction_leaves_boosts_to_the_server(backend: Backend) -> None:
    with backend.open(T0) as ledger:
        published(ledger, platform="mastodon", account="masto-en")
        made = FollowupJob("p", "boost", "masto-de", "mastodon", T0)
        ledger.plan_followups([made])
        assert ledger.claim_followup(made.key, "t", T0, T1)
        ledger.finish_followup(made.key, "t", "done", "boosted", T0)
        jobs = ledger.retract("p", by="ana", reason="", now=T1)
        assert [j.key for j in jobs] == [
            ("p", "delete", "masto-en")
        ]  # Mastodon drops reblogs with the status


def test_only_a_published_post_is_retracted(ledger: Ledger) -> None:
    ledger.sync_plan([entry("p")], T0)
    with pytest.raises(IllegalTransition):
        ledger.retract("p", by="a", reason="r", now=T0)
    with pytest.raises(UnknownPost):
        ledger.retract("nope", by="a", reason="r", now=T0)


def test_followups_move_with_the_ledger(backend: Backend) -> None:
    with backend.open(T0) as source, backend.fresh(T0) as target:
        published(source)
        source.plan_followups([job("boost", "sky-ku", T0), job("pin", "sky-en", T0)])
        source.retract("p", by="ana", reason="moved", now=T1)
        copy_contents(source, target, T2)
        assert list(target.export_followups()) == list(source.export_followups())
        assert target.retractions() == source.retractions()


def test_done_jobs_since_an_instant(ledger: Ledger) -> None:
    published(ledger)
    ledger.plan_followups([job("delete", "sky-en", T0), job("boost", "sky-ku", T0)])
    for key, at in ((("p", "delete", "sky-en"), T1), (("p", "boost", "sky-ku"), T1)):
        assert ledger.claim_followup(key, "t", at, at + MIN)
        ledger.finish_followup(key, "t", "done", "made", at, {"deleted": 2})
    (found,) = ledger.followups_done_since("delete", T1)
    assert (found.key, found.updated_at, found.result) == (("p", "delete", "sky-en"), T1, {"deleted": 2})
    assert ledger.followups_done_since("delete", T2) == []
