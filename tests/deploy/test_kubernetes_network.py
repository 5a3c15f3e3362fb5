"""deploy/kubernetes/components/websocket-443 and egress-proxy (with their overlays): they build with
the real kustomize, validate against Kubernetes' schemas, narrow egress to 443 or to the proxy's port,
keep the proxy password in a Secret volume, and the configuration the pod gets passes check-config."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import DEPLOY, KUSTOMIZE_BASE, ROOT
from .test_kubernetes import KUBERNETES_VERSIONS, RECOMMENDED_LABELS, kustomize_build

OVERLAYS = {name: DEPLOY / "overlays" / name for name in ("websocket-443", "egress-proxy")}
PASSWORD = "fake-proxy-password"


@functools.cache
def built(name: str) -> tuple[dict, ...]:
    return kustomize_build(OVERLAYS[name])


def one(name: str, kind: str, prefix: str = "acs-sms-consumer") -> dict:
    found = [o for o in built(name) if o["kind"] == kind and o["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"{name}: {len(found)} {kind} named {prefix}*"
    return found[0]


def container(name: str) -> dict:
    return one(name, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def network_environment(name: str) -> dict[str, str]:
    """The variables the container gets from ConfigMaps through envFrom."""
    maps = {o["metadata"]["name"]: o["data"] for o in built(name) if o["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container(name).get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    return env


def egress_ports(name: str) -> set[tuple[str, int]]:
    policy = one(name, "NetworkPolicy")["spec"]
    return {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(OVERLAYS))
def test_builtin_kinds_validate(name: str, version: str) -> None:
    import kubernetes_validate

    for obj in built(name):
        if obj["apiVersion"].startswith("monitoring.coreos.com"):
            continue  # CRDs: tests/deploy/test_kubernetes.py validates the base's
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("name", sorted(OVERLAYS))
def test_the_network_config_map_is_labelled_like_the_base(name: str) -> None:
    config_map = one(name, "ConfigMap", "acs-sms-consumer-network")
    deployment = one(name, "Deployment")
    for key in RECOMMENDED_LABELS:
        assert config_map["metadata"]["labels"][key] == deployment["metadata"]["labels"][key], key


def test_websocket_443_lets_out_443_only_and_sets_the_transport() -> None:
    assert egress_ports("websocket-443") == {("UDP", 53), ("TCP", 53), ("TCP", 443)}
    assert network_environment("websocket-443") == {"ACS_SMS_CONSUMER_EVENTHUB__TRANSPORT": "websocket"}


def test_egress_proxy_lets_out_the_proxy_port_only() -> None:
    env = network_environment("egress-proxy")
    assert egress_ports("egress-proxy") == {("UDP", 53), ("TCP", 53), ("TCP", int(env["ACS_SMS_CONSUMER_NETWORK__PROXY__PORT"]))}
    assert env["ACS_SMS_CONSUMER_EVENTHUB__TRANSPORT"] == "websocket"


def test_the_proxy_password_is_a_file_of_a_secret_volume() -> None:
    env = network_environment("egress-proxy")
    path = Path(env["ACS_SMS_CONSUMER_NETWORK__PROXY__PASSWORD_FILE"])
    assert not any("PASSWORD" in key and not key.endswith("_FILE") for key in env), "the password itself is no ConfigMap value"
    pod = one("egress-proxy", "Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in container("egress-proxy")["volumeMounts"] if m["mountPath"] == str(path.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == "acs-sms-consumer-proxy"
    assert volume["secret"]["items"] == [{"key": "password", "path": path.name}]
    assert volume["secret"]["defaultMode"] == 0o440


@pytest.mark.parametrize("name", sorted(OVERLAYS))
def test_the_pod_configuration_passes_check_config(name: str, tmp_path: Path) -> None:
    """check-config on config.yaml with the variables the built pod gets (the password file written under tmp_path)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ACS_SMS_CONSUMER_")}
    environment.update({e["name"]: e["value"] for e in container(name)["env"]})
    environment.update(network_environment(name))
    password_file = environment.get("ACS_SMS_CONSUMER_NETWORK__PROXY__PASSWORD_FILE")
    if password_file:
        local = tmp_path / password_file.lstrip("/")
        local.parent.mkdir(parents=True)
        local.write_text(PASSWORD + "\n")
        environment["ACS_SMS_CONSUMER_NETWORK__PROXY__PASSWORD_FILE"] = str(local)
    proc = subprocess.run([sys.executable, "-m", "consumer", "check-config", "--config", str(KUSTOMIZE_BASE / "config.yaml")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, env=environment)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "transport: websocket" in proc.stdout
    assert PASSWORD not in proc.stdout + proc.stderr
    if password_file:
        assert "password: '***'" in proc.stdout
