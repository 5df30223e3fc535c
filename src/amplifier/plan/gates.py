"""Reply and quote controls and self-labels as the platforms store them (pure functions).

* Bluesky: who may reply is an ``app.bsky.feed.threadgate`` record, who may quote an ``app.bsky.feed.postgate``
  record; both live at the post's own record key (the lexicons require it) and name the post in ``post``.
  A threadgate's ``allow`` holds at most 5 rules (``#mentionRule``, ``#followerRule``, ``#followingRule``,
  ``#listRule``); an empty ``allow`` lets nobody reply. A postgate with ``embeddingRules: [#disableRule]`` turns
  quoting off. Self-labels are ``labels: {$type: com.atproto.label.defs#selfLabels, values: [{val}]}`` on the post.
* Mastodon (4.5+): ``quote_approval_policy`` (public / followers / nobody) on ``POST /api/v1/statuses`` and
  ``PUT /api/v1/statuses/:id/interaction_policy``. Mastodon has no reply control.

In a planned gate record, ``post`` is the placeholder ``{"$ref": "part:N"}`` (the part's at:// URI once written).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from amplifier.plan.post import REF

THREADGATE = "app.bsky.feed.threadgate"
POSTGATE = "app.bsky.feed.postgate"
GATE_COLLECTIONS = (THREADGATE, POSTGATE)
SELF_LABELS = "com.atproto.label.defs#selfLabels"

_RULES = {
    "mentioned": f"{THREADGATE}#mentionRule",
    "followers": f"{THREADGATE}#followerRule",
    "following": f"{THREADGATE}#followingRule",
}


def allow_rules(replies: Sequence[str]) -> list[dict[str, Any]]:
    """The threadgate ``allow`` list of a ``replies`` setting (``nobody`` or none: an empty list)."""
    rules: list[dict[str, Any]] = []
    for rule in replies:
        if rule == "nobody":
            continue
        if rule in _RULES:
            rules.append({"$type": _RULES[rule]})
        else:
            rules.append({"$type": f"{THREADGATE}#listRule", "list": rule})
    return rules


def threadgate(post: Any, replies: Sequence[str], created_at: str) -> dict[str, Any]:
    return {"$type": THREADGATE, "post": post, "allow": allow_rules(replies), "createdAt": created_at}


def postgate(post: Any, created_at: str) -> dict[str, Any]:
    return {
        "$type": POSTGATE,
        "post": post,
        "createdAt": created_at,
        "embeddingRules": [{"$type": f"{POSTGATE}#disableRule"}],
    }


def quotes_off(policy: str | None) -> bool:
    """Whether a quote policy turns quoting off on Bluesky (which has no followers-only quoting)."""
    return policy in ("nobody", "followers")


def part_gates(
    index: int, replies: Sequence[str] | None, policy: str | None, created_at: str
) -> tuple[dict[str, Any], ...]:
    """The gate records of thread part ``index``: the threadgate on the first part only, a postgate on each."""
    ref = {REF: f"part:{index}"}
    gates: list[dict[str, Any]] = []
    if index == 0 and replies is not None:
        gates.append(threadgate(ref, replies, created_at))
    if quotes_off(policy):
        gates.append(postgate(ref, created_at))
    return tuple(gates)


def self_labels(values: Sequence[str]) -> dict[str, Any]:
    return {"$type": SELF_LABELS, "values": [{"val": value} for value in values]}


def describe(replies: Sequence[str] | None, policy: str | None) -> str:
    """One line for people: ``replies: followers, mentioned · quotes: nobody``."""
    bits = []
    if replies is not None:
        bits.append("replies: " + (", ".join(r for r in replies if r != "nobody") or "nobody"))
    if policy is not None:
        bits.append(f"quotes: {'everyone' if policy == 'public' else policy}")
    return " · ".join(bits)


_RULE_NAMES = {value: key for key, value in _RULES.items()}


def controls_line(parts: Sequence[Any]) -> str:
    """What a preview shows of a post's controls and labels, from its parts' payloads and gates ("" for none):
    ``replies: followers · quotes: off · labels: graphic-media · media: sensitive``."""
    if not parts:
        return ""
    first = parts[0]
    bits = []
    for gate in first.gates:
        if gate.get("$type") == THREADGATE:
            rules = [_RULE_NAMES.get(rule["$type"], rule.get("list", "")) for rule in gate["allow"]]
            bits.append("replies: " + (", ".join(rules) or "nobody"))
    if any(gate.get("$type") == POSTGATE for gate in first.gates):
        bits.append("quotes: off")
    policy = first.payload.get("quote_approval_policy")
    if policy is not None:
        bits.append(f"quotes: {'everyone' if policy == 'public' else policy}")
    labels = (first.payload.get("labels") or {}).get("values") or []
    if labels:
        bits.append("labels: " + ", ".join(str(label["val"]) for label in labels))
    if first.payload.get("sensitive"):
        bits.append("media: sensitive")
    return " · ".join(bits)
