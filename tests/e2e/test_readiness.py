"""/readyz tells whether Event Hubs answers, through `acs-sms-consumer run` on the local endpoint and
Azurite: a wrong port, hub name, consumer group or SAS key each give 503 with the error kind in the
`eventhub` check's detail; fixing nothing but the endpoint turns it 200 without a restart. Logging is
at DEBUG (every error's whole chain), and no line carries the key or a phone number of a body.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.e2e.support import ConsumerProcess, free_port, write_config

HUB = "acs-diagnostics"
GROUP = "acs-sms-consumer"
KEY = "S3cr3tK3y-of-the-hub-0123456789abcdef"
PHONE = "+14255550123"
BODY = orjson.dumps({"records": [{
    "time": "2026-12-02T10:00:00Z", "resourceId": "/SUBSCRIPTIONS/X", "operationName": "SMSMessagesSent",
    "category": "SMSOperational", "resultType": "Succeeded", "resultSignature": 202, "durationMs": 12,
    "properties": {"OutgoingMessageLength": 20, "MessageId": "m-1", "To": PHONE, "From": "+18005550199",
                   "NumberType": "TollFreeNumber", "DeliveryAttempts": 1, "Country": "US"},
}]})


def connection_string(port: int, key: str = KEY) -> str:
    """No EntityPath: the hub is `eventhub.name` (so a wrong name is the endpoint's to fix)."""
    return f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=listen;SharedAccessKey={key};UseDevelopmentEmulator=true"


def endpoint(make: Callable[..., Any], port: int, hub: str = HUB, groups: tuple[str, ...] = (GROUP,),
             key: str | None = KEY, partitions: int = 2) -> Any:
    """A started endpoint from `make` (conftest's eventhubs_factory, which closes it after the test)."""
    return make(hub=hub, partitions=partitions, consumer_groups=groups, port=port, sas_key=key)


def readiness(consumer: ConsumerProcess) -> tuple[int, dict[str, Any]]:
    status, body = consumer.get("/readyz")
    return status, json.loads(body)["checks"]["eventhub"]


# Each case: the endpoint as it first is (None: nothing listens), and how it is fixed.
CASES = {
    "wrong port": (lambda make, port: None, lambda make, port: endpoint(make, port),
                   "unreachable: Event Hubs does not answer"),
    "wrong hub name": (lambda make, port: endpoint(make, port, hub="another-hub"), lambda make, port: endpoint(make, port),
                       "entity_not_found: Event Hubs does not answer"),
    "wrong consumer group": (lambda make, port: endpoint(make, port, groups=()), lambda make, port: endpoint(make, port),
                             "entity_not_found: receiving fails on every partition it tried"),
    "wrong SAS key": (lambda make, port: endpoint(make, port, key="the-key-the-service-has"), None,
                      "unauthorized: Event Hubs does not answer"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_readiness_names_what_fails_and_recovers_without_a_restart(case, azurite, blob_container, tmp_path: Path,
                                                                   eventhubs_factory):
    broken, fix, expected = CASES[case]
    port = free_port()
    first = broken(eventhubs_factory, port)
    http_port = free_port()
    config = write_config(tmp_path / "consumer.yaml", connection_string(port), HUB, azurite.connection_string,
                          blob_container, http_port, eventhub__consumer_group=GROUP, logging__level="DEBUG",
                          shutdown_final_scrape_wait_seconds=0)
    consumer = ConsumerProcess(config, http_port, tmp_path / "consumer.log").start()
    try:
        consumer.wait_until(lambda: readiness(consumer)[1]["detail"].startswith(expected), 90,
                            f"/readyz naming '{expected}'")
        status, check = readiness(consumer)
        assert status == 503 and check["ok"] is False, check
        # It stays so while nothing changes (every attempt fails again).
        consumer.wait_until(lambda: consumer.total("acs_consumer_errors_total", kind=expected.split(":")[0]) >= 2, 60,
                            "a second error of the same kind")
        status, check = readiness(consumer)
        assert status == 503 and check["detail"].startswith(expected), check

        # Fix the endpoint, not the consumer.
        if fix is None:
            assert first is not None
            first.require_key(KEY)
            fixed = first
        else:
            if first is not None:
                first.close()
            fixed = fix(eventhubs_factory, port)
        fixed.publish("0", [BODY])
        consumer.wait_until(lambda: readiness(consumer)[0] == 200, 90, "/readyz 200 after the fix")
        consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") == 1, 30, "the body counted")
        status, check = readiness(consumer)
        assert status == 200 and check["ok"] is True, check
        kinds = {kind for kind in ("unreachable", "unauthorized", "entity_not_found")
                 if consumer.total("acs_consumer_errors_total", kind=kind) > 0}
        assert kinds == {expected.split(":")[0]}, kinds
    finally:
        code = consumer.stop(signal.SIGTERM)
    logs = consumer.logs()
    assert code == 0, logs[-3000:]
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line.get("kind") == expected.split(":")[0]]
    assert errors and all(line["error_type"] and line["error_reason"] and "\n" not in line["error_reason"] for line in errors)
    assert any(line.get("error_chain") for line in errors)  # at DEBUG: the whole chain
    assert KEY not in logs and "14255550123" not in logs and "4255550123" not in logs


def test_a_replica_whose_partitions_all_belong_to_others_is_ready(azurite, blob_container, tmp_path: Path,
                                                                  eventhubs_factory):
    """One partition, two replicas: the second owns nothing (the first renews its ownership) and is
    ready because the hub answers its probe; it names no error."""
    port = free_port()
    hub = endpoint(eventhubs_factory, port, partitions=1)
    hub.publish("0", [BODY])
    replicas: list[ConsumerProcess] = []
    try:
        for name in ("first", "second"):
            http_port = free_port()
            config = write_config(tmp_path / f"{name}.yaml", connection_string(port), HUB, azurite.connection_string,
                                  blob_container, http_port, eventhub__consumer_group=GROUP,
                                  shutdown_final_scrape_wait_seconds=0)
            replicas.append(ConsumerProcess(config, http_port, tmp_path / f"{name}.log").start())
            if name == "first":
                replicas[0].wait_until(lambda: replicas[0].total("acs_consumer_events_total") == 1, 60,
                                       "the first replica counting partition 0")
        first, second = replicas
        second.wait_until(lambda: readiness(second)[0] == 200, 60, "the second replica ready")
        # Three load-balancing rounds (interval 1 s): the second replica owns nothing and stays ready
        # throughout (read every 0.2 s, so a partition taken and given back in between shows too).
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            status, check = readiness(second)
            assert status == 200 and check["detail"].startswith("Event Hubs answered"), check
            assert second.total("acs_consumer_owned_partitions") == 0
            time.sleep(0.2)
        assert first.total("acs_consumer_owned_partitions") == 1 and readiness(first)[0] == 200
        assert second.total("acs_consumer_errors_total") == 0
    finally:
        codes = [replica.stop(signal.SIGTERM) for replica in replicas]
    assert codes == [0, 0]
