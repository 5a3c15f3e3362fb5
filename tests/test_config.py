"""consumer.config: errors name the key and the file, environment overrides, redaction, the example file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from consumer.config import (
    CheckpointSettings,
    ConfigError,
    PipelineSettings,
    Settings,
    load_settings,
    redact_url,
    redacted,
)
from consumer.connection_strings import connection_string_parts

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
EH_SECRET = "c2VjcmV0LWtleS1ldmVudGh1Yg=="
ST_SECRET = "c2VjcmV0LWtleS1zdG9yYWdl"
EH_CS = f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={EH_SECRET};EntityPath=acs"
EXAMPLE_EH_CS = EH_CS.replace("EntityPath=acs", "EntityPath=acs-diagnostics")  # the hub config.example.yaml names
ST_CS = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ST_SECRET};EndpointSuffix=core.windows.net"

MINIMAL = f"""
eventhub:
  connection_string: "{EH_CS}"
  consumer_group: acs-sms-consumer
checkpoint_store:
  connection_string: "{ST_CS}"
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path, environ=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ or {})
    return str(info.value)


def test_minimal_config_loads_with_defaults(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), {})
    assert settings.eventhub.connection_string.get_secret_value() == EH_CS
    assert settings.eventhub.name is None and settings.eventhub.consumer_group == "acs-sms-consumer"
    assert settings.pipeline == PipelineSettings()
    assert settings.pipeline.labels.categories == 20
    assert settings.http.port == 9464


@pytest.mark.parametrize(
    "text, key, message",
    [
        (MINIMAL + "http:\n  port: 70000\n", "http.port", "less than or equal to 65535"),
        (MINIMAL + "http:\n  prot: 1\n", "http.prot", "is not a known key"),
        (MINIMAL + "pipeline:\n  labels:\n    categories: 0\n", "pipeline.labels.categories", "greater than 0"),
        (MINIMAL + "pipeline:\n  buckets:\n    age_seconds: [5, 1]\n", "pipeline.buckets.age_seconds", "strictly increasing"),
        (MINIMAL + "pipeline:\n  buckets:\n    age_seconds: []\n", "pipeline.buckets.age_seconds", "at least one bucket"),
        (MINIMAL + "pipeline:\n  buckets:\n    age_seconds: [-1, 1]\n", "pipeline.buckets.age_seconds", "must be positive"),
        (MINIMAL + "pipeline:\n  max_body_bytes: lots\n", "pipeline.max_body_bytes", "valid integer"),
        (MINIMAL + "logging:\n  level: chatty\n", "logging.level", "DEBUG"),
        (MINIMAL + "eventhub:\n  initial_position: yesterday\n", "eventhub.initial_position", None),
        ("checkpoint_store:\n  connection_string: x\n", "eventhub", "is required"),
        (MINIMAL + "checkpoint_store:\n  container: c1\n", "checkpoint_store.container", "is not a blob container name"),
        (MINIMAL + "checkpoint_store:\n  container: Checkpoints\n", "checkpoint_store.container", "lowercase"),
        (MINIMAL + "deadletter:\n  container: dead--letters\n", "deadletter.container", "no two hyphens"),
        (MINIMAL + "deadletter:\n  container: dead_letters\n", "deadletter.container", "is not a blob container name"),
        (MINIMAL + f"deadletter:\n  container: {'d' * 64}\n", "deadletter.container", "3 to 63"),
        (MINIMAL + "checkpoint_store:\n  account_url: https://acct.blob.core.windows.net\n", "checkpoint_store",
         "set exactly one of checkpoint_store.connection_string and checkpoint_store.account_url"),
    ],
)
def test_every_error_names_the_key_and_the_file(tmp_path, text, key, message):
    # MINIMAL + extra sections: merge sections that appear twice (YAML would keep only the last).
    data: dict = {}
    for doc in [yaml.safe_load(MINIMAL) if text.startswith(MINIMAL) else {}, yaml.safe_load(text[len(MINIMAL):]) if text.startswith(MINIMAL) else yaml.safe_load(text)]:
        for section, value in (doc or {}).items():
            if isinstance(value, dict) and isinstance(data.get(section), dict):
                data[section] = {**data[section], **value}
            else:
                data[section] = value
    path = write(tmp_path, yaml.safe_dump(data))
    error = error_of(path)
    assert error.startswith(f"{path}: invalid configuration")
    assert re.search(rf"^  {re.escape(key)}: ", error, re.M), error
    if message:
        assert message in error
    assert EH_SECRET not in error and ST_SECRET not in error


