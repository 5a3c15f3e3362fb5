"""components/keda and the memory sizing, against the service's own configuration: the rendered
ScaledObject (the real kustomize, deploy/overlays/keda) scales on the backlog the consumer reports, its
threshold and scale-up window outlast what a partition handover leaves (computed from config.yaml and
servicemonitor.yaml, not copied), and every replica's memory is guaranteed and covers the partitions
it may hold. The query is run by promtool on series such as the consumer exports.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import yaml

from .helpers import promql_series_names, unknown_series
from .test_kubernetes import container, effective_config, one, seconds

#: The ScaledObject's annotation with the hub's peak rate the threshold is sized for (events/s).
PEAK_ANNOTATION = "acs-sms-consumer/peak-events-per-second"
#: docs/kubernetes.md "Memory" (bench/memory_worst_case.py): the process before receiving, its windows
#: and memos full of worst-case input, and the dead-letter queue's byte bound; and the RSS of one
#: buffered 1 MiB event.
FIXED_MIB = 210
MIB_PER_BUFFERED_EVENT = 0.93


def scaled_object() -> dict:
    return one("keda", "ScaledObject")


def trigger() -> dict:
    (only,) = scaled_object()["spec"]["triggers"]
    return only


def scrape_interval(name: str) -> float:
    (endpoint,) = one(name, "ServiceMonitor")["spec"]["endpoints"]
    return seconds(endpoint["interval"])


def handover_seconds(name: str = "keda") -> float:
    """The longest a partition goes uncounted when it moves to another replica (a rollout, a
    scale-in): the old owner's lame duck, the new owner's claim, and how far the checkpoint it starts
    from trails the counting (a checkpoint interval plus a scrape interval: checkpoints follow scrapes)."""
    config = effective_config(name)
    return (config["shutdown_final_scrape_wait_seconds"] + config["eventhub"]["load_balancing_interval_seconds"]
            + config["checkpoint"]["interval_seconds"] + scrape_interval(name))


# --- what it scales on ---------------------------------------------------------------------------


def test_keda_scales_on_the_backlog_the_consumer_reports() -> None:
    scaler = trigger()
    assert scaler["type"] == "prometheus" and scaler["metricType"] == "AverageValue"
    assert "authenticationRef" not in scaler  # the cluster's own Prometheus: no Azure identity involved
    query = scaler["metadata"]["query"]
    assert promql_series_names(query) == {"acs_consumer_partition_lag_events"}
    assert not unknown_series(promql_series_names(query)), "the consumer exports no such series"
    service = one("keda", "Service")["metadata"]
    assert f'namespace="{service["namespace"]}",service="{service["name"]}"' in query, \
        "the query must select this installation's series (the overlay's replacements write them)"
    assert all(isinstance(value, str) for value in scaler["metadata"].values()), "trigger metadata values are strings"


def promtool_value(promtool: str, tmp_path: Path, query: str, series: list[dict], expected: float) -> None:
    """Runs `query` as a recording rule in `promtool test rules` over `series`, expecting `expected`."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(
        {"groups": [{"name": "keda", "rules": [{"record": "keda_backlog", "expr": query}]}]}), encoding="utf-8")
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series,
                   "promql_expr_test": [{"expr": "keda_backlog", "eval_time": "2m",
                                         "exp_samples": [{"labels": "keda_backlog", "value": expected}]}]}],
    }), encoding="utf-8")
    proc = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yaml")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def lag_series(namespace: str, service: str, partition: str, pod: str, value: int) -> dict:
    return {"series": f'acs_consumer_partition_lag_events{{namespace="{namespace}",service="{service}",'
                      f'partition="{partition}",pod="{pod}",job="acs-sms-consumer"}}',
            "values": f"{value}x3"}


def test_the_query_counts_each_partition_once_and_only_this_installation(promtool: str, tmp_path: Path) -> None:
    service = one("keda", "Service")["metadata"]
    ns, name = service["namespace"], service["name"]
    promtool_value(promtool, tmp_path, trigger()["metadata"]["query"], [
        lag_series(ns, name, "0", "a", 6000),
        lag_series(ns, name, "0", "b", 5000),  # a handover: the old owner's last report of partition 0
        lag_series(ns, name, "1", "a", 3000),
        lag_series(ns, f"{name}-eu", "0", "c", 90000),  # another installation in the namespace
        lag_series("elsewhere", name, "0", "d", 90000),  # the same name in another namespace
    ], 9000)


