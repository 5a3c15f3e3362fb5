"""Shared fixtures: a local Event Hubs endpoint and Azurite (blob storage emulator).

- ``eventhubs``: a started :class:`EventHubsEndpoint` (hub ``eventhub``, 4 partitions) on a free
  port, closed after the test. For other shapes use ``eventhubs_factory(partitions=2,
  consumer_groups=["cg"], hub="name", ...)`` (same keyword arguments as ``EventHubsEndpoint``), or
  parametrize ``eventhubs`` indirectly with a dict of those arguments.
  The endpoint runs in a background thread with its own event loop, so sync-SDK and async tests
  use it alike.
- ``azurite``: one Azurite blob process for the whole session (starting it takes about a second).
  A test that stops it must start it again (``azurite.start()``); the fixture restarts it if a
  test left it stopped. ``blob_container`` creates a unique, empty container per test and yields
  its name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from acs_sms_devtools.azurite import Azurite
from acs_sms_devtools.eventhubs import EventHubsEndpoint


@pytest.fixture
def eventhubs_factory() -> Iterator[Callable[..., EventHubsEndpoint]]:
    """Factory of started endpoints; every endpoint it made is closed after the test."""
    made: list[EventHubsEndpoint] = []

    def make(**kwargs: Any) -> EventHubsEndpoint:
        kwargs.setdefault("hub", "eventhub")
        kwargs.setdefault("partitions", 4)
        endpoint = EventHubsEndpoint(**kwargs).start()
        made.append(endpoint)
        return endpoint

    yield make
    for endpoint in made:
        endpoint.close()


@pytest.fixture
def eventhubs(request: pytest.FixtureRequest, eventhubs_factory: Callable[..., EventHubsEndpoint]) -> EventHubsEndpoint:
    """A started local Event Hubs endpoint: hub ``eventhub``, 4 partitions, free port.

    Other settings through indirect parametrization, e.g.
    ``@pytest.mark.parametrize("eventhubs", [{"partitions": 2}], indirect=True)``.
    """
    return eventhubs_factory(**getattr(request, "param", {}))


@pytest.fixture(scope="session")
def _azurite_session() -> Iterator[Azurite]:
    storage = Azurite().start()
    try:
        yield storage
    finally:
        storage.close()


@pytest.fixture
def azurite(_azurite_session: Azurite) -> Iterator[Azurite]:
    """The session's Azurite blob service, running (restarted if a previous test stopped it)."""
    _azurite_session.start()
    yield _azurite_session
    _azurite_session.start()


@pytest.fixture
def blob_container(azurite: Azurite) -> Iterator[str]:
    """A unique empty blob container in Azurite (deleted after the test)."""
    from azure.storage.blob import BlobServiceClient

    name = f"test-{uuid.uuid4().hex[:20]}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(name)
    yield name
    try:
        service.delete_container(name)
    except Exception:  # noqa: BLE001 - storage may have been stopped/reset by the test
        pass
    finally:
        service.close()
