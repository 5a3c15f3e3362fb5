"""A real HTTP proxy for the tests: Debian's `tinyproxy` (installed by .ci/setup) on a free 127.0.0.1 port.

Not tests/e2e/proxy.py, which is a TCP relay that takes a service away: this one speaks HTTP, forwards
plain-HTTP requests (`GET http://host:port/...`, what a client sends for Azurite) and opens `CONNECT
host:port` tunnels (what the Event Hubs WebSocket transport asks for) to the ports `connect_ports`
allows, answering 403 to the others. Its log names every request with its upstream.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from acs_sms_devtools.scrape import free_port


class Tinyproxy:
    """`tinyproxy -d` with a generated configuration in `directory`; `Allow 127.0.0.1` only."""

    def __init__(self, directory: Path, connect_ports: Iterable[int], basic_auth: tuple[str, str] | None = None) -> None:
        """`basic_auth`: (user, password) the proxy requires (407 without them); tinyproxy's syntax
        allows no spaces in either."""
        self.directory = directory
        self.port = free_port()
        self.log_path = directory / "tinyproxy.log"
        self.config_path = directory / "tinyproxy.conf"
        # One ConnectPort line restricts CONNECT to the ports listed (none at all would allow every port).
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 60", f'LogFile "{self.log_path}"', "LogLevel Connect",
                 "MaxClients 50", "Allow 127.0.0.1", "DisableViaHeader Yes",
                 *(f"ConnectPort {port}" for port in connect_ports),
                 *([f"BasicAuth {basic_auth[0]} {basic_auth[1]}"] if basic_auth else [])]
        self.config_path.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> Tinyproxy:
        binary = shutil.which("tinyproxy")
        if binary is None:
            raise RuntimeError("tinyproxy is not installed: run .ci/setup (Debian package tinyproxy)")
        self._process = subprocess.Popen([binary, "-d", "-c", str(self.config_path)], stdout=subprocess.DEVNULL,
                                         stderr=(self.directory / "tinyproxy.stderr").open("wb"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tinyproxy exited ({self._process.returncode}): {self.log()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"tinyproxy did not listen on 127.0.0.1:{self.port} within {timeout} s")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def requests(self) -> list[str]:
        """The request lines the proxy logged, e.g. `CONNECT 127.0.0.1:4711 HTTP/1.1`."""
        marker = "]: Request (file descriptor "
        return [line.split("): ", 1)[1] for line in self.log().splitlines() if marker in line]

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> Tinyproxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
