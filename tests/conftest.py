"""Shared test helpers."""

from __future__ import annotations

import os
import shutil

import pytest

from exporter import cli


@pytest.fixture()
def promtool() -> str:
    """Path of promtool; in CI its absence is a failure, elsewhere a reason to skip."""
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
    pytest.skip("promtool is not installed (apt-get install prometheus provides it)")


class FakeServer:
    def __init__(self, registry, bind, port, web) -> None:
        self.registry, self.bind, self.port, self.web = registry, bind, port, web
        self.closed = False

    def serve_forever(self) -> None:
        raise KeyboardInterrupt  # Ctrl-C

    def server_close(self) -> None:
        self.closed = True


@pytest.fixture
def servers(monkeypatch) -> list[FakeServer]:
    """The exporter command run in this process: each server it makes is recorded, and
    ends at once as if interrupted."""
    made: list[FakeServer] = []
    monkeypatch.setattr(cli, "make_server", lambda *a: made.append(FakeServer(*a)) or made[-1])
    for name in ("LUMEN_EXPORTER_PORT", "LUMEN_EXPORTER_BIND", "LUMEN_ROOT", "LUMEN_GATEWAY",
                 "LUMEN_EFFECT_PRE_S", "LUMEN_EFFECT_POST_S", "LUMEN_EFFECT_GUARD_S",
                 "LUMEN_EXPORTER_WEB_CONFIG", "LUMEN_MAX_RULE_LABELS"):
        monkeypatch.delenv(name, raising=False)
    return made
