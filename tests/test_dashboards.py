"""Grafana dashboards: generated JSON is committed, structurally sound and every query parses.

Grafana cannot run here, so its behaviour is checked through the JSON it would load and
through promtool, which parses (and for the annotation, evaluates) the PromQL.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    # grafana/ is not an installed package; the repository root makes it importable.
    sys.path.insert(0, str(REPO))

from grafana import build  # noqa: E402
from grafana.common import DELTA_FORMULA, RULE_CHANGE_EXPR, RUNBOOK_URL  # noqa: E402
from grafana.queries import (  # noqa: E402
    expressions,
    panels,
    raw_expressions,
    series_names,
    substitute,
    variable_values,
)
from tracker.contract import EXPORTER_METRICS, PROMETHEUS_SERIES, VERDICTS  # noqa: E402

DASHBOARD_DIR = REPO / "grafana" / "dashboards"
PROVISIONING = REPO / "grafana" / "provisioning"
UID = "lumen-prometheus"
LONGTERM_UID = "lumen-longterm"
# What every query reads: the datasource picked in the $datasource variable.
PICKED = "${datasource}"
SIGNALS = ("phase_diff", "entropy_rate", "creative_band", "risk_band")
STATES = {"0": "unknown", "1": "initializing", "2": "binding", "3": "resonating", "4": "locked"}
GATEWAY = 'gateway=~"$gateway"'
GREY = "#808080"
VERDICT_COLOUR = {
    "warning": "red",
    "caution": "orange",
    "mixed": "purple",
    "good": "green",
    "no_change": GREY,
    "inconclusive": GREY,
    "no_data": GREY,
}


def _dashboards() -> dict[str, dict]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARD_DIR.glob("*.json"))
    }


def _by_uid(uid: str) -> dict:
    return next(d for d in _dashboards().values() if d["uid"] == uid)


def _exprs(panel: dict) -> list[str]:
    return [target.get("expr", "") for target in panel.get("targets", [])]


def _walk(node: object):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _strings(node: object):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _colour(steps: list[dict], value: float) -> str:
    """The colour Grafana picks: the last step whose value is at or below value."""
    chosen = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            chosen = step["color"]
    return chosen


def _records() -> set[str]:
    names = set()
    for path in (REPO / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


# --- generated and committed ------------------------------------------------------------


def test_committed_json_is_what_the_code_builds():
    assert sorted(p.name for p in DASHBOARD_DIR.glob("*.json")) == sorted(build.BUILDERS)
    assert build.outdated() == [], "run python3 grafana/build.py and commit the JSON"


def _render_in_subprocess(hash_seed: str) -> dict[str, str]:
    script = "import json; from grafana import build; print(json.dumps(build.rendered()))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": hash_seed},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_build_is_deterministic():
    # Separate processes with different hash seeds: an order taken from a set or a dict of
    # str keyed by hash would differ between them (it cannot within one process).
    first, second = _render_in_subprocess("1"), _render_in_subprocess("2")
    assert first == second
    assert first == build.rendered()


def test_check_reports_an_edited_dashboard(tmp_path):
    build.write(tmp_path)
    assert build.outdated(tmp_path) == []
    edited = tmp_path / "overview.json"
    edited.write_text(edited.read_text(encoding="utf-8").replace("Gateway", "Gate"), "utf-8")
    assert build.outdated(tmp_path) == ["overview.json"]


def test_build_script_check_runs_from_any_directory(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "grafana" / "build.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- datasource and provisioning ------------------------------------------------------


def test_every_query_reads_the_picked_datasource_prometheus_at_first():
    for name, dashboard in _dashboards().items():
        refs = [node["datasource"] for node in _walk(dashboard) if "datasource" in node]
        assert refs, name
        for ref in refs:
            assert ref == {"type": "prometheus", "uid": PICKED}, (name, ref)
        assert "__inputs" not in dashboard
        assert not [s for s in _strings(dashboard) if "${DS_" in s]
        (picker,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        assert picker["name"] == "datasource" and picker["query"] == "prometheus"
        assert picker["current"]["value"] == UID, name
        assert picker.get("hide", 0) == 0  # a control the user sees


def test_provisioning_points_at_both_datasources_and_the_dashboards():
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "lumen.yml").read_text())
    by_uid = {s["uid"]: s for s in datasources["datasources"]}
    assert set(by_uid) == {UID, LONGTERM_UID}
    assert by_uid[UID]["url"] == "http://prometheus:9090" and by_uid[UID]["isDefault"]
    # The store's service and port in compose.yaml.
    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    store = compose["services"]["victoriametrics"]
    assert by_uid[LONGTERM_UID]["url"] == "http://victoriametrics:8428"
    assert "-httpListenAddr=:8428" in store["command"]
    for source in by_uid.values():
        assert source["type"] == "prometheus"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "lumen.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_uids_and_titles_are_unique():
    dashboards = list(_dashboards().values())
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    assert len({d["title"] for d in dashboards}) == len(dashboards)


# --- layout ---------------------------------------------------------------------------


def test_panels_fit_the_grid_without_overlapping():
    for name, dashboard in _dashboards().items():
        cells: dict[tuple[int, int], str] = {}
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), name
        for panel in panels(dashboard):
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
            assert pos["h"] > 0, panel["title"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']} over {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


def test_every_panel_has_a_title_and_a_description():
    for dashboard in _dashboards().values():
        for panel in panels(dashboard):
            if panel["type"] != "row":
                assert panel.get("title") and panel.get("description"), panel


# --- what the dashboards show ----------------------------------------------------------


def test_gateway_status_is_shown_as_its_state_name():
    status = [
        p
        for p in panels(_by_uid("lumen-overview"))
        if f"lumen_gateway_status{{{GATEWAY}}}" in _exprs(p)
    ]
    assert {p["type"] for p in status} == {"stat", "state-timeline"}
    for panel in status:
        (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
        assert mapping["type"] == "value"
        assert {k: v["text"] for k, v in mapping["options"].items()} == STATES
        assert len({v["color"] for v in mapping["options"].values()}) == len(STATES)


def test_overview_shows_the_four_signals_over_time():
    series = [
        expr
        for panel in panels(_by_uid("lumen-overview"))
        if panel["type"] == "timeseries"
        for expr in _exprs(panel)
    ]
    assert series == [f"lumen_{signal}{{{GATEWAY}}}" for signal in SIGNALS]


def test_overview_shows_the_spec_delta_panels():
    exprs = [e for p in panels(_by_uid("lumen-overview")) for e in _exprs(p)]
    for signal in SIGNALS:
        spec = f'lumen_rule_last_{signal}_delta{{rule=~".*", {GATEWAY}}}'
        assert any(e.startswith(spec) for e in exprs), signal


def test_delta_panels_state_the_formula_with_the_windows_in_force():
    assert DELTA_FORMULA == "Δ = post_mean − pre_mean (pre=${pre_s} s, post=${post_s} s)"
    delta_panels = 0
    for dashboard in _dashboards().values():
        for panel in panels(dashboard):
            exprs = " ".join(_exprs(panel))
            if "_delta" in exprs or "lumen_rule_change_timestamp_seconds" in exprs:
                delta_panels += 1
                assert DELTA_FORMULA in panel["description"], panel["title"]
        uses = " ".join(
            p.get("description", "") + str(p.get("options", "")) for p in panels(dashboard)
        )
        variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
        for window in ("pre", "post"):
            if f"${{{window}_s}}" in uses:
                variable = variables[f"{window}_s"]
                assert variable["hide"] == 2  # hidden: a value to read, not a control
                assert variable["datasource"]["uid"] == PICKED
                assert (
                    f'lumen_effect_window_seconds{{window="{window}", {GATEWAY}}}'
                    in variable["query"]
                )
    assert delta_panels >= 8


def _reads_a_delta(panel: dict) -> bool:
    exprs = " ".join(_exprs(panel))
    return bool(
        re.search(r"_delta\{|lumen_rule_change_timestamp_seconds|rule_effect_reading", exprs)
    )


def _threshold_sets(panel: dict) -> list[list[dict]]:
    config = panel.get("fieldConfig", {})
    found = [config.get("defaults", {}).get("thresholds", {}).get("steps", [])]
    for override in config.get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "thresholds":
                found.append(prop["value"]["steps"])
    return found


def _mapping_sets(panel: dict) -> list[list[dict]]:
    config = panel.get("fieldConfig", {})
    found = [config.get("defaults", {}).get("mappings", [])]
    for override in config.get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "mappings":
                found.append(prop["value"])
    return found


def test_no_delta_colour_comes_from_its_sign():
    """A Δ's colour comes from its interval or its verdict: no threshold at 0 and no
    regex on the text's minus sign in any panel that shows a Δ."""
    checked = 0
    for dashboard in _dashboards().values():
        for panel in panels(dashboard):
            if not _reads_a_delta(panel):
                continue
            checked += 1
            for steps in _threshold_sets(panel):
                at_zero = [s for s in steps if s["value"] is not None and abs(s["value"]) < 1e-3]
                assert not at_zero, (panel["title"], steps)
            for mappings in _mapping_sets(panel):
                assert not [m for m in mappings if m["type"] == "regex"], panel["title"]
    assert checked >= 8


