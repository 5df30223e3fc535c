"""Every post of a report window with its engagement (``amplifier report --posts``), streamed.

The report's groups and top posts stay small whatever the ledger holds; ``--posts`` adds one record per post
due in the window (JSON: a ``posts`` list after the report; CSV: one row per post instead of the groups), read a
page at a time from the ledger (:meth:`~amplifier.delivery.ledger.Ledger.report_posts`) and written as it comes,
so a million posts take bounded memory. :data:`POST_KEYS` is the record (``posts_version`` 1, pinned by
``tests/unit/test_report.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from amplifier.campaign.load import Campaign
from amplifier.delivery.ledger import Ledger
from amplifier.delivery.report import _Campaign

POSTS_VERSION = 1
POST_KEYS = (
    "post_id", "account", "platform", "lang", "rule", "message_set", "variant", "state", "due_at", "url",
    "parts_read", "parts_gone", "likes", "reposts", "replies", "quotes", "engagement", "last_read_at",
)  # fmt: skip


def iter_posts(
    ledger: Ledger, campaign: Campaign, start: dt.datetime, end: dt.datetime, *, as_of: dt.datetime
) -> Iterator[dict[str, Any]]:
    """One record (:data:`POST_KEYS`) per post due in [``start``, ``end``), by due time then id; engagement
    as of ``as_of`` (counts ``None`` when unknown: no reading, or the server does not count them)."""
    lookup = _Campaign(campaign, start, end)
    langs: dict[str, str] = {}
    variants: dict[tuple[str, str], int] | None = None  # for posts planned before the ledger kept theirs
    for post in ledger.report_posts(start, end, as_of=as_of):
        variant = post.variant
        if variant is None:
            if variants is None:
                variants = lookup.variants()
            key = post.post_id[len(post.rule) + len(post.account) + 2 :]
            variant = variants.get((post.rule, key))
        lang = langs.get(post.account)
        if lang is None:
            lang = langs[post.account] = lookup.lang(post.account)
        total = post.total
        counts: list[int | None] = (
            [None] * 4 if total is None else [total.likes, total.reposts, total.replies, total.quotes]
        )
        yield {
            "post_id": post.post_id,
            "account": post.account,
            "platform": post.platform,
            "lang": lang,
            "rule": post.rule,
            "message_set": lookup.message_set(post.rule),
            "variant": None if variant is None else variant + 1,
            "state": post.state,
            "due_at": post.due_at.isoformat(),
            "url": post.url,
            "parts_read": 0 if total is None else total.parts_read,
            "parts_gone": 0 if total is None else total.parts_gone,
            "likes": counts[0],
            "reposts": counts[1],
            "replies": counts[2],
            "quotes": counts[3],
            "engagement": 0 if total is None else total.total,
            "last_read_at": None if total is None else total.last_read_at.isoformat(),
        }
