#!/usr/bin/env python3
"""Time from a fault (or repair) injected into a real monitoring system to the bridge storing
the signal, per source: runs the tests/monitoring suites (root, Debian packages installed;
see alert_templates/*/README.md) and prints what they measured.

    .venv/bin/python benchmarks/fault_to_stored.py [--runs N] [--no-zabbix]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-zabbix", action="store_true", help="skip the ~40 s Zabbix suite")
    args = parser.parse_args()
    marker = "monitoring and not zabbix" if args.no_zabbix else "monitoring"
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:
        for n in range(args.runs):
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker,
                                   "tests/monitoring"], cwd=ROOT,
                                  env={**os.environ, "HOSTDOWN_BRIDGE_TIMINGS": out.name})
            if done.returncode != 0:
                print(f"run {n + 1}: tests failed, figures below are partial", file=sys.stderr)
        figures = defaultdict(list)
        for line in Path(out.name).read_text().splitlines():
            record = json.loads(line)
            figures[record["source"], record["event"]].append(record["seconds"])
    print(f"\n{'source':<13} {'injected':<42} {'n':>2} {'min':>6} {'median':>7} {'max':>6}  (seconds to stored)")
    for (source, event), values in sorted(figures.items()):
        print(f"{source:<13} {event:<42} {len(values):>2} {min(values):>6.2f} {statistics.median(values):>7.2f} "
              f"{max(values):>6.2f}")
    return 0 if figures else 1


if __name__ == "__main__":
    sys.exit(main())
