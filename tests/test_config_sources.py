"""consumer.config_sources: the secrets directory, `*_FILE` variables, precedence between every source,
where each value came from (check-config's listing), and errors that say where a bad value came from
without showing it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from consumer.config import ConfigError, Settings, load_config, load_settings, redacted
from consumer.config_sources import CONFIG_VARIABLE, RESERVED_VARIABLES, SECRETS_DIR_VARIABLE, annotated_yaml

EH_SECRET = "c2VjcmV0LWtleS1ldmVudGh1Yg=="
ST_SECRET = "c2VjcmV0LWtleS1zdG9yYWdl"
EH_CS = f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={EH_SECRET};EntityPath=acs"
ST_CS = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ST_SECRET};EndpointSuffix=core.windows.net"
OTHER_EH_CS = EH_CS.replace("SharedAccessKeyName=listen", "SharedAccessKeyName=other")
OTHER_ST_CS = ST_CS.replace("AccountName=acct", "AccountName=other")

EH_VAR = "ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING"
ST_VAR = "ACS_SMS_CONSUMER_CHECKPOINT_STORE__CONNECTION_STRING"
PORT_VAR = "ACS_SMS_CONSUMER_HTTP__PORT"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A file with the Event Hubs connection string and the port; the storage one comes from elsewhere."""
    return write(tmp_path / "config.yaml", f"eventhub:\n  connection_string: '{EH_CS}'\n  consumer_group: metrics\n"
                 "http:\n  port: 1111\n")


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    write(directory / ST_VAR, ST_CS + "\n")  # as `kubectl create secret --from-file` keeps a trailing newline
    return directory