def test_eventhub_initial_position_error_explains(tmp_path):
    path = write(tmp_path, MINIMAL + "http:\n  port: 1\n")
    error = error_of(path, {"ACS_SMS_CONSUMER_EVENTHUB__INITIAL_POSITION": "soon"})
    assert "  eventhub.initial_position: must be 'latest', 'earliest' or an ISO 8601 timestamp" in error
    assert "(from environment variable ACS_SMS_CONSUMER_EVENTHUB__INITIAL_POSITION)" in error


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.yaml"
    assert error_of(path) == f"{path}: cannot read the configuration file: No such file or directory"


def test_invalid_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "eventhub: [unclosed\n")
    assert error_of(path).startswith(f"{path}: not valid YAML at line 2, column 1: ")


FAKE_SECRET = "FAKE-SECRET-c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "line, where",
    [
        # an unclosed quote: the error is reported at the end of the file, with where the string began
        (f'  connection_string: "Endpoint=sb://ns/;SharedAccessKey={FAKE_SECRET}\n  name: hub\n',
         "at line 5, column 1: found unexpected end of stream (while scanning a quoted scalar that starts at "
         "line 3, column 22)"),
        (f"  connection_string: Endpoint=sb://ns/;SharedAccessKey={FAKE_SECRET}: oops\n",
         "at line 3, column 80: mapping values are not allowed here"),
        (f"\tconnection_string: {FAKE_SECRET}\n", "at line 3, column 1: a tab character: YAML indents with spaces only (replace the tab with spaces)"),
        (f"  connection_string: *{FAKE_SECRET}\n", "at line 3, column 22: found undefined alias '...'"),
        (f'  connection_string: "x\\q{FAKE_SECRET}"\n', "at line 3, column 25: found unknown escape character '...' (while scanning a double-quoted scalar that "
         "starts at line 3, column 22)"),
        (f"  connection_string: !!python/object:{FAKE_SECRET} {{}}\n",
         "at line 3, column 22: could not determine a constructor for the tag '...'"),
    ],
)
def test_a_yaml_error_names_line_and_column_never_the_text(tmp_path, line, where):
    path = write(tmp_path, "# acs-sms-consumer\neventhub:\n" + line)
    error = error_of(path)
    assert error == f"{path}: not valid YAML {where} (the line is not shown: it may hold a secret)"
    assert "FAKE" not in error and "SharedAccessKey" not in error


def test_a_control_character_in_the_file_is_named_by_position_only(tmp_path):
    path = write(tmp_path, f"eventhub:\n  connection_string: {FAKE_SECRET}\x07\n")
    assert error_of(path) == (f"{path}: not valid YAML at line 2, column 46: a character that YAML does not allow "
                              "(control character or invalid encoding) (the line is not shown: it may hold a secret)")


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("42\n", "int"), ("just text\n", "str")])
def test_top_level_not_a_mapping(tmp_path, text, kind):
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: the top level must be a mapping of sections, not a {kind}"


def test_empty_file_uses_environment_only(tmp_path):
    path = write(tmp_path, "")
    settings = load_settings(path, {
        "ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING": EH_CS,
        "ACS_SMS_CONSUMER_EVENTHUB__CONSUMER_GROUP": "acs-sms-consumer",
        "ACS_SMS_CONSUMER_CHECKPOINT_STORE__CONNECTION_STRING": ST_CS,
    })
    assert settings.checkpoint_store.connection_string.get_secret_value() == ST_CS


def test_no_file_is_named_in_errors():
    assert error_of(None).startswith("(no file): invalid configuration")


def test_environment_overrides_nesting_and_types(tmp_path):
    path = write(tmp_path, MINIMAL + "http:\n  port: 8000\n")
    settings = load_settings(path, {
        "ACS_SMS_CONSUMER_HTTP__PORT": "9999",
        "ACS_SMS_CONSUMER_PIPELINE__LABELS__USAGE_TYPES": "100",
        "ACS_SMS_CONSUMER_PIPELINE__BUCKETS__API_DURATION_SECONDS": "[0.01, 0.1, 1, 10]",
        "ACS_SMS_CONSUMER_PIPELINE__CORRELATION_MAX_AGE_SECONDS": "1.5",
        "ACS_SMS_CONSUMER_DEADLETTER__ENABLED": "false",
        "ACS_SMS_CONSUMER_EVENTHUB__CONSUMER_GROUP": "metrics",
        "ACS_SMS_CONSUMER_EVENTHUB__NAME": "123",  # looks like a number, stays a string
        "ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING": EH_CS.removesuffix(";EntityPath=acs"),  # no other hub's EntityPath
        "ACS_SMS_CONSUMER_LOGGING__LEVEL": "debug",
        "ACS_SMS_CONSUMER_SHUTDOWN_TIMEOUT_SECONDS": "7",
        "ACS_SMS_CONSUMER_HTTP__HOST": "   ",  # blank values are ignored
        "OTHER_HTTP__PORT": "1",
    })
    assert settings.http.port == 9999
    assert settings.http.host == "0.0.0.0"
    assert settings.pipeline.labels.usage_types == 100
    assert settings.pipeline.labels.result_signatures == 50
    assert settings.pipeline.buckets.api_duration_seconds == [0.01, 0.1, 1, 10]
    assert settings.pipeline.correlation_max_age_seconds == 1.5
    assert settings.deadletter.enabled is False
    assert settings.eventhub.consumer_group == "metrics"
    assert settings.eventhub.name == "123"
    assert settings.logging.level == "DEBUG"
    assert settings.shutdown_timeout_seconds == 7


