"""deploy/kubernetes (base), deploy/kubernetes/components/* and deploy/overlays/*: they build, every
object validates against a schema, and the settings agree with each other and with config.yaml.

Builds: the real kustomize, as `kubectl kustomize` (kubectl ships Kustomize v5 on every developer
machine of this project and in CI; `kustomize build` is used instead when it is on PATH). A machine
without either fails here with what to install, like promtool for the alert rules.
Schemas: kubernetes-validate (the Kubernetes OpenAPI schemas, strict: unknown fields fail) for
built-in kinds; for the CRDs (ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication) the
cloudcoil-models-prometheus-operator / cloudcoil-models-keda packages (pydantic models generated from
the projects' CRDs), with a round-trip check so unknown fields fail there too. Azure Monitor's
azmonitoring.coreos.com/v1 ServiceMonitor has no published model (no cloudcoil-models-* package, no
@kubernetes-models/* package has that CRD): Azure's CRD is prometheus-operator's with another group,
so it is validated against prometheus-operator's ServiceMonitor model plus a check of its apiVersion.
"""

from __future__ import annotations

import functools
import os
import tomllib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import DEPLOY, KUSTOMIZE_BASE, ROOT

KUBERNETES_VERSIONS = ("1.30.0", "1.33.0")  # AKS' supported range, oldest and newest schemas used here
CONFIG = yaml.safe_load((KUSTOMIZE_BASE / "config.yaml").read_text(encoding="utf-8"))
HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}$")


BUILDS = {
    "base": KUSTOMIZE_BASE,
    "kube-prometheus-stack": DEPLOY / "overlays" / "kube-prometheus-stack",
    "azure-managed-prometheus": DEPLOY / "overlays" / "azure-managed-prometheus",
    "keda": DEPLOY / "overlays" / "keda",
    "connection-strings": DEPLOY / "overlays" / "connection-strings",
    "second-instance": DEPLOY / "overlays" / "second-instance",
    "managed-identity": DEPLOY / "overlays" / "managed-identity",
    "scrape-auth": DEPLOY / "overlays" / "scrape-auth",
}
NAMESPACE = "acs-sms-consumer"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
RECOMMENDED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                      "app.kubernetes.io/component", "app.kubernetes.io/part-of")


def kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.fail("neither kubectl (with its built-in kustomize) nor kustomize is on PATH: install kubectl >= 1.27")


@functools.cache
def built(name: str) -> tuple[dict, ...]:
    """The objects that the real kustomize builds of `BUILDS[name]`."""
    return kustomize_build(BUILDS[name])