def test_latest_delta_stats_are_coloured_by_their_interval():
    """Each Δ stat shows a reading computed from the interval's ends alone (1 above 0, -1
    below, 0 holding 0), mapped to the guide's colour for the direction and grey when
    unclear; the Δ and its interval's ends are neutral, so no colour reads a sign."""
    good_when = {"phase_diff": "down", "risk_band": "down", "creative_band": "up"}
    stats = [
        p
        for p in panels(_by_uid("lumen-overview"))
        if p["type"] == "stat" and p["title"].startswith("Latest Δ ")
    ]
    assert len(stats) == 4
    for panel in stats:
        signal = panel["title"].removeprefix("Latest Δ ")
        props = {
            o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
            for o in panel["fieldConfig"]["overrides"]
            if o["matcher"]["id"] == "byFrameRefID"
        }
        by_expr = {t["expr"]: t["refId"] for t in panel["targets"]}
        low, high = f"lumen_rule_last_{signal}_delta_lo", f"lumen_rule_last_{signal}_delta_hi"
        readings = [e for e in by_expr if re.fullmatch(
            rf"\({low}\{{[^}}]*\}} > bool 0\) - \({high}\{{[^}}]*\}} < bool 0\)", e)]
        assert len(readings) == 1, (signal, list(by_expr))
        options = props[by_expr[readings[0]]]["mappings"][0]["options"]
        colour = {v: options[v]["color"] for v in ("1", "-1", "0")}
        assert colour["0"] == GREY, signal
        if signal in good_when:
            good, bad = ("1", "-1") if good_when[signal] == "up" else ("-1", "1")
            assert colour[good] == "green" and colour[bad] in ("red", "orange"), (signal, colour)
        else:
            assert GREY not in (colour["1"], colour["-1"]), signal
        # The Δ and both ends are there, each in the neutral colour.
        for name in (f"lumen_rule_last_{signal}_delta{{", f"{low}{{", f"{high}{{"):
            [expr] = [e for e in by_expr if e.startswith(name)]
            assert props[by_expr[expr]]["color"] == {"mode": "fixed", "fixedColor": GREY}, expr
        assert panel["fieldConfig"]["defaults"]["color"]["fixedColor"] == GREY


