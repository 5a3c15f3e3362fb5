"""Benchmark: bench_pipeline's (b) and (c) of two checkouts, interleaved, medians compared.

    .venv/bin/python bench/compare_trees.py OLD_TREE NEW_TREE [--rounds N] [--records N] [--repeat R]

Each round runs one subprocess per tree, alternately (old, new, new, old, ...), each importing
`consumer` and `bench/bench_pipeline.py` of its own tree, timing (b) and (c) on the same corpus
(`bench_pipeline._best`: CPU time, best of `--repeat` after a warm-up). Alternating spreads the
machine's noise over both trees; the medians over the rounds are printed, with new/old ratios
(below 1: the new tree is faster). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

_CHILD = """
import json, sys
from datetime import datetime
import orjson
sys.path.insert(0, "bench")
import bench_pipeline as b
import consumer
assert consumer.__file__.startswith({tree!r}), consumer.__file__
from acs_sms_devtools.traffic import generate_corpus
bodies = generate_corpus({records}, records_per_body=50, seed=1)
start = datetime.fromisoformat(orjson.loads(bodies[0])["records"][0]["time"]).timestamp() + 60.0
cases = [("b", "", b._pipeline_runner(start)), ("c", "", b._pipeline_runner(start, canonical=False))]
print(json.dumps(b._best(cases, bodies, {repeat})))
"""


def _run(tree: str, records: int, repeat: int) -> dict[str, float]:
    tree = os.path.realpath(tree)
    code = _CHILD.format(tree=tree, records=records, repeat=repeat)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tree, os.path.join(tree, "devtools")])}  # its own devtools
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=10, help="subprocesses per tree (default 10)")
    parser.add_argument("--records", type=int, default=50_000, help="records in the corpus (default 50000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case and subprocess (default 3)")
    args = parser.parse_args(argv)
    times: dict[str, dict[str, list[float]]] = {"old": {"b": [], "c": []}, "new": {"b": [], "c": []}}
    for round_ in range(args.rounds):
        order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
        for which in order:
            best = _run(getattr(args, which), args.records, args.repeat)
            for case, seconds in best.items():
                times[which][case].append(seconds)
    for case in ("b", "c"):
        old, new = statistics.median(times["old"][case]), statistics.median(times["new"][case])
        print(f"({case}) median µs/record: old {old / args.records * 1e6:.3f}, new {new / args.records * 1e6:.3f}, "
              f"new/old {new / old:.3f} ({args.rounds} rounds, {args.records:,} records, best of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
