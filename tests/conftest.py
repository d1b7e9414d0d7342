"""Shared test helpers."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture()
def promtool() -> str:
    """Path of promtool; in CI its absence is a failure, elsewhere a reason to skip."""
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
    pytest.skip("promtool is not installed (apt-get install prometheus provides it)")
