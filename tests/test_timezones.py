"""The time tests under local time zones other than UTC.

Every other test runs wherever CI runs, which is UTC, where a naive datetime's `timestamp()` (local
time) equals the aware one's: reading the MessageId's send time or a record's time as local time
would pass them all. So the unit tests of every module that turns texts into times (records: record
times; correlation: MessageId send times; pipeline: latencies; bounded values: the window) run again
here in a child process under a zone west of UTC with summer time and one east of it with a
half-hour offset. The zones are POSIX TZ rules, which need no zone database on the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIME_TESTS = ["tests/test_records.py", "tests/test_correlation.py", "tests/test_pipeline.py",
              "tests/test_bounded_values.py"]
ZONES = {"new-york": "EST5EDT,M3.2.0,M11.1.0", "kolkata": "IST-5:30"}


def _env(zone: str) -> dict[str, str]:
    """This process's environment under TZ=`zone`, without the xdist worker's variables (the child
    is a run of its own)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, "TZ": zone}


def _utc_offset_under(zone: str) -> int:
    """The local zone's offset from UTC (seconds) as a child process under TZ=`zone` sees it in July."""
    script = "import time; print(-time.altzone if time.localtime(1783000000).tm_isdst else -time.timezone)"
    child = subprocess.run([sys.executable, "-c", script], env=_env(zone), capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


@pytest.mark.parametrize("zone", ZONES.values(), ids=ZONES.keys())
def test_the_time_tests_pass_in_a_local_zone_other_than_utc(zone: str) -> None:
    assert _utc_offset_under(zone) in (-4 * 3600, 5 * 3600 + 1800)  # the zone took effect
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider", *TIME_TESTS],
        cwd=ROOT, env=_env(zone), capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, f"under TZ={zone}:\n{child.stdout[-4000:]}\n{child.stderr[-2000:]}"
