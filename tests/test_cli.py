"""The command line as a user meets it: `check-config` and `run` exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lines import Lines

REPO = Path(__file__).resolve().parent.parent
EH = "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=secret-key-value;EntityPath=hub;UseDevelopmentEmulator=true"
ST = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0LXN0b3JhZ2Uta2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_SMS_CONSUMER_")}
    return subprocess.run([sys.executable, "-m", "consumer", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, timeout=60, cwd=REPO)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_check_config_prints_effective_config_with_secrets_redacted(tmp_path: Path) -> None:
    path = write(tmp_path, f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  connection_string: '{ST}'\n")
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "secret-key-value" not in result.stdout + result.stderr
    assert "c2VjcmV0LXN0b3JhZ2Uta2V5" not in result.stdout + result.stderr
    assert "connection_string: '***'" in result.stdout
    assert "consumer_group: $Default" in result.stdout  # defaults are shown too
    assert "port: 9464" in result.stdout


def test_example_config_is_valid_once_secrets_come_from_the_environment() -> None:
    env = {"ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING": EH.replace("EntityPath=hub", "EntityPath=acs-diagnostics"),
           "ACS_SMS_CONSUMER_CHECKPOINT_STORE__CONNECTION_STRING": ST}
    result = cli("check-config", "--config", str(REPO / "config.example.yaml"), env=env)
    assert result.returncode == 0, result.stderr
    assert "secret-key-value" not in result.stdout


def test_environment_overrides_win_and_are_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  connection_string: '{ST}'\nhttp:\n  port: 1234\n")
    result = cli("check-config", "--config", str(path), env={
        "ACS_SMS_CONSUMER_HTTP__PORT": "9999",
        "ACS_SMS_CONSUMER_PIPELINE__BUCKETS__DELIVERY_ATTEMPTS": "[1, 4]",
    })
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "port: 9999 # environment variable ACS_SMS_CONSUMER_HTTP__PORT" in lines
    assert "delivery_attempts: [1.0, 4.0] # environment variable ACS_SMS_CONSUMER_PIPELINE__BUCKETS__DELIVERY_ATTEMPTS" in lines


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("eventhub: [\n", {}, "not valid YAML"),
        ("- a\n- b\n", {}, "top level must be a mapping"),
        (f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  connection_string: '{ST}'\nhttp:\n  prot: 1\n", {},
         "http.prot: is not a known key"),
        (f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  connection_string: '{ST}'\nhttp:\n  port: high\n", {},
         "http.port: Input should be a valid integer"),
        (f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  connection_string: '{ST}'\n", {"ACS_SMS_CONSUMER_HTTP__PORT": "99999"},
         "http.port: Input should be less than or equal to 65535 (from environment variable ACS_SMS_CONSUMER_HTTP__PORT)"),
        (f"checkpoint_store:\n  connection_string: '{ST}'\n", {}, "eventhub: is required"),
        (f"eventhub:\n  name: hub\ncheckpoint_store:\n  connection_string: '{ST}'\n", {},
         "set eventhub.connection_string, or eventhub.fully_qualified_namespace"),
        (f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  container: checkpoints\n", {},
         "set exactly one of checkpoint_store.connection_string and checkpoint_store.account_url"),
        (f"eventhub:\n  connection_string: '{EH}'\n  initial_position: yesterday\ncheckpoint_store:\n  connection_string: '{ST}'\n", {},
         "eventhub.initial_position: must be 'latest', 'earliest' or an ISO 8601 timestamp"),
        (f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  connection_string: '{ST}'\npipeline:\n  buckets:\n    age_seconds: [5, 1]\n", {},
         "pipeline.buckets.age_seconds: bucket bounds must be strictly increasing"),
        (f"eventhub:\n  connection_string: '{EH}'\n  load_balancing_interval_seconds: 30\n  partition_ownership_expiration_interval_seconds: 20\n"
         f"checkpoint_store:\n  connection_string: '{ST}'\n", {}, "must be longer than"),
    ],
)
def test_check_config_names_the_file_the_key_and_the_problem(tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    path = write(tmp_path, text)
    result = cli("check-config", "--config", str(path), env=env)
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "secret-key-value" not in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    for command in ("check-config", "run"):
        result = cli(command, "--config", str(tmp_path / "nope.yaml"))
        assert result.returncode == 2
        assert "nope.yaml: cannot read the configuration file" in result.stderr


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("acs-sms-consumer ")


def test_credentials_that_can_never_work_stop_check_config_and_run_with_the_same_message(tmp_path: Path) -> None:
    # The first user: a storage key that is not base64, and a hub-level key for another hub.
    bad_key = "c2VjcmV0LXN0b3JhZ2Uta2V5!not-base64"
    path = write(tmp_path, f"eventhub:\n  connection_string: '{EH}'\n  name: acs-diagnostics\n"
                           f"checkpoint_store:\n  connection_string: '{ST.replace('c2VjcmV0LXN0b3JhZ2Uta2V5', bad_key)}'\n"
                           "http:\n  port: 0\n")
    checked = cli("check-config", "--config", str(path))
    started = cli("run", "--config", str(path))  # would retry forever if it got past the configuration
    for result in (checked, started):
        assert result.returncode == 2, result.stderr
        assert "eventhub: eventhub.connection_string has EntityPath=hub, but eventhub.name is acs-diagnostics" in result.stderr
        assert "checkpoint_store: checkpoint_store.connection_string: AccountKey is not valid base64" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert "secret-key-value" not in result.stderr and bad_key not in result.stderr
    assert started.stderr == checked.stderr


FAKE_SECRET = "FAKE-SECRET-c2lnbmF0dXJl"
ACCOUNT_URL = "https://acct.blob.core.windows.net"
SAS_URL = f"https://acct.blob.core.windows.net/?sv=2022-11-02&ss=b&sp=rwdlac&se=2030-01-01T00:00:00Z&sig={FAKE_SECRET}%3D"


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_yaml_error_on_a_secret_line_never_shows_the_line(tmp_path: Path, command: str) -> None:
    # An unclosed quote: PyYAML's own message would print the line with the key in it.
    path = write(tmp_path, f"eventhub:\n  connection_string: \"Endpoint=sb://ns/;SharedAccessKey={FAKE_SECRET}\n"
                           f"checkpoint_store:\n  connection_string: '{ST}'\n")
    result = cli(command, "--config", str(path))
    assert result.returncode == 2
    assert FAKE_SECRET not in result.stdout + result.stderr
    assert "SharedAccessKey" not in result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"{path}: not valid YAML at line 5, column 1: found unexpected end of stream (while scanning a quoted "
        "scalar that starts at line 2, column 22) (the line is not shown: it may hold a secret)")


def test_check_config_refuses_a_sas_token_in_account_url_without_printing_it(tmp_path: Path) -> None:
    path = write(tmp_path, f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  account_url: '{SAS_URL}'\n")
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert "checkpoint_store.account_url: looks like a SAS token" in result.stderr
    assert FAKE_SECRET not in result.stdout + result.stderr and "sig=" not in result.stdout + result.stderr


def test_run_logs_its_configuration_and_sources_at_start_up(tmp_path: Path) -> None:
    import json

    path = write(tmp_path, f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  account_url: '{ACCOUNT_URL}'\n"
                           "http:\n  host: 127.0.0.1\n  port: 0\nshutdown_timeout_seconds: 2\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_SMS_CONSUMER_")}
    process = subprocess.Popen([sys.executable, "-m", "consumer", "run", "--config", str(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=clean, cwd=REPO)
    lines = Lines(process)
    try:
        first = lines.line(60)  # the start-up line comes first
    finally:
        process.kill()
        rest = lines.rest(30)
    start = json.loads(first)
    assert start["message"] == "starting acs-sms-consumer"
    assert start["config"]["checkpoint_store"]["account_url"] == ACCOUNT_URL
    assert start["config"]["eventhub"]["connection_string"] == "***"
    # where each value that is not a default came from
    assert start["config_sources"] == {key: f"file {path}" for key in (
        "eventhub.connection_string", "checkpoint_store.account_url", "http.host", "http.port", "shutdown_timeout_seconds")}
    assert "secret-key-value" not in first + rest


def closed_stdout(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout a pipe whose reader is already gone: the first write fails (EPIPE), as under `| head`."""
    read, write = os.pipe()
    os.close(read)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_SMS_CONSUMER_")}
    try:
        return subprocess.run([sys.executable, "-m", "consumer", *args], stdout=write, stderr=subprocess.PIPE,
                              env=clean, timeout=60, cwd=REPO)
    finally:
        os.close(write)