def _organized(panel: dict) -> tuple[list[str], dict[str, str]]:
    """The table's columns in display order (original names) and their display names."""
    organize = next(t["options"] for t in panel["transformations"] if t["id"] == "organize")
    order = sorted(organize["indexByName"], key=organize["indexByName"].get)
    return order, organize["renameByName"]


def test_every_table_with_a_delta_shows_its_interval():
    """Every table with a Δ column has its 95% interval beside it, read as [low, high].

    The changes table of Rule history is the exception: its Δs are the labels the exporter
    writes on each change (no interval labels exist), so it must carry the verdict instead.
    """
    tables = 0
    for dashboard in _dashboards().values():
        for panel in panels(dashboard):
            if panel["type"] != "table":
                continue
            by_ref = {t["refId"]: t["expr"] for t in panel["targets"]}
            deltas = [r for r, e in by_ref.items() if re.search(r"lumen_rule_effect_delta\{", e)]
            if "lumen_rule_change_timestamp_seconds" in " ".join(by_ref.values()):
                assert "verdict" in _organized(panel)[0], panel["title"]
                continue
            if not deltas:
                continue
            tables += 1
            order, rename = _organized(panel)
            (delta,) = [r for r in by_ref if rename.get(f"Value #{r}") == "Δ"]
            assert re.fullmatch(
                r"max by \(gateway, rule, metric\) \(lumen_rule_effect_delta\{[^}]*\}\)",
                by_ref[delta],
            )
            low = next(r for r, e in by_ref.items() if "lumen_rule_effect_delta_lo{" in e)
            high = next(r for r, e in by_ref.items() if "lumen_rule_effect_delta_hi{" in e)
            at = order.index(f"Value #{delta}")
            assert order[at + 1 : at + 3] == [f"Value #{low}", f"Value #{high}"], panel["title"]
            units = {
                o["matcher"]["options"]: p["value"]
                for o in panel["fieldConfig"]["overrides"]
                for p in o["properties"]
                if p["id"] == "unit"
            }
            assert units[rename[f"Value #{low}"]] == "prefix:["
            assert units[rename[f"Value #{high}"]] == "suffix:]"
    assert tables >= 3


