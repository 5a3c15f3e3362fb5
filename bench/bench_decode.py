"""Benchmark: decode + repair of bodies crafted against the algorithms, at the hub's maximum event size.

    .venv/bin/python bench/bench_decode.py [--size BYTES] [--repeat R]

A benchmark, not a test: it asserts nothing, it prints. For every shape of `tests/crafted.py` at
`--size` bytes (default 1 MiB, the Event Hubs maximum event size) it times, in CPU time of this
process (`time.process_time`), best of `--repeat`, the garbage collector off:

  body        `decode_body` (strict parse, and on failure the repair and a second parse): what every
              body that is not in the canonical shape costs before its records are looked at;
  properties  `normalise` of one record whose `properties` string is the shape (for
              `properties_escaped_quotes`, the string its record carries): the repair reached
              through a `properties` string;

and prints MB/s and ms per body for each, and the worst case. Goal: >= 20 MB/s for every shape,
i.e. a 1 MiB event costs < 50 ms of the event loop. Takes ~10 s.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumer.decode import decode_body  # noqa: E402
from tests.crafted import MAX_EVENT_BYTES, SHAPES  # noqa: E402
from tests.models import normalise  # noqa: E402

GOAL_MB_PER_S = 20.0


def best_seconds(step: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        step()
        best = min(best, time.process_time() - start)
    return max(best, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=MAX_EVENT_BYTES)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
          f"{args.size:,}-byte bodies, CPU time, best of {args.repeat}")
    print(f"{'shape':28s} {'body MB/s':>10s} {'ms':>8s} {'properties MB/s':>16s} {'ms':>8s}")
    worst: tuple[float, str] = (float("inf"), "")
    gc.collect()
    gc.disable()
    try:
        for name, shape in SHAPES.items():
            body = shape(args.size)
            properties = (orjson.loads(body)["records"][0]["properties"] if name == "properties_escaped_quotes"
                          else body.decode("utf-8"))
            record = {"category": "SMSOperational", "operationName": "SMSMessagesSent", "properties": properties}
            decode_body(body, 2 * args.size)  # warm-up
            body_s = best_seconds(lambda: decode_body(body, 2 * args.size), args.repeat)
            properties_s = best_seconds(lambda: normalise(record), args.repeat)
            body_rate = len(body) / body_s / 1e6
            properties_rate = len(properties.encode("utf-8", "surrogatepass")) / properties_s / 1e6
            for rate, where in ((body_rate, f"{name} (body)"), (properties_rate, f"{name} (properties)")):
                worst = min(worst, (rate, where))
            print(f"{name:28s} {body_rate:10.1f} {body_s * 1e3:8.1f} {properties_rate:16.1f} {properties_s * 1e3:8.1f}")
    finally:
        gc.enable()
    verdict = "meets" if worst[0] >= GOAL_MB_PER_S else "MISSES"
    print(f"worst case: {worst[0]:.1f} MB/s ({worst[1]}); {verdict} the goal of {GOAL_MB_PER_S:.0f} MB/s")


if __name__ == "__main__":
    main()
