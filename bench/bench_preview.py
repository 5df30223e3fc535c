"""Preview speed: a generated large campaign previewed as JSON, against bare Jinja2 rendering the same templates.

The campaign: 50 accounts (Mastodon and Bluesky, six languages), 90 days, an hourly rule on 20 accounts, a daily rule
on all 50 and a countdown: tens of thousands of planned posts. The baseline renders each planned post's template once
with plain Jinja2 (same template strings, same filters, no sandbox, no adaptation) in a loop, in the same run.

Also: what ``amplifier --help``, ``validate`` and ``preview`` import (never atproto or APScheduler), and their start-up
time against a bare ``python -c pass``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANGS = ["en", "de", "tr", "ar", "ku", "ckb"]
START = dt.date(2027, 8, 3)
DAYS = 90

TEXTS = {
    "en": "{{ days_left | plural(one='# day', other='# days') }} until {{ event.name }} ({{ event.date | date }}). "
    "Organise an action in your city: {{ event.url }}",
    "de": "Noch {{ days_left | plural(one='# Tag', other='# Tage') }} bis zum {{ event.name }} "
    "({{ event.date | date }}). Organisiert Aktionen: {{ event.url }}",
    "tr": "{{ event.name }} için {{ days_left }} gün kaldı ({{ event.date | date }}). {{ event.url }}",
    "ar": "{{ days_left | plural(zero='اليوم', one='يوم واحد', two='يومان', few='# أيام', many='# يومًا', "
    "other='# يوم') }} حتى {{ event.name }}. {{ event.url }}",
    "ku": "{{ days_left }} roj ma heta {{ event.name }} ({{ event.date | date }}). Berxwedan jiyan e! {{ event.url }}",
    "ckb": "{{ days_left }} ڕۆژ ماوە بۆ {{ event.name }} {{ event.date | date }}. {{ event.url }}",
}
HOURLY = {
    lang: text.replace("{{ days_left", "{{ hours_left }} · {{ days_left", 1) for lang, text in TEXTS.items()
}


def write_campaign(root: Path) -> Path:
    accounts = []
    for index in range(50):
        lang = LANGS[index % len(LANGS)]
        if index % 2:
            accounts.append(
                f"  a{index:02d}:\n    platform: bluesky\n    handle: a{index:02d}.example.com\n"
                f"    language: {lang}\n    password_env: PW_{index:02d}\n"
            )
        else:
            accounts.append(
                f"  a{index:02d}:\n    platform: mastodon\n    instance: https://m{index % 5}.example\n"
                f"    language: {lang}\n    token_env: TOKEN_{index:02d}\n"
            )
    hourly_accounts = ", ".join(f"a{i:02d}" for i in range(20))
    end = START + dt.timedelta(days=DAYS - 1)
    names = ", ".join(f"{lang}: World Kobane Day" for lang in LANGS)
    schedule = f"""\
campaign:
  name: Bench
  timezone: Europe/Berlin
events:
  kobane-day:
    name: {{{names}}}
    date: 2027-11-01
    url: https://riseup4rojava.org/take-action/
accounts:
{"".join(accounts)}rules:
  hourly:
    kind: recurring
    cron: "0 * * * *"
    start: {START}
    end: {end}
    event: kobane-day
    messages: hourly
    accounts: [{hourly_accounts}]
  daily:
    kind: recurring
    cron: "0 18 * * *"
    start: {START}
    end: {end}
    event: kobane-day
    messages: daily
  countdown:
    kind: countdown
    event: kobane-day
    days_before: [14, 7, 3, 2, 1]
    messages: daily