def error_of(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(*args, **kwargs)
    message = str(info.value)
    for secret in (EH_SECRET, ST_SECRET):
        assert secret not in message, message
    return message


# --- the secrets directory -----------------------------------------------------------------------


def test_a_secret_file_named_like_the_variable_gives_the_value_stripped(config, secrets):
    loaded = load_config(config, {}, secrets)
    assert loaded.settings.checkpoint_store.connection_string.get_secret_value() == ST_CS
    assert str(loaded.origin("checkpoint_store.connection_string")) == f"secret file {secrets / ST_VAR}"


def test_the_secrets_directory_can_come_from_the_environment(config, secrets):
    loaded = load_config(config, {SECRETS_DIR_VARIABLE: str(secrets)})
    assert loaded.settings.checkpoint_store.connection_string.get_secret_value() == ST_CS
    assert loaded.secrets_dir == str(secrets)


def test_secret_file_names_ignore_case_and_other_files_are_ignored(config, tmp_path):
    directory = tmp_path / "secrets"
    write(directory / ST_VAR.lower(), ST_CS)
    write(directory / "checkpoint-store-connection-string", "not read: no prefix")
    write(directory / "README", "\x00\x01 not read either")  # but a prefixed file that is not text would fail
    assert load_settings(config, {}, directory).checkpoint_store.connection_string.get_secret_value() == ST_CS


def test_any_key_can_come_from_the_secrets_directory(config, secrets):
    write(secrets / "ACS_SMS_CONSUMER_PIPELINE__BUCKETS__DELIVERY_ATTEMPTS", "[1, 3]")
    write(secrets / "ACS_SMS_CONSUMER_EVENTHUB__CONSUMER_GROUP", "2024\n")
    settings = load_settings(config, {}, secrets)
    assert settings.pipeline.buckets.delivery_attempts == [1, 3]
    assert settings.eventhub.consumer_group == "2024"


def test_a_kubernetes_secret_volume_layout_is_read(config, tmp_path):
    """kubelet writes the keys into a timestamped directory, links `..data` to it, and each key to
    `..data/<key>`; the hidden entries are not keys."""
    directory = tmp_path / "mounted"
    write(directory / "..2026_12_02_11_00_00.000000001" / ST_VAR, ST_CS)
    (directory / "..data").symlink_to("..2026_12_02_11_00_00.000000001")
    (directory / ST_VAR).symlink_to(Path("..data") / ST_VAR)
    loaded = load_config(config, {}, directory)
    assert loaded.settings.checkpoint_store.connection_string.get_secret_value() == ST_CS
    assert [key for key, origin in loaded.origins.items() if origin.kind == "secrets_dir"] == ["checkpoint_store.connection_string"]


@pytest.mark.parametrize("make, what", [(lambda p: None, "no such directory"), (lambda p: write(p, "x"), "not a directory")])
def test_a_secrets_directory_that_is_not_one_is_an_error(config, tmp_path, make, what):
    path = tmp_path / "absent"
    make(path)
    assert error_of(config, {}, path) == f"secrets directory {path}: {what} (--secrets-dir or {SECRETS_DIR_VARIABLE})"


def test_a_secret_file_that_is_not_text_is_named_not_shown(config, tmp_path):
    directory = tmp_path / "secrets"
    (directory).mkdir()
    (directory / ST_VAR).write_bytes(b"\xff\xfe" + ST_SECRET.encode())
    assert error_of(config, {}, directory) == f"secrets directory {directory}: {ST_VAR} is not UTF-8 text"


# --- *_FILE variables ----------------------------------------------------------------------------


def test_a_file_variable_gives_a_connection_string(config, tmp_path):
    path = write(tmp_path / "mnt" / "checkpoint-store-connection-string", ST_CS + "\n")
    loaded = load_config(config, {ST_VAR + "_FILE": str(path)})
    assert loaded.settings.checkpoint_store.connection_string.get_secret_value() == ST_CS
    assert str(loaded.origin("checkpoint_store.connection_string")) == f"file {path} named by {ST_VAR}_FILE"


def test_file_variables_exist_only_for_secrets(config, tmp_path):
    path = write(tmp_path / "port", "2222")
    assert error_of(config, {ST_VAR: ST_CS, PORT_VAR + "_FILE": str(path)}).endswith(
        f"  http.port_file: is not a known key (check the spelling against config.example.yaml) "
        f"(from environment variable {PORT_VAR}_FILE)")


def test_a_variable_and_its_file_variable_together_are_an_error(config, tmp_path):
    path = write(tmp_path / "st", OTHER_ST_CS)
    assert error_of(config, {ST_VAR: ST_CS, ST_VAR + "_FILE": str(path)}) == (
        f"{ST_VAR} and {ST_VAR}_FILE are both set: set only one of them (the value, or the path of a file that holds it)")


def test_an_unreadable_file_variable_names_the_variable_and_the_file(config, tmp_path):
    path = tmp_path / "nowhere"
    assert error_of(config, {ST_VAR + "_FILE": str(path)}) == f"{ST_VAR}_FILE: cannot read {path}: No such file or directory"
    assert error_of(config, {ST_VAR + "_FILE": str(tmp_path)}) == f"{ST_VAR}_FILE: cannot read {tmp_path}: Is a directory"


# --- precedence ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "in_file, in_secrets, in_env, expected, origin",
    [
        (True, True, True, 3333, "environment variable ACS_SMS_CONSUMER_HTTP__PORT"),
        (True, True, False, 2222, "secret file {secrets}/ACS_SMS_CONSUMER_HTTP__PORT"),
        (True, False, False, 1111, "file {config}"),
        (False, False, False, 9464, "default"),
        (False, True, False, 2222, "secret file {secrets}/ACS_SMS_CONSUMER_HTTP__PORT"),
    ],
)
def test_environment_over_secrets_directory_over_file_over_default(tmp_path, secrets, in_file, in_secrets, in_env,
                                                                  expected, origin):
    config = write(tmp_path / "config.yaml", f"eventhub:\n  connection_string: '{EH_CS}'\n  consumer_group: metrics\n"
                                             + ("http:\n  port: 1111\n" if in_file else ""))
    if in_secrets:
        write(secrets / PORT_VAR, "2222")
    loaded = load_config(config, {PORT_VAR: "3333"} if in_env else {}, secrets)
    assert loaded.settings.http.port == expected
    assert str(loaded.origin("http.port")) == origin.format(secrets=secrets, config=config)


def test_a_connection_string_from_the_environment_or_its_file_wins_over_the_secrets_directory(config, secrets, tmp_path):
    path = write(tmp_path / "mnt" / "st", OTHER_ST_CS)
    for environ, expected in [({ST_VAR: OTHER_ST_CS}, OTHER_ST_CS), ({ST_VAR + "_FILE": str(path)}, OTHER_ST_CS), ({}, ST_CS)]:
        assert load_settings(config, environ, secrets).checkpoint_store.connection_string.get_secret_value() == expected
    # and both over the file's
    assert load_settings(config, {EH_VAR: OTHER_EH_CS, ST_VAR: ST_CS}).eventhub.connection_string.get_secret_value() == OTHER_EH_CS


def test_sources_merge_key_by_key(tmp_path, secrets):
    config = write(tmp_path / "config.yaml", f"eventhub:\n  connection_string: '{EH_CS}'\n  consumer_group: metrics\n"
                                             "pipeline:\n  labels:\n    categories: 5\n")
    settings = load_settings(config, {"ACS_SMS_CONSUMER_PIPELINE__LABELS__USAGE_TYPES": "7"}, secrets)
    assert (settings.pipeline.labels.categories, settings.pipeline.labels.usage_types) == (5, 7)
    assert settings.eventhub.consumer_group == "metrics"
    assert settings.checkpoint_store.connection_string.get_secret_value() == ST_CS


# --- errors say where a bad value came from ------------------------------------------------------


