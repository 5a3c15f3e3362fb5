"""`Service.serve` in this process, against the local Event Hubs endpoint and Azurite: what start-up
and shutdown do to the process beyond receiving (the subprocess tests in tests/e2e cover the rest)."""

from __future__ import annotations

import asyncio
import gc

from consumer.app import Service
from consumer.config import Settings
from consumer.devtools.azurite import Azurite
from consumer.devtools.eventhubs import EventHubsEndpoint


def settings_for(eventhubs: EventHubsEndpoint, azurite: Azurite, container: str) -> Settings:
    return Settings.model_validate({
        "eventhub": {"connection_string": eventhubs.connection_string, "name": "eventhub",
                     "max_wait_time_seconds": 0.2, "load_balancing_interval_seconds": 1},
        "checkpoint_store": {"connection_string": azurite.connection_string, "container": container},
        "deadletter": {"enabled": False},
        "http": {"host": "127.0.0.1", "port": 0},
        "shutdown_timeout_seconds": 10,
    })


def test_start_up_objects_are_frozen_while_serving_and_released_after(eventhubs, azurite, blob_container):
    """Full collections skip what start-up made (a pause of tens of ms otherwise, at every one); a
    service that stops gives its objects back to the collector, so serving twice leaks nothing."""
    service = Service(settings_for(eventhubs, azurite, blob_container))
    frozen_while_serving: list[int] = []

    async def main() -> int:
        assert gc.get_freeze_count() == 0
        serving = asyncio.create_task(service.serve())
        for _ in range(200):
            if service.http_port is not None and service.health.ready()[0]:
                break
            assert not serving.done(), "the service stopped during start-up"
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"not ready after 10 s: {service.health.ready()[1]}")
        frozen_while_serving.append(gc.get_freeze_count())
        service.request_stop()
        return await asyncio.wait_for(serving, 20)

    assert asyncio.run(main()) == 0
    assert frozen_while_serving[0] > 10_000  # modules, SDK clients, pydantic models: tens of thousands
    assert gc.get_freeze_count() == 0
