"""The storage clients `run` builds: their retry policy must fail fast (the storage SDK's own
`ExponentialRetry` ignores azure-core's `retry_backoff_*` and waits 15 s before a first retry by
default, which held the load-balancing loop, and so the shutdown, past its timeout)."""

import asyncio

from consumer.app import Service
from consumer.config import Settings
from acs_sms_devtools.azurite import development_connection_string


def test_checkpoint_store_and_service_clients_retry_within_seconds():
    settings = Settings.model_validate({
        "eventhub": {"connection_string": "Endpoint=sb://127.0.0.1:5672/;SharedAccessKeyName=k;SharedAccessKey=s;"
                                          "UseDevelopmentEmulator=true", "name": "hub"},
        "checkpoint_store": {"connection_string": development_connection_string("127.0.0.1", 10000),
                             "container": "checkpoints"},
    })
    store, service, credential = Service(settings)._storage()
    assert credential is None
    try:
        for client in (store._container_client, service):
            policy = client._config.retry_policy
            assert policy.total_retries == 2
            for _ in range(50):
                assert policy.get_backoff_time({"count": 0}) <= 2
                assert policy.get_backoff_time({"count": 1}) <= 4
    finally:
        asyncio.run(_close(store, service))


async def _close(*clients):
    for client in clients:
        await client.close()