def test_environment_secret_keeps_its_text():
    settings = load_settings(None, {
        "ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING": EH_CS,
        "ACS_SMS_CONSUMER_EVENTHUB__CONSUMER_GROUP": "acs-sms-consumer",
        "ACS_SMS_CONSUMER_CHECKPOINT_STORE__CONNECTION_STRING": ST_CS,
    })
    assert settings.eventhub.connection_string.get_secret_value() == EH_CS


def test_environment_error_names_the_variable(tmp_path):
    path = write(tmp_path, MINIMAL)
    error = error_of(path, {"ACS_SMS_CONSUMER_PIPELINE__LABELS__CATEGORIES": "-3"})
    assert error.startswith(f"invalid configuration (1 problem, from the environment or secret files; none in {path})")
    assert "  pipeline.labels.categories: Input should be greater than 0 (from environment variable " \
           "ACS_SMS_CONSUMER_PIPELINE__LABELS__CATEGORIES)" in error


def test_environment_unknown_key_is_reported(tmp_path):
    error = error_of(write(tmp_path, MINIMAL), {"ACS_SMS_CONSUMER_PIPELINE__NOPE": "1"})
    assert "  pipeline.nope: is not a known key" in error


def test_redaction_hides_secrets(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), {})
    plain = redacted(settings)
    assert plain["eventhub"]["connection_string"] == "***"
    assert plain["checkpoint_store"]["connection_string"] == "***"
    assert plain["pipeline"]["labels"]["categories"] == 20
    assert plain["pipeline"]["buckets"]["delivery_attempts"] == [1, 2, 3, 5, 10]
    dumped = yaml.safe_dump(plain)
    assert EH_SECRET not in dumped and ST_SECRET not in dumped
    assert EH_SECRET not in repr(settings) and ST_SECRET not in str(settings)


SAS = "sv=2022-11-02&ss=b&srt=sco&sp=rwdlacx&se=2030-01-01T00:00:00Z&sig=" + FAKE_SECRET + "%3D"


