"""The service's wheel (what the image installs) holds the service only: no development tool, no
use of the SDK's private modules, and an azure-eventhub range the dev tools do not cap.

Built as the Dockerfile's build stage builds it: `pip wheel --no-deps` of exactly the sources its
COPY lines put into /src, in a temporary directory (a stale build/ of the checkout cannot leak in).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest
from packaging.requirements import Requirement

from .helpers import ROOT
from .test_dockerfile import stages


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    source = tmp_path_factory.mktemp("src")
    for keyword, args in stages()[0]:
        if keyword == "COPY" and not args.startswith("--from=") and "requirements.lock" not in args:
            *paths, _target = args.split()
            for path in paths:
                (shutil.copytree if (ROOT / path).is_dir() else shutil.copy)(ROOT / path, source / path)
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: the test environment's setuptools (test extra) builds it, so the test
    # downloads nothing while it runs.
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "--wheel-dir", str(out), str(source)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    [built] = out.glob("acs_sms_consumer-*.whl")
    return zipfile.ZipFile(built)


def requirements(wheel: zipfile.ZipFile) -> list[Requirement]:
    """The wheel's Requires-Dist entries."""
    [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return [Requirement(line.split(":", 1)[1]) for line in wheel.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")]


def test_the_wheel_holds_the_service_package_only(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"consumer"}, sorted(tops)
    assert not [name for name in names if "devtools" in name], "a development tool is in the service's wheel"
    assert "consumer/samples/eventhubs-sms.json" in names  # package data still shipped
    for name in names:
        if name.endswith(".py"):
            text = wheel.read(name).decode()
            assert "_pyamqp" not in text, f"{name} uses the SDK's private _pyamqp modules"
            assert "import acs_sms_devtools" not in text and "from acs_sms_devtools" not in text, name


def test_the_sdk_range_is_not_capped_by_the_dev_tools(wheel: zipfile.ZipFile) -> None:
    requires = requirements(wheel)
    [sdk] = [r for r in requires if r.name == "azure-eventhub" and r.marker is None]
    assert sdk.specifier.contains("5.15.1") and sdk.specifier.contains("5.99.0"), sdk
    assert not sdk.specifier.contains("6.0.0"), sdk
    assert not [r for r in requires if "devtools" in r.name]


def test_the_dashboard_builders_are_no_runtime_dependency(wheel: zipfile.ZipFile) -> None:
    """grafana-foundation-sdk builds deploy/grafana's dashboard: an extra, never a requirement of the service."""
    requires = requirements(wheel)
    builders = [r for r in requires if r.name == "grafana-foundation-sdk"]
    assert builders and all(r.marker is not None and "extra" in str(r.marker) for r in builders), builders
