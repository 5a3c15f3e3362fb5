"""A local Azure Event Hubs endpoint for development and end-to-end tests.

The unmodified ``azure-eventhub`` SDK (sync and async, producer and consumer) talks to it over
real AMQP 1.0 on a plain TCP socket, using a connection string with ``UseDevelopmentEmulator=true``
(see :attr:`EventHubsEndpoint.connection_string`). It implements what the SDK uses: SASL, the
AMQP connection/session/link life cycle, ``$cbs`` put-token, ``$management`` READ of hub and
partition properties, sends to the hub or a partition (batches unpacked into events), partition
receivers with start filters, link credit, runtime metrics and owner levels (epochs).

Why the SDK's own codec and not a generic AMQP library
------------------------------------------------------
The server is built on asyncio and encodes/decodes frames with the SDK's pure-Python AMQP codec
(``azure.eventhub._pyamqp._encode`` / ``_decode``, ``performatives``, ``message``). The SDK's
pyamqp stack is stricter than the AMQP 1.0 specification: it builds named tuples from the
positional field lists, so every performative and message section must carry all its fields
(trailing nulls included), applies no spec defaults (``max-frame-size``, ``channel-max``,
``handle-max``, ``initial-delivery-count`` must be present) and compares typed values (a UUID
correlation id must come back as a UUID). A generic library such as python-qpid-proton trims
trailing null fields, which pyamqp rejects. Encoding with the SDK's own codec makes every frame
exactly what the client expects, and needs no C extension. The one hot path (a ``transfer`` per
delivered event) is pre-encoded by hand in the very layout the codec produces (checked by tests
that decode it with the SDK), and stored events keep the producer's raw section bytes, so serving
an event is a header plus a few ``bytes`` joined into one socket write per batch of deliveries.

The SDK's private ``_pyamqp`` module is an implementation detail of azure-eventhub: it is imported
in one module, :mod:`.amqp`, which names the SDK version it was checked against; the dev tools'
distribution (devtools/pyproject.toml) pins that minor version.

Public API: :class:`EventHubsEndpoint` (thread-backed, for sync and async code),
:class:`EventHubsServer` and :class:`EventHub` (the asyncio server and the in-memory hub), and
:func:`main` (the ``acs-sms-consumer emulator`` command).
"""

from .cli import main
from .endpoint import EventHubsEndpoint
from .hub import EventHub
from .server import EventHubsServer

__all__ = ["EventHubsEndpoint", "EventHubsServer", "EventHub", "main"]
