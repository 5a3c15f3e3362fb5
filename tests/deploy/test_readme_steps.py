"""deploy/README.md's steps as a user follows them: the sections in order, and the "must change" patches
of "Configure" applied by the real kustomize in an overlay beside a copy of deploy/."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from .helpers import DEPLOY
from .test_kubernetes import NAMESPACE, kustomize_command

README = (DEPLOY / "README.md").read_text(encoding="utf-8")
STEPS = ["Prerequisites", "Build and push the image", "Configure", "Check", "Apply", "Verify", "Upgrade"]


def test_the_steps_come_first_and_in_order() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[:len(STEPS)] == STEPS, headings


def test_check_never_runs_a_server_dry_run_on_the_first_apply() -> None:
    check = README.split("\n## Check\n", 1)[1].split("\n## ", 1)[0]
    assert "--dry-run=client" in check
    server = [line for line in check.splitlines() if "--dry-run=server" in line and not line.startswith("(")]
    assert server == ["kubectl kustomize deploy/overlays/kube-prometheus-stack | kubectl apply --dry-run=server -f -"]
    assert check.index("--dry-run=client") < check.index("namespace exists")


def configure_patches() -> list[dict]:
    configure = README.split("\n## Configure\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", configure, re.S)
    return yaml.safe_load(block)["patches"]


def test_the_must_change_patches_of_configure_apply(tmp_path: Path) -> None:
    shutil.copytree(DEPLOY / "kubernetes", tmp_path / "kubernetes")
    overlay = tmp_path / "mine"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "namespace": NAMESPACE, "resources": ["../kubernetes"], "patches": configure_patches()}), encoding="utf-8")
    proc = subprocess.run([*kustomize_command(), str(overlay)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    objects = {o["kind"]: o for o in yaml.safe_load_all(proc.stdout) if o}
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert objects[kind]["metadata"]["labels"]["release"] == "my-prometheus-release", kind
    (scraper,) = objects["NetworkPolicy"]["spec"]["ingress"][0]["from"]
    assert scraper["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "observability"}
