"""Report speed: ``amplifier report`` on a ledger of a million posts with their read-back rows.

The campaign: 40 accounts (20 Mastodon, 20 Bluesky; five languages), one rule every 20 minutes for 347 days
(25,000 occurrences, two variants): 1,000,000 posts, 96 % published, 2 % failed, 2 % expired. A quarter of
the published posts were read back three times (1 h, 24 h, 7 days; about 720,000 engagement rows), and one in
fifty of those was deleted at its last reading. The ledger is written once into a temporary folder (SQLite,
straight INSERTs with each post's variant, as the planner stores it; the ledger's triggers keep the report's
summary as the rows go in) and reused while it exists.

Measured, best of five after one warm-up:

* ``report``: :func:`amplifier.delivery.report.build_report` (``--by lang``: the ledger's grouped rows, the
  tallies, the top 10 posts with their texts) and its JSON, in-process;
* ``hand-written SQL over posts and readings`` (the floor of the work asked: the same groups and the same top
  10 computed by hand from the two tables with ``sqlite3``, nothing rendered);
* ``hand-written SQL over the summary`` (the floor of the work done: the same groups read by hand from
  ``report_summary``, the top 10 from the index of the posts' totals).

Before timing, the bench checks that the report's groups and top posts EQUAL the hand-written answer from the
posts and readings. Reported: the three times and the ratios; ``report`` must stay under 1 s. Also the wall time
of the command as a user runs it (``amplifier report --format json``, a new process: imports and the campaign
load included).

Run: ``.venv/bin/python bench/bench_report.py`` (about five minutes the first time, writing the ledger).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from amplifier.campaign.load import load_campaign  # noqa: E402
from amplifier.delivery.ledger import open_ledger  # noqa: E402
from amplifier.delivery.report import build_report  # noqa: E402
from amplifier.plan.schedule import occurrences_between  # noqa: E402

LIMIT = 1.0  # seconds
ACCOUNTS = 40
LANGS = ("en", "de", "ar", "ckb", "tr")
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FOLDER = Path(tempfile.gettempdir()) / "amplifier-bench-report-2"  # -2: posts carry their variant
FMT = "%Y-%m-%dT%H:%M:%S.000000+00:00"

SCHEDULE = """\
campaign:
  name: Report bench
  timezone: UTC
accounts:
{accounts}
rules:
  often:
    kind: recurring
    cron: "*/20 * * * *"
    start: 2026-01-01
    end: 2026-12-14
    messages: hello
"""
MESSAGES = """\
sets:
  hello:
    variants:
      - text: {en: "One", de: "Eins", ar: "واحد", ckb: "یەک", tr: "Bir"}
      - text: {en: "Two", de: "Zwei", ar: "اثنان", ckb: "دوو", tr: "İki"}