def test_a_first_install_has_no_backlog(promtool: str, tmp_path: Path) -> None:
    """Before any event is counted no replica reports lag: that is 0, not an error (which would hold the
    fallback) nor the hub's whole retention (which KEDA's checkpoint-based scaler counted). And the
    consumer starts at the newest event when it finds no checkpoint, so the first lag is small."""
    service = one("keda", "Service")["metadata"]
    promtool_value(promtool, tmp_path, trigger()["metadata"]["query"],
                   [lag_series("elsewhere", service["name"], "0", "a", 90000)], 0)
    assert effective_config("keda")["eventhub"]["initial_position"] == "latest"


# --- how much and how fast -----------------------------------------------------------------------


def test_no_handover_alone_asks_for_a_replica() -> None:
    peak = float(scaled_object()["metadata"]["annotations"][PEAK_ANNOTATION])
    threshold = float(trigger()["metadata"]["threshold"])
    assert threshold >= peak * handover_seconds(), \
        f"threshold {threshold:.0f} < {peak:.0f} events/s x {handover_seconds():.0f} s of handover"


def test_scale_up_waits_out_a_handover_and_moves_one_replica_at_a_time() -> None:
    spec = scaled_object()["spec"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    up, down = behavior["scaleUp"], behavior["scaleDown"]
    # A backlog that one handover leaves is gone before the window ends: the handover itself, one
    # KEDA poll and one scrape until the lag is seen to fall.
    assert up["stabilizationWindowSeconds"] >= handover_seconds() + spec["pollingInterval"] + scrape_interval("keda")
    assert up["policies"] and all(p["type"] == "Pods" and p["value"] == 1 for p in up["policies"])
    assert up.get("selectPolicy", "Max") == "Min" or len(up["policies"]) == 1
    assert down["stabilizationWindowSeconds"] >= up["stabilizationWindowSeconds"]
    assert all(p["type"] == "Pods" and p["value"] == 1 for p in down["policies"])
    # Prometheus unreachable: hold the minimum rather than scale on nothing.
    assert spec["fallback"]["replicas"] == spec["minReplicaCount"] and spec["fallback"]["failureThreshold"] >= 3


def test_replica_bounds() -> None:
    spec = scaled_object()["spec"]
    assert "replicas" not in one("keda", "Deployment")["spec"]
    assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert one("base", "Deployment")["spec"]["replicas"] <= spec["maxReplicaCount"]


# --- memory --------------------------------------------------------------------------------------


def mebibytes(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024}
    number, unit = quantity[:-2], quantity[-2:]
    assert unit in units, f"memory as Mi or Gi: {quantity}"
    return float(number) * units[unit]


def partitions_per_replica(least_replicas: int, partitions: int) -> int:
    """The most partitions one replica holds: the hub's partitions over the replicas that are left
    when one of the fewest has failed."""
    return math.ceil(partitions / max(1, least_replicas - 1))


@pytest.mark.parametrize("name", ["base", "keda"])
def test_memory_is_guaranteed_and_covers_the_partitions_a_replica_may_hold(name: str) -> None:
    spec = scaled_object()["spec"]
    partitions = spec["maxReplicaCount"]  # = the hub's partition count (scaledobject.yaml)
    least = spec["minReplicaCount"] if name == "keda" else one(name, "Deployment")["spec"]["replicas"]
    hub = effective_config(name)["eventhub"]
    worst = FIXED_MIB + MIB_PER_BUFFERED_EVENT * (hub["prefetch"] + hub["max_batch_size"]) * \
        partitions_per_replica(least, partitions)
    resources = container(name)["resources"]
    limit = mebibytes(resources["limits"]["memory"])
    assert resources["requests"]["memory"] == resources["limits"]["memory"], "memory request = limit"
    assert worst <= limit <= worst * 1.25, f"{name}: limit {limit:.0f} MiB for a worst case of {worst:.0f} MiB"
