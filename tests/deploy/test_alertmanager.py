"""deploy/alertmanager/alertmanager.yml: valid for `amtool check-config`, routes each severity to its
receiver (`amtool config routes test`), and, run in a real Alertmanager, inhibits a resource's ticket
while its page fires, "logs stopped" while a consumer page of the same installation fires, and groups
notifications by installation and resource.
amtool and Alertmanager come from Debian's `prometheus-alertmanager` (.ci/setup installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from acs_sms_devtools.scrape import free_port

from .helpers import DEPLOY

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def tool(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.fail(f"{names[0]} is not on PATH: install Debian's 'prometheus-alertmanager' package (.ci/setup does it)")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("amtool"), *args], capture_output=True, text=True, timeout=60)


def test_amtool_accepts_the_configuration() -> None:
    proc = amtool("check-config", str(CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize(("labels", "receiver"), [
    (["severity=critical", "alertname=AcsSmsDeliveryErrorsBudgetBurnFast", "resource=acs-prod"], "page"),
    (["severity=critical", "alertname=AcsSmsConsumerDown", "namespace=sms"], "page"),
    (["severity=warning", "alertname=AcsSmsDeliveryErrorsBudgetBurnSlow", "resource=acs-prod"], "ticket"),
    (["severity=warning", "alertname=AcsSmsLogsStopped", "resource=acs-prod"], "ticket"),
    (["severity=info", "alertname=Anything"], "dashboard-only"),
])
def test_each_severity_reaches_its_receiver(labels: list[str], receiver: str) -> None:
    proc = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *labels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager with the example configuration, on 127.0.0.1; its base URL."""
    workdir = tmp_path_factory.mktemp("alertmanager")
    port = free_port()
    log = (workdir / "log").open("wb")
    process = subprocess.Popen(
        [tool("prometheus-alertmanager", "alertmanager"), f"--config.file={CONFIG}",
         f"--storage.path={workdir}", f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"alertmanager did not start: {Path(workdir / 'log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def post(url: str, *alerts: dict[str, str]) -> None:
    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(f"{url}/api/v2/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def inhibited(url: str) -> dict[tuple[str, str], bool]:
    """(alertname, resource or namespace) → whether Alertmanager holds it inhibited."""
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as answer:
        alerts = json.load(answer)
    return {(a["labels"]["alertname"], a["labels"].get("resource", a["labels"].get("namespace", ""))):
            bool(a["status"]["inhibitedBy"]) for a in alerts}


def test_a_page_inhibits_the_tickets_of_its_resource_only(alertmanager: str) -> None:
    site = {"namespace": "sms", "job": "acs-sms-consumer"}
    post(alertmanager,
         {**site, "alertname": "AcsSmsDeliveryErrorsBudgetBurnFast", "severity": "critical", "resource": "acs-prod"},
         {**site, "alertname": "AcsSmsDeliveryErrorsBudgetBurnSlow", "severity": "warning", "resource": "acs-prod"},
         {**site, "alertname": "AcsSmsDeliveryFailureRatioHighByCountry", "severity": "warning", "resource": "acs-prod",
          "country": "US"},
         {**site, "alertname": "AcsSmsDeliveryErrorsBudgetBurnSlow", "severity": "warning", "resource": "acs-test"},
         {**site, "alertname": "AcsSmsConsumerLagHigh", "severity": "warning", "partition": "0"})
    state = inhibited(alertmanager)
    assert state[("AcsSmsDeliveryErrorsBudgetBurnFast", "acs-prod")] is False
    assert state[("AcsSmsDeliveryErrorsBudgetBurnSlow", "acs-prod")] is True
    assert state[("AcsSmsDeliveryFailureRatioHighByCountry", "acs-prod")] is True
    assert state[("AcsSmsDeliveryErrorsBudgetBurnSlow", "acs-test")] is False  # another resource
    assert state[("AcsSmsConsumerLagHigh", "sms")] is False  # no resource: a resource's page does not hide it


def test_a_consumer_page_inhibits_logs_stopped_of_its_installation(alertmanager: str) -> None:
    post(alertmanager,
         {"namespace": "sms-eu", "job": "acs-sms-consumer", "alertname": "AcsSmsConsumerNoPartitionsOwned",
          "severity": "critical"},
         {"namespace": "sms-eu", "job": "acs-sms-consumer", "alertname": "AcsSmsLogsStopped", "severity": "warning",
          "resource": "acs-eu"},
         {"namespace": "sms-us", "job": "acs-sms-consumer", "alertname": "AcsSmsLogsStopped", "severity": "warning",
          "resource": "acs-us"})
    state = inhibited(alertmanager)
    assert state[("AcsSmsLogsStopped", "acs-eu")] is True
    assert state[("AcsSmsLogsStopped", "acs-us")] is False  # another installation


def test_two_installations_of_one_namespace_are_notified_apart(alertmanager: str) -> None:
    """deploy/overlays/second-instance: the same namespace and job, another Service."""
    alert = {"namespace": "sms-two", "job": "acs-sms-consumer", "alertname": "AcsSmsDeliveryErrorsBudgetBurnFast",
             "severity": "critical", "resource": "acs-shared"}
    post(alertmanager, {**alert, "service": "acs-sms-consumer"}, {**alert, "service": "acs-sms-consumer-eu"})
    deadline = time.monotonic() + 20  # the dispatcher groups posted alerts asynchronously
    while True:
        with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts/groups", timeout=5) as answer:
            groups = [g["labels"] for g in json.load(answer) if g["labels"].get("namespace") == "sms-two"]
        if len(groups) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(g.get("service", "") for g in groups) == ["acs-sms-consumer", "acs-sms-consumer-eu"], groups