"""


def write_campaign(folder: Path) -> Path:
    lines = []
    for n in range(ACCOUNTS):
        lang = LANGS[n % len(LANGS)]
        if n % 2:
            lines.append(
                f"  sky{n}:\n    platform: bluesky\n    handle: sky{n}.example.org\n    password_env: P{n}\n"
                f"    language: {lang}"
            )
        else:
            lines.append(
                f"  masto{n}:\n    platform: mastodon\n    instance: https://m.example\n    token_env: T{n}\n"
                f"    language: {lang}"
            )
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    (folder / "schedule.yaml").write_text(SCHEDULE.format(accounts="\n".join(lines)), encoding="utf-8")
    (folder / "messages" / "hello.yaml").write_text(MESSAGES, encoding="utf-8")
    return folder / "schedule.yaml"


def write_ledger(folder: Path, config: Path) -> Path:
    campaign = load_campaign(config)
    rule = campaign.schedule.rules["often"]
    occurrences = list(occurrences_between(campaign.schedule, rule))[:25_000]
    accounts = list(campaign.schedule.accounts)
    assert len(occurrences) * len(accounts) == 1_000_000, len(occurrences) * len(accounts)
    state = folder / "state"
    with open_ledger(state, START):
        pass  # the schema, migrated
    rng = random.Random(14)
    conn = sqlite3.connect(state / "ledger.sqlite3")
    conn.execute("PRAGMA synchronous = OFF")
    posts, readings = [], []
    for occ in occurrences:
        due = occ.at.astimezone(dt.UTC)
        due_text = due.strftime(FMT)
        for account in accounts:
            platform = campaign.schedule.accounts[account].platform
            post_id = f"often:{account}:{occ.key}"
            roll = rng.random()
            state_name = "published" if roll < 0.96 else "failed" if roll < 0.98 else "expired"
            published = state_name == "published"
            result = (
                json.dumps([{"id": post_id, "url": f"https://example.org/{post_id}"}]) if published else None
            )
            posts.append(
                (post_id, account, platform, "often", due_text, "h", 1, state_name, due_text,
                 None if published else "reason", "tok", due_text if published else None, result,
                 due_text, due_text, occ.index % 2)
            )  # fmt: skip
            if published and rng.random() < 0.25:
                likes = rng.randrange(50)
                for age, grow in (
                    (dt.timedelta(hours=1), 1),
                    (dt.timedelta(hours=24), 3),
                    (dt.timedelta(days=7), 4),
                ):
                    at = (due + age).strftime(FMT)
                    if age.days == 7 and rng.random() < 0.02:
                        readings.append((post_id, 0, at, None, None, None, None, 1))
                    else:
                        readings.append((post_id, 0, at, likes * grow, grow, grow // 2, 0, 0))
    with conn:
        conn.executemany(
            "INSERT INTO posts (id, account, platform, rule, due_at, content_hash, part_count, state,"
            " next_attempt_at, last_error, claim_token, published_at, result, created_at, updated_at, variant)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            posts,
        )
        conn.executemany("INSERT INTO engagement VALUES (?, ?, ?, ?, ?, ?, ?, ?)", readings)
    conn.execute("ANALYZE")
    conn.close()
    print(f"ledger: {len(posts):,} posts, {len(readings):,} engagement rows", flush=True)
    return state


_COUNTS = ("likes", "reposts", "replies", "quotes")
# The report's groups by hand from the posts and readings: per part its latest reading with counts, summed per
# post, then per group (rule, account, platform, state, variant, the key's day).
BY_HAND_GROUPS = f"""
WITH parts AS (
    SELECT post_id, MAX(read_at), likes, reposts, replies, quotes FROM engagement WHERE gone = 0
    GROUP BY post_id, part_index
), per_post AS (
    SELECT post_id, {", ".join(f"SUM({c}) AS {c}, COUNT({c}) AS {c}_n" for c in _COUNTS)} FROM parts GROUP BY post_id
)
SELECT p.rule, p.account, p.platform, p.state, p.variant, substr(p.id, length(p.rule) + length(p.account) + 3, 10),
       COUNT(*), COUNT(pp.post_id), {", ".join(f"COALESCE(SUM(pp.{c}), 0), COALESCE(SUM(pp.{c}_n), 0)" for c in _COUNTS)}
FROM posts p LEFT JOIN per_post pp ON pp.post_id = p.id
WHERE p.due_at >= :start AND p.due_at < :end
GROUP BY 1, 2, 3, 4, 5, 6
"""
BY_HAND_TOP = """
WITH parts AS (
    SELECT post_id, MAX(read_at), likes, reposts, replies, quotes FROM engagement WHERE gone = 0
    GROUP BY post_id, part_index
), per_post AS (
    SELECT post_id, SUM(COALESCE(likes, 0) + COALESCE(reposts, 0) + COALESCE(replies, 0) + COALESCE(quotes, 0)) AS total
    FROM parts GROUP BY post_id
)
SELECT p.id FROM per_post pp JOIN posts p ON p.id = pp.post_id
WHERE p.due_at >= :start AND p.due_at < :end ORDER BY pp.total DESC, p.due_at, p.id LIMIT 10
"""
BY_HAND_SUMMARY = f"""
SELECT rule, account, platform, state, variant, day, SUM(posts), SUM(read),
       {", ".join(f"SUM({c}), SUM({c}_known)" for c in _COUNTS)}
