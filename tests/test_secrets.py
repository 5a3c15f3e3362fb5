"""Secrets never printed wherever they are pasted (issue #25, item 4): a credential in a field that is
not a secret is refused naming the key, never the value, by `check-config` and by `run` (the real
command line, in a subprocess); every log line, the service's and the libraries', extra fields
included, goes out scrubbed; the scrubber is linear on hostile input."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import pytest
import yaml

from consumer.errors import scrub, scrub_secrets
from consumer.logs import configure
from tests.test_cli import EH, cli

STORAGE_KEY = "Kx7f9Qz2+Lm3Np4Rs5Tu6Vw7Xy8Za9Bc0De1Fg2Hi3Jk4Lm5No6Pq7Rs8Tu9Vw0Xy1Za2Bc3De4Fg5Hi6Jk7=="
STORAGE_CS = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={STORAGE_KEY};EndpointSuffix=core.windows.net"
HUB_KEY = "aHViLWtleS1ub3QtcmVhbC1idXQtbG9uZy1lbm91Z2g="
HUB_CS = f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={HUB_KEY};EntityPath=acs"
SAS_SIG = "c2lnbmF0dXJlLW5vdC1yZWFsLWJ1dC1sb25nLWVub3VnaA"
SAS_URL = f"https://acct.blob.core.windows.net/?sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig={SAS_SIG}%3D"
BEARER = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL3N0b3JhZ2UuYXp1cmUuY29tIn0.c2lnbmF0dXJl"


def config(**sections: dict[str, str]) -> dict[str, dict[str, str]]:
    """A configuration that is valid but for what `sections` puts in it (local hub, local storage)."""
    base: dict[str, dict[str, str]] = {"eventhub": {"connection_string": EH},
                                       "checkpoint_store": {"account_url": "https://acct.blob.core.windows.net"}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


MISPLACED = [  # (what the user pasted where, the key the message must name, the secret's bytes)
    (config(checkpoint_store={"account_url": STORAGE_CS}), "checkpoint_store.account_url", STORAGE_KEY),
    (config(checkpoint_store={"account_url": SAS_URL}), "checkpoint_store.account_url", SAS_SIG),
    (config(eventhub={"name": HUB_CS}), "eventhub.name", HUB_KEY),
    (config(eventhub={"name": STORAGE_CS}), "eventhub.name", STORAGE_KEY),
    (config(checkpoint_store={"container": STORAGE_CS}), "checkpoint_store.container", STORAGE_KEY),
    (config(eventhub={"consumer_group": HUB_CS}), "eventhub.consumer_group", HUB_KEY),
    (config(eventhub={"consumer_group": STORAGE_KEY}), "eventhub.consumer_group", STORAGE_KEY),  # a bare key
    (config(http={"host": f"Bearer {BEARER}"}), "http.host", BEARER.split(".")[0]),
    (config(pipeline={"labels": {"resources": ["acs", HUB_CS]}}), "pipeline.labels.resources", HUB_KEY),
    (config(http={"host": f"http://operator:{SAS_SIG}@proxy.internal"}), "http.host", SAS_SIG),
    (config(eventhub={"fully_qualified_namespace": HUB_CS, "connection_string": None, "name": "acs"}),
     "eventhub.fully_qualified_namespace", HUB_KEY),
]


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("data, key, secret", MISPLACED, ids=[f"{key}-{n}" for n, (_, key, _) in enumerate(MISPLACED)])
def test_a_misplaced_secret_is_refused_by_key_and_never_printed(tmp_path: Path, command, data, key, secret) -> None:
    data["eventhub"] = {k: v for k, v in data["eventhub"].items() if v is not None}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli(command, "--config", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{key}: looks like a" in result.stderr, result.stderr
    assert "the value is not shown" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert "input_value" not in result.stderr  # pydantic's own rendering of an error quotes the input


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_secret_misplaced_in_the_environment_is_named_with_its_variable(tmp_path: Path, command) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config()))
    result = cli(command, "--config", str(path), env={"ACS_SMS_CONSUMER_EVENTHUB__NAME": HUB_CS})
    assert result.returncode == 2
    assert "eventhub.name: looks like a connection string" in result.stderr
    assert "(from environment variable ACS_SMS_CONSUMER_EVENTHUB__NAME)" in result.stderr
    assert HUB_KEY not in result.stdout + result.stderr


def test_no_validator_quotes_the_value_it_refuses(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(checkpoint_store={"container": "Not_A_Container_Name_4711"},
                                          http={"port": "port-4711"}, logging={"level": "chatty-4711"})))
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "checkpoint_store.container: is not a blob container name" in result.stderr
    assert "4711" not in result.stdout + result.stderr


def test_an_https_account_url_passes_and_an_http_one_only_for_a_local_host(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    for url, code in [("https://acct.blob.core.windows.net", 0), ("https://acct.blob.core.windows.net/", 0),
                      ("http://127.0.0.1:10000/devstoreaccount1", 0), ("http://acct.blob.core.windows.net", 2)]:
        path.write_text(yaml.safe_dump(config(checkpoint_store={"account_url": url})))
        result = cli("check-config", "--config", str(path))
        assert result.returncode == code, (url, result.stderr)
    assert "checkpoint_store.account_url must use https://" in result.stderr


# --- every log line ------------------------------------------------------------------------------


@pytest.fixture
def log_text() -> io.StringIO:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure("INFO", stream)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_a_bearer_token_in_a_library_line_and_its_fields_is_scrubbed(log_text: io.StringIO) -> None:
    logging.getLogger("azure.core.pipeline").warning(
        "request failed: headers {'Authorization': 'Bearer %s', 'x-ms-version': '2023-11-03'}", BEARER,
        extra={"request_headers": {"Authorization": f"Bearer {BEARER}"}, "url": SAS_URL})
    line = json.loads(log_text.getvalue())
    text = log_text.getvalue()
    assert BEARER.split(".")[0] not in text and SAS_SIG not in text
    assert "'x-ms-version': '2023-11-03'" in line["message"]  # the rest of the line stays


def test_the_services_own_lines_and_extra_fields_are_scrubbed_of_secrets(log_text: io.StringIO) -> None:
    logging.getLogger("consumer.app").info("starting", extra={
        "config": {"checkpoint_store": {"account_url": SAS_URL}, "nested": [[{"cs": STORAGE_CS}]]},
        "partition": "3", "sequence_number": 12345678901, "host": "0.0.0.0"})
    line = json.loads(log_text.getvalue())
    assert STORAGE_KEY not in log_text.getvalue() and SAS_SIG not in log_text.getvalue()
    # the service's own numbers and addresses stay: only credentials go
    assert (line["partition"], line["sequence_number"], line["host"]) == ("3", 12345678901, "0.0.0.0")


# --- the scrubber --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, secret", [
    (f"{{'AccountKey': '{STORAGE_KEY}'}}", STORAGE_KEY),
    (f'{{"AccountKey": "{STORAGE_KEY}"}}', STORAGE_KEY),
    (f"SharedAccessKey={HUB_KEY};EntityPath=acs", HUB_KEY),
    (f"url=https%3A%2F%2Facct%2F%3Fsv%3D1%26sig%3D{SAS_SIG}", SAS_SIG),
    (f"Authorization: Bearer {BEARER}", BEARER.split(".")[0]),
    (f"token {BEARER} expired", BEARER.split(".")[0]),
    (f"SharedAccessSignature sr=sb%3a%2f%2fns&sig={SAS_SIG}&se=1&skn=k", SAS_SIG),
    (f"key is {STORAGE_KEY} here", STORAGE_KEY),
    (f"client_secret = {SAS_SIG}", SAS_SIG),
    (f"proxy http://operator:{SAS_SIG}@proxy.internal:3128 refused", SAS_SIG),
])
def test_scrub_secrets_removes_each_form(text: str, secret: str) -> None:
    assert secret not in scrub_secrets(text) and secret not in scrub(text)


@pytest.mark.parametrize("text", [
    "TrackingId:51ebabc3-1f2e-4644-890f-dbdb1e78b772_G1, SystemTracker:ns:hub, Timestamp:2019-05-03T11:11:50",
    "insights-logs-smsoperational/partition 3 sequence 12345678901",
    "deploy/kubernetes/overlays/production/config.yaml",
    "The token has an invalid signature.",
])
def test_scrub_secrets_keeps_what_is_no_secret(text: str) -> None:
    assert scrub_secrets(text) == text


HOSTILE = [  # each shape makes a naive pattern rescan: a name without its separator, a run without its end
    "AccountKey" + " " * 1_000_000,
    "sig" * 300_000,
    "'AccountKey'" * 80_000,
    "Bearer " * 140_000,
    "eyJ" * 300_000,
    "A1b/" * 250_000,
    "+1" + " " * 1_000_000,
    "sig%3" * 200_000,
    "SharedAccessSignature\t" * 45_000,
    "://a:" * 200_000,
    "://" + "a:" * 500_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_scrub_is_linear_on_hostile_input(text: str) -> None:
    began = time.perf_counter()
    scrub(text)
    elapsed = time.perf_counter() - began
    # ~1 MB: linear work takes well under a second; a quadratic pattern would take minutes
    assert elapsed < 3.0, f"{elapsed:.2f} s"


def test_an_uncaught_exception_is_a_scrubbed_log_line_not_a_raw_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = ("from consumer.logs import configure\nconfigure('INFO')\n"
              f"raise RuntimeError('cannot use {STORAGE_CS}')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert STORAGE_KEY not in result.stdout + result.stderr
    line = json.loads(result.stdout)
    assert line["message"] == "uncaught exception" and line["error"].startswith("RuntimeError: cannot use")


def test_check_config_scrubs_what_it_prints_even_a_key_name(tmp_path: Path) -> None:
    # an unknown key is named in the message; when the "key" is a pasted connection string, the one
    # redaction of everything check-config prints still keeps its secret out
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**config(), STORAGE_CS: 1}))
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2 and "is not a known key" in result.stderr
    assert STORAGE_KEY not in result.stdout + result.stderr
