"""Run every benchmark, one after the other: ``.venv/bin/python bench/run.py [preview|requests|daemon|daemon-scale ...]``.

Each prints its figures as ratios against a baseline measured in the same run. The requests and daemon benchmarks
start the loopback servers of the integration tests (the first run installs the Bluesky PDS).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "preview": "bench_preview.py",
    "requests": "bench_requests.py",
    "daemon": "bench_daemon.py",
    "daemon-scale": "bench_daemon_scale.py",
    "report": "bench_report.py",
    "nodes": "bench_nodes.py",
    "nodes-fanout": "bench_fanout_nodes.py",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        print(f"#### {name}", flush=True)
        failed |= subprocess.run([sys.executable, str(HERE / BENCHMARKS[name])], cwd=HERE.parent).returncode
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
