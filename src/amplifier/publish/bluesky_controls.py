"""Bluesky reply and quote controls (threadgate, postgate) and the profile's automation label.

* **With the post, in one commit.** A part that has gates (:attr:`~amplifier.plan.post.Part.gates`) is written
  with ``com.atproto.repo.applyWrites``: the post and its ``app.bsky.feed.threadgate`` / ``app.bsky.feed.postgate``
  at the post's own record key (the lexicons require it), all or nothing. So after a crash either the post and its
  gates exist or none of them do; a post written without its gates (by an older amplifier, or by hand) is found
  by :func:`missing_gates` and its missing gates are written once with ``putRecord`` (deterministic records:
  writing one again is a no-op).
* **Changing them later** (``amplifier gate``): :func:`set_gates` puts or deletes the records.
* **Disclosure.** The profile record (``app.bsky.actor.profile``/``self``) carries the self-label ``bot`` for an
  automated account; :func:`automation` reads it with ``getRecord`` (no AppView needed) and
  :func:`disclose_automation` adds it, keeping every other field of the profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amplifier.plan.gates import POSTGATE, SELF_LABELS, THREADGATE, postgate, threadgate
from amplifier.plan.post import REF, Part
from amplifier.publish.base import placeholder, ref_index

if TYPE_CHECKING:
    from amplifier.publish.bluesky_repo import BlueskyRepo

POST = "app.bsky.feed.post"
PROFILE = "app.bsky.actor.profile"
BOT_LABEL = "bot"


def post_uri(did: str, rkey: str) -> str:
    return f"at://{did}/{POST}/{rkey}"


def resolved_gates(pub: BlueskyRepo, rkey: str, part: Part) -> list[dict[str, Any]]:
    """The part's gate records with ``post`` resolved to the part's own at:// URI."""
    gates = []
    for gate in part.gates:
        record = dict(gate)
        hit = placeholder(record.get("post"))
        if hit is not None and hit[0] == REF:
            ref_index(hit[1])  # a malformed reference fails loudly
            record["post"] = post_uri(pub.did, rkey)
        gates.append(record)
    return gates


def write_with_gates(
    pub: BlueskyRepo, rkey: str, record: Mapping[str, Any], part: Part
) -> tuple[str, str, bool]:
    """Create the post and its gates in one commit; the post's ``(uri, cid, existed)``.

    The create of a key that exists fails (HTTP 500, bluesky-social/atproto#3718): when the post is there after all
    (the ledger lost an earlier success), its missing gates are written and it counts as existing."""
    from amplifier.publish.base import PermanentError, RateLimitedError, TransientError

    writes = [
        {"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "rkey": rkey, "value": record}
    ]
    writes += [
        {
            "$type": "com.atproto.repo.applyWrites#create",
            "collection": gate["$type"],
            "rkey": rkey,
            "value": gate,
        }
        for gate in resolved_gates(pub, rkey, part)
    ]
    try:
        content = pub._procedure("com.atproto.repo.applyWrites", {"repo": pub.did, "writes": writes})
    except RateLimitedError:
        raise
    except (TransientError, PermanentError):
        existing = pub._get_record(rkey)
        if existing is None:
            raise
        write_missing_gates(pub, rkey, part)
        return str(existing["uri"]), str(existing["cid"]), True
    results = content.get("results") or []
    first = dict(results[0]) if results else {}
    if not first.get("uri") or not first.get("cid"):
        raise ValueError("an applyWrites answer without the post's uri and cid")
    return str(first["uri"]), str(first["cid"]), False


def missing_gates(pub: BlueskyRepo, rkey: str, part: Part) -> list[dict[str, Any]]:
    """The part's gates that are not on the server (``getRecord`` each)."""
    return [gate for gate in resolved_gates(pub, rkey, part) if pub._get_record(rkey, gate["$type"]) is None]


def write_missing_gates(pub: BlueskyRepo, rkey: str, part: Part) -> int:
    """Write the part's missing gates (``putRecord``); how many were written."""
    missing = missing_gates(pub, rkey, part)
    for gate in missing:
        pub._put_record(rkey, gate, gate["$type"])
    return len(missing)


def set_gates(
    pub: BlueskyRepo,
    rkeys: Sequence[str],
    *,
    replies: Sequence[str] | None,
    everyone_replies: bool,
    quotes_off: bool | None,
    created_at: str,
) -> list[str]:
    """Change the controls of the post whose parts are at ``rkeys`` (the first is the root): ``replies``
    (rules; ``[]``: nobody) puts a threadgate on the root, ``everyone_replies`` deletes it; ``quotes_off``
    puts (True) or deletes (False) a postgate on every part; ``None``: unchanged. What was done, in words."""
    done: list[str] = []
    root = rkeys[0]
    if replies is not None:
        pub._put_record(root, threadgate(post_uri(pub.did, root), replies, created_at), THREADGATE)
        done.append(f"threadgate on {root}")
    elif everyone_replies:
        pub._procedure(
            "com.atproto.repo.deleteRecord", {"repo": pub.did, "collection": THREADGATE, "rkey": root}
        )
        done.append(f"threadgate deleted on {root}")
    if quotes_off is not None:
        for rkey in rkeys:
            if quotes_off:
                pub._put_record(rkey, postgate(post_uri(pub.did, rkey), created_at), POSTGATE)
                done.append(f"postgate on {rkey}")
            else:
                pub._procedure(
                    "com.atproto.repo.deleteRecord", {"repo": pub.did, "collection": POSTGATE, "rkey": rkey}
                )
                done.append(f"postgate deleted on {rkey}")
    return done


def automation(pub: BlueskyRepo) -> bool:
    """Whether the profile record carries the ``bot`` self-label."""
    profile = pub._get_record("self", PROFILE)
    return BOT_LABEL in _label_values((profile or {}).get("value") or {})


def disclose_automation(pub: BlueskyRepo) -> bool:
    """Add the ``bot`` self-label to the profile record, keeping its other fields; whether it was added."""
    profile = pub._get_record("self", PROFILE)
    value: dict[str, Any] = dict((profile or {}).get("value") or {"$type": PROFILE})
    values = _label_values(value)
    if BOT_LABEL in values:
        return False
    old = value.get("labels")
    labels: dict[str, Any] = dict(old) if isinstance(old, Mapping) else {"$type": SELF_LABELS}
    value["labels"] = {**labels, "values": [*(labels.get("values") or []), {"val": BOT_LABEL}]}
    value.setdefault("$type", PROFILE)
    data: dict[str, Any] = {"repo": pub.did, "collection": PROFILE, "rkey": "self", "record": value}
    if profile is not None and profile.get("cid"):
        data["swapRecord"] = profile["cid"]  # a profile edited meanwhile is not overwritten
    pub._procedure("com.atproto.repo.putRecord", data)
    return True


def _label_values(record: Mapping[str, Any]) -> list[str]:
    labels = record.get("labels")
    if not isinstance(labels, Mapping):
        return []
    return [str(entry.get("val")) for entry in labels.get("values") or [] if isinstance(entry, Mapping)]
