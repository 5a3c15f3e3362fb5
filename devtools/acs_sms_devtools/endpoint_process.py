"""The local Event Hubs endpoint in a child process of another Python environment.

Why: the endpoint is built on the SDK's private AMQP modules, so the dev tools pin azure-eventhub's
minor version (devtools/pyproject.toml); the service's own range is wider. To test the service with a
newer SDK than the endpoint's, the tests run the endpoint with the interpreter of an environment that
has the pinned SDK (``--emulator-python``, tests/conftest.py; ``.ci/newest-sdk``), and this class gives
them the same control methods as :class:`~acs_sms_devtools.eventhubs.EventHubsEndpoint`.

Protocol: one JSON object per line. The parent writes the constructor's keyword arguments, then
``{"op": NAME, "args": [...], "kwargs": {...}}`` requests; the child answers each line with
``{"result": ..., "state": {...}}`` or ``{"error": "..."}``. ``state`` carries what the properties
read (host, port, running, SAS key, partition ids, hub name), so reading them costs no round trip.
Bodies travel base64-encoded. This module imports nothing of the SDK on the parent's side.
"""

from __future__ import annotations

import base64
import json
import select
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

__all__ = ["EndpointProcess", "start_endpoint"]

#: How long a request may wait for its reply (every operation answers at once; a publish of many MB
#: takes seconds): past it the child is stuck, and a test fails here instead of at its own time limit.
REPLY_TIMEOUT_SECONDS = 120.0

#: Control methods forwarded to the child's EventHubsEndpoint (``publish`` has its own encoding).
_FORWARDED = {"start", "stop", "restart", "require_key", "drop_connections", "active_receivers",
              "connection_count", "event_counts"}


class EndpointProcessError(RuntimeError):
    """The child endpoint process failed or ended."""


