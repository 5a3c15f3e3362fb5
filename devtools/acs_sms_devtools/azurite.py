"""Launch Azurite's blob service (the Azure Storage emulator) as a subprocess for development and tests.

``azurite-blob`` is looked up in ``$AZURITE_BLOB``, then ``<repo>/.ci/.node/node_modules/.bin/azurite-blob``
(where ``.ci/setup`` installs it), then ``PATH``. It listens on 127.0.0.1 on a free port (kept across
:meth:`Azurite.stop` / :meth:`Azurite.start`, so a test can take storage away for a while and bring it
back at the same address). Process output goes to a temporary log file that error messages name.

Example::

    with Azurite() as storage:
        BlobServiceClient.from_connection_string(storage.connection_string)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from acs_sms_devtools.scrape import free_port

__all__ = [
    "Azurite",
    "AzuriteError",
    "ACCOUNT_NAME",
    "ACCOUNT_KEY",
    "find_azurite_blob",
    "development_connection_string",
]

ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_REPO_ROOT = Path(__file__).resolve().parents[2]


class AzuriteError(RuntimeError):
    """Azurite could not be found or did not come up."""


def find_azurite_blob() -> str:
    """Path of the ``azurite-blob`` executable ($AZURITE_BLOB, the repo's .ci/.node, then PATH)."""
    env = os.environ.get("AZURITE_BLOB")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise AzuriteError(f"AZURITE_BLOB={env!r} is not an executable file")
        return env
    local = _REPO_ROOT / ".ci" / ".node" / "node_modules" / ".bin" / "azurite-blob"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("azurite-blob")
    if found:
        return found
    raise AzuriteError(
        "azurite-blob not found: set AZURITE_BLOB, run .ci/setup (installs it into .ci/.node) "
        "or `npm install -g azurite`"
    )


def development_connection_string(host: str, port: int) -> str:
    """The well-known development-storage connection string for a blob endpoint at host:port."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{ACCOUNT_NAME};"
    )


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class Azurite:
    """A running ``azurite-blob`` process.

    Args:
        host: address to listen on.
        port: TCP port; 0 picks a free one, kept across stop()/start().
        executable: path of ``azurite-blob`` (default: :func:`find_azurite_blob`).
        in_memory: ``--inMemoryPersistence`` (default). With False, blobs live in a temporary
            workspace directory and survive stop()/start().
        startup_timeout: seconds to wait for the service to answer.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        executable: str | None = None,
        in_memory: bool = True,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.executable = executable or find_azurite_blob()
        self.in_memory = in_memory
        self.startup_timeout = startup_timeout
        self._tmpdir = tempfile.TemporaryDirectory(prefix="azurite-")
        self.log_path = Path(self._tmpdir.name) / "azurite.log"
        self.workspace = Path(self._tmpdir.name) / "workspace"
        self.workspace.mkdir()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def connection_string(self) -> str:
        """Development-storage connection string for this instance's port."""
        return development_connection_string(self.host, self.port)

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line used to start Azurite."""
        cmd = [
            self.executable,
            "--blobHost",
            self.host,
            "--blobPort",
            str(self.port),
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ]
        # Azurite 3.35 refuses --location together with --inMemoryPersistence.
        cmd += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.workspace)]
        return cmd

    def start(self) -> "Azurite":
        """Start the process (no-op when running) and wait until it answers HTTP."""
        if self.running:
            return self
        if not _port_is_free(self.host, self.port):
            raise AzuriteError(
                f"cannot start azurite-blob: {self.host}:{self.port} is already in use; see {self.log_path}"
            )
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - kept open while the process runs
        self._process = subprocess.Popen(  # noqa: S603 - our own executable path
            self.command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workspace,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._cleanup_process()
                raise AzuriteError(
                    f"azurite-blob exited with code {code} on {self.host}:{self.port}; see {self.log_path}:\n"
                    + self.log_tail()
                )
            if self._answers():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise AzuriteError(
                    f"azurite-blob did not answer on {self.host}:{self.port} within {self.startup_timeout}s; "
                    f"see {self.log_path}:\n" + self.log_tail()
                )
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.blob_endpoint}?comp=list", timeout=1):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer (403 without a signature) means it is up
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and wait for it; the port is kept."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        self._cleanup_process()

    def _cleanup_process(self) -> None:
        self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> None:
        """stop() then start() on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the process and remove the temporary directory (log included)."""
        self.stop()
        self._tmpdir.cleanup()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the process output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
