"""Prometheus rules: promtool accepts them, and unit tests cover every alert both ways."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    # grafana/ is not an installed package; the repository root makes it importable.
    sys.path.insert(0, str(REPO))

from grafana.queries import series_names  # noqa: E402
from tracker.contract import EXPORTER_METRICS  # noqa: E402

RULE_FILES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
TEST_FILES = sorted((REPO / "prometheus" / "tests").glob("*.yml"))


def _rules() -> list[dict]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


def _unit_tests() -> list[dict]:
    return [yaml.safe_load(path.read_text(encoding="utf-8")) for path in TEST_FILES]


def test_rule_and_test_files_exist():
    assert RULE_FILES, "no prometheus/rules/*.yml"
    assert TEST_FILES, "no prometheus/tests/*.yml"


def test_promtool_check_rules_is_clean(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # promtool prints lint findings without failing; clean means none of them.
    assert "WARNING" not in result.stdout + result.stderr


def test_promtool_unit_tests_pass(promtool):
    # Run from elsewhere: rule_files in the tests are relative to the test files.
    result = subprocess.run(
        [promtool, "test", "rules", *map(str, TEST_FILES)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_file_is_loaded_by_a_unit_test():
    loaded = set()
    for path, suite in zip(TEST_FILES, _unit_tests(), strict=True):
        loaded |= {(path.parent / name).resolve() for name in suite["rule_files"]}
    assert {path.resolve() for path in RULE_FILES} <= loaded


def test_every_alert_is_tested_firing_and_not_firing():
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    firing, quiet = set(), set()
    for suite in _unit_tests():
        for case in suite["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts, "no alerts defined"
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a not-firing test"


def test_every_recording_rule_is_tested():
    records = {rule["record"] for rule in _rules() if "record" in rule}
    tested = " ".join(
        check["expr"]
        for suite in _unit_tests()
        for case in suite["tests"]
        for check in case.get("promql_expr_test", [])
    )
    assert records, "no recording rules defined"
    assert {name for name in records if name not in tested} == set()


def test_the_required_alerts_exist():
    alerts = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    # metrics stale, tracker stalled, a rule change showing the warning pattern
    assert "lumen_metrics_last_sample_timestamp_seconds" in _expanded(alerts["LumenMetricsStale"])
    assert "lumen_rule_oldest_pending_timestamp_seconds" in _expanded(alerts["LumenTrackerStalled"])
    # The warning alert reads the verdict only, never the signs of the Δs (issue 10).
    warning = _expanded(alerts["LumenRuleWarningPattern"])
    assert 'verdict="warning"' in warning and "lumen_rule_effect_delta" not in warning
    for rule in alerts.values():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def _expanded(rule: dict) -> str:
    """The rule's expression with the recording rules it reads spelled out."""
    records = {r["record"]: r["expr"] for r in _rules() if "record" in r}
    expr = rule["expr"]
    for _ in range(len(records)):
        for name, body in records.items():
            expr = expr.replace(name, f"({body})")
    return expr


def test_rules_read_only_published_metrics():
    records = {rule["record"] for rule in _rules() if "record" in rule}
    for rule in _rules():
        unknown = series_names(rule["expr"], EXPORTER_METRICS) - EXPORTER_METRICS - records
        assert unknown == set(), f"{rule.get('record') or rule.get('alert')} reads {unknown}"


def test_every_grouping_keeps_the_gateway():
    """A fleet has the same rule on several gateways: an aggregation or a match without
    gateway would merge them, or let one gateway's effect answer for another's."""
    checked = 0
    for rule in _rules():
        # ignoring/without would keep gateway unless it is named: forbidden outright.
        assert not re.search(r"\b(?:ignoring|without)\s*\(", rule["expr"])
        for clause in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"]):
            checked += 1
            assert "gateway" in re.split(r"\s*,\s*", clause.strip()), (
                rule.get("record") or rule.get("alert"),
                clause,
            )
    assert checked >= 6


# About one part of the stack that serves every gateway: the exporter, the long-term store.
NOT_PER_GATEWAY = {"LumenExporterDown", "LumenLongTermStoreDown", "LumenLongTermWriteBehind"}


def test_gateway_alerts_say_which_gateway():
    alerts = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    assert NOT_PER_GATEWAY <= set(alerts)
    for name, rule in alerts.items():
        if name not in NOT_PER_GATEWAY:
            assert "{{ $labels.gateway }}" in rule["annotations"]["summary"], name
        else:
            assert "lumen_" not in rule["expr"], f"{name} reads per-gateway series"
    warning = alerts["LumenRuleWarningPattern"]["annotations"]["description"]
    assert "{{ $labels.gateway }}" in warning
