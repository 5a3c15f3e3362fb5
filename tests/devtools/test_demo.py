"""`acs-sms-consumer demo` as a user runs it: one command, live /metrics, Ctrl-C stops everything."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]


def start_demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "consumer", "demo", "--port", "0", "--figures-every", "1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> tuple[re.Match[str], str]:
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        match = re.search(pattern, line)
        if match:
            return match, seen
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{seen}")


def test_bounded_demo_with_in_memory_store_processes_traffic_and_exits_cleanly() -> None:
    process = start_demo("--no-azurite", "--duration", "4", "--rate", "200")
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    assert "in-memory checkpoint store (development only" in output
    final = re.search(r"demo \(final\): (\d+) events, (\d+) records \| sends (\d+)", output)
    assert final, output
    assert int(final.group(2)) > 0 and int(final.group(3)) > 0
    assert output.rstrip().endswith("demo: stopped")


def test_ctrl_c_stops_the_demo_cleanly_and_metrics_were_live() -> None:
    process = start_demo("--rate", "300")
    try:
        match, _ = read_until(process, r"metrics\s+(http://127\.0\.0\.1:\d+/metrics)", 60)
        url = match.group(1)
        read_until(process, r"demo: \d+ events, [1-9]\d* records", 60)
        with urllib.request.urlopen(url, timeout=5) as response:
            families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
        processed = sum(s.value for s in families["acs_consumer_records"].samples
                        if s.name == "acs_consumer_records_total" and s.labels["outcome"] == "processed")
        assert processed > 0
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "demo: stopped" in rest