def test_a_bad_connection_string_in_a_secret_file_is_named_with_its_file(config, tmp_path):
    directory = tmp_path / "secrets"
    write(directory / ST_VAR, ST_CS.replace(ST_SECRET, ST_SECRET + "!"))
    error = error_of(config, {}, directory)
    assert error == (f"invalid configuration (1 problem, from the environment or secret files; none in {config}):\n"
                     "  checkpoint_store: checkpoint_store.connection_string: AccountKey is not valid base64 (a storage "
                     "account key is 88 characters of base64 ending in '=='); copy it again from the storage account's "
                     f"Access keys (checkpoint_store.connection_string from secret file {directory / ST_VAR})")


def test_a_bad_connection_string_from_a_file_variable_is_named_with_its_file(config, tmp_path):
    path = write(tmp_path / "st", EH_CS)  # the other service's string
    error = error_of(config, {ST_VAR + "_FILE": str(path)})
    assert "  checkpoint_store: checkpoint_store.connection_string is an Event Hubs connection string" in error
    assert error.endswith(f"(checkpoint_store.connection_string from file {path} named by {ST_VAR}_FILE)")


def test_an_empty_secret_file_is_a_blank_connection_string(config, tmp_path):
    directory = tmp_path / "secrets"
    write(directory / ST_VAR, "\n")
    error = error_of(config, {}, directory)
    assert "checkpoint_store.connection_string is not a connection string (Connection string is either blank or malformed)" in error
    assert f"(checkpoint_store.connection_string from secret file {directory / ST_VAR})" in error


def test_a_bad_value_in_a_secret_file_names_the_key_and_the_file(config, secrets):
    write(secrets / PORT_VAR, "high")
    assert error_of(config, {}, secrets).endswith(
        f"  http.port: Input should be a valid integer, unable to parse string as an integer "
        f"(from secret file {secrets / PORT_VAR})")


def test_a_list_item_error_names_the_variable(config, secrets):
    error = error_of(config, {"ACS_SMS_CONSUMER_PIPELINE__BUCKETS__AGE_SECONDS": "[1, x]"}, secrets)
    assert "  pipeline.buckets.age_seconds.1: Input should be a valid number, unable to parse string as a number " \
           "(from environment variable ACS_SMS_CONSUMER_PIPELINE__BUCKETS__AGE_SECONDS)" in error


def test_unknown_keys_from_secret_files_and_variables_are_reported(config, secrets):
    write(secrets / "ACS_SMS_CONSUMER_EVENTHUB__CONECTION_STRING", "x")
    error = error_of(config, {"ACS_SMS_CONSUMER_HTTP_PORT": "1"}, secrets)
    assert ("  eventhub.conection_string: is not a known key (did you mean ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING?) "
            f"(from secret file {secrets / 'ACS_SMS_CONSUMER_EVENTHUB__CONECTION_STRING'})") in error
    assert ("  http_port: is not a known key (did you mean ACS_SMS_CONSUMER_HTTP__PORT? Nesting levels are separated "
            "by two underscores, __) (from environment variable ACS_SMS_CONSUMER_HTTP_PORT)") in error


SERVICE_LINKS = {  # what Kubernetes gives a container for the Services acs-sms-consumer and acs-sms-consumer-eu
    "ACS_SMS_CONSUMER_SERVICE_HOST": "10.0.0.11", "ACS_SMS_CONSUMER_SERVICE_PORT": "9464",
    "ACS_SMS_CONSUMER_SERVICE_PORT_METRICS": "9464", "ACS_SMS_CONSUMER_PORT": "tcp://10.0.0.11:9464",
    "ACS_SMS_CONSUMER_PORT_9464_TCP": "tcp://10.0.0.11:9464", "ACS_SMS_CONSUMER_PORT_9464_TCP_PROTO": "tcp",
    "ACS_SMS_CONSUMER_PORT_9464_TCP_PORT": "9464", "ACS_SMS_CONSUMER_PORT_9464_TCP_ADDR": "10.0.0.11",
    "ACS_SMS_CONSUMER_EU_SERVICE_HOST": "10.0.0.12", "ACS_SMS_CONSUMER_EU_PORT_9464_TCP": "tcp://10.0.0.12:9464",
}


def test_kubernetes_service_link_variables_are_not_unknown_keys(config, secrets):
    settings = load_settings(config, {**SERVICE_LINKS, ST_VAR: ST_CS})
    assert settings.http.port == 1111
    # while a misspelt key is still reported
    error = error_of(config, {**SERVICE_LINKS, ST_VAR: ST_CS, "ACS_SMS_CONSUMER_HTTP_PORT": "1"})
    assert error.endswith("  http_port: is not a known key (did you mean ACS_SMS_CONSUMER_HTTP__PORT? Nesting levels "
                          "are separated by two underscores, __) (from environment variable ACS_SMS_CONSUMER_HTTP_PORT)")
    assert "service_host" not in error and "port_9464" not in error and error.count("is not a known key") == 1


