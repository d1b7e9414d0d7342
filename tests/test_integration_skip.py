"""Without a Grafana image the stack tests skip Grafana's checks: the skip must say which."""

import ast
from pathlib import Path

from tests.integration.conftest import GRAFANA_CHECKS, grafana_not_checked

STACK_TESTS = sorted((Path(__file__).parent / "integration").glob("test_*.py"))


def _tests_using_grafana() -> set[str]:
    """Tests taking the grafana fixture, or named for Grafana, in every integration file."""
    found = set()
    for path in STACK_TESTS:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and (
                    node.name.startswith("test_grafana")
                    or "grafana" in {a.arg for a in node.args.args}):
                found.add(node.name)
    return found


def test_every_grafana_test_is_named_in_the_skip_reason():
    assert _tests_using_grafana() == set(GRAFANA_CHECKS)
    reason = grafana_not_checked("no image here")
    assert reason.startswith("Grafana NOT checked: ")
    assert reason.endswith("Why: no image here")
    for what in GRAFANA_CHECKS.values():
        assert what in reason
