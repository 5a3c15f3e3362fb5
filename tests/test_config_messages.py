"""A new user's first-config mistakes, each caught with a message that points at the fix (issue #28,
items 1-3), and a hostile configuration refused at once (issue #25, item 5). Each test makes the
exact mistake, through the real command line where a user would meet it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from consumer.config import ConfigError, load_settings
from tests.test_cli import EH, cli

REAL_HUB = "Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=a2V5;EntityPath=acs"
ACCOUNT = "https://acct.blob.core.windows.net"


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def real_hub(**eventhub: object) -> dict:
    return {"eventhub": {"connection_string": REAL_HUB, **eventhub}, "checkpoint_store": {"account_url": ACCOUNT}}


def error_of(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ or {})
    return str(info.value)


# --- $Default (#28.1) ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("eventhub", [{}, {"consumer_group": "$Default"}, {"consumer_group": "$default"}],
                         ids=["no group given", "$Default", "$default"])
def test_default_consumer_group_is_refused_with_the_reason(tmp_path, command, eventhub) -> None:
    result = cli(command, "--config", str(write(tmp_path, real_hub(**eventhub))))
    assert result.returncode == 2, result.stderr
    assert "eventhub.consumer_group is $Default" in result.stderr
    assert "exclusive (epoch) receivers, which disconnect every other reader of $Default" in result.stderr
    assert "eventhub.allow_default_consumer_group: true" in result.stderr


def test_default_consumer_group_passes_when_the_operator_says_so_or_a_group_is_named(tmp_path) -> None:
    allowed = load_settings(write(tmp_path, real_hub(allow_default_consumer_group=True)), {})
    assert allowed.eventhub.consumer_group == "$Default"
    assert load_settings(write(tmp_path, real_hub(consumer_group="acs-sms-consumer")), {}).eventhub.consumer_group \
        == "acs-sms-consumer"


def test_default_consumer_group_passes_on_a_local_endpoint(tmp_path) -> None:
    # the demo's and the tests' endpoint (UseDevelopmentEmulator=true): no other reader to disconnect
    data = {"eventhub": {"connection_string": EH}, "checkpoint_store": {"account_url": ACCOUNT}}
    assert load_settings(write(tmp_path, data), {}).eventhub.consumer_group == "$Default"
    data = {"eventhub": {"fully_qualified_namespace": "127.0.0.1:5672", "name": "acs"},
            "checkpoint_store": {"account_url": ACCOUNT}}
    assert load_settings(write(tmp_path, data), {}).eventhub.consumer_group == "$Default"


# --- shapes (#28.2) ------------------------------------------------------------------------------


def test_a_short_namespace_name_gets_the_host_name(tmp_path) -> None:
    data = {"eventhub": {"fully_qualified_namespace": "myns", "name": "acs", "consumer_group": "cg"},
            "checkpoint_store": {"account_url": ACCOUNT}}
    result = cli("check-config", "--config", str(write(tmp_path, data)))
    assert result.returncode == 2
    assert "eventhub.fully_qualified_namespace must be the fully qualified host name of the namespace, not its " \
           "short name: did you mean myns.servicebus.windows.net?" in result.stderr


def test_an_account_url_with_the_container_in_its_path_names_the_container_key(tmp_path) -> None:
    data = real_hub(consumer_group="cg")
    data["checkpoint_store"]["account_url"] = f"{ACCOUNT}/eventhub-checkpoints"  # the portal's container URL
    result = cli("check-config", "--config", str(write(tmp_path, data)))
    assert result.returncode == 2
    assert "checkpoint_store.account_url has a path" in result.stderr
    assert "put the container in checkpoint_store.container" in result.stderr


@pytest.mark.parametrize("url, message", [
    ("acct.blob.core.windows.net", " must be an https:// URL of the storage account"),
    ("http://acct.blob.core.windows.net", " must use https://"),
    ("https://user:pw@acct.blob.core.windows.net", ": looks like a URL with user information"),
    ("https://acct.blob.core.windows.net/?comp=list", " has a query or fragment"),
])
def test_an_account_url_that_is_not_the_accounts_https_url(tmp_path, url, message) -> None:
    data = real_hub(consumer_group="cg")
    data["checkpoint_store"]["account_url"] = url
    assert f"checkpoint_store.account_url{message}" in error_of(write(tmp_path, data))


def test_check_config_says_what_it_did_not_check(tmp_path) -> None:
    result = cli("check-config", "--config", str(write(tmp_path, real_hub(consumer_group="cg"))))
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stderr
    assert "not checked (offline): the credentials" in result.stderr and "reachable" in result.stderr


# --- messages that point at the fix (#28.3) ------------------------------------------------------


def test_a_key_in_the_wrong_section_names_where_it_belongs(tmp_path) -> None:
    data = real_hub()
    data["consumer_group"] = "acs-sms-consumer"  # indented one level too little
    result = cli("check-config", "--config", str(write(tmp_path, data)))
    assert result.returncode == 2
    assert "  consumer_group: is not a known key (it belongs in another section: eventhub.consumer_group; check " \
           "its indentation)" in result.stderr


def test_a_near_miss_gets_did_you_mean(tmp_path) -> None:
    error = error_of(write(tmp_path, real_hub(consumer_gruop="cg")))
    assert "  eventhub.consumer_gruop: is not a known key (did you mean eventhub.consumer_group?)" in error


def test_a_single_underscore_variable_gets_the_right_name_and_the_file_is_not_blamed(tmp_path) -> None:
    path = write(tmp_path, real_hub(consumer_group="cg"))
    result = cli("check-config", "--config", str(path), env={"ACS_SMS_CONSUMER_HTTP_PORT": "9000"})
    assert result.returncode == 2
    assert result.stderr.startswith(f"invalid configuration (1 problem, from the environment or secret files; "
                                     f"none in {path}):")
    assert "  http_port: is not a known key (did you mean ACS_SMS_CONSUMER_HTTP__PORT? Nesting levels are " \
           "separated by two underscores, __) (from environment variable ACS_SMS_CONSUMER_HTTP_PORT)" in result.stderr


def test_a_problem_in_the_file_still_names_the_file(tmp_path) -> None:
    path = write(tmp_path, {**real_hub(consumer_group="cg"), "http": {"port": -1}})
    assert error_of(path, {"ACS_SMS_CONSUMER_LOGGING__LEVEL": "chatty"}).startswith(f"{path}: invalid configuration")


def test_a_tab_is_named_as_a_tab(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"eventhub:\n\tconsumer_group: cg\n  connection_string: '{REAL_HUB}'\n")
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}: not valid YAML at line 2, column 1: a tab character: YAML indents with spaces only" in result.stderr


# --- a bounded loader (#25.5) --------------------------------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    """737 bytes that stand for 9**9 strings, under a key the model does not know."""
    lines = ["unknown:", '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"  a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("extra_levels", [0, 3], ids=["9 levels", "12 levels"])
def test_an_alias_bomb_under_an_unknown_key_is_refused_at_once(tmp_path, extra_levels) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(real_hub(consumer_group="cg")) + alias_bomb(9 + extra_levels))
    began = time.perf_counter()
    error = error_of(path)
    elapsed = time.perf_counter() - began
    assert "refused: the YAML holds more than 100,000 values once its aliases (*name) are expanded" in error
    assert elapsed < 0.5, f"{elapsed:.2f} s"  # was 3.6 s and 300 MB for 9 levels, ten times more per level


def test_the_alias_bomb_through_check_config(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(real_hub(consumer_group="cg")) + alias_bomb())
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2 and "refused" in result.stderr


def test_an_alias_bomb_in_an_environment_list_is_refused_by_key(tmp_path) -> None:
    # lists from the environment are read as YAML: the same bound applies, and the value is refused by key
    items = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [f"&a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 9)]
    began = time.perf_counter()
    error = error_of(write(tmp_path, real_hub(consumer_group="cg")),
                     {"ACS_SMS_CONSUMER_PIPELINE__BUCKETS__AGE_SECONDS": "[" + ", ".join(items) + "]"})
    assert time.perf_counter() - began < 0.5
    assert "  pipeline.buckets.age_seconds: Input should be a valid list (from environment variable " \
           "ACS_SMS_CONSUMER_PIPELINE__BUCKETS__AGE_SECONDS)" in error


@pytest.mark.parametrize("text, problem", [
    ("a: &a [*a]\n", "a value that contains itself"),
    ("a: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels deep"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 32 levels deep"),
])
def test_recursive_and_deep_documents_are_refused(tmp_path, text, problem) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert problem in error_of(path)


def test_a_file_past_the_size_bound_is_refused_unread(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# " + "x" * (1024 * 1024) + "\n")
    assert "refused: larger than 1024 KiB" in error_of(path)