def test_the_config_and_secrets_dir_variables_are_not_keys(config, secrets):
    assert not {name.removeprefix("ACS_SMS_CONSUMER_").lower() for name in RESERVED_VARIABLES} & set(Settings.model_fields)
    settings = load_settings(config, {CONFIG_VARIABLE: str(config), SECRETS_DIR_VARIABLE: str(secrets)})
    assert settings.checkpoint_store.connection_string.get_secret_value() == ST_CS


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"eventhub:\n  name: caf\xe9\n")
    assert error_of(path, {}) == (f"{path}: not valid YAML: not UTF-8 text (byte 22 of the file) "
                                  "(the line is not shown: it may hold a secret)")


# --- where each value came from ------------------------------------------------------------------


def test_the_listing_is_the_redacted_configuration_with_each_origin(config, secrets, tmp_path):
    eh_file = write(tmp_path / "mnt" / "eh", OTHER_EH_CS)
    loaded = load_config(config, {PORT_VAR: "3333", EH_VAR + "_FILE": str(eh_file)}, secrets)
    text = annotated_yaml(redacted(loaded.settings), loaded)
    assert yaml.safe_load(text) == redacted(loaded.settings)  # still the YAML that check-config printed before
    for secret in (EH_SECRET, ST_SECRET, "AccountKey", "SharedAccessKey"):
        assert secret not in text
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert f"# configuration file: {config}" in lines and f"# secrets directory: {secrets}" in lines
    assert f"connection_string: '***' # file {eh_file} named by {EH_VAR}_FILE" in lines
    assert f"connection_string: '***' # secret file {secrets / ST_VAR}" in lines
    assert f"port: 3333 # environment variable {PORT_VAR}" in lines
    assert "host: 0.0.0.0 # default" in lines
    assert "delivery_attempts: [1, 2, 3, 5, 10] # default" in lines
    assert "shutdown_timeout_seconds: 20 # default" in lines
    values = [line for line in lines if not line.startswith("#") and not line.endswith(":")]
    assert values and all(" # " in line for line in values), "every value names its origin"


def test_the_listing_names_the_file_for_values_of_the_file(config):
    loaded = load_config(config, {ST_VAR: ST_CS})
    lines = [" ".join(line.split()) for line in annotated_yaml(redacted(loaded.settings), loaded).splitlines()]
    assert f"port: 1111 # file {config}" in lines
    assert f"connection_string: '***' # environment variable {ST_VAR}" in lines
    assert "# secrets directory: none" in lines


# --- the command line ----------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_SMS_CONSUMER_")}
    proc = subprocess.run([sys.executable, "-m", "consumer", *args], capture_output=True, text=True,
                          env={**clean, **env}, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    return proc.returncode, proc.stdout, proc.stderr


def test_check_config_takes_the_file_and_secrets_from_variables_or_options(config, secrets, tmp_path):
    code, out, err = cli("check-config", env={CONFIG_VARIABLE: str(config), SECRETS_DIR_VARIABLE: str(secrets)})
    assert code == 0, err
    assert err.startswith(f"# {config}: configuration is valid\n# not checked (offline): ")
    assert f"# secret file {secrets / ST_VAR}" in out and ST_SECRET not in out
    other = tmp_path / "other-secrets"
    write(other / ST_VAR, OTHER_ST_CS)
    code, out, err = cli("check-config", "--config", str(config), "--secrets-dir", str(other),
                         env={CONFIG_VARIABLE: str(tmp_path / "absent.yaml"), SECRETS_DIR_VARIABLE: str(secrets)})
    assert code == 0, err
    assert f"# secret file {other / ST_VAR}" in out  # the options win over the variables


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_no_configuration_file_is_a_clear_error(command):
    code, out, err = cli(command, env={})
    assert code == 2 and out == ""
    assert err == (f"acs-sms-consumer {command}: no configuration file: give --config FILE or set {CONFIG_VARIABLE} "
                   "(an empty file will do when every key comes from the environment or secret files)\n")


def test_run_stops_on_a_bad_secret_file_with_the_same_message(config, tmp_path):
    path = write(tmp_path / "st", ST_CS.replace(ST_SECRET, ST_SECRET + "!"))
    checked = cli("check-config", "--config", str(config), env={ST_VAR + "_FILE": str(path)})
    started = cli("run", "--config", str(config), env={ST_VAR + "_FILE": str(path)})
    assert checked[0] == started[0] == 2
    assert checked[2] == started[2] and f"from file {path} named by {ST_VAR}_FILE" in started[2]
    assert ST_SECRET not in started[1] + started[2]
