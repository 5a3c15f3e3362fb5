"""Shared fixtures: a local Event Hubs endpoint and Azurite (blob storage emulator).

- ``eventhubs``: a started :class:`EventHubsEndpoint` (hub ``eventhub``, 4 partitions) on a free
  port, closed after the test. For other shapes use ``eventhubs_factory(partitions=2,
  consumer_groups=["cg"], hub="name", ...)`` (same keyword arguments as ``EventHubsEndpoint``), or
  parametrize ``eventhubs`` indirectly with a dict of those arguments.
  The endpoint runs in a background thread with its own event loop, so sync-SDK and async tests
  use it alike. With ``--emulator-python PYTHON`` it runs in a child process of that interpreter
  instead (same control methods: ``acs_sms_devtools.endpoint_process``), so that the service and the
  tests can use a newer azure-eventhub than the endpoint's pinned one (``.ci/newest-sdk``).
- ``azurite``: one Azurite blob process for the whole session (starting it takes about a second).
  A test that stops it must start it again (``azurite.start()``); the fixture restarts it if a
  test left it stopped. ``blob_container`` creates a unique, empty container per test and yields
  its name.

The suite runs on two pytest-xdist workers (`-n 2` in pyproject.toml: most e2e time is waiting on
subprocesses, not CPU). A test marked ``exclusive`` runs while no other test runs (see
``_exclusive_or_shared``): it measures latencies that a neighbour test's CPU load would distort.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from acs_sms_devtools.azurite import Azurite
from acs_sms_devtools.endpoint_process import start_endpoint

if TYPE_CHECKING:  # not imported at run time: with --emulator-python the SDK's private modules stay out
    from acs_sms_devtools.eventhubs import EventHubsEndpoint


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--emulator-python", metavar="PYTHON", default=None,
                     help="run the local Event Hubs endpoint in a child process of this interpreter (an environment "
                          "with the dev tools' pinned azure-eventhub), e.g. .venv/bin/python; see .ci/newest-sdk")


@pytest.fixture(autouse=True)
def _exclusive_or_shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Across the xdist workers: every test holds a shared lock on `tests.lock` while it runs, an
    `exclusive` one an exclusive lock. A `turnstile.lock` passed by every test and held by an
    exclusive one while it waits and runs keeps new tests from starting meanwhile, so it is never
    starved. Without xdist, nothing to do."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    shared = tmp_path_factory.getbasetemp().parent  # the workers' basetemps are siblings
    exclusive = request.node.get_closest_marker("exclusive") is not None
    with open(shared / "turnstile.lock", "a") as turnstile, open(shared / "tests.lock", "a") as tests:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if not exclusive:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(tests, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(tests, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


@pytest.fixture
def eventhubs_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., EventHubsEndpoint]]:
    """Factory of started endpoints; every endpoint it made is closed after the test."""
    made: list[EventHubsEndpoint] = []
    python = request.config.getoption("--emulator-python")

    def make(**kwargs: Any) -> EventHubsEndpoint:
        kwargs.setdefault("hub", "eventhub")
        kwargs.setdefault("partitions", 4)
        endpoint = start_endpoint(python, **kwargs)
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
