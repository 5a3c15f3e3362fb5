"""`simulate` publishes to a local endpoint only, unless told otherwise (issue #28, item 4): toward a
real hub it says what it would pollute and exits 2 before connecting."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

from acs_sms_devtools import traffic
from acs_sms_devtools.traffic import TrafficOptions
from acs_sms_devtools.traffic.cli import main

REMOTE = "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=a2V5LW5vdC1yZWFs;EntityPath=acs"


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    async def fake_publish(options: TrafficOptions, **kwargs: Any) -> traffic.PublishReport:
        calls.append(kwargs)
        return traffic.PublishReport(seed=options.seed)

    monkeypatch.setattr(traffic.cli, "publish", fake_publish)
    return calls


@pytest.mark.parametrize("target", [["--connection-string", REMOTE],
                                    ["--fully-qualified-namespace", "myns.servicebus.windows.net", "--eventhub", "acs"]],
                         ids=["connection string", "namespace"])
def test_a_real_hub_needs_the_flag(published, capsys, target) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*target, "--records", "5"])
    assert exit_.value.code == 2 and published == []
    err = capsys.readouterr().err
    assert "the hub is not a local endpoint" in err and "nothing was sent" in err
    assert "pollute every counter" in err and "usage" in err and "alerts" in err and "--allow-remote-hub" in err
    assert "a2V5LW5vdC1yZWFs" not in err


def test_with_the_flag_a_real_hub_is_published_to(published) -> None:
    assert main(["--connection-string", REMOTE, "--records", "5", "--allow-remote-hub"]) == 0
    assert published and published[0]["connection_string"] == REMOTE


@pytest.mark.parametrize("connection", [
    "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true",
    "Endpoint=sb://localhost:5672;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub",
    "Endpoint=sb://emulator.example:5672;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true",
])
def test_a_local_endpoint_needs_no_flag(published, connection) -> None:
    assert main(["--connection-string", connection, "--records", "5"]) == 0 and published


def test_the_command_exits_2_before_connecting() -> None:
    """The real command line: a refusal never opens a connection (here, to a listening socket that
    stands for the hub, addressed by a name that is not a loopback one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        sock.settimeout(0.5)
        port = sock.getsockname()[1]
        connection = f"Endpoint=sb://127.0.0.1.nip.io:{port};SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub"
        result = subprocess.run([sys.executable, "-m", "consumer", "simulate", "--connection-string", connection,
                                 "--records", "5"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        with pytest.raises(TimeoutError):
            sock.accept()
