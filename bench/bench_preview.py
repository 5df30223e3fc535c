"""Preview and start-up: each figure against a floor measured in the same run.

Honest preview ratio
    A generated campaign (50 accounts in six languages, 90 days, an hourly rule on 20 accounts, a daily rule on all
    50 and a countdown). amplifier: the whole ``preview --format json -o FILE`` command, in-process (campaign
    loading, planning, rendering, adaptation, writing). Floor: a minimal script, in the same process and run, that
    renders exactly the templates amplifier renders (the same sources with the same contexts, recorded from
    amplifier, the same number of renders) with bare Jinja2 and writes the same posts with one ``json.dumps`` (the
    same output, byte for byte the same size). Then again with every template naming ``{{ account.id }}`` (nothing
    can be shared between accounts). CPU time of this process, the best of 3, run alternately.

Scale (subprocesses ``python -m amplifier``; wall and CPU time, peak RSS)
    * ``preview --format json`` of about 500k posts, against the same command on a one-day window (the floor: the
      interpreter, the imports, the campaign);
    * ``validate`` of the same 500k-post campaign, against ``validate --horizon 1d``;
    * a one-day window of a 2.6-year campaign, against the same day of a campaign that lasts that one day;
    * ``preview --format ics`` of about 50k posts, against ``--format json`` of the same posts.

Start-up
    ``--help``, ``validate``, ``preview``, ``status``, ``run --once`` on the example campaign: time against a bare
    ``python -c pass``, and every third-party package each one imports (client libraries flagged).

Run: ``.venv/bin/python bench/bench_preview.py`` (a few minutes; with the argument ``ratio``: the honest ratio
only). ``AMPLIFIER_BENCH_SRC=/path/to/src`` runs the
subprocess figures against another checkout (for before/after figures).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(os.environ.get("AMPLIFIER_BENCH_SRC", ROOT / "src"))
LANGS = ["en", "de", "tr", "ar", "ku", "ckb"]
START = dt.date(2027, 8, 3)
CLIENTS = {"mastodon", "atproto", "atproto_client", "apscheduler", "requests", "urllib3", "httpx"}

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


def write_campaign(
    root: Path,
    *,
    days: int = 90,
    hourly_accounts: int = 20,
    per_account: bool = False,
    start: dt.date = START,
) -> Path:
    """50 accounts, an hourly rule on the first ``hourly_accounts``, a daily rule on all, a countdown."""
    root.mkdir(parents=True, exist_ok=True)
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
    hourly = ", ".join(f"a{i:02d}" for i in range(hourly_accounts))
    end = start + dt.timedelta(days=days - 1)
    event = max(dt.date(2027, 11, 1), end + dt.timedelta(days=1))
    names = ", ".join(f"{lang}: World Kobane Day" for lang in LANGS)
    schedule = f"""\
campaign:
  name: Bench
  timezone: Europe/Berlin
events:
  kobane-day:
    name: {{{names}}}
    date: {event}
    url: https://riseup4rojava.org/take-action/
accounts:
{"".join(accounts)}rules:
  hourly:
    kind: recurring
    cron: "0 * * * *"
    start: {start}
    end: {end}
    event: kobane-day
    messages: hourly
    accounts: [{hourly}]
  daily:
    kind: recurring
    cron: "0 18 * * *"
    start: {start}
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
    suffix = " — {{ account.id }}" if per_account else ""

    def message_set(name: str, texts: dict[str, str]) -> str:
        lines = [f"  {name}:", "    hashtags: [Riseup4Rojava, WorldKobaneDay]", "    variants:"]
        for variant in range(3):
            lines.append("      - text:")
            for lang, text in texts.items():
                value = json.dumps(text + suffix + f" ({variant + 1})", ensure_ascii=False)
                lines.append(f"          {lang}: {value}")
        return "\n".join(lines) + "\n"

    (root / "messages" / "bench.yaml").write_text(
        "sets:\n" + message_set("hourly", HOURLY) + message_set("daily", TEXTS), encoding="utf-8"
    )
    return root / "schedule.yaml"


def interleaved(repeat: int, *funcs: Callable[[], object]) -> list[float]:
    """The best CPU time of each function over ``repeat`` rounds, run alternately so that both see the same machine."""
    best = [float("inf")] * len(funcs)
    for _ in range(repeat):
        for index, func in enumerate(funcs):
            start = time.process_time()
            func()
            best[index] = min(best[index], time.process_time() - start)
    return best


# ------------------------------------------------------------------------------------------ honest preview ratio