class EndpointProcess:
    """:class:`EventHubsEndpoint`'s control API, served by ``python`` running this module.

    Args:
        python: the interpreter of the environment the endpoint runs in (it must import
            ``acs_sms_devtools``).
        Other arguments: as :class:`EventHubsEndpoint`'s (JSON-serialisable values).
    """

    def __init__(self, python: str, hub: str = "eventhub", partitions: int = 4, consumer_groups: Iterable[str] = (),
                 **kwargs: Any) -> None:
        self._lock = threading.Lock()
        self._child = subprocess.Popen([python, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, bufsize=1)
        self._state: dict[str, Any] = {}
        self._request(dict(hub=hub, partitions=partitions, consumer_groups=list(consumer_groups), **kwargs))

    def _request(self, message: dict[str, Any]) -> Any:
        assert self._child.stdin is not None and self._child.stdout is not None
        with self._lock:
            try:
                self._child.stdin.write(json.dumps(message) + "\n")
                self._child.stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise EndpointProcessError(f"endpoint process is gone (exit {self._child.poll()})") from exc
            # one reply line per request, so nothing is left in the reader's buffer between requests
            if not select.select([self._child.stdout], [], [], REPLY_TIMEOUT_SECONDS)[0]:
                self._child.kill()
                self._child.wait(10)
                raise EndpointProcessError(f"endpoint process did not answer {message.get('op', 'create')!r} "
                                           f"within {REPLY_TIMEOUT_SECONDS:.0f} s; killed")
            line = self._child.stdout.readline()
        if not line:
            raise EndpointProcessError(f"endpoint process ended (exit {self._child.wait(10)}); its stderr says why")
        reply = json.loads(line)
        if "error" in reply:
            raise EndpointProcessError(f"endpoint process: {reply['error']}")
        self._state = reply["state"]
        return reply["result"]

    def _call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        return self._request({"op": op, "args": list(args), "kwargs": kwargs})

    # --- lifecycle (as EventHubsEndpoint) --------------------------------------------------------------
    def start(self) -> "EndpointProcess":
        self._call("start")
        return self

    def stop(self) -> None:
        self._call("stop")

    def restart(self, keep_data: bool = True) -> None:
        self._call("restart", keep_data)

    def close(self) -> None:
        """Stop the endpoint and end the child process."""
        if self._child.poll() is None:
            assert self._child.stdin is not None
            self._child.stdin.close()  # the child closes its endpoint and exits on end of input
            try:
                self._child.wait(30)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait(10)
        if self._child.stdout is not None:
            self._child.stdout.close()

    def __enter__(self) -> "EndpointProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connection details ------------------------------------------------------------------------------
    host = property(lambda self: self._state["host"])
    port = property(lambda self: self._state["port"])
    running = property(lambda self: self._state["running"])
    sas_key = property(lambda self: self._state["sas_key"])
    connection_string = property(lambda self: self._state["connection_string"])
    websocket_port = property(lambda self: self._state["websocket_port"])
    websocket_address = property(lambda self: self._state["websocket_address"])
    websocket_connection_string = property(lambda self: self._state["websocket_connection_string"])
    fully_qualified_namespace = property(lambda self: f"{self.host}:{self.port}")
    partition_ids = property(lambda self: list(self._state["partition_ids"]))

    @property
    def hub(self) -> SimpleNamespace:
        """What the tests read of the hub: its name."""
        return SimpleNamespace(name=self._state["hub"])

    def require_key(self, key: str | None) -> None:
        self._call("require_key", key)

    # --- test controls -----------------------------------------------------------------------------------
    def drop_connections(self) -> int:
        return int(self._call("drop_connections"))

    def active_receivers(self, consumer_group: str | None = None, partition_id: str | None = None) -> int:
        return int(self._call("active_receivers", consumer_group, partition_id))

    def connection_count(self) -> int:
        return int(self._call("connection_count"))

    def event_counts(self) -> dict[str, int]:
        return dict(self._call("event_counts"))

    def event_count(self, partition_id: str | None = None) -> int:
        counts = self.event_counts()
        return counts[str(partition_id)] if partition_id is not None else sum(counts.values())

    def publish(self, partition_id: str, bodies: Iterable[bytes], *, properties: Mapping[str, Any] | None = None,
                partition_key: str | None = None) -> int:
        encoded = [base64.b64encode(body).decode("ascii") for body in bodies]
        return int(self._call("publish", str(partition_id), encoded,
                              properties=dict(properties) if properties else None, partition_key=partition_key))


def start_endpoint(python: str | None = None, **kwargs: Any) -> Any:
    """A started endpoint: in this process (``python`` None) or in a child process of ``python``."""
    if python is None:
        from acs_sms_devtools.eventhubs import EventHubsEndpoint

        return EventHubsEndpoint(**kwargs).start()
    return EndpointProcess(python, **kwargs).start()


# --- the child ----------------------------------------------------------------------------------------------
def _state(endpoint: Any) -> dict[str, Any]:
    return {"host": endpoint.host, "port": endpoint.port, "running": endpoint.running, "sas_key": endpoint.sas_key,
            "connection_string": endpoint.connection_string, "partition_ids": endpoint.partition_ids,
            "hub": endpoint.hub.name, "websocket_port": endpoint.websocket_port,
            "websocket_address": endpoint.websocket_address,
            "websocket_connection_string": endpoint.websocket_connection_string}


def _serve(lines: Iterable[str], reply: Any) -> None:
    from acs_sms_devtools.eventhubs import EventHubsEndpoint

    lines = iter(lines)
    endpoint = EventHubsEndpoint(**json.loads(next(lines)))
    reply({"result": None, "state": _state(endpoint)})
    try:
        for line in lines:
            request = json.loads(line)
            op, args, kwargs = request["op"], request["args"], request["kwargs"]
            try:
                if op == "publish":
                    partition, bodies = args
                    result = endpoint.publish(partition, [base64.b64decode(body) for body in bodies], **kwargs)
                elif op in _FORWARDED:
                    result = getattr(endpoint, op)(*args, **kwargs)
                    result = None if result is endpoint else result
                else:
                    raise ValueError(f"unknown operation {op!r}")
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
                reply({"error": f"{op}: {type(exc).__name__}: {exc}"})
                continue
            reply({"result": result, "state": _state(endpoint)})
    finally:
        endpoint.close()


def main() -> None:
    def reply(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    _serve(sys.stdin, reply)


if __name__ == "__main__":
    main()