FROM report_summary WHERE due_day >= :d0 AND due_day < :d1 GROUP BY 1, 2, 3, 4, 5, 6
"""
BY_HAND_SUMMARY_TOP = """
SELECT id FROM posts WHERE engagement_total IS NOT NULL AND due_at >= :start AND due_at < :end
ORDER BY engagement_total DESC, due_at, id LIMIT 10
"""


def _shape(row: tuple[object, ...]) -> tuple[object, ...]:
    """A hand-written group as a ReportRow's values (a count none of whose readings knew it is None)."""
    counts = row[8:]
    return (*row[:8], *(counts[i] if counts[i + 1] else None for i in range(0, 8, 2)))


def best(fn: object, runs: int = 5) -> float:
    assert callable(fn)
    fn()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> int:
    config = FOLDER / "schedule.yaml"
    state = FOLDER / "state"
    if not (state / "ledger.sqlite3").exists() or not config.exists():
        FOLDER.mkdir(parents=True, exist_ok=True)
        write_ledger(FOLDER, write_campaign(FOLDER))
    campaign = load_campaign(config)
    end = START + dt.timedelta(days=400)
    now = end

    def report() -> None:
        with open_ledger(state, now) as ledger:
            json.dumps(build_report(ledger, campaign, START, end, as_of=now, by="lang").to_json())

    params = {"start": START.strftime(FMT), "end": end.strftime(FMT)}

    def from_tables() -> tuple[list[tuple[object, ...]], list[str]]:
        with sqlite3.connect(state / "ledger.sqlite3") as conn:
            groups = conn.execute(BY_HAND_GROUPS, params).fetchall()
            top = [post_id for (post_id,) in conn.execute(BY_HAND_TOP, params)]
        return [_shape(row) for row in groups], top

    def from_summary() -> None:
        with sqlite3.connect(state / "ledger.sqlite3") as conn:
            conn.execute(
                BY_HAND_SUMMARY, {"d0": START.strftime(FMT)[:10], "d1": end.strftime(FMT)[:10]}
            ).fetchall()
            conn.execute(BY_HAND_SUMMARY_TOP, params).fetchall()

    # the same answer first: every group and the top 10, exactly
    with open_ledger(state, now) as ledger:
        rows = ledger.report_rows(START, end, as_of=now)
        top = [t.post_id for t in ledger.top_posts(START, end, as_of=now, limit=10)]
    groups, hand_top = from_tables()
    assert sorted(tuple(vars(r).values()) for r in rows) == sorted(groups), (
        "the report differs from the floor"
    )
    assert top == hand_top, (top, hand_top)
    print(f"same answer: {len(rows):,} groups, top 10 {top[:2]}...", flush=True)
    del rows, groups  # not kept alive while the report is timed (each collection would walk them)
    gc.collect()

    took = best(report)
    floor = best(from_tables)
    summary_floor = best(from_summary)
    print(f"report (build + JSON, in-process):             {took:.3f} s   (limit {LIMIT:.1f} s)")
    print(
        f"hand-written SQL over posts and readings:      {floor:.3f} s   ratio report / it: {took / floor:.2f}"
    )
    print(f"hand-written SQL over the summary:             {summary_floor:.3f} s   "
          f"ratio report / it: {took / summary_floor:.2f}")  # fmt: skip
    began = time.perf_counter()
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "amplifier"), "-c", str(config), "--state", str(state), "report",
         "--from", START.isoformat(), "--to", end.isoformat(), "--now", now.isoformat(), "--format", "json"],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    wall = time.perf_counter() - began
    assert cli.returncode == 0, cli.stderr
    totals = json.loads(cli.stdout)["totals"]
    print(f"amplifier report --format json (new process): {wall:.3f} s; {totals['posts']:,} posts")
    return 0 if took < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
