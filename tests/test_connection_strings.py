"""consumer.connection_strings: strings that can never work fail at load time, naming the key, never the secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from consumer.config import ConfigError, load_settings
from consumer.connection_strings import check_eventhub, check_storage

EH_KEY = "RXZlbnRIdWJzU2VjcmV0S2V5MDEyMzQ1Njc4OUFCQ0Q="
ST_KEY = "U3RvcmFnZVNlY3JldEtleTAxMjM0NTY3ODlBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWjAxMjM0NTY3ODk="
EH = f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={EH_KEY};EntityPath=acs"
ST = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ST_KEY};EndpointSuffix=core.windows.net"
AZURITE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + ST_KEY
           + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
SECRETS = (EH_KEY, ST_KEY, "not*base64!", "sv=2024&sig=")


@pytest.mark.parametrize("value, name", [
    (EH, None), (EH, "acs"), (EH, "ACS"), (EH.removesuffix(";EntityPath=acs"), "other"),
    ("Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true", "hub"),
    ("endpoint=sb://ns.servicebus.windows.net/;sharedaccesskeyname=k;sharedaccesskey=v;", "hub"),  # the SDK ignores case
    ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=1&skn=k", "hub"),
])
def test_eventhub_strings_the_sdk_accepts_pass(value, name):
    check_eventhub(value, name)


@pytest.mark.parametrize("value, name, message", [
    ("Endpoint=sb://ns/;;SharedAccessKeyName=k;SharedAccessKey=" + EH_KEY, "hub", "is not a connection string"),
    ("Endpoint sb://ns/ SharedAccessKey " + EH_KEY, "hub", "is not a connection string"),
    (f"Endpoint=sb://a/;endpoint=sb://b/;SharedAccessKeyName=k;SharedAccessKey={EH_KEY}", "hub", "Duplicate key"),
    (ST, "hub", "is a storage account connection string (it has AccountKey, AccountName, DefaultEndpointsProtocol, EndpointSuffix)"),
    (f"SharedAccessKeyName=k;SharedAccessKey={EH_KEY}", "hub", "has no Endpoint=sb://"),
    (f"Endpoint=ns.servicebus.windows.net;SharedAccessKeyName=k;SharedAccessKey={EH_KEY}", "hub", "Endpoint is not a URL with a host"),
    (f"Endpoint=https://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey={EH_KEY}", "hub", "must start with sb://"),
    (f"Endpoint=sb://ns/;SharedAccessKey={EH_KEY}", "hub", "has SharedAccessKey without SharedAccessKeyName"),
    ("Endpoint=sb://ns/;SharedAccessKeyName=listen", "hub", "has SharedAccessKeyName without SharedAccessKey"),
    ("Endpoint=sb://ns/;EntityPath=acs", "acs", "has no credential"),
    (EH, "acs-diagnostics", "has EntityPath=acs, but eventhub.name is acs-diagnostics"),
])
def test_eventhub_strings_that_can_never_work_name_the_problem(value, name, message):
    with pytest.raises(ValueError) as info:
        check_eventhub(value, name)
    text = str(info.value)
    assert text.startswith("eventhub.connection_string") and message in text, text
    assert not any(secret in text for secret in SECRETS)


@pytest.mark.parametrize("value", [
    ST, AZURITE, "UseDevelopmentStorage=true",
    "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2024&sig=abc%3D",
    ST.replace("DefaultEndpointsProtocol", "defaultendpointsprotocol"),
])
def test_storage_strings_the_sdk_accepts_pass(value):
    check_storage(value)


@pytest.mark.parametrize("value, message", [
    (ST.replace(ST_KEY, "not*base64!"), "AccountKey is not valid base64"),
    (ST.replace(ST_KEY, ST_KEY[:-3]), "AccountKey is not valid base64"),  # truncated by a copy and paste
    (ST.replace(ST_KEY, "===="), "AccountKey is not valid base64"),
    (EH, "is an Event Hubs connection string (it has Endpoint, EntityPath, SharedAccessKey, SharedAccessKeyName)"),
    ("DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net;AccountKey=" + ST_KEY, "has neither AccountName nor BlobEndpoint"),
    (f"BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;AccountKey={ST_KEY}", "has AccountKey without AccountName"),
    ("BlobEndpoint=127.0.0.1:10000;SharedAccessSignature=sv=2024&sig=", "BlobEndpoint is not an http(s) URL"),
    ("DefaultEndpointsProtocol=https;AccountName=acct;EndpointSuffix=core.windows.net", "has no credential"),
    ("AccountName=acct;AccountKey", "is not a connection string"),
])
def test_storage_strings_that_can_never_work_name_the_problem(value, message):
    with pytest.raises(ValueError) as info:
        check_storage(value)
    text = str(info.value)
    assert text.startswith("checkpoint_store.connection_string") and message in text, text
    assert not any(secret in text for secret in SECRETS)


def test_load_settings_reports_both_sections_without_the_secrets(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "eventhub": {"connection_string": EH, "name": "acs-diagnostics"},
        "checkpoint_store": {"connection_string": ST.replace(ST_KEY, "not*base64!")},
    }))
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    text = str(info.value)
    assert "(2 problems)" in text
    assert "  eventhub: eventhub.connection_string has EntityPath=acs, but eventhub.name is acs-diagnostics" in text
    assert "  checkpoint_store: checkpoint_store.connection_string: AccountKey is not valid base64" in text
    assert not any(secret in text for secret in SECRETS)


@pytest.mark.parametrize("value, message", [
    ("sb://ns.servicebus.windows.net/", "must be the namespace's host name"),
    ("ns.servicebus.windows.net/acs", "must be the namespace's host name"),
    ("ns servicebus", "must be the namespace's host name"),
])
def test_a_namespace_that_is_not_a_host_name_fails_without_quoting_it(tmp_path: Path, value, message):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"eventhub": {"fully_qualified_namespace": value, "name": "acs"},
                                    "checkpoint_store": {"account_url": "https://acct.blob.core.windows.net"}}))
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    text = str(info.value)
    assert f"  eventhub: eventhub.fully_qualified_namespace {message}" in text, text
    assert EH_KEY not in text


@pytest.mark.parametrize("value", ["ns.servicebus.windows.net", "127.0.0.1:5672"])
def test_host_names_pass(tmp_path: Path, value):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"eventhub": {"fully_qualified_namespace": value, "name": "acs", "consumer_group": "cg"},
                                    "checkpoint_store": {"account_url": "https://acct.blob.core.windows.net"}}))
    assert load_settings(path, {}).eventhub.fully_qualified_namespace == value
