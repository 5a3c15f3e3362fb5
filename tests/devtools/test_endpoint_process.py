"""acs_sms_devtools.endpoint_process: the endpoint in a child process answers the same control calls
as the in-process one, and the unmodified SDK receives what was published through it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from acs_sms_devtools.endpoint_process import EndpointProcess, EndpointProcessError


def test_control_calls_reach_the_child_endpoint() -> None:
    endpoint = EndpointProcess(sys.executable, hub="remote", partitions=2, consumer_groups=["cg"]).start()
    try:
        assert endpoint.running and endpoint.partition_ids == ["0", "1"] and endpoint.hub.name == "remote"
        assert endpoint.connection_string == (f"Endpoint=sb://127.0.0.1:{endpoint.port};SharedAccessKeyName=k;"
                                              "SharedAccessKey=v;EntityPath=remote;UseDevelopmentEmulator=true")
        assert endpoint.publish("1", [b"\x00one", b"two"], properties={"kind": "test"}) == 2
        assert endpoint.event_counts() == {"0": 0, "1": 2} and endpoint.event_count() == 2
        port = endpoint.port
        endpoint.restart(keep_data=True)
        assert endpoint.port == port and endpoint.event_count("1") == 2
        endpoint.restart(keep_data=False)
        assert endpoint.event_count() == 0
        endpoint.require_key("k3y")
        assert endpoint.sas_key == "k3y" and "SharedAccessKey=k3y;" in endpoint.connection_string
        with pytest.raises(EndpointProcessError, match="publish: KeyError"):
            endpoint.publish("7", [b"x"])
        endpoint.stop()
        assert not endpoint.running
    finally:
        endpoint.close()
    assert endpoint._child.returncode == 0
    with pytest.raises(EndpointProcessError, match="gone|ended"):
        endpoint.event_counts()


def test_a_child_that_never_answers_fails_the_call_in_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stuck child (here an "interpreter" that reads nothing and says nothing) fails the request after
    REPLY_TIMEOUT_SECONDS, and is killed, instead of blocking the test on the pipe."""
    import acs_sms_devtools.endpoint_process as module

    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    monkeypatch.setattr(module, "REPLY_TIMEOUT_SECONDS", 1.0)
    with pytest.raises(EndpointProcessError, match="did not answer 'create' within 1 s; killed"):
        EndpointProcess(str(silent))