def test_check_config_into_a_closed_pipe_exits_quietly_with_its_verdict(tmp_path: Path) -> None:
    path = write(tmp_path, f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  connection_string: '{ST}'\n")
    result = closed_stdout("check-config", "--config", str(path))
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert stderr.startswith(f"# {path}: configuration is valid\n# not checked (offline): ")  # no traceback,
    assert "Exception ignored" not in stderr and "Traceback" not in stderr


def test_replay_into_a_closed_pipe_exits_quietly() -> None:
    result = closed_stdout("replay", str(REPO / "consumer" / "samples" / "eventhubs-sms.json"))
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr and "BrokenPipe" not in stderr, stderr


@pytest.mark.parametrize("command", ["run", "check-config", "replay", "emulator", "simulate", "demo"])
def test_help_of_every_command_lists_its_exit_status(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    epilog = result.stdout.split("exit status:\n", 1)[1]
    codes = [line.split()[0] for line in epilog.splitlines() if line.startswith("  ") and not line.startswith("     ")]
    assert codes[:3] == ["0", "1", "2"] or codes[:2] == ["0", "2"], epilog


def test_run_on_uvloop_starts_on_it(tmp_path: Path) -> None:
    """`run --loop uvloop` runs the service on uvloop's loop (the start-up line names it, and the
    service gets as far as retrying the unreachable hub, which needs the loop running)."""
    import json

    import uvloop  # noqa: F401 - .ci/setup installs the uvloop extra; a missing uvloop fails here
    path = write(tmp_path, f"eventhub:\n  connection_string: '{EH}'\ncheckpoint_store:\n  connection_string: '{ST}'\n"
                           "http:\n  host: 127.0.0.1\n  port: 0\nshutdown_timeout_seconds: 2\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_SMS_CONSUMER_")}
    process = subprocess.Popen([sys.executable, "-m", "consumer", "run", "--loop", "uvloop", "--config", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean, cwd=REPO)
    lines = Lines(process)
    try:
        first = json.loads(lines.line(60))
        second = lines.line(60)  # logged from inside the running loop
    finally:
        process.kill()
        lines.rest(30)
    assert first["message"] == "starting acs-sms-consumer" and first["loop"] == "uvloop"
    assert second and "Traceback" not in second


def test_loop_factory_names_the_loop() -> None:
    import asyncio

    from consumer.app import loop_factory

    assert loop_factory("asyncio") is None
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        loop_factory("trio")
    import uvloop

    factory = loop_factory("uvloop")
    assert factory is uvloop.new_event_loop
    loop = factory()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop) and type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


@pytest.mark.parametrize("command", ["emulator", "simulate", "demo"])
def test_a_development_command_without_the_dev_tools_says_how_to_install_them(command: str) -> None:
    """The production image has the service only: `demo`, `simulate`, `emulator` exit 2 with a
    message naming the package to install, no traceback."""
    hide = ("import sys\n"
            "class Absent:  # what the import system raises when no path entry holds the package\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'acs_sms_devtools':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Absent())\n"
            f"from consumer.cli import main; sys.exit(main([{command!r}]))")
    result = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"acs-sms-consumer {command}: the development tools are not installed (they are not "
                             "part of the service's package); from a clone of the repository: pip install -e ./devtools\n")