def kustomize_build(path: Path) -> tuple[dict, ...]:
    """The objects that the real kustomize builds of the kustomization in `path`."""
    command = [*kustomize_command(), str(path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{proc.stderr}"
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def by_kind(name: str, kind: str) -> list[dict]:
    return [o for o in built(name) if o["kind"] == kind]


def one(name: str, kind: str) -> dict:
    objects = by_kind(name, kind)
    assert len(objects) == 1, f"{name}: expected one {kind}, got {len(objects)}"
    return objects[0]


FAKE_SECRETS = {
    "eventhub-connection-string":
        "Endpoint=sb://my-namespace.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=eA==;"
        "EntityPath=acs-diagnostics",
    "checkpoint-store-connection-string":
        "DefaultEndpointsProtocol=https;AccountName=mystorageaccount;AccountKey=eA==;EndpointSuffix=core.windows.net",
}
#: Every Secret file a built pod may mount: the connection strings, the scrape token (components/scrape-auth).
FAKE_SECRET_FILES = {**FAKE_SECRETS, "token": "0123456789abcdef0123456789abcdef"}


SECRET_NAME = "acs-sms-consumer-connection-strings"
SECRET_NAMES = {SECRET_NAME, "acs-sms-consumer-scrape-token"}


def secret_files(name: str) -> dict[str, str]:
    """Path in the container → fake content, for every file a Secret volume of the built pod mounts."""
    pod = one(name, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in container(name).get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is not None:
            assert secret["secretName"] in SECRET_NAMES
            for item in secret["items"]:
                files[f"{mount['mountPath']}/{item['path']}"] = FAKE_SECRET_FILES[item["key"]]
    return files


def container_environment(name: str) -> dict[str, str]:
    """The ACS_SMS_CONSUMER_* variables of the built container, a `*_FILE` variable replaced by its
    key's variable with the (fake) content of the file that a Secret volume mounts where it points."""
    files = secret_files(name)
    env = {}
    for entry in container(name).get("env", []):
        assert "valueFrom" not in entry, f"{name}: {entry['name']} from a secretKeyRef: secrets are mounted as files"
        if entry["name"].endswith("_FILE"):
            assert entry["value"] in files, f"{name}: {entry['name']}={entry['value']}, which no Secret volume mounts"
            env[entry["name"].removesuffix("_FILE")] = files[entry["value"]]
        else:
            env[entry["name"]] = entry["value"]
    return env


def pod_environment(name: str, root: Path) -> dict[str, str]:
    """The container's variables as the consumer gets them, the Secret volumes' files written under
    `root` (the `*_FILE` variables point there instead of the mount path)."""
    files = secret_files(name)
    env = {}
    for entry in container(name).get("env", []):
        value = entry["value"]
        if entry["name"].endswith("_FILE") and value in files:
            path = root / value.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[value] + "\n", encoding="utf-8")  # as kubectl create secret --from-file keeps it
            value = str(path)
        env[entry["name"]] = value
    return env


def effective_config(name: str) -> dict:
    """config.yaml with the container's environment overrides applied (the consumer's precedence)."""
    config = yaml.safe_load((KUSTOMIZE_BASE / "config.yaml").read_text(encoding="utf-8"))
    for variable, value in container_environment(name).items():
        *sections, key = variable.removeprefix("ACS_SMS_CONSUMER_").lower().split("__")
        node = config
        for section in sections:
            node = node[section]
        assert key in node, f"{variable} overrides no key of config.yaml"
        node[key] = value
    return config


# --- builds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_builds(name: str) -> None:
    kinds = {o["kind"] for o in built(name)}
    assert {"Deployment", "ConfigMap", "ServiceAccount", "Service", "PodDisruptionBudget", "NetworkPolicy",
            "ServiceMonitor"} <= kinds, kinds
    for obj in built(name):
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        elif name == "base":
            assert "namespace" not in obj["metadata"], "the base leaves the namespace to the overlays"
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]


def test_only_overlays_create_the_namespace() -> None:
    assert not by_kind("base", "Namespace") and not by_kind("second-instance", "Namespace")
    for name in ("kube-prometheus-stack", "azure-managed-prometheus", "keda", "connection-strings", "managed-identity"):
        labels = one(name, "Namespace")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --- schemas -----------------------------------------------------------------------------------

CRD_MODELS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("cloudcoil.models.prometheus_operator.v1", "ServiceMonitor"),
    # Azure Monitor managed Prometheus: prometheus-operator's CRD in group azmonitoring.coreos.com.
    ("azmonitoring.coreos.com/v1", "ServiceMonitor"): ("cloudcoil.models.prometheus_operator.v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("cloudcoil.models.prometheus_operator.v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"): ("cloudcoil.models.keda.v1alpha1", "ScaledObject"),
}


def all_objects() -> list[tuple[str, dict]]:
    seen = {}
    for name in sorted(BUILDS):
        for obj in built(name):
            key = (obj["kind"], obj["metadata"]["name"], yaml.safe_dump(obj, sort_keys=True))
            seen.setdefault(key, (name, obj))
    return list(seen.values())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_validate_against_kubernetes_schemas(version: str) -> None:
    import kubernetes_validate

    checked = 0
    for name, obj in all_objects():
        if (obj["apiVersion"], obj["kind"]) in CRD_MODELS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 8


def crd_model(api_version: str, kind: str):
    module_name, class_name = CRD_MODELS[(api_version, kind)]
    try:
        module = __import__(module_name, fromlist=[class_name])
    except ImportError:
        pytest.fail(f"{module_name} is not installed: cloudcoil-models-prometheus-operator and cloudcoil-models-keda "
                    "are in the test extra (run .ci/setup)")
    return getattr(module, class_name)


#: Groups whose CRD is another group's schema under a new name: validated as that group's object.
SAME_SCHEMA_AS = {"azmonitoring.coreos.com/v1": "monitoring.coreos.com/v1"}


def validate_crd(obj: dict) -> None:
    """Validates against the CRD's model; fields the model does not know (dropped on the round trip) fail."""
    model = crd_model(obj["apiVersion"], obj["kind"])
    as_model = {**obj, "apiVersion": SAME_SCHEMA_AS.get(obj["apiVersion"], obj["apiVersion"])}
    parsed = model.model_validate(as_model)
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped == as_model, f"{obj['kind']}/{obj['metadata']['name']}: fields unknown to the CRD schema"


def test_crds_validate_against_their_schemas() -> None:
    checked = set()
    for _name, obj in all_objects():
        if (obj["apiVersion"], obj["kind"]) in CRD_MODELS:
            validate_crd(obj)
            checked.add((obj["apiVersion"], obj["kind"]))
    assert checked == set(CRD_MODELS)


def test_azure_monitor_objects_use_their_own_group() -> None:
    """The add-on ignores monitoring.coreos.com objects: the overlay has none, and its monitor is in
    azmonitoring.coreos.com/v1 (the one difference from prometheus-operator's, which the model cannot see)."""
    objects = built("azure-managed-prometheus")
    assert not [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "azmonitoring.coreos.com/v1"
    wrong_group = {**monitor, "apiVersion": "azmonitoring.coreos.com/v1beta1"}
    with pytest.raises(KeyError):
        validate_crd(wrong_group)


def test_crd_validation_catches_mistakes() -> None:
    from pydantic import ValidationError

    scaled = dict(one("keda", "ScaledObject"))
    wrong_field = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 3}}
    with pytest.raises(AssertionError):
        validate_crd(wrong_field)
    missing_target = {**scaled, "spec": {k: v for k, v in scaled["spec"].items() if k != "scaleTargetRef"}}
    with pytest.raises(ValidationError):
        validate_crd(missing_target)