def bench_ratio(folder: Path, *, per_account: bool, repeat: int = 3) -> dict[str, float]:
    from jinja2 import Environment, StrictUndefined

    from amplifier.campaign.templates import FILTERS
    from amplifier.cli.main import main
    from amplifier.plan.planner import Planner

    config = write_campaign(folder, per_account=per_account)
    out = folder / "preview.json"
    floor_out = folder / "floor.json"
    args = ["preview", "-c", str(config), "--from", "2027-08-01", "--to", "2027-11-02", "--format", "json"]

    def preview() -> None:
        with contextlib.redirect_stderr(io.StringIO()):  # "wrote FILE (N posts)"
            main([*args, "-o", str(out)])

    # Record every render amplifier does (template source and context), in a run outside the timings.
    jobs: list[tuple[str, dict[str, Any]]] = []
    original = Planner._render

    def recording(self: Planner, text: Any, context: dict[str, Any], cache_key: Any) -> str | None:
        jobs.append((text.source, context))
        return original(self, text, context, cache_key)

    Planner._render = recording  # type: ignore[method-assign]
    try:
        preview()
    finally:
        Planner._render = original  # type: ignore[method-assign]
    document = json.loads(out.read_text(encoding="utf-8"))
    env = Environment(undefined=StrictUndefined)
    env.filters.update(FILTERS)

    def floor() -> None:
        compiled: dict[str, Any] = {}
        for source, context in jobs:
            template = compiled.get(source) or compiled.setdefault(source, env.from_string(source))
            template.render(context)
        with floor_out.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(document, ensure_ascii=False, default=str))
            handle.write("\n")

    def renders_only() -> None:
        compiled: dict[str, Any] = {}
        for source, context in jobs:
            template = compiled.get(source) or compiled.setdefault(source, env.from_string(source))
            template.render(context)

    floor_s, preview_s, render_s = interleaved(repeat, floor, preview, renders_only)
    assert floor_out.stat().st_size == out.stat().st_size, "the floor writes the same bytes"
    return {
        "posts": len(document["posts"]),
        "renders": len(jobs),
        "floor_s": floor_s,
        "preview_s": preview_s,
        "render_s": render_s,
        "bytes": out.stat().st_size,
    }


# ------------------------------------------------------------------------------------------------- subprocesses

MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "keep = sys.argv.pop(1) == 'keep'\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE if keep else subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "wall = time.perf_counter() - t\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(wall, u.ru_utime + u.ru_stime, u.ru_maxrss / 1024, r.returncode, repr((r.stdout or b'')[-300:]),"
    " repr(r.stderr[-300:]))\n"
)


