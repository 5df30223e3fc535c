"""What the ledger answers for read-back jobs and for the campaign report (both backends share these shapes).

* :class:`ReadAges` says which posts a read-back job is due for (:meth:`Ledger.reads_due`): a published post
  whose age ``a`` (one of :attr:`ReadAges.ages`) has passed and that has no reading taken at or after
  ``published_at + a``, or whose rule's event read instant (:attr:`ReadAges.after`) has passed with no reading
  at or after it. A reading satisfies every age it is past, so a daemon that was down reads once, not once per
  missed age. Posts published before :attr:`ReadAges.since` are read no more (the query stays on an index of
  recent published posts, so it is cheap when nothing is due).
* :class:`ReportRow` is one group of the report (:meth:`Ledger.report_rows`): the posts of one rule, account,
  platform, state, variant and day due in the window, with their engagement: per part, its latest reading
  with counts at or before ``as_of``, summed. The ledger does not know variants: the caller passes them by
  rule and occurrence key (the post id's last part, the rule's local wall time ``YYYY-MM-DDTHH:MM``); the day
  is the key's (the rule's local day). A post planned with its variant (``posts.variant``) keeps that one;
  the caller's map serves the posts planned before the ledger stored it.

How the backends answer :meth:`Ledger.report_rows`: the whole UTC days of the window from the summary the
database keeps (:mod:`.summary`, a read proportional to the groups), the partial days at its ends and the posts
without a stored variant from the posts and their readings (:data:`summary_span`); a report ``as_of`` an
instant before the ledger's latest reading all from the posts and readings (exact, and proportional to the
window's posts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias


@dataclass(frozen=True)
class ReadAges:
    """When published posts are read back (see the module docstring)."""

    ages: tuple[timedelta, ...]
    since: datetime
    after: Mapping[str, datetime] = field(default_factory=dict)  # rule -> the read instant after its event

    def __post_init__(self) -> None:
        if any(age < timedelta(0) for age in self.ages):
            raise ValueError("a read age is >= 0")


@dataclass(frozen=True)
class ReportRow:
    """One group of posts of the report window (see the module docstring); counts are ``None`` when no
    reading of the group has them."""

    rule: str
    account: str
    platform: str
    state: str
    variant: int | None  # as the caller numbered it; None: not in its map
    day: str  # YYYY-MM-DD, the rule's local day
    posts: int
    read: int  # posts with at least one reading with counts
    likes: int | None
    reposts: int | None
    replies: int | None
    quotes: int | None


VariantMap: TypeAlias = Mapping[tuple[str, str], int]
#: the variants by (rule, occurrence key), or how to compute them (called only when a post of the window has no
#: stored variant: computing them walks the rules' occurrences of the whole window)
Variants: TypeAlias = VariantMap | Callable[[], VariantMap] | None

NO_VARIANT_SQL = "SELECT 1 FROM posts{index} WHERE variant IS NULL AND due_at >= ? AND due_at < ? LIMIT 1"


def resolve_variants(variants: Variants, needed: Callable[[], bool]) -> list[tuple[str, str, int]]:
    """``variants`` as (rule, key, variant) rows; a callable is called only if ``needed()``."""
    if callable(variants):
        variants = variants() if needed() else None
    return [(rule, key, variant) for (rule, key), variant in (variants or {}).items()]


def summary_span(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The whole UTC days inside [``start``, ``end``) (their first instant, and the instant after the last):
    what the summary answers; None when the window holds no whole day."""
    first = start.astimezone(UTC)
    midnight = first.replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight < first:
        midnight += timedelta(days=1)
    last = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight, last) if midnight < last else None


def summary_days(span: tuple[datetime, datetime]) -> dict[str, str]:
    """The summary's bounds for the whole UTC days ``span``: its UTC days (``d0``, ``d1``) and the local days
    their posts can have (``l0``, ``l1``: one more each side), as ``YYYY-MM-DD``."""
    first, last = span
    return {
        "d0": first.date().isoformat(),
        "d1": last.date().isoformat(),
        "l0": (first - timedelta(days=1)).date().isoformat(),
        "l1": (last + timedelta(days=1)).date().isoformat(),
    }


def merged_rows(
    summary: Iterable[Sequence[Any]], parts: Iterable[Iterable[Sequence[Any]]]
) -> list[ReportRow]:
    """:class:`ReportRow` s from rows of the summary's shape (the six group columns, posts, read, then each
    count with how many readings knew it): ``summary`` (unique groups, in report order) with ``parts`` (the
    exact path's rows) summed in per group; by day, rule, account, platform, state, variant."""
    extra: dict[tuple[Any, ...], list[int]] = {}
    for rows in parts:
        for row in rows:
            key = tuple(row[:6])
            values = [int(v) for v in row[6:]]
            have = extra.get(key)
            if have is None:
                extra[key] = values
            else:
                for i, value in enumerate(values):
                    have[i] += value
    merged: list[ReportRow] = []
    last: tuple[Any, ...] | None = None
    for rule, account, platform, state, variant, day, *v in summary:
        if (rule, account, platform, state, variant, day) == last:  # the group's posts of another UTC day
            merged[-1] = _plus(merged[-1], v)
            continue
        last = (rule, account, platform, state, variant, day)
        if extra:
            more = extra.pop((rule, account, platform, state, variant, day), None)
            if more is not None:
                v = [a + b for a, b in zip(v, more, strict=True)]
        merged.append(
            ReportRow(
                rule, account, platform, state, variant, day, v[0], v[1],
                v[2] if v[3] else None, v[4] if v[5] else None, v[6] if v[7] else None, v[8] if v[9] else None,
            )
        )  # fmt: skip
    if not extra:
        return merged
    merged.extend(
        ReportRow(
            rule, account, platform, state, variant, day, v[0], v[1],
            v[2] if v[3] else None, v[4] if v[5] else None, v[6] if v[7] else None, v[8] if v[9] else None,
        )
        for (rule, account, platform, state, variant, day), v in extra.items()
        if v[0]
    )  # fmt: skip
    return sorted(merged, key=_order)


def _plus(row: ReportRow, v: Sequence[int]) -> ReportRow:
    """``row`` with the summary's values ``v`` added."""

    def count(have: int | None, more: int, known: int) -> int | None:
        return have if not known else (have or 0) + more

    return replace(
        row,
        posts=row.posts + v[0],
        read=row.read + v[1],
        likes=count(row.likes, v[2], v[3]),
        reposts=count(row.reposts, v[4], v[5]),
        replies=count(row.replies, v[6], v[7]),
        quotes=count(row.quotes, v[8], v[9]),
    )


def _order(r: ReportRow) -> tuple[Any, ...]:
    return (r.day, r.rule, r.account, r.platform, r.state, -1 if r.variant is None else r.variant)