# --- the Deployment ------------------------------------------------------------------------------


def container(name: str = "base") -> dict:
    pod = one(name, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod["containers"][0]


def test_probes_and_port() -> None:
    c = container()
    port = c["ports"][0]
    assert port["containerPort"] == CONFIG["http"]["port"] == 9464 and port["name"] == "metrics"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["args"] == ["run", "--config", "/etc/acs-sms-consumer/config.yaml"]


def test_resources_are_set() -> None:
    resources = container()["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"} and set(resources["limits"]) == {"cpu", "memory"}


def seconds(duration: str) -> float:
    """A Prometheus duration such as `30s`, `1m` or `1m30s`, in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def test_grace_period_outlasts_the_final_scrape_wait_and_the_shutdown_timeout() -> None:
    """SIGTERM: the lame duck (up to shutdown_final_scrape_wait_seconds), then the shutdown proper (up
    to shutdown_timeout_seconds), before Kubernetes' SIGKILL, with a margin."""
    pod = one("base", "Deployment")["spec"]["template"]["spec"]
    budget = CONFIG["shutdown_final_scrape_wait_seconds"] + CONFIG["shutdown_timeout_seconds"]
    assert pod["terminationGracePeriodSeconds"] >= budget + 5, (pod["terminationGracePeriodSeconds"], budget)


def test_the_final_scrape_wait_fits_a_scrape_and_alignment_outlasts_a_few_missed_scrapes() -> None:
    """The lame duck waits for a scrape that starts after SIGTERM: one scrape interval plus the scrape's
    own duration at most. Checkpoints wait for scrapes unless none came for no_scrape_seconds: that
    must be several intervals, so one failed scrape does not turn alignment off."""
    (endpoint,) = one("base", "ServiceMonitor")["spec"]["endpoints"]
    interval, timeout = seconds(endpoint["interval"]), seconds(endpoint["scrapeTimeout"])
    assert CONFIG["shutdown_final_scrape_wait_seconds"] > interval, (CONFIG["shutdown_final_scrape_wait_seconds"], interval)
    assert CONFIG["checkpoint"]["scrape_aligned"] is True
    assert CONFIG["checkpoint"]["no_scrape_seconds"] >= 4 * interval + timeout


def test_terminating_pods_stay_scrapeable() -> None:
    """Kubernetes removes a terminating pod from a Service's endpoints (and readiness fails during the
    lame duck) unless the Service publishes not-ready addresses: without it the ServiceMonitor would
    never scrape the final counts, and every shutdown would wait the whole final scrape wait."""
    assert one("base", "Service")["spec"]["publishNotReadyAddresses"] is True


def test_hardened_security_context() -> None:
    pod = one("base", "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container()["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_config_map_is_generated_from_config_yaml_and_mounted() -> None:
    configmap = one("base", "ConfigMap")
    assert configmap["data"] == {"config.yaml": (KUSTOMIZE_BASE / "config.yaml").read_text(encoding="utf-8")}
    assert HASH_SUFFIX.search(configmap["metadata"]["name"])
    pod = one("base", "Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    config_volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert mounts[config_volume["name"]] == "/etc/acs-sms-consumer"


def test_workload_identity() -> None:
    account = one("base", "ServiceAccount")
    pod = one("base", "Deployment")["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert "azure.workload.identity/client-id" in account["metadata"]["annotations"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"


def selector_matches(selector: dict, labels: dict) -> bool:
    """Kubernetes' label-selector semantics (matchLabels and matchExpressions)."""
    if not selector:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not ok:
            return False
    return True


def pod_selectors(name: str) -> list[tuple[str, dict]]:
    """Every selector of the build that selects this installation's pods (what two installations could share)."""
    out = []
    for obj in built(name):
        kind, spec = obj["kind"], obj.get("spec", {})
        if kind == "Deployment":
            out.append(("Deployment", spec["selector"]))
            for constraint in spec["template"]["spec"].get("topologySpreadConstraints", []):
                out.append(("topologySpreadConstraints", constraint["labelSelector"]))
        elif kind == "Service":
            out.append(("Service", {"matchLabels": spec["selector"]}))
        elif kind == "PodDisruptionBudget":
            out.append(("PodDisruptionBudget", spec["selector"]))
        elif kind == "NetworkPolicy":
            out.append(("NetworkPolicy", spec["podSelector"]))
    return out


def service_monitors(name: str) -> list[dict]:
    return [o for o in built(name) if o["kind"] == "ServiceMonitor"]


def pod_labels(name: str) -> dict:
    return one(name, "Deployment")["spec"]["template"]["metadata"]["labels"]


def instance_of(name: str) -> str:
    return "acs-sms-consumer-eu" if name == "second-instance" else "acs-sms-consumer"


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_recommended_labels_on_every_object_and_pod(name: str) -> None:
    image_tag = container(name)["image"].rsplit(":", 1)[1]
    assert image_tag == VERSION, "the image tag of the base is pyproject.toml's version"
    labelled = [(f"{o['kind']}/{o['metadata']['name']}", o["metadata"].get("labels", {})) for o in built(name)]
    labelled.append(("pod template", pod_labels(name)))
    for what, labels in labelled:
        missing = [key for key in RECOMMENDED_LABELS if not labels.get(key)]
        assert not missing, f"{name}: {what} lacks {missing}"
        assert labels["app.kubernetes.io/name"] == "acs-sms-consumer", what
        assert labels["app.kubernetes.io/part-of"] == "acs-sms-consumer", what
        assert labels["app.kubernetes.io/version"] == VERSION, what
        if what != "Namespace/acs-sms-consumer":
            assert labels["app.kubernetes.io/instance"] == instance_of(name), what
    assert pod_labels(name)["app.kubernetes.io/component"] == "consumer"


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_selectors_include_the_instance_and_match_the_pods(name: str) -> None:
    pods = pod_labels(name)
    identity = {"app.kubernetes.io/name": "acs-sms-consumer", "app.kubernetes.io/instance": instance_of(name)}
    selectors = pod_selectors(name)
    assert {kind for kind, _ in selectors} == {"Deployment", "topologySpreadConstraints", "Service",
                                               "PodDisruptionBudget", "NetworkPolicy"}
    for kind, selector in selectors:
        assert selector["matchLabels"].items() >= identity.items(), f"{name}: {kind} selector {selector}"
        assert selector_matches(selector, pods), f"{name}: {kind} does not select the pods"
        assert "app.kubernetes.io/version" not in selector["matchLabels"], "selectors are immutable; versions change"
    service = one(name, "Service")
    for monitor in service_monitors(name):
        assert monitor["spec"]["selector"]["matchLabels"].items() >= identity.items(), name
        assert selector_matches(monitor["spec"]["selector"], service["metadata"]["labels"]), name
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
        assert all(e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])
        # The job label the alert rules select, the same for every installation.
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "acs-sms-consumer"


def network_policy_peers(name: str) -> list[dict]:
    policy = one(name, "NetworkPolicy")["spec"]
    return [peer for rule in policy["ingress"] for peer in rule["from"]] + \
           [peer for rule in policy["egress"] for peer in rule.get("to", [])]


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_network_policy_peers_are_not_rewritten_into_our_pods(name: str) -> None:
    """kustomize adds selector labels to every matchLabels of a NetworkPolicy: the peers (the scraper,
    kube-dns) must not carry them, or they would select this installation's pods instead."""
    for peer in network_policy_peers(name):
        if "ipBlock" in peer:  # an address (the metadata endpoint of components/managed-identity), no selector
            continue
        selector = peer["podSelector"]
        assert not selector.get("matchLabels"), f"{name}: peer {peer} uses matchLabels"
        assert not selector_matches(selector, pod_labels(name)), f"{name}: peer {peer} selects our own pods"


def scraper(name: str) -> list[dict]:
    return one(name, "NetworkPolicy")["spec"]["ingress"][0]["from"]


def test_scraper_selector_defaults_to_kube_prometheus_stack_and_the_azure_overlay_admits_ama_metrics() -> None:
    prometheus_pod = {"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus-stack-prometheus"}
    ama_metrics_pod = {"rsName": "ama-metrics", "kubernetes.azure.com/managedby": "aks"}

    def admits(name: str, namespace: str, labels: dict) -> bool:
        return any(selector_matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})
                   and selector_matches(peer["podSelector"], labels) for peer in scraper(name))

    for name in ("base", "kube-prometheus-stack", "keda", "connection-strings", "second-instance"):
        assert admits(name, "monitoring", prometheus_pod) and not admits(name, "kube-system", ama_metrics_pod)
    assert admits("azure-managed-prometheus", "kube-system", ama_metrics_pod)
    assert not admits("azure-managed-prometheus", "monitoring", prometheus_pod)


def test_azure_managed_prometheus_scrapes_like_the_operator() -> None:
    (operator,) = service_monitors("scrape-auth")  # both send the bearer token (components/scrape-auth)
    (azure,) = service_monitors("azure-managed-prometheus")
    assert azure["spec"]["endpoints"] == operator["spec"]["endpoints"]
    assert azure["spec"]["selector"] == operator["spec"]["selector"]
    assert azure["spec"]["jobLabel"] == operator["spec"]["jobLabel"]
    # Azure's templates: without these limits the add-on may drop series at ingestion.
    assert (azure["spec"]["labelLimit"], azure["spec"]["labelNameLengthLimit"],
            azure["spec"]["labelValueLengthLimit"]) == (63, 511, 1023)
    assert not by_kind("azure-managed-prometheus", "PrometheusRule"), "rules are an Azure rule group there"


def test_two_instances_in_one_namespace_do_not_collide() -> None:
    """deploy/overlays/kube-prometheus-stack and deploy/overlays/second-instance, applied to one namespace."""
    first, second = "kube-prometheus-stack", "second-instance"
    assert {o["metadata"].get("namespace") for o in built(first) if o["kind"] != "Namespace"} == \
           {o["metadata"].get("namespace") for o in built(second)} == {NAMESPACE}

    def ids(name: str) -> set[tuple[str, str, str]]:
        return {(o["apiVersion"].split("/")[0], o["kind"], o["metadata"]["name"])
                for o in built(name) if o["kind"] != "Namespace"}

    assert not ids(first) & ids(second), f"objects of the same name: {sorted(ids(first) & ids(second))}"
    for this, other in ((first, second), (second, first)):
        for kind, selector in pod_selectors(this):
            assert not selector_matches(selector, pod_labels(other)), f"{this}'s {kind} selects {other}'s pods"
        for monitor in service_monitors(this):
            assert not selector_matches(monitor["spec"]["selector"], one(other, "Service")["metadata"]["labels"]), \
                f"{this}'s ServiceMonitor scrapes {other}'s Service"
    # References follow the names: each Deployment mounts its own ConfigMap, runs as its own ServiceAccount.
    for name in (first, second):
        pod = one(name, "Deployment")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == one(name, "ServiceAccount")["metadata"]["name"]
        config_volume = next(v for v in pod["volumes"] if "configMap" in v)
        assert config_volume["configMap"]["name"] == one(name, "ConfigMap")["metadata"]["name"]
    # They read different Event Hubs (or they would split one consumer group's partitions).
    def source(name: str) -> tuple:
        hub = effective_config(name)["eventhub"]
        return hub["fully_qualified_namespace"], hub["name"], hub["consumer_group"]

    assert source(first) != source(second)
    assert len(by_kind(first, "PrometheusRule")) == 1 and not by_kind(second, "PrometheusRule")


def test_network_policy_admits_only_the_metrics_port_and_azure_egress() -> None:
    policy = one("base", "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {(p["protocol"], p["port"]) for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {("TCP", CONFIG["http"]["port"])}
    assert all(rule.get("from") for rule in policy["ingress"]), "ingress must name who may scrape"
    egress_ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 5671)}


