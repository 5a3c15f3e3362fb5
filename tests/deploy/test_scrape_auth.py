"""deploy/kubernetes/components/scrape-auth, in deploy/overlays/scrape-auth (prometheus-operator) and
deploy/overlays/azure-managed-prometheus (Azure Monitor's ServiceMonitor): the ServiceMonitor sends the
token of the very Secret key the pod mounts where `http.bearer_token_path` points, the probes stay on
the open paths, and the consumer built from the effective configuration answers `/metrics` only to
that token."""

from __future__ import annotations

import asyncio
import http.client
from pathlib import Path

import pytest

from consumer.config import Buckets, load_settings
from consumer.http import Health, HttpServer
from consumer.metrics import Metrics

from .helpers import KUSTOMIZE_BASE
from .test_kubernetes import FAKE_SECRET_FILES, container, one, pod_environment, service_monitors

WITH_AUTH = ("scrape-auth", "azure-managed-prometheus")
TOKEN_VARIABLE = "ACS_SMS_CONSUMER_HTTP__BEARER_TOKEN_PATH"


def mounted_secret_key(name: str, path: str) -> tuple[str, str]:
    """(Secret name, key) of the Secret volume item the container sees at `path`."""
    pod = one(name, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container(name)["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        for item in (secret or {}).get("items", []):
            if f"{mount['mountPath']}/{item['path']}" == path:
                assert mount["readOnly"] is True and secret["defaultMode"] == 0o440
                return secret["secretName"], item["key"]
    raise AssertionError(f"{name}: nothing mounted at {path}")


@pytest.mark.parametrize("name", WITH_AUTH)
def test_the_service_monitor_sends_the_token_the_pod_reads(name: str) -> None:
    (monitor,) = service_monitors(name)
    (endpoint,) = monitor["spec"]["endpoints"]
    authorization = endpoint["authorization"]
    assert authorization["type"] == "Bearer"
    env = {e["name"]: e["value"] for e in container(name)["env"]}
    assert mounted_secret_key(name, env[TOKEN_VARIABLE]) == (authorization["credentials"]["name"],
                                                              authorization["credentials"]["key"])


@pytest.mark.parametrize("name", WITH_AUTH)
def test_probes_stay_on_the_open_paths(name: str) -> None:
    probes = container(name)
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("name", ["base", "kube-prometheus-stack"])
def test_without_the_component_no_token(name: str) -> None:
    (monitor,) = service_monitors(name)
    assert "authorization" not in monitor["spec"]["endpoints"][0]
    assert TOKEN_VARIABLE not in {e["name"] for e in container(name)["env"]}


@pytest.mark.parametrize("name", WITH_AUTH)
async def test_the_built_pod_answers_metrics_only_to_the_service_monitors_token(name: str, tmp_path: Path) -> None:
    """The consumer's settings as the built pod gets them (config.yaml, its environment, the Secret's
    files), its HTTP server, and the token the ServiceMonitor names."""
    environment = pod_environment(name, tmp_path)
    (monitor,) = service_monitors(name)
    token = FAKE_SECRET_FILES[monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["key"]]
    token_file = tmp_path / environment[TOKEN_VARIABLE].lstrip("/")  # the Secret volume's file, here
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(token + "\n", encoding="utf-8")
    environment[TOKEN_VARIABLE] = str(token_file)
    settings = load_settings(KUSTOMIZE_BASE / "config.yaml", environ=environment)
    server = HttpServer(Metrics(Buckets(), "t"), Health(), "127.0.0.1", 0, settings=settings.http)
    await server.start()

    def status(path: str, headers: dict[str, str]) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    try:
        assert await asyncio.to_thread(status, "/metrics", {}) == 401
        assert await asyncio.to_thread(status, "/metrics", {"Authorization": f"Bearer {token}"}) == 200
        assert await asyncio.to_thread(status, "/healthz", {}) == 200
    finally:
        await server.stop()
