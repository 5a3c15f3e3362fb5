"""Azurite launcher, and the SDK's blob checkpoint store against Azurite and the local Event Hubs endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient
from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
from azure.storage.blob import BlobServiceClient

from acs_sms_devtools.azurite import ACCOUNT_KEY, Azurite, AzuriteError, find_azurite_blob
from acs_sms_devtools.eventhubs import EventHubsEndpoint
from eventhubs_helpers import async_wait_until


def blob_names(azurite: Azurite, container: str) -> list[str]:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        return sorted(b.name for b in service.get_container_client(container).list_blobs())


def test_connection_string_is_the_development_one(azurite: Azurite) -> None:
    assert azurite.connection_string == (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{azurite.port}/devstoreaccount1;"
    )
    assert "--inMemoryPersistence" in azurite.command()
    assert azurite.running


def test_stop_and_start_on_the_same_port(azurite: Azurite, blob_container: str) -> None:
    port = azurite.port
    azurite.stop()
    assert not azurite.running
    with BlobServiceClient.from_connection_string(
        azurite.connection_string, retry_total=0, connection_timeout=2
    ) as service, pytest.raises(Exception):
        service.get_service_properties()
    azurite.start()
    assert azurite.port == port
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_container("after-restart")
        assert "after-restart" in [c.name for c in service.list_containers()]
        service.delete_container("after-restart")


def test_missing_executable_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("AZURITE_BLOB", str(tmp_path / "nope"))
    with pytest.raises(AzuriteError, match="AZURITE_BLOB"):
        find_azurite_blob()


def test_startup_failure_points_to_the_log(azurite: Azurite) -> None:
    clash = Azurite(port=azurite.port)  # the port is taken by the session's instance
    try:
        with pytest.raises(AzuriteError) as info:
            clash.start()
        assert str(clash.log_path) in str(info.value)
    finally:
        clash.close()


async def test_checkpoint_store_ownership_and_checkpoints(azurite: Azurite, blob_container: str) -> None:
    namespace, hub, group = "127.0.0.1:39001", "Acs", "$Default"
    store = BlobCheckpointStore.from_connection_string(azurite.connection_string, blob_container)
    async with store:
        claimed = await store.claim_ownership(
            [
                {"fully_qualified_namespace": namespace, "eventhub_name": hub, "consumer_group": group,
                 "partition_id": pid, "owner_id": "owner-a"}
                for pid in ("0", "1")
            ]
        )
        assert sorted(o["partition_id"] for o in claimed) == ["0", "1"]
        owned = await store.list_ownership(namespace, hub, group)
        assert sorted((o["partition_id"], o["owner_id"]) for o in owned) == [("0", "owner-a"), ("1", "owner-a")]
        assert all(o["etag"] and o["last_modified_time"] for o in owned)

        await store.update_checkpoint(
            {"fully_qualified_namespace": namespace, "eventhub_name": hub, "consumer_group": group,
             "partition_id": "1", "offset": "4096", "sequence_number": 42}
        )
        checkpoints = await store.list_checkpoints(namespace, hub, group)
    assert [(c["partition_id"], c["offset"], c["sequence_number"]) for c in checkpoints] == [("1", "4096", 42)]
    assert blob_names(azurite, blob_container) == [
        "127.0.0.1:39001/acs/$default/checkpoint/1",
        "127.0.0.1:39001/acs/$default/ownership/0",
        "127.0.0.1:39001/acs/$default/ownership/1",
    ]


async def _consume(endpoint: EventHubsEndpoint, store: BlobCheckpointStore, expected: int,
                   seen: list[str]) -> None:
    client = EventHubConsumerClient.from_connection_string(
        endpoint.connection_string, consumer_group="$Default", checkpoint_store=store, load_balancing_interval=1
    )

    async def on_event(context: Any, event: EventData | None) -> None:
        if event is not None:
            seen.append(event.body_as_str())
            await context.update_checkpoint(event)

    task = asyncio.create_task(client.receive(on_event, starting_position="-1"))
    try:
        assert await async_wait_until(lambda: len(seen) >= expected, timeout=20), seen
        await asyncio.sleep(0.2)
    finally:
        await asyncio.wait_for(client.close(), 15)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_consumer_resumes_from_checkpoint_after_endpoint_restart(
    eventhubs_factory, azurite: Azurite, blob_container: str
) -> None:
    endpoint: EventHubsEndpoint = eventhubs_factory(hub="acs", partitions=2)
    endpoint.publish("0", [b"a0", b"a1"])
    endpoint.publish("1", [b"b0"])
    store = BlobCheckpointStore.from_connection_string(azurite.connection_string, blob_container)
    async with store:
        first: list[str] = []
        await _consume(endpoint, store, 3, first)
        assert sorted(first) == ["a0", "a1", "b0"]
        checkpoints = await store.list_checkpoints(endpoint.fully_qualified_namespace, "acs", "$Default")
        assert sorted((c["partition_id"], c["sequence_number"]) for c in checkpoints) == [("0", 1), ("1", 0)]

        endpoint.restart(keep_data=True)
        endpoint.publish("0", [b"a2"])
        endpoint.publish("1", [b"b1", b"b2"])
        second: list[str] = []
        await _consume(endpoint, store, 3, second)
    assert sorted(second) == ["a2", "b1", "b2"]  # nothing before the checkpoints again
    ns = endpoint.fully_qualified_namespace
    names = blob_names(azurite, blob_container)
    assert f"{ns}/acs/$default/checkpoint/0" in names
    assert f"{ns}/acs/$default/checkpoint/1" in names
    assert f"{ns}/acs/$default/ownership/0" in names