@pytest.mark.parametrize("url", ["https://acct.blob.core.windows.net/?{SAS}", "acct.blob.core.windows.net/?{SAS}"])
def test_a_sas_token_in_account_url_is_refused_unquoted(tmp_path, url):
    # a SAS token in account_url would be printed by check-config and logged at start-up: refused
    text = MINIMAL.replace(f'connection_string: "{ST_CS}"', f'account_url: "{url.format(SAS=SAS)}"')
    error = error_of(write(tmp_path, text))
    assert "checkpoint_store.account_url: looks like a SAS token" in error
    assert FAKE_SECRET not in error and "sig=" not in error


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://acct.blob.core.windows.net", "https://acct.blob.core.windows.net"),
        ("https://acct.blob.core.windows.net/", "https://acct.blob.core.windows.net/"),
        (f"https://acct.blob.core.windows.net/?{SAS}", "https://acct.blob.core.windows.net/?***"),
        (f"https://acct.blob.core.windows.net/container?{SAS}#x", "https://acct.blob.core.windows.net/container?***"),
        ("https://user:pass@acct.blob.core.windows.net/c", "https://***@acct.blob.core.windows.net/c"),
        (f"acct.blob.core.windows.net?{SAS}", "acct.blob.core.windows.net?***"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_connection_string_parts():
    parts = connection_string_parts(EH_CS)
    assert parts["endpoint"] == "sb://ns.servicebus.windows.net/"
    assert parts["entitypath"] == "acs"
    assert parts["sharedaccesskey"] == EH_SECRET


@pytest.mark.parametrize(
    "eventhub, message",
    [
        ({}, "set eventhub.connection_string, or eventhub.fully_qualified_namespace"),
        ({"connection_string": EH_CS, "fully_qualified_namespace": "ns.servicebus.windows.net"}, "set only one of"),
        ({"connection_string": "SharedAccessKey=x"}, "has no Endpoint=sb://"),
        ({"connection_string": "Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=x"}, "set eventhub.name, or EntityPath"),
        ({"fully_qualified_namespace": "ns.servicebus.windows.net"}, "eventhub.name is required"),
        ({"connection_string": EH_CS, "load_balancing_interval_seconds": 60}, "must be longer than"),
    ],
)
def test_eventhub_auth_rules(tmp_path, eventhub, message):
    path = write(tmp_path, yaml.safe_dump({"eventhub": eventhub, "checkpoint_store": {"account_url": "https://a"}}))
    error = error_of(path)
    assert message in error and "  eventhub: " in error
    assert "SharedAccessKey=x" not in error and EH_SECRET not in error


# --- config.example.yaml -----------------------------------------------------------------------


def model_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        keys.append(prefix + name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(model_keys(annotation, prefix + name + "."))
    return keys


def example_keys(data, prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        keys.add(prefix + name)
        if isinstance(value, dict):
            keys |= example_keys(value, prefix + name + ".")
    return keys


def test_example_config_documents_every_key():
    data = yaml.safe_load(EXAMPLE.read_text())
    documented = example_keys(data)
    keys = model_keys(Settings)
    assert len(keys) > 40
    missing = [k for k in keys if k not in documented]
    assert not missing, f"config.example.yaml lacks {missing}"
    unknown = sorted(documented - set(keys))
    assert not unknown, f"config.example.yaml has keys the model does not know: {unknown}"


def test_example_config_loads_and_validates_with_secrets_from_environment():
    settings = load_settings(EXAMPLE, {
        "ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING": EXAMPLE_EH_CS,
        "ACS_SMS_CONSUMER_CHECKPOINT_STORE__CONNECTION_STRING": ST_CS,
    })
    # The example shows the defaults.
    assert settings.pipeline == PipelineSettings()
    assert settings.http.port == 9464
    assert settings.eventhub.name == "acs-diagnostics"


def test_every_value_of_the_example_is_the_default():
    """config.example.yaml shows the defaults: a user who copies it changes nothing by accident."""
    settings = load_settings(EXAMPLE, {
        "ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING": EXAMPLE_EH_CS,
        "ACS_SMS_CONSUMER_CHECKPOINT_STORE__CONNECTION_STRING": ST_CS,
    })
    examples_only = {"eventhub": {"connection_string", "fully_qualified_namespace", "name", "consumer_group"},
                     "checkpoint_store": {"connection_string", "account_url"}}
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            for field, field_info in type(value).model_fields.items():
                if field not in examples_only.get(name, set()):
                    assert getattr(value, field) == field_info.get_default(call_default_factory=True), f"{name}.{field}"
        else:
            assert value == info.get_default(call_default_factory=True), name


def test_the_defaults_the_docs_state():
    """docs/ quotes these defaults in prose; both sides are pinned so neither drifts alone."""
    pages = ("metrics.md", "reliability.md", "operations.md")
    readme = " ".join(" ".join((EXAMPLE.parent / "docs" / page).read_text(encoding="utf-8").split()) for page in pages)
    pipeline, checkpoint = PipelineSettings(), CheckpointSettings()
    assert (pipeline.correlation_max_entries, pipeline.correlation_max_age_seconds) == (200_000, 7200)
    assert (pipeline.duplicates_max_entries, pipeline.duplicates_max_age_seconds) == (200_000, 7200)
    assert "(200,000 entries / 2 h by default)" in readme
    assert "identical to one seen in the last 2 hours" in readme
    assert (checkpoint.interval_seconds, checkpoint.every_events) == (10, 1000)
    assert checkpoint.scrapers == "prometheus"
    assert "**Only Prometheus' scrapes count, not a `curl`.**" in readme
    assert "`checkpoint.interval_seconds` (10 s) or every `checkpoint.every_events` (1,000) events" in readme
    assert Settings.model_fields["readiness_checkpoint_store_max_age_seconds"].default == 60
    assert "`readiness_checkpoint_store_max_age_seconds` (60 s)" in readme


def test_readiness_eventhub_max_age_outlasts_the_probe(tmp_path):
    error = error_of(write(tmp_path, MINIMAL + "readiness_eventhub_max_age_seconds: 20\n"))
    assert "readiness_eventhub_max_age_seconds: must be at least 30 s" in error
    assert load_settings(write(tmp_path, MINIMAL + "readiness_eventhub_max_age_seconds: 30\n"), {}) \
        .readiness_eventhub_max_age_seconds == 30