"""
    (root / "schedule.yaml").write_text(schedule, encoding="utf-8")
    (root / "messages").mkdir(exist_ok=True)

    def message_set(name: str, texts: dict[str, str]) -> str:
        lines = [f"  {name}:", "    hashtags: [Riseup4Rojava, WorldKobaneDay]", "    variants:"]
        for variant in range(3):
            lines.append("      - text:")
            for lang, text in texts.items():
                lines.append(
                    f"          {lang}: {json.dumps(text + f' ({variant + 1})', ensure_ascii=False)}"
                )
        return "\n".join(lines) + "\n"

    (root / "messages" / "bench.yaml").write_text(
        "sets:\n" + message_set("hourly", HOURLY) + message_set("daily", TEXTS), encoding="utf-8"
    )
    return root / "schedule.yaml"


def interleaved(repeat: int, *funcs: Callable[[], object]) -> list[float]:
    """The best CPU time of each function over ``repeat`` rounds, run alternately so that both see the same machine.

    CPU time of this (single-threaded) process, not wall time: other processes on the machine do not count.
    """
    best = [float("inf")] * len(funcs)
    for _ in range(repeat):
        for index, func in enumerate(funcs):
            start = time.process_time()
            func()
            best[index] = min(best[index], time.process_time() - start)
    return best


def bench_preview(repeat: int = 3) -> dict[str, float]:
    from jinja2 import Environment, StrictUndefined

    from amplifier.campaign.load import load_campaign
    from amplifier.campaign.templates import FILTERS
    from amplifier.cli.render import dump_json, posts_json
    from amplifier.plan.planner import plan_window

    with tempfile.TemporaryDirectory() as tmp:
        config = write_campaign(Path(tmp))
        campaign = load_campaign(config)
        window = (dt.datetime(2027, 8, 1, tzinfo=dt.UTC), dt.datetime(2027, 11, 2, tzinfo=dt.UTC))

        def preview() -> int:
            plan = plan_window(load_campaign(config), *window)
            dump_json(posts_json(plan.posts), io.StringIO())  # exactly what `preview --format json` does
            return len(plan.posts)

        posts = plan_window(campaign, *window).posts
        count = len(posts)

        # The baseline: plain Jinja2 renders each post's template once, with the same context values.
        env = Environment(undefined=StrictUndefined)
        env.filters.update(FILTERS)
        compiled = {}
        jobs = []
        for post in posts:
            message_set = campaign.message_sets[post.message_set]
            source = message_set.variants[post.variant].text[post.lang]
            assert isinstance(source, str)
            template = compiled.get(source) or compiled.setdefault(source, env.from_string(source))
            event = campaign.schedule.events["kobane-day"]
            context = {
                "event": {"name": "World Kobane Day", "date": event.date, "url": str(event.url)},
                "days_left": (dt.date(2027, 11, 1) - post.at.date()).days,
                "hours_left": 5,
                "lang": post.lang,
            }
            jobs.append((template, context))

        def baseline() -> None:
            for template, context in jobs:
                template.render(context)

        baseline_s, preview_s = interleaved(repeat, baseline, preview)
    return {"posts": count, "baseline_s": baseline_s, "preview_s": preview_s}


def bench_imports() -> dict[str, object]:
    env = {**os.environ, "COLUMNS": "120"}
    code = (
        "import sys, io, contextlib\n"
        "from amplifier.cli.main import main\n"
        "args = sys.argv[1:]\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'atproto', 'atproto_client', 'apscheduler'}))\n"
    )
    commands = {
        "--help": ["--help"],
        "validate": ["validate", "-c", str(ROOT / "schedule.yaml"), "--now", "2026-11-21"],
        "preview": [
            "preview",
            "-c",
            str(ROOT / "schedule.yaml"),
            "--from",
            "2027-10-25",
            "--to",
            "2027-11-02",
        ],
    }

    def run(argv: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        return time.perf_counter() - start

    base = statistics.median(run([sys.executable, "-c", "pass"]) for _ in range(5))
    atproto = statistics.median(run([sys.executable, "-c", "import atproto"]) for _ in range(3))
    out: dict[str, object] = {"python_s": base, "import_atproto_s": atproto}
    for name, args in commands.items():
        heavy = (
            subprocess.run(
                [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        out[name] = {
            "s": statistics.median(run([sys.executable, "-c", code, *args]) for _ in range(3)),
            "heavy": heavy,
        }
    return out


def main() -> None:
    print("== preview: generated campaign, 50 accounts, 90 days, hourly + daily rules")
    result = bench_preview()
    ratio = result["preview_s"] / result["baseline_s"]
    print(f"  planned posts                      {result['posts']:>10,.0f}")
    print(f"  bare Jinja2 render loop (baseline) {result['baseline_s']:>10.3f} s CPU")
    print(f"  amplifier preview as JSON          {result['preview_s']:>10.3f} s CPU")
    print(f"  ratio preview / baseline           {ratio:>10.2f} x   (target: <= 3x)")
    print(f"  posts per second                   {result['posts'] / result['preview_s']:>10,.0f}")
    print("== start-up: amplifier commands against a bare `python -c pass`")
    imports = bench_imports()
    base = float(imports["python_s"])  # type: ignore[arg-type]
    print(f"  python -c pass (baseline)          {base:>10.3f} s")
    print(
        f"  python -c 'import atproto'         {float(imports['import_atproto_s']):>10.3f} s"  # type: ignore[arg-type]
        f"   ({float(imports['import_atproto_s']) / base:.1f}x)"
    )  # type: ignore[arg-type]
    for name in ("--help", "validate", "preview"):
        entry = imports[name]
        assert isinstance(entry, dict)
        print(
            f"  amplifier {name:<24} {entry['s']:>10.3f} s   ({entry['s'] / base:.1f}x)  "
            f"imports atproto/apscheduler: {entry['heavy']}"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
    _ = textwrap  # keep the import list stable for readers of the generated campaign