def test_every_panel_with_a_delta_reads_its_interval():
    """Whatever shows a Δ series (stat, table, graph) also reads both ends of its interval."""
    checked = 0
    for dashboard in _dashboards().values():
        for panel in panels(dashboard):
            exprs = " ".join(_exprs(panel))
            for name in set(re.findall(r"(lumen_rule_(?:effect|last_\w+?)_delta)\{", exprs)):
                checked += 1
                assert f"{name}_lo{{" in exprs and f"{name}_hi{{" in exprs, (panel["title"], name)
    assert checked >= 8


def _verdict_overrides(dashboard: dict) -> list[dict]:
    found = []
    for panel in panels(dashboard):
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            if override["matcher"]["options"] in ("Verdict", "Its verdict"):
                found.append({p["id"]: p["value"] for p in override["properties"]})
    return found


def test_verdicts_are_coloured_by_verdict():
    for uid in ("lumen-overview", "lumen-rule-history", "lumen-fleet"):
        overrides = _verdict_overrides(_by_uid(uid))
        assert overrides, uid
        for props in overrides:
            (mapping,) = props["mappings"]
            colours = {value: result["color"] for value, result in mapping["options"].items()}
            for verdict in VERDICTS:
                assert colours[verdict] == VERDICT_COLOUR[verdict], (uid, verdict)
            assert colours["pending"] == "blue"
            assert props["custom.cellOptions"] == {"type": "color-background"}


