"""The `emulator` entry point (acs_sms_devtools.eventhubs.main) as a foreground process."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from azure.eventhub import EventData, EventHubProducerClient

from acs_sms_devtools.eventhubs import main
from tests.lines import Lines

ROOT = Path(__file__).resolve().parents[2]


def test_main_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from acs_sms_devtools.eventhubs import main; sys.exit(main())",
         "--host", "127.0.0.1", "--port", "0", "--partitions", "3", "--hub", "cli-hub", "--consumer-group", "extra"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = Lines(process)
    try:
        banner = lines.until(r"cli-hub", 60).string
        assert "$Default, extra" in banner
        match = lines.until(r"Connection string: (Endpoint=sb://127\.0\.0\.1:(\d+);\S+)", 10)
        assert match.group(1).endswith("EntityPath=cli-hub;UseDevelopmentEmulator=true")
        with EventHubProducerClient.from_connection_string(match.group(1)) as producer:
            assert producer.get_partition_ids() == ["0", "1", "2"]
            producer.send_batch([EventData("hello")], partition_id="1")
            assert producer.get_partition_properties("1")["last_enqueued_sequence_number"] == 0
        process.send_signal(signal.SIGTERM)
        out = lines.rest(15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, lines.seen
    assert "stopped" in out


def test_main_reports_a_taken_port(capsys) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    assert "cannot listen" in capsys.readouterr().err