def measure(*args: str, keep: bool = False) -> dict[str, Any]:
    """Wall time, CPU time and peak RSS (MB) of ``python -m amplifier ARGS`` (stdout discarded unless ``keep``)."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, "keep" if keep else "-", sys.executable, "-m", "amplifier", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu, rss, code, rest = proc.stdout.split(" ", 4)
    if int(code) != 0:
        raise RuntimeError(f"amplifier {' '.join(args)} exited {code}: {rest}")
    return {"wall": float(wall), "cpu": float(cpu), "rss": float(rss), "out": rest}


def best(runs: int, *args: str) -> dict[str, Any]:
    results = [measure(*args) for _ in range(runs)]
    return {
        "wall": min(r["wall"] for r in results),
        "cpu": min(r["cpu"] for r in results),
        "rss": max(r["rss"] for r in results),
    }


def bench_scale(folder: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    big = write_campaign(folder / "big", days=410, hourly_accounts=50)  # about 500k posts
    window = ["--from", "2027-08-03", "--to", "2028-09-20"]
    out["json 500k"] = measure("preview", "-c", str(big), *window, "--format", "json")
    out["json 1 day"] = best(
        3, "preview", "-c", str(big), "--from", "2027-09-01", "--to", "+1d", "--format", "json"
    )
    now = ["--now", "2027-08-01"]
    out["validate 500k"] = measure("validate", "-c", str(big), *now, keep=True)
    out["validate 1 day"] = best(3, "validate", "-c", str(big), *now, "--horizon", "1d")

    long = write_campaign(folder / "long", days=950, start=dt.date(2026, 1, 1))  # 2.6 years
    day = write_campaign(folder / "day", days=1, start=dt.date(2027, 6, 1))
    one_day = ["--from", "2027-06-01", "--to", "+1d", "--format", "json"]
    out["long: one day"] = best(3, "preview", "-c", str(long), *one_day)
    out["one-day campaign"] = best(3, "preview", "-c", str(day), *one_day)

    mid = write_campaign(folder / "mid", days=90)  # about 48k posts
    ics = folder / "preview.ics"
    span = ["--from", "2027-08-01", "--to", "2027-11-02"]
    out["ics 50k"] = best(2, "preview", "-c", str(mid), *span, "--format", "ics", "-o", str(ics))
    out["json 50k"] = best(2, "preview", "-c", str(mid), *span, "--format", "json")
    return out


# ------------------------------------------------------------------------------------------------------ start-up

IMPORTS = (
    "import sys, io, contextlib\n"
    "before = set(sys.modules)\n"
    "from amplifier.cli.main import main\n"
    "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
    "    try:\n        main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
    "top = {m.split('.')[0] for m in sys.modules}\n"
    "print(' '.join(sorted(t for t in top if t not in sys.stdlib_module_names and t != 'amplifier'"
    " and not t.startswith('_'))))\n"
)


def bench_startup(folder: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "120"}
    config = ["--config", str(ROOT / "schedule.yaml"), "--state", str(folder / "state")]
    commands = {
        "--help": ["--help"],
        "validate": [*config, "validate", "--now", "2026-11-21"],
        "preview": [*config, "preview", "--from", "2027-10-25", "--to", "2027-11-02", "--format", "json"],
        "status": [*config, "status"],
        "run --once": [*config, "run", "--once", "--now", "2026-11-21"],
    }

    def run(argv: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        return time.perf_counter() - start

    out: dict[str, Any] = {"python": statistics.median(run([sys.executable, "-c", "pass"]) for _ in range(5))}
    for name, args in commands.items():
        packages = subprocess.run(
            [sys.executable, "-c", IMPORTS, *args], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        seconds = statistics.median(run([sys.executable, "-m", "amplifier", *args]) for _ in range(3))
        out[name] = {"s": seconds, "packages": packages}
    return out


# ----------------------------------------------------------------------------------------------------------- main


def main(only_ratio: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if SRC == ROOT / "src":
            for per_account, label in ((False, "shared renders"), (True, "every template names the account")):
                r = bench_ratio(folder / f"ratio-{per_account}", per_account=per_account)
                ratio = r["preview_s"] / r["floor_s"]
                goal = 2.5 if per_account else 1.5
                print(f"== honest preview ratio ({label}): 50 accounts, 90 days")
                print(f"  posts / renders (amplifier = floor)  {r['posts']:>9,.0f} / {r['renders']:,.0f}")
                print(
                    f"  output                               {r['bytes'] / 1e6:>9.1f} MB (floor: the same bytes)"
                )
                print(f"  floor: bare Jinja2 + json.dumps      {r['floor_s']:>9.3f} s CPU")
                print(f"  amplifier preview --format json      {r['preview_s']:>9.3f} s CPU")
                print(f"  ratio amplifier / floor              {ratio:>9.2f} x   (goal <= {goal}x)")
                print(f"  per render (bare Jinja2)             {r['render_s'] / r['renders'] * 1e6:>9.1f} us")
                print(
                    f"  per post: floor / amplifier          {r['floor_s'] / r['posts'] * 1e6:>9.1f} us"
                    f" / {r['preview_s'] / r['posts'] * 1e6:.1f} us"
                )
        else:
            print(f"== (honest ratio skipped: subprocess figures against {SRC})")
        if only_ratio:
            return
        print("== scale: python -m amplifier (wall s, CPU s, peak RSS MB)")
        scale = bench_scale(folder)
        print(
            f"  (the 500k campaign: {scale['validate 500k']['out'].split('message sets, ')[-1].split(' planned')[0]})"
        )
        for name, r in scale.items():
            print(f"  {name:<20} {r['wall']:>7.2f} s  {r['cpu']:>7.2f} s CPU  {r['rss']:>7.0f} MB")
        pairs = [
            (
                "json 500k",
                "json 1 day",
                "preview json 500k posts vs one day: peak RSS",
                "rss",
                "goal < 300 MB",
            ),
            ("validate 500k", "validate 1 day", "validate 500k posts vs one day: peak RSS", "rss", "bounded"),
            (
                "long: one day",
                "one-day campaign",
                "one day of a 2.6-year campaign vs a one-day campaign",
                "wall",
                "goal < 0.7 s",
            ),
            ("ics 50k", "json 50k", "preview ics vs json, 48k posts", "wall", "goal < 3 s"),
        ]
        for a, b, label, key, goal in pairs:
            print(
                f"  {label:<56} {scale[a][key] / scale[b][key]:>5.2f} x  ({scale[a][key]:.2f} vs {scale[b][key]:.2f};"
                f" {goal})"
            )
        print(
            "== start-up: against a bare `python -c pass`; third-party packages imported (client libraries *)"
        )
        startup = bench_startup(folder)
        base = startup["python"]
        print(f"  python -c pass                       {base:>7.3f} s")
        for name in ("--help", "validate", "preview", "status", "run --once"):
            entry = startup[name]
            marked = [p + "*" if p in CLIENTS else p for p in entry["packages"]]
            print(
                f"  amplifier {name:<12} {entry['s']:>7.3f} s ({entry['s'] / base:4.1f}x)  {' '.join(marked) or '-'}"
            )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main(only_ratio=sys.argv[1:] == ["ratio"])