# --- KEDA ----------------------------------------------------------------------------------------


def test_keda_owns_the_replica_count_within_the_partition_bound() -> None:
    scaled = one("keda", "ScaledObject")["spec"]
    assert "replicas" not in one("keda", "Deployment")["spec"]
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    # The base's fixed count stays within KEDA's bound, itself set to the partition count.
    assert one("base", "Deployment")["spec"]["replicas"] <= scaled["maxReplicaCount"]


# --- connection strings --------------------------------------------------------------------------


def test_connection_strings_are_files_of_a_secret_volume_named_by_the_file_variables() -> None:
    env = {e["name"]: e["value"] for e in container("connection-strings")["env"]}
    assert set(env) == {"ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING_FILE",
                        "ACS_SMS_CONSUMER_CHECKPOINT_STORE__CONNECTION_STRING_FILE"}
    files = secret_files("connection-strings")
    assert set(env.values()) == set(files) and sorted(files.values()) == sorted(FAKE_SECRETS.values())
    pod = one("connection-strings", "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["defaultMode"] == 0o440  # the pod's group (fsGroup) only
    (mount,) = [m for m in container("connection-strings")["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert "azure.workload.identity/use" not in pod_labels("connection-strings")
    config = effective_config("connection-strings")
    assert config["eventhub"]["fully_qualified_namespace"] is None
    assert config["checkpoint_store"]["account_url"] is None


def test_base_uses_endpoints_and_no_secret() -> None:
    base = container("base")
    assert all("valueFrom" not in e for e in base["env"]), "the base uses workload identity, no secrets"
    config = effective_config("base")
    assert config["eventhub"]["fully_qualified_namespace"].endswith(".servicebus.windows.net")
    assert config["checkpoint_store"]["account_url"].startswith("https://")


# --- config.yaml -------------------------------------------------------------------------------


def _keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= _keys(value, f"{prefix}{key}.")
    return out


def test_config_uses_only_keys_of_config_example() -> None:
    example = ROOT / "config.example.yaml"
    unknown = _keys(CONFIG) - _keys(yaml.safe_load(example.read_text(encoding="utf-8")))
    assert not unknown, f"keys not in config.example.yaml: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_effective_config_passes_check_config(name: str, tmp_path: Path) -> None:
    """`acs-sms-consumer check-config` on config.yaml with the environment (and the Secret's files) the built pod gets."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ACS_SMS_CONSUMER_")}
    environment.update(pod_environment(name, tmp_path))
    # What Kubernetes would add with service links on (the base turns them off; other manifests may not).
    environment.update(service_link_variables(name))
    proc = subprocess.run([sys.executable, "-m", "consumer", "check-config", "--config",
                           str(KUSTOMIZE_BASE / "config.yaml")], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env=environment)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for variable, value in environment.items():
        if variable.startswith("ACS_SMS_CONSUMER_") and variable.endswith("_FILE"):
            assert f"# file {value} named by {variable}" in proc.stdout


def service_link_variables(name: str) -> dict[str, str]:
    """The variables kubelet gives a container for each Service of the build (when service links are on)."""
    env = {}
    for service in by_kind(name, "Service"):
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = "10.0.0.11"
        for port in service["spec"]["ports"]:
            number, protocol = port["port"], port.get("protocol", "TCP")
            env[f"{prefix}_SERVICE_PORT"] = env[f"{prefix}_SERVICE_PORT_{port['name'].upper()}"] = str(number)
            env[f"{prefix}_PORT"] = env[f"{prefix}_PORT_{number}_{protocol}"] = f"{protocol.lower()}://10.0.0.11:{number}"
            env[f"{prefix}_PORT_{number}_{protocol}_PROTO"] = protocol.lower()
            env[f"{prefix}_PORT_{number}_{protocol}_PORT"] = str(number)
            env[f"{prefix}_PORT_{number}_{protocol}_ADDR"] = "10.0.0.11"
    assert any(variable.startswith("ACS_SMS_CONSUMER_") for variable in env)
    return env


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_no_service_link_variables(name: str) -> None:
    """Service links would put ACS_SMS_CONSUMER_SERVICE_HOST and the like into the consumer's prefix."""
    assert one(name, "Deployment")["spec"]["template"]["spec"]["enableServiceLinks"] is False


def readme_key_vault_overlay() -> dict[str, str]:
    """deploy/README.md's Key Vault overlay: its yaml blocks whose first line names the file."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    section = text.split("### From Azure Key Vault", 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        first = block.splitlines()[0]
        match = re.match(r"# deploy/overlays/key-vault/(\S+\.yaml)", first)
        assert match, f"a yaml block of the Key Vault section does not start with its file name: {first!r}"
        files[match[1]] = block
    assert set(files) == {"kustomization.yaml", "secretproviderclass.yaml", "key-vault-volume.yaml"}, sorted(files)
    return files


def test_the_key_vault_overlay_of_the_readme_mounts_the_same_files(tmp_path: Path) -> None:
    import kubernetes_validate

    shutil.copytree(DEPLOY / "kubernetes", tmp_path / "kubernetes")
    overlay = tmp_path / "overlays" / "key-vault"
    overlay.mkdir(parents=True)
    for file, text in readme_key_vault_overlay().items():
        (overlay / file).write_text(text, encoding="utf-8")
    proc = subprocess.run([*kustomize_command(), str(overlay)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(proc.stdout) if o}
    provider = objects[("SecretProviderClass", SECRET_NAME)]
    assert provider["metadata"]["namespace"] == NAMESPACE
    aliases = {yaml.safe_load(o)["objectAlias"] for o in yaml.safe_load(provider["spec"]["parameters"]["objects"])["array"]}
    deployment = objects[("Deployment", "acs-sms-consumer")]
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "connection-strings"]
    assert "secret" not in volume
    assert volume["csi"] == {"driver": "secrets-store.csi.k8s.io", "readOnly": True,
                             "volumeAttributes": {"secretProviderClass": SECRET_NAME}}
    (consumer,) = pod["containers"]
    (mount,) = [m for m in consumer["volumeMounts"] if m["name"] == "connection-strings"]
    assert {e["value"] for e in consumer["env"]} == {f"{mount['mountPath']}/{alias}" for alias in aliases}
    assert ("Secret", SECRET_NAME) not in objects
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)


def test_a_renamed_installation_keeps_its_references(tmp_path: Path) -> None:
    """A second installation with KEDA (name suffix + instance + the keda component + the keda
    overlay's `replacements`, in an overlay beside a copy of deploy/): the ScaledObject scales its own
    Deployment (kustomizeconfig.yaml's nameReference) on its own Service's series, and its labels
    carry its instance."""
    shutil.copytree(DEPLOY / "kubernetes", tmp_path / "kubernetes")
    overlay = tmp_path / "overlays" / "eu-keda"
    overlay.mkdir(parents=True)
    keda_overlay = yaml.safe_load((BUILDS["keda"] / "kustomization.yaml").read_text(encoding="utf-8"))
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "namespace": "acs-sms-consumer-eu",
        "nameSuffix": "-eu",
        "resources": ["../../kubernetes"],
        "components": ["../../kubernetes/components/keda"],
        "labels": [{"pairs": {"app.kubernetes.io/instance": "acs-sms-consumer-eu"}, "includeSelectors": True}],
        "replacements": keda_overlay["replacements"],
    }), encoding="utf-8")
    proc = subprocess.run([*kustomize_command(), str(overlay)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(proc.stdout) if o}
    scaled = objects[("ScaledObject", "acs-sms-consumer-eu")]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "acs-sms-consumer-eu"
    assert ("Deployment", "acs-sms-consumer-eu") in objects
    (trigger,) = scaled["spec"]["triggers"]
    assert 'namespace="acs-sms-consumer-eu",service="acs-sms-consumer-eu"' in trigger["metadata"]["query"]
    assert "replicas" not in objects[("Deployment", "acs-sms-consumer-eu")]["spec"]
    assert scaled["metadata"]["labels"]["app.kubernetes.io/instance"] == "acs-sms-consumer-eu"
