"""`acs-sms-consumer demo` as a user runs it: one command, live /metrics, Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.lines import Lines

REPO = Path(__file__).resolve().parents[2]


def start_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "consumer", "demo", "--port", "0", "--figures-every", "1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


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
    lines = Lines(process)
    try:
        url = lines.until(r"metrics\s+(http://127\.0\.0\.1:\d+/metrics)", 60).group(1)
        lines.until(r"demo: \d+ events, [1-9]\d* records", 60)
        with urllib.request.urlopen(url, timeout=5) as response:
            families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
        processed = sum(s.value for s in families["acs_consumer_records"].samples
                        if s.name == "acs_consumer_records_total" and s.labels["outcome"] == "processed")
        assert processed > 0
        process.send_signal(signal.SIGINT)
        rest = lines.rest(60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "demo: stopped" in rest


def test_demo_with_prometheus_fails_clearly_without_the_server(tmp_path: Path) -> None:
    process = start_demo("--prometheus", env={"PATH": str(tmp_path)})  # no prometheus on this PATH
    output = Lines(process).rest(60)
    assert process.returncode == 2, output
    assert "demo: --prometheus: the Prometheus server (`prometheus`) is not installed" in output
    assert "apt-get install prometheus" in output


def test_demo_with_prometheus_on_a_busy_port_says_so() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = start_demo("--prometheus", "--prometheus-port", str(port))
        output = Lines(process).rest(60)
    assert process.returncode == 2, output
    assert f"demo: --prometheus: port {port} is in use" in output and "--prometheus-port" in output


def test_demo_with_prometheus_shows_a_drilled_country_alert_fire_and_stops_prometheus() -> None:
    """The README's walk-through: `demo --prometheus`, then the `simulate --drill-country` line it prints:
    the burn-rate page fires for the drilled resource (from the live consumer), and the per-country
    alert for the drilled country only."""
    process = start_demo("--prometheus", "--prometheus-port", "0", "--no-azurite")
    lines = Lines(process)
    simulate = None
    try:
        prometheus = lines.until(r"demo: Prometheus (http://127\.0\.0\.1:\d+)\s", 60).group(1)
        command = lines.until(r"demo: see an alert fire: acs-sms-consumer simulate (.*)$", 10).group(1)
        connection_string = re.search(r"--connection-string '([^']+)'", command).group(1)
        assert "--drill-country US --drill-seconds 60" in command
        with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=5) as response:
            rules = response.read().decode()
        assert '"name":"AcsSmsDeliveryFailureRatioHighByCountry"' in rules and '"duration":15' in rules
        assert '"name":"AcsSmsDeliveryErrorsBudgetBurnFast"' in rules and '"duration":2' in rules
        simulate = subprocess.Popen(
            [sys.executable, "-m", "consumer", "simulate", "--connection-string", connection_string,
             "--drill-country", "US", "--drill-seconds", "60", "--duration", "60", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        wanted = (r"^demo: alert firing: AcsSmsDeliveryErrorsBudgetBurnFast \{job=acs-sms-consumer, resource=acs-sms-demo\}$",
                  r"^demo: alert firing: AcsSmsDeliveryFailureRatioHighByCountry "
                  r"\{country=US, job=acs-sms-consumer, resource=acs-sms-demo\}$")
        deadline = time.monotonic() + 60
        while not all(re.search(pattern, lines.seen, re.M) for pattern in wanted):
            lines.line(max(0.1, deadline - time.monotonic()))
            assert time.monotonic() < deadline, f"not every one of {wanted} within 60 s:\n{lines.seen}"
        assert not re.search(r"alert firing: AcsSmsDeliveryFailureRatioHighByCountry \{country=(?!US,)", lines.seen)
        process.send_signal(signal.SIGINT)
        rest = lines.rest(60)
    finally:
        for child in (simulate, process):
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGINT)  # the demo then stops its Prometheus; a kill would orphan it
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(10)
    assert process.returncode == 0, rest
    assert "demo: stopped" in rest
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # Prometheus went with the demo
        urllib.request.urlopen(f"{prometheus}/-/ready", timeout=2)
