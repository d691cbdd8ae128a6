#!/usr/bin/env python3
"""The front door's CPU cost per alert, no database: parse + classify of a real body per
source, a rule's host template rendered (compiled once), and the worst 1 MB hostile value
(tests/sources/test_linear_parsing.py's cases) per source.

    .venv/bin/python benchmarks/parsing.py
"""

import json
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge import rules, sources  # noqa: E402
from tests.sources import test_linear_parsing as hostile  # noqa: E402
from tests.sources.shipped import default_rules  # noqa: E402


def per_call(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> int:
    rule_list = default_rules()
    print(f"{'source':<13} {'parse+classify us':>18} {'worst 1 MB hostile ms':>22}")
    costs, worsts = [], []
    for source, base in hostile.BASE.items():
        body = json.dumps(base()).encode()
        cost = per_call(lambda: [rules.classify(s, rule_list) for s in sources.parse(source, body)], 2000)
        worst = 0.0
        for src, path in hostile.CASES:
            if src != source:
                continue
            document, node = base(), None
            node = document
            for part in path[:-1]:
                node = node[part]
            for value in hostile.hostile_values("" if path[-1] is None else node[path[-1]]):
                data = json.dumps(hostile.replaced(document, path, value), ensure_ascii=False).encode()

                def run():
                    try:
                        sources.parse(source, data)
                    except sources.PayloadError:
                        pass
                worst = max(worst, per_call(run, 1))
        print(f"{source:<13} {cost * 1e6:>18.1f} {worst * 1e3:>22.1f}")
        costs.append(cost)
        worsts.append(worst)
    signal = sources.parse("alertmanager", json.dumps(hostile.BASE["alertmanager"]()).encode())[0]
    spec = {"template": "{{ labels.openstack_host }}"}
    compiled = per_call(lambda: rules.render_host(spec, signal), 5000)
    uncached = per_call(lambda: rules._templates.from_string(spec["template"]).render(labels=signal.labels), 500)
    print(f"host template: {compiled * 1e6:.1f} us rendered (compiled once), {uncached * 1e6:.1f} us compiled each time")
    print(f"parsing parse_us_max={max(costs) * 1e6:.1f} hostile_ms_max={max(worsts) * 1e3:.1f} "
          f"template_us={compiled * 1e6:.1f} template_uncached_us={uncached * 1e6:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
