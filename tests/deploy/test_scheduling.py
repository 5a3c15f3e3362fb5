"""Where replicas run and what they may reach, on every rendered build (the real kustomize): drains
never blocked by unready replicas, replicas on different nodes when the cluster can, egress without
plaintext AMQP, and the instance metadata endpoint only with components/managed-identity.
"""

from __future__ import annotations

import pytest

from .test_kubernetes import BUILDS, container, one, pod_labels, selector_matches

IMDS = "169.254.169.254/32"


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_unready_replicas_never_block_a_drain(name: str) -> None:
    """With the default policy an unready pod (storage down, a wrong consumer group: every replica at
    once) may not be evicted while the budget is spent, and node drains and AKS upgrades hang."""
    budget = one(name, "PodDisruptionBudget")["spec"]
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    # One replica: maxUnavailable 1 still lets a drain evict it (minAvailable 1 never would).
    assert budget.get("maxUnavailable") == 1 and "minAvailable" not in budget
    assert selector_matches(budget["selector"], pod_labels(name))


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_replicas_spread_over_nodes_strictly_and_zones_loosely(name: str) -> None:
    pod = one(name, "Deployment")["spec"]["template"]["spec"]
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    node, zone = spread["kubernetes.io/hostname"], spread["topology.kubernetes.io/zone"]
    assert (node["maxSkew"], node["whenUnsatisfiable"]) == (1, "DoNotSchedule")
    assert (zone["maxSkew"], zone["whenUnsatisfiable"]) == (1, "ScheduleAnyway")  # a single-zone cluster still schedules
    for constraint in spread.values():
        assert constraint["nodeTaintsPolicy"] == "Honor", "a cordoned node must not count as an empty domain"
        assert constraint["matchLabelKeys"] == ["pod-template-hash"], "spread each ReplicaSet of a rollout"
        assert selector_matches(constraint["labelSelector"], pod_labels(name))


def egress(name: str) -> list[dict]:
    return one(name, "NetworkPolicy")["spec"]["egress"]


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_no_plaintext_amqp_and_the_metadata_endpoint_only_with_a_managed_identity(name: str) -> None:
    ports = {(p["protocol"], p["port"]) for rule in egress(name) for p in rule["ports"]}
    assert ("TCP", 5672) not in ports and {("TCP", 443), ("TCP", 5671)} <= ports
    blocks = [(peer["ipBlock"]["cidr"], rule["ports"]) for rule in egress(name) for peer in rule.get("to", [])
              if "ipBlock" in peer]
    if name == "managed-identity":
        assert blocks == [(IMDS, [{"protocol": "TCP", "port": 80}])]
    else:
        assert blocks == [], "IMDS (and any address) only where a managed identity needs it"


def test_a_managed_identity_replaces_workload_identity() -> None:
    """The workload identity webhook's variables would make DefaultAzureCredential try the federated
    token first (and fail); a user-assigned identity is chosen by its client id."""
    labels = one("managed-identity", "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert "azure.workload.identity/use" not in labels
    assert one("base", "Deployment")["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    env = {e["name"]: e["value"] for e in container("managed-identity")["env"]}
    assert "AZURE_CLIENT_ID" in env
