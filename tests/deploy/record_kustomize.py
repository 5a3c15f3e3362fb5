"""Records what the real kustomize builds, so that CI machines without one still check the substitute.

    .venv/bin/python -m tests.deploy.record_kustomize      # needs `kustomize` or `kubectl` on PATH

writes tests/deploy/kustomize_builds/<build>.yaml: the real build of the base and of each overlay,
headed by the kustomize version and a digest of every file under deploy/kubernetes and
deploy/overlays. tests/deploy/test_kubernetes.py compares tests/deploy/minikustomize.py with these
records (everywhere), fails when deploy/ has changed since they were recorded, and compares the
records with a fresh real build wherever a real kustomize is installed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from .helpers import DEPLOY, KUSTOMIZE_BASE

BUILDS = {
    "base": KUSTOMIZE_BASE,
    "keda": DEPLOY / "overlays" / "keda",
    "connection-strings": DEPLOY / "overlays" / "connection-strings",
}
RECORDS = Path(__file__).resolve().parent / "kustomize_builds"
INPUTS = (KUSTOMIZE_BASE, DEPLOY / "overlays")  # everything a build reads
DIGEST_PREFIX = "# inputs-sha256: "


def real_kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def inputs_digest() -> str:
    """sha256 over the path and bytes of every file a build reads."""
    digest = hashlib.sha256()
    for root in INPUTS:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(DEPLOY)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


class KustomizeError(RuntimeError):
    pass


def real_build(name: str) -> str:
    """The real kustomize's build of `BUILDS[name]`, as the YAML text it prints."""
    command = real_kustomize()
    if command is None:
        raise KustomizeError("no kustomize or kubectl on PATH")
    proc = subprocess.run([*command, str(BUILDS[name])], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise KustomizeError(f"{' '.join(command)} {BUILDS[name]} failed:\n{proc.stderr}")
    return proc.stdout


def kustomize_version() -> str:
    command = real_kustomize()
    assert command is not None
    version = ["kustomize", "version"] if command[0] == "kustomize" else ["kubectl", "version", "--client"]
    proc = subprocess.run(version, capture_output=True, text=True, timeout=60)
    lines = [line for line in proc.stdout.splitlines() if "ustomize" in line] or proc.stdout.splitlines()[:1]
    return lines[0].strip() if lines else "unknown"


def record_path(name: str) -> Path:
    return RECORDS / f"{name}.yaml"


def recorded_digest(name: str) -> str | None:
    for line in record_path(name).read_text(encoding="utf-8").splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX):].strip()
    return None


def main() -> int:
    if real_kustomize() is None:
        print("no kustomize or kubectl on PATH: nothing to record with", file=sys.stderr)
        return 1
    RECORDS.mkdir(exist_ok=True)
    digest, version = inputs_digest(), kustomize_version()
    for name in BUILDS:
        header = (f"# The real kustomize's build of {BUILDS[name].relative_to(DEPLOY.parent)}, recorded by\n"
                  f"# `python -m tests.deploy.record_kustomize` ({' '.join(real_kustomize() or [])}; {version}).\n"
                  f"{DIGEST_PREFIX}{digest}\n")
        record_path(name).write_text(header + real_build(name), encoding="utf-8")
        print(f"recorded {record_path(name).relative_to(DEPLOY.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
