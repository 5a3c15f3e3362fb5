"""Two installations side by side on one storage account (deploy/overlays/second-instance with a
shared account): each reads its own Event Hubs namespace, with the same hub and consumer group
names, and both keep their checkpoints and dead letters in the same two containers of Azurite.

Each writes a dead letter for the event at the same partition and sequence number; both letters
must be kept, byte for byte, under names that carry their namespace (consumer/deadletter.py), where
names of `<hub>/<consumer group>/<partition>/<seq>` alone made the second overwrite the first.
Both run `Service.serve` in this process (the real receive path, dead-letter writer and /metrics).
"""

from __future__ import annotations

import asyncio

from azure.storage.blob import BlobServiceClient

from consumer.app import Service
from tests.e2e.support import total
from tests.e2e.test_isolation import scrape, settings_for
from tests.in_process import until

HUB = "acs-diagnostics"


def written(service: Service) -> float:
    return total(scrape(service), "acs_consumer_dead_letters_total", outcome="written")


def test_two_installations_sharing_storage_keep_each_others_dead_letters(eventhubs_factory, azurite,
                                                                         blob_container) -> None:
    endpoints = [eventhubs_factory(hub=HUB, partitions=1) for _ in range(2)]  # consumer group $Default
    assert endpoints[0].fully_qualified_namespace != endpoints[1].fully_qualified_namespace
    bodies = {endpoint.fully_qualified_namespace: f"not json from {endpoint.fully_qualified_namespace} {{".encode()
              for endpoint in endpoints}
    for endpoint in endpoints:
        endpoint.publish("0", [bodies[endpoint.fully_qualified_namespace]])  # sequence number 0 in both

    async def main() -> list[int]:
        services = [Service(settings_for(endpoint, azurite, blob_container)) for endpoint in endpoints]
        serving = [asyncio.create_task(service.serve()) for service in services]
        for service in services:
            await until(lambda service=service: service.http_port is not None and written(service) == 1, 30,
                        "each installation's dead letter written")
        for service in services:
            service.request_stop()
        return list(await asyncio.wait_for(asyncio.gather(*serving), 30))

    assert asyncio.run(main()) == [0, 0]

    service_client = BlobServiceClient.from_connection_string(azurite.connection_string)
    try:
        container = service_client.get_container_client(f"{blob_container}-dl")
        letters = {blob.name: container.download_blob(blob.name).readall() for blob in container.list_blobs()}
    finally:
        service_client.close()
    assert letters == {f"{namespace.lower()}/{HUB}/Default/0/0.body": body for namespace, body in bodies.items()}
