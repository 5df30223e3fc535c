"""Report speed: ``amplifier report`` on a ledger of a million posts with their read-back rows.

The campaign: 40 accounts (20 Mastodon, 20 Bluesky; five languages), one rule every 20 minutes for 347 days
(25,000 occurrences, two variants): 1,000,000 posts, 96 % published, 2 % failed, 2 % expired. A quarter of
the published posts were read back three times (1 h, 24 h, 7 days; about 720,000 engagement rows), and one in
fifty of those was deleted at its last reading. The ledger is written once into a temporary folder (SQLite,
straight INSERTs: planning a million posts is not what is measured) and reused while it exists.

Measured, best of five after one warm-up:

* ``report``: :func:`amplifier.delivery.report.build_report` (``--by lang``: the campaign's variants, the
  ledger's two grouped queries, the tallies, the top 10 posts with their texts) and its JSON, in-process;
* ``hand-written SQL``: the same two grouped queries written by hand against the same file with ``sqlite3``
  (the variants table filled the same way), no tallies, nothing rendered: the floor.

Reported: both times and their ratio; ``report`` must stay under 1 s. Also the wall time of the command as a
user runs it (``amplifier report --format json``, a new process: imports and the campaign load included).

Run: ``.venv/bin/python bench/bench_report.py`` (about a minute the first time, writing the ledger).
"""

from __future__ import annotations

import datetime as dt
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

    def by_hand() -> None:
        from amplifier.delivery.ledger.sqlite_report import _KEYS_TABLE, ENGAGEMENT_SQL, POSTS_SQL
        from amplifier.delivery.report import _Campaign

        keys = [(rule, key, v) for (rule, key), v in _Campaign(campaign, START, end).variants().items()]
        conn = sqlite3.connect(state / "ledger.sqlite3")
        conn.execute(_KEYS_TABLE)
        conn.executemany("INSERT INTO temp.report_keys VALUES (?, ?, ?)", keys)
        params = {"start": START.strftime(FMT), "end": end.strftime(FMT), "as_of": now.strftime(FMT)}
        conn.execute(POSTS_SQL, params).fetchall()
        conn.execute(ENGAGEMENT_SQL, params).fetchall()
        conn.close()

    took = best(report)
    floor = best(by_hand)
    print(f"report (build + JSON, in-process): {took:.3f} s   (limit {LIMIT:.1f} s)")
    print(f"hand-written SQL (same queries):   {floor:.3f} s")
    print(f"ratio report / hand-written SQL:   {took / floor:.2f}")
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