def test_warning_stat_counts_the_verdict_warning():
    (count,) = [
        p for p in panels(_by_uid("lumen-overview")) if p["title"] == "Rules with verdict warning"
    ]
    (expr,) = _exprs(count)
    assert expr == f'sum(lumen_rule_effect_verdict{{verdict="warning", {GATEWAY}}})'
    steps = count["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert _colour(steps, 0) == "green" and _colour(steps, 1) == "red"


def test_guide_text_panel_has_the_guide_and_the_routine():
    (guide,) = [p for p in panels(_by_uid("lumen-overview")) if p["type"] == "text"]
    content = guide["options"]["content"]
    assert guide["options"]["mode"] == "markdown"
    for words in ("phase_diff", "risk_band", "creative_band", "entropy_rate", "together with"):
        assert words in content
    for step in ("Change one rule", "Watch 2–3 minutes", "Read the effect", "runbook"):
        assert step in content
    # the interval in plain words, and every verdict named
    assert "19 times out of 20" in content and "contains 0" in content
    for verdict in VERDICTS:
        assert verdict.replace("_", " ") in content, verdict
    assert "${pre_s}" in content and "${post_s}" in content


def test_rule_history_lists_the_changes_per_rule():
    dashboard = _by_uid("lumen-rule-history")
    (rule,) = [v for v in dashboard["templating"]["list"] if v["name"] == "rule"]
    assert rule["multi"] and rule["includeAll"] and rule["allValue"] == ".*"
    changes = next(p for p in panels(dashboard) if p["title"].startswith("Recent changes"))
    assert changes["type"] == "table"
    assert f'lumen_rule_change_timestamp_seconds{{rule=~"$rule", {GATEWAY}}}' in _exprs(changes)[0]
    renamed = changes["transformations"][1]["options"]["renameByName"]
    assert {renamed[f"d_{s}"] for s in ("phase", "entropy", "creative", "risk")} == {
        f"Δ {signal}" for signal in SIGNALS
    }
    # No Δ without its interval: each is followed by it.
    order = changes["transformations"][1]["options"]["indexByName"]
    for short, signal in zip(("phase", "entropy", "creative", "risk"), SIGNALS, strict=True):
        assert order[f"d_{short}_interval"] == order[f"d_{short}"] + 1
        assert renamed[f"d_{short}_interval"] == f"{signal} 95% interval"


def test_pipeline_health_covers_staleness_parse_errors_pending_and_scrapes():
    exprs = " ".join(e for p in panels(_by_uid("lumen-pipeline")) for e in _exprs(p))
    for needed in (
        "lumen:metrics_age_seconds",
        "lumen_input_parse_errors_total",
        "lumen_rule_events_pending",
        "lumen:rule_oldest_pending_overdue_seconds",
        'up{job="lumen-exporter"}',
        "lumen_input_readable",
    ):
        assert needed in exprs


def test_units_of_times_and_counts():
    times, counts = [], []
    for dashboard in _dashboards().values():
        for panel in panels(dashboard):
            exprs = " ".join(_exprs(panel))
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            if panel["type"] == "stat" and re.search(
                r"age_seconds|overdue_seconds|time\(\)", exprs
            ):
                assert defaults["unit"] == "s", panel["title"]
                times.append(panel["title"])
            if panel["type"] == "stat" and re.search(r"pending\b|errors_total", exprs):
                assert defaults["decimals"] == 0, panel["title"]
                counts.append(panel["title"])
    # The filters must have found the panels they are about, else nothing was checked.
    assert {
        "Since last rule change",
        "Newest sample age",
        "Oldest pending, past its window",
    } <= set(times)
    assert {"Effects pending", "Events pending", "Bad input lines in range"} <= set(counts)


# --- annotations -------------------------------------------------------------------------


def test_every_dashboard_with_time_series_marks_every_rule_change():
    for name, dashboard in _dashboards().items():
        if not any(p["type"] == "timeseries" for p in panels(dashboard)):
            continue
        (annotation,) = [
            a
            for a in dashboard["annotations"]["list"]
            if "lumen_rule_change_timestamp_seconds" in a["target"]["expr"]
        ]
        assert annotation["enable"] is True and annotation["hide"] is False, name
        # no panel filter: Grafana then draws the markers on every time-series panel
        assert "filter" not in annotation, name
        assert annotation["datasource"] == {"type": "prometheus", "uid": PICKED}
        assert annotation["target"]["expr"] == annotation["expr"] == RULE_CHANGE_EXPR
        assert annotation["useValueForTime"] is True
        # the exporter's value is in seconds; useValueForTime reads milliseconds
        assert RULE_CHANGE_EXPR.endswith("* 1000")
        assert annotation["tagKeys"] == "rule"
        assert "{{rule}}" in annotation["titleFormat"] and "{{actor}}" in annotation["titleFormat"]
        text = annotation["textFormat"]
        assert "{{old}} → {{new}}" in text
        for label in ("d_phase", "d_entropy", "d_creative", "d_risk", "verdict"):
            assert f"{{{{{label}}}}}" in text
        for short in ("phase", "entropy", "creative", "risk"):
            assert f"{{{{d_{short}}}}} {{{{d_{short}_interval}}}}" in text
        assert "{{verdict}}" in annotation["titleFormat"]
        assert "{{gateway}}" in annotation["titleFormat"]


def test_rule_change_annotation_shows_each_change_once(tmp_path, promtool):
    """Evaluates the annotation query as Grafana's range query would see it.

    A change's series is "pending" until its effect is written, then carries the Δs:
    only one marker per change may remain, including when the same rule goes back and
    forth (a new pending change with the labels of an older, written one).
    """
    scraped = 'job="lumen-exporter", instance="exporter:9108"'
    base = f'{scraped}, gateway="g1", rule="r", actor="Lubit"'
    pending = (
        'd_phase="pending", d_entropy="pending", d_creative="pending", d_risk="pending", '
        'verdict="pending"'
    )
    written_12 = 'd_phase="0.1", d_entropy="-0.2", d_creative="0.3", d_risk="-0.4", verdict="good"'
    written_21 = 'd_phase="-0.1", d_entropy="0.2", d_creative="-0.3", d_risk="0.4", verdict="mixed"'
    series = "lumen_rule_change_timestamp_seconds"
    # 15 s steps from 0 to 180 s: 1 -> 2 at 60 s (written at 90 s), 2 -> 1 at 105 s
    # (written at 135 s), 1 -> 2 again at 150 s (still pending at the end).
    # Gateway g2 had the same change 1 -> 2 at 60 s, still pending at the end: its marker
    # stays although g1's written series has the same labels and change time.
    g2 = f'{scraped}, gateway="g2", rule="r", actor="Lubit"'
    inputs = [
        (
            f'{series}{{{base}, old="1", new="2", {pending}}}',
            "_ _ _ _ 60 60 stale _ _ _ 150 150 150",
        ),
        (f'{series}{{{base}, old="1", new="2", {written_12}}}', "_ _ _ _ _ _ 60 60 60 60 60 60 60"),
        (f'{series}{{{base}, old="2", new="1", {pending}}}', "_ _ _ _ _ _ _ 105 105 stale _ _ _"),
        (
            f'{series}{{{base}, old="2", new="1", {written_21}}}',
            "_ _ _ _ _ _ _ _ _ 105 105 105 105",
        ),
        (f'{series}{{{g2}, old="1", new="2", {pending}}}', "_ _ _ _ 60 60 60 60 60 60 60 60 60"),
    ]
    labels = 'gateway="g1", rule="r", actor="Lubit"'
    # labels -> (points over the range, change time in ms); no other series may remain
    kept = {
        f'{{{scraped}, {labels}, old="1", new="2", {written_12}}}': (7, 60000),
        f'{{{scraped}, {labels}, old="2", new="1", {written_21}}}': (4, 105000),
        f'{{{labels}, old="1", new="2", {pending}}}': (3, 150000),
        f'{{gateway="g2", rule="r", actor="Lubit", old="1", new="2", {pending}}}': (9, 60000),
    }
    dashboard = _by_uid("lumen-overview")
    expr = substitute(
        dashboard["annotations"]["list"][0]["target"]["expr"], variable_values(dashboard)
    )
    window = f"({expr})[3m:15s]"
    suite = {
        "rule_files": [],
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": s, "values": v} for s, v in inputs],
                "promql_expr_test": [
                    {
                        "expr": f"count_over_time({window})",
                        "eval_time": "3m",
                        "exp_samples": [{"labels": k, "value": n} for k, (n, _) in kept.items()],
                    },
                    {
                        "expr": f"min_over_time({window})",
                        "eval_time": "3m",
                        "exp_samples": [{"labels": k, "value": t} for k, (_, t) in kept.items()],
                    },
                    {
                        "expr": f"max_over_time({window})",
                        "eval_time": "3m",
                        "exp_samples": [{"labels": k, "value": t} for k, (_, t) in kept.items()],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "annotation_test.yml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- gateways, the Fleet dashboard and the runbook link --------------------------------------


def _masked(expr: str) -> str:
    """expr with the inside of every string literal blanked, keeping positions."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: '"' + " " * (len(m.group()) - 2) + '"', expr)


def _unfiltered_selectors(expr: str) -> list[str]:
    """The series selectors of expr (lumen_*, lumen:*, ALERTS) without the gateway filter.

    up has no gateway label (one exporter serves every gateway of its data root).
    """
    masked = _masked(expr)
    missing = []
    for match in re.finditer(r"(?<![\w:])(lumen[\w:]*|ALERTS)\b", masked):
        rest = expr[match.end() :]
        selector = re.match(r"\{[^}]*\}", rest)
        if not selector or not re.search(r'gateway=~"\$gateway(\|)?"', selector.group()):
            missing.append(match.group() + (selector.group() if selector else ""))
    return missing


def _gateway_variable(dashboard: dict) -> dict:
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "gateway"]
    return variable


def test_every_dashboard_has_the_gateway_variable():
    for name, dashboard in _dashboards().items():
        variable = _gateway_variable(dashboard)
        # first after the datasource: it filters all
        assert dashboard["templating"]["list"][1] is variable, name
        assert variable["type"] == "query" and variable["query"] == (
            "label_values(lumen_gateway_status, gateway)"
        )
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"
        assert variable["datasource"]["uid"] == PICKED


def test_every_query_filters_by_gateway():
    """Targets, the annotation and every variable but the gateway variable itself."""
    checked = 0
    for name, dashboard in _dashboards().items():
        source = _gateway_variable(dashboard)["query"]
        for expr in raw_expressions(dashboard):
            if source.startswith(f"label_values({expr},"):
                continue
            checked += 1
            assert _unfiltered_selectors(expr) == [], (name, expr)
    assert checked > 40


def test_the_gateway_filter_check_finds_a_missing_filter():
    assert _unfiltered_selectors(f'sum(lumen_x{{{GATEWAY}}}) / lumen:y{{a="lumen_z"}}') == [
        'lumen:y{a="lumen_z"}'
    ]
    assert _unfiltered_selectors("time() - max(lumen_x)") == ["lumen_x"]
    assert _unfiltered_selectors(f'ALERTS{{{GATEWAY[:-1]}|"}} or up{{job="x"}}') == []


def test_legends_name_the_gateway_where_several_can_show():
    for name, dashboard in _dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                expr, legend = target["expr"], target.get("legendFormat")
                aggregated = re.match(r"^(sum|max|min|time\(\) - max)\(", expr)
                if legend is None or aggregated or expr.startswith("up{"):
                    continue
                assert "{{gateway}}" in legend, (name, panel["title"], legend)


def test_fleet_dashboard_shows_each_gateway_and_one_rule_across_gateways():
    fleet = _by_uid("lumen-fleet")
    assert fleet["title"] == "Lumen · Fleet"
    names = [v["name"] for v in fleet["templating"]["list"]]
    assert names[:3] == ["datasource", "gateway", "rule"]
    tables = {p["title"]: p for p in panels(fleet) if p["type"] == "table"}
    gateways = tables["Gateways"]
    exprs = " ".join(_exprs(gateways))
    for needed in (
        "lumen_gateway_status{",
        "lumen:metrics_age_seconds{",
        "lumen_rule_events_pending{",
        "lumen_rule_last_verdict{",
        'lumen_rule_effect_verdict{verdict="warning"',
    ):
        assert needed in exprs, needed
    _, rename = _organized(gateways)
    status = next(
        o for o in gateways["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Status"
    )
    (mapping,) = next(p["value"] for p in status["properties"] if p["id"] == "mappings")
    assert {k: v["text"] for k, v in mapping["options"].items()} == STATES
    assert rename["verdict"] == "Its verdict"
    counts = tables["Verdicts per gateway"]
    matrix = counts["transformations"][0]
    assert matrix["id"] == "groupingToMatrix"
    assert matrix["options"] == {
        "rowField": "gateway",
        "columnField": "verdict",
        "valueField": "Value",
    }
    side = tables["Verdict on $rule, by gateway"]
    assert side["transformations"][0]["options"] == {
        "rowField": "rule",
        "columnField": "gateway",
        "valueField": "verdict",
    }
    per_signal = next(
        t for title, t in tables.items() if title.startswith("Latest effect of $rule")
    )
    assert _organized(per_signal)[0][:3] == ["rule", "metric", "gateway"]
    assert all('rule=~"$rule"' in e for e in _exprs(side) + _exprs(per_signal))


def test_every_dashboard_links_to_the_runbook():
    for name, dashboard in _dashboards().items():
        (link,) = [link for link in dashboard["links"] if link["title"] == "Runbook"]
        assert link["type"] == "link" and link["url"] == "${runbook_url}", name
        (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "runbook_url"]
        assert variable["type"] == "textbox" and variable["hide"] == 2
        assert variable["query"] == variable["current"]["value"] == RUNBOOK_URL
    assert RUNBOOK_URL == "http://localhost:8088/runbook.html"


# --- queries -----------------------------------------------------------------------------


def test_every_query_parses_as_promql(tmp_path, promtool):
    """Every target, annotation and variable query, variables filled in, through promtool."""
    rules = []
    for name, dashboard in _dashboards().items():
        for number, expr in enumerate(expressions(dashboard)):
            rules.append(
                {"record": f"dashboard:{Path(name).stem.replace('-', '_')}:{number}", "expr": expr}
            )
    assert len(rules) > 30
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}), "utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_queries_read_only_published_metrics_and_recorded_rules():
    records = _records()
    for dashboard in _dashboards().values():
        for expr in expressions(dashboard):
            names = series_names(expr, EXPORTER_METRICS)
            unknown = names - EXPORTER_METRICS - records
            assert unknown == set(), expr
            bare = set(re.findall(r"(?<![\w:])(up|ALERTS)(?=\{)", expr))
            assert bare <= PROMETHEUS_SERIES


def test_queries_use_no_prometheus_3_only_syntax():
    for dashboard in _dashboards().values():
        for expr in raw_expressions(dashboard):
            # quoted (UTF-8) metric names and Prometheus 3 renamed functions
            assert not re.search(r'\{\s*"', expr), expr
            assert not re.search(r"double_exponential_smoothing|info\(", expr), expr


def test_expressions_fill_in_variables():
    dashboard = {
        "panels": [
            {
                "type": "row",
                "panels": [{"targets": [{"expr": 'a{rule=~"$rule"}[$__rate_interval]'}]}],
            },
            {"targets": [{"expr": "b[${__range}]", "refId": "A"}, {"expr": "c", "hide": True}]},
        ],
        "annotations": {"list": [{"enable": True, "target": {"expr": 'd{x="${host:regex}"}'}}]},
        "templating": {
            "list": [
                {
                    "name": "rule",
                    "type": "query",
                    "includeAll": True,
                    "allValue": ".*",
                    "query": 'label_values(lumen_x{a="b"}, rule)',
                },
                {
                    "name": "host",
                    "type": "query",
                    "current": {"value": ["h1", "h2"]},
                    "query": {"query": "query_result(max(lumen_y))"},
                },
                {"name": "plain", "type": "query", "query": "label_values(rule)"},
            ]
        },
    }
    assert expressions(dashboard) == [
        'a{rule=~".*"}[1m]',
        "b[1h]",
        'd{x="h1|h2"}',
        'lumen_x{a="b"}',
        "max(lumen_y)",
    ]
    assert expressions(dashboard, {"rule": "creative_min"})[0] == 'a{rule=~"creative_min"}[1m]'
    with pytest.raises(KeyError, match="nope"):
        expressions({"panels": [{"targets": [{"expr": "x[$nope]"}]}]})
