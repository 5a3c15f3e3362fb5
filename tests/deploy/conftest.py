"""Fixtures of the deployment tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool is a hard requirement: CI installs Debian's `prometheus` package (.ci/setup)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH: install Debian's 'prometheus' package (.ci/setup does it)")
    return path
