"""Start-up that survives a silent storage account or identity endpoint: `acs-sms-consumer run` (the
real CLI, as a subprocess) against a blob endpoint (or an Entra ID authority for
DefaultAzureCredential) that accepts TCP connections and never answers. The HTTP server
is up before any storage call, so within a few seconds `/healthz` answers 200 and `/readyz` 503 with
the `checkpoint_store` check naming what is missing (before, start-up waited for the two blob
containers, up to ~72 s with the storage client's retries, and the startupProbe's 60 s restarted the
pod). A SIGTERM in that state exits at once, 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acs_sms_devtools.azurite import development_connection_string
from tests.e2e.support import ConsumerProcess, free_port, write_config

#: How soon the endpoints must answer (about a second on an idle machine; the margin is for a loaded
#: CI runner): far below the ~36 s that one storage call takes against a silent account with the
#: client's timeouts and retries, which start-up used to wait for (twice) before serving HTTP.
ANSWER_WITHIN = 15.0
#: How soon a SIGTERM in that state must end the process.
EXIT_WITHIN = 5.0


class SilentServer:
    """Accepts every TCP connection and holds it, reading and answering nothing (a storage account
    behind a black-holing firewall, a hung proxy). Runs its own event loop in a thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="silent-server", daemon=True)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        assert self._ready.wait(5), "the silent server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        held: list[asyncio.StreamWriter] = []

        async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            held.append(writer)  # never read, never written, never closed until the server stops

        server = self._loop.run_until_complete(asyncio.start_server(hold, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            for writer in held:
                writer.transport.abort()
            server.close()
            self._loop.close()


@pytest.fixture
def silent_storage() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def silent_identity(silent: SilentServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The storage account by URL with DefaultAzureCredential, whose Entra ID endpoint (a client secret
    from the environment, the authority host redirected) is the silent server, as is the account."""
    for variable, value in {"AZURE_TENANT_ID": "00000000-0000-0000-0000-000000000000",
                            "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000000",
                            "AZURE_CLIENT_SECRET": "not-a-secret",
                            "AZURE_AUTHORITY_HOST": f"https://127.0.0.1:{silent.port}"}.items():
        monkeypatch.setenv(variable, value)
    return {"checkpoint_store__connection_string": None,
            "checkpoint_store__account_url": f"https://127.0.0.1:{silent.port}"}


@pytest.mark.parametrize("silent", ["storage", "identity"])
def test_http_answers_before_storage_and_sigterm_exits_cleanly(silent: str, eventhubs, silent_storage: SilentServer,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    overrides = silent_identity(silent_storage, monkeypatch) if silent == "identity" else {}
    config = write_config(tmp_path / "config.yaml", eventhubs.connection_string, eventhubs.hub.name,
                          development_connection_string("127.0.0.1", silent_storage.port), "checkpoints", port,
                          **overrides)
    consumer = ConsumerProcess(config, port, tmp_path / "consumer.log").start()
    try:
        started = time.monotonic()
        consumer.wait_until(lambda: consumer.get("/healthz")[0] == 200, ANSWER_WITHIN, "/healthz 200")
        status, body = consumer.get("/readyz")
        waited = time.monotonic() - started
        assert waited < ANSWER_WITHIN, waited
        assert status == 503, body
        store = json.loads(body)["checks"]["checkpoint_store"]
        assert store["ok"] is False and "checkpoint store has not answered" in store["detail"], store
        assert "creating the blob containers" in store["detail"], store
        hub = json.loads(body)["checks"]["eventhub"]
        assert hub["ok"] is False and hub["detail"].startswith("not receiving yet (start-up: creating the blob"), hub
        # The consumer did call storage or identity (and is waiting on it): the state this test is about.
        consumer.wait_until(lambda: silent_storage.accepted > 0, ANSWER_WITHIN, f"a connection to {silent}")
        assert consumer.process.poll() is None, consumer.logs()[-4000:]

        stopping = time.monotonic()
        consumer.process.send_signal(signal.SIGTERM)
        code = consumer.process.wait(EXIT_WITHIN * 3)
        took = time.monotonic() - stopping
    finally:
        consumer.stop(signal.SIGKILL)
    logs = consumer.logs()
    assert code == 0, logs[-4000:]
    assert took < EXIT_WITHIN, f"SIGTERM during start-up took {took:.1f} s:\n{logs[-4000:]}"
    messages = [json.loads(line).get("message") for line in logs.splitlines() if line.startswith("{")]
    assert "stopped during start-up" in messages and messages[-1] == "stopped", messages
    assert "Traceback" not in logs and "Task was destroyed" not in logs, logs[-4000:]
