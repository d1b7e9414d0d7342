"""The exporter's exposition, parsed back and checked value by value."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import sources
from exporter.cli import build
from exporter.server import make_server
from tests.rootdata import T0, append, event, sample_rows, ts, write_history, write_metrics
from tracker.contract import SHORT, VERDICTS
from tracker.report import Reporter
from tracker.run import run_once
from tracker.settings import resolve

T0S = T0.timestamp()  # the test change's time, 13:10:00 KST


def scrape(registry) -> dict[str, list]:
    """name -> [(labels, value)] from the text exposition, parsed the way Prometheus does."""
    text = generate_latest(registry).decode("utf-8")
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def one(m, name, **labels):
    got = [v for lab, v in m.get(name, []) if all(lab.get(k) == x for k, x in labels.items())]
    assert len(got) == 1, (name, labels, m.get(name))
    return got[0]


def track(root):
    run_once(resolve(str(root), env={}), Reporter(open(os.devnull, "w")))


def full_root(root, status="resonating"):
    write_metrics(root, sample_rows(-100, 40, value=lambda t: (1 if t < 0 else 3, 0.5,
                                                             2 if t < 20 else 1, 0.25)))
    write_history(root, [event(-60, rule="risk_max", actor="Sena", old=0.5, new=0.4),
                         event(0, rule="creative_min", old=0.22, new=0.24),
                         event(30, rule="loop_rate_hz", actor="Lumen", old=5, new=6)])
    (root / "gateway_activation.yaml").write_text(f"gateway:\n  status: {status}\n")
    track(root)


def test_full_root_value_by_value(tmp_path):
    full_root(tmp_path)
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_gateway_status") == 3
    assert one(m, "lumen_phase_diff") == 3 and one(m, "lumen_risk_band") == 0.25
    assert one(m, "lumen_creative_band") == 1
    assert one(m, "lumen_metrics_last_sample_timestamp_seconds") == pytest.approx(
        T0S + 40, abs=1e-3)
    # the most recent written effect is creative_min's (loop_rate_hz at +30 is pending)
    assert one(m, "lumen_rule_last_phase_diff_delta", rule="creative_min") == 2.0
    assert one(m, "lumen_rule_last_entropy_rate_delta", rule="creative_min") == 0.0
    assert len(m["lumen_rule_last_phase_diff_delta"]) == 1
    assert one(m, "lumen_rule_effect_delta", rule="risk_max", metric="phase_diff") == 0.0
    assert one(m, "lumen_rule_effect_pre_mean", rule="creative_min", metric="phase_diff") == 1
    assert one(m, "lumen_rule_effect_post_mean", rule="creative_min",
               metric="phase_diff") == 3
    assert one(m, "lumen_rule_effect_pre_samples", rule="creative_min",
               metric="risk_band") == 146
    assert one(m, "lumen_rule_effect_confounded", rule="creative_min") == 1  # 30 s later
    assert one(m, "lumen_rule_effect_confounded", rule="risk_max") == 0  # next is 60 s on
    assert one(m, "lumen_rule_effect_timestamp_seconds", rule="risk_max") == T0S - 60
    assert one(m, "lumen_rule_events_total") == 3
    assert one(m, "lumen_rule_effects_written_total") == 2
    assert one(m, "lumen_rule_events_pending") == 1
    assert one(m, "lumen_rule_oldest_pending_timestamp_seconds") == T0S + 30
    assert one(m, "lumen_rule_last_change_timestamp_seconds") == T0S + 30
    assert {lab["window"]: v for lab, v in m["lumen_effect_window_seconds"]} == {
        "pre": 30, "post": 30, "guard": 1}
    changes = {lab["rule"]: (lab, v) for lab, v in m["lumen_rule_change_timestamp_seconds"]}
    lab, v = changes["creative_min"]
    assert v == T0S
    assert (lab["actor"], lab["old"], lab["new"]) == ("Lubit", "0.22", "0.24")
    assert (lab["d_phase"], lab["d_entropy"], lab["d_creative"], lab["d_risk"]) == (
        "2", "0", f"{(95 * 2 + 51) / 146 - 2:.4g}", "0")  # creative falls to 1 at +20 s
    assert changes["loop_rate_hz"][0]["d_phase"] == "pending"
    # Each Δ with its 95% interval, written like the Δ (4 significant digits).
    assert lab["d_phase_interval"] == "[2, 2]" and lab["d_risk_interval"] == "[0, 0]"
    creative = lab["d_creative_interval"]
    low, high = (float(x) for x in creative.strip("[]").split(", "))
    assert low < (95 * 2 + 51) / 146 - 2 < 0 < high and creative == f"[{low:.4g}, {high:.4g}]"
    assert {changes["loop_rate_hz"][0][f"d_{s}_interval"] for s in SHORT} == {"pending"}
    # The intervals and verdicts (issue 10): phase_diff rose by exactly 2 on flat data,
    # entropy_rate and risk_band stayed flat, creative_band's step at +20 s is no clear sign.
    assert one(m, "lumen_rule_last_phase_diff_delta_lo", rule="creative_min") == 2.0
    assert one(m, "lumen_rule_last_phase_diff_delta_hi", rule="creative_min") == 2.0
    lo = one(m, "lumen_rule_last_creative_band_delta_lo", rule="creative_min")
    hi = one(m, "lumen_rule_last_creative_band_delta_hi", rule="creative_min")
    assert lo < (95 * 2 + 51) / 146 - 2 < 0 < hi
    assert one(m, "lumen_rule_effect_delta_lo", rule="risk_max", metric="risk_band") == 0.0
    assert one(m, "lumen_rule_effect_delta_hi", rule="creative_min", metric="phase_diff") == 2
    assert {(lab["rule"], lab["verdict"]): v for lab, v in m["lumen_rule_last_verdict"]} == {
        ("creative_min", v): (1 if v == "caution" else 0) for v in VERDICTS}
    states = {(lab["rule"], lab["verdict"]) for lab, v in m["lumen_rule_effect_verdict"] if v}
    assert states == {("creative_min", "caution"), ("risk_max", "no_change")}
    assert len(m["lumen_rule_effect_verdict"]) == 2 * len(VERDICTS)
    assert one(m, "lumen_rule_effect_timestamp_seconds", rule="creative_min",
               verdict="caution") == T0S
    assert {r: lab["verdict"] for r, (lab, _) in changes.items()} == {
        "risk_max": "no_change", "creative_min": "caution", "loop_rate_hz": "pending"}
    for f in ("metrics.csv", "rules_history.jsonl", "rules_effects.csv",
              "gateway_activation.yaml"):
        assert one(m, "lumen_input_readable", file=f) == 1
        assert one(m, "lumen_input_parse_errors_total", file=f) == 0
    assert one(m, "lumen_exporter_collect_duration_seconds") > 0


def test_an_effects_file_without_intervals_gives_no_interval_or_verdict_series(tmp_path):
    full_root(tmp_path)
    p = tmp_path / "logs" / "rules_effects.csv"
    lines = p.read_text(encoding="utf-8").splitlines()
    cut = lines[0].split(",").index("d_phase_lo")  # the file as written before issue 10
    p.write_text("".join(",".join(line.split(",")[:cut]) + "\n" for line in lines),
                 encoding="utf-8")
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_rule_last_phase_diff_delta", rule="creative_min") == 2.0
    for name in ("lumen_rule_last_phase_diff_delta_lo", "lumen_rule_last_risk_band_delta_hi",
                 "lumen_rule_last_verdict", "lumen_rule_effect_delta_lo",
                 "lumen_rule_effect_delta_hi", "lumen_rule_effect_verdict"):
        assert name not in m, name
    changes = {lab["rule"]: lab for lab, _ in m["lumen_rule_change_timestamp_seconds"]}
    assert changes["creative_min"]["verdict"] == "n/a"
    assert changes["creative_min"]["d_phase"] == "2"
    assert changes["creative_min"]["d_phase_interval"] == "n/a"
    assert one(m, "lumen_rule_effect_timestamp_seconds", rule="risk_max") == T0S - 60
    # An empty label is no label to Prometheus: {verdict="warning"} matches none of them.
    assert {lab.get("verdict", "") for lab, _ in m["lumen_rule_effect_timestamp_seconds"]} == {""}


@pytest.mark.parametrize("state, value", [("unknown", 0), ("initializing", 1), ("binding", 2),
                                          ("resonating", 3), ("locked", 4), ("LOCKED", 4)])
def test_gateway_status_mapping(tmp_path, state, value):
    (tmp_path / "gateway_activation.yaml").write_text(f"gateway:\n  status: {state}\n")
    assert one(scrape(build(str(tmp_path))), "lumen_gateway_status") == value


def test_missing_files_leave_gauges_out_and_say_why(tmp_path):
    m = scrape(build(str(tmp_path)))
    for name in ("lumen_gateway_status", "lumen_phase_diff", "lumen_rule_events_pending",
                 "lumen_metrics_last_sample_timestamp_seconds", "lumen_rule_effect_delta",
                 "lumen_rule_change_timestamp_seconds", "lumen_rule_last_phase_diff_delta"):
        assert name not in m, name
    for f in ("metrics.csv", "rules_history.jsonl", "rules_effects.csv",
              "gateway_activation.yaml"):
        assert one(m, "lumen_input_readable", file=f) == 0
    assert one(m, "lumen_rule_events_total") == 0


def test_empty_files(tmp_path):
    for rel in ("logs/metrics.csv", "controls/rules_history.jsonl", "logs/rules_effects.csv",
                "gateway_activation.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    m = scrape(build(str(tmp_path)))
    assert "lumen_phase_diff" not in m and "lumen_rule_effect_delta" not in m
    assert one(m, "lumen_rule_events_pending") == 0
    assert one(m, "lumen_input_readable", file="rules_history.jsonl") == 1
    # an empty yaml holds no state: 'unknown', counted as a bad document
    assert one(m, "lumen_gateway_status") == 0
    assert one(m, "lumen_input_parse_errors_total", file="gateway_activation.yaml") == 1


def test_bad_lines_are_counted_and_blank_latest_values_skipped(tmp_path):
    rows = sample_rows(-40, 40)
    rows.append(f"{ts(40.2)},,nan,7,8")  # newest row: phase blank, entropy NaN
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)], raw_lines=["{broken", '{"ts": "x", "rule": "r"}'])
    (tmp_path / "gateway_activation.yaml").write_text("gateway: [unclosed\n")
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_input_parse_errors_total", file="rules_history.jsonl") == 2
    assert one(m, "lumen_input_readable", file="gateway_activation.yaml") == 0
    assert one(m, "lumen_input_parse_errors_total", file="gateway_activation.yaml") == 1
    assert "lumen_gateway_status" not in m
    assert one(m, "lumen_phase_diff") == 40.0  # the newest finite value
    assert one(m, "lumen_creative_band") == 7
    assert one(m, "lumen_metrics_last_sample_timestamp_seconds") == pytest.approx(
        T0S + 40.2, abs=1e-3)


def test_awkward_rule_names_survive_the_exposition(tmp_path, promtool):
    weird = 'risk "max"\\\nΔ→규칙'
    write_metrics(tmp_path, sample_rows(-30, 31))
    write_history(tmp_path, [event(0, rule=weird, actor='Se"na', old='a\\b', new="line\nbreak")])
    track(tmp_path)
    registry = build(str(tmp_path))
    m = scrape(registry)
    assert one(m, "lumen_rule_last_entropy_rate_delta", rule=weird) == 0
    (lab, _), = m["lumen_rule_change_timestamp_seconds"]
    assert (lab["rule"], lab["actor"], lab["old"], lab["new"]) == (
        weird, 'Se"na', "a\\b", "line\nbreak")
    promtool_check(promtool, generate_latest(registry))


def test_zero_effects_and_many_rules(tmp_path, promtool):
    write_metrics(tmp_path, sample_rows(-30, 3000))
    write_history(tmp_path, [event(k * 20, rule=f"rule_{k}") for k in range(120)])
    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_rule_events_pending") == 120
    assert "lumen_rule_effect_delta" not in m
    assert len(m["lumen_rule_change_timestamp_seconds"]) == 50  # the last 50 changes
    assert all(lab["d_phase"] == "pending" for lab, _ in m["lumen_rule_change_timestamp_seconds"])
    track(tmp_path)
    m = scrape(build(str(tmp_path), recent=200))
    assert len(m["lumen_rule_effect_delta"]) == 120 * 4
    assert len({lab["rule"] for lab, _ in m["lumen_rule_effect_confounded"]}) == 120
    assert len(m["lumen_rule_change_timestamp_seconds"]) == 120
    promtool_check(promtool, generate_latest(build(str(tmp_path))))


def test_files_are_parsed_again_only_when_they_change(tmp_path, monkeypatch):
    full_root(tmp_path)
    registry = build(str(tmp_path))
    calls = []
    real = sources.read_effects
    monkeypatch.setattr(sources, "read_effects", lambda p: calls.append(p) or real(p))
    scrape(registry)
    assert calls == [tmp_path / "logs" / "rules_effects.csv"]
    scrape(registry)
    scrape(registry)
    assert len(calls) == 1
    h = tmp_path / "controls" / "rules_history.jsonl"
    append(h, json.dumps(event(35, rule="late")) + "\n")
    m = scrape(registry)
    assert one(m, "lumen_rule_events_total") == 4 and len(calls) == 1
    append(tmp_path / "logs" / "metrics.csv",
           "".join(r + "\n" for r in sample_rows(40.2, 70)))
    track(tmp_path)
    m = scrape(registry)
    assert len(calls) == 2
    assert one(m, "lumen_rule_effects_written_total") == 4
    assert one(m, "lumen_rule_events_pending") == 0


def promtool_check(promtool: str, exposition: bytes) -> None:
    p = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True)
    assert p.returncode == 0 and p.stdout == b"" and p.stderr == b"", p


def test_promtool_finds_nothing_to_say(tmp_path, promtool):
    full_root(tmp_path)
    promtool_check(promtool, generate_latest(build(str(tmp_path))))
    promtool_check(promtool, generate_latest(build(str(tmp_path / "empty"))))


@pytest.fixture()
def server(tmp_path):
    full_root(tmp_path)
    srv = make_server(build(str(tmp_path)), "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_http_paths(server):
    with urllib.request.urlopen(server + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert re.search(rb'^lumen_gateway_status\{gateway="[^"]+"\} 3\.0$', r.read(), re.M)
    with urllib.request.urlopen(server + "/healthz") as r:
        assert r.status == 200 and r.read() == b"ok\n"
    for path in ("/", "/anything?x=1"):
        req = urllib.request.Request(server + path)
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as e:
            opener.open(req)
        assert e.value.code == 302 and e.value.headers["Location"] == "/metrics"
    with urllib.request.urlopen(server + "/") as r:  # followed, it lands on the metrics
        assert b"lumen_phase_diff" in r.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_cli_help_and_bad_settings(tmp_path):
    p = subprocess.run([sys.executable, "-m", "exporter", "--help"], capture_output=True,
                       text=True)
    assert p.returncode == 0 and "--bind" in p.stdout and "LUMEN_EXPORTER_PORT" in p.stdout
    p = subprocess.run([sys.executable, "-m", "exporter", "--root", str(tmp_path)],
                       capture_output=True, text=True,
                       env={**os.environ, "LUMEN_EXPORTER_PORT": "not-a-port"})
    assert p.returncode == 2 and "not-a-port" in p.stderr


def test_bad_rows_in_the_metrics_tail_are_counted_once(tmp_path):
    rows = sample_rows(-10, 0)
    rows[-3] = "garbage"
    rows[-2] = rows[-2].rsplit(",", 1)[0]  # a field short
    rows[-1] = f"{ts(0)},,,,"  # blank values: the newest finite ones come from earlier rows
    m = write_metrics(tmp_path, rows)
    registry = build(str(tmp_path))
    got = scrape(registry)
    assert one(got, "lumen_input_parse_errors_total", file="metrics.csv") == 2
    assert one(got, "lumen_phase_diff") == -0.6  # the row at -0.6 s, before the bad ones
    append(m, f"{ts(0.2)},1,1,1,1\n")
    got = scrape(registry)
    assert one(got, "lumen_input_parse_errors_total", file="metrics.csv") == 2
    assert one(got, "lumen_phase_diff") == 1


def test_unreadable_file_is_said_once_on_stderr(tmp_path, capsys):
    (tmp_path / "gateway_activation.yaml").write_text("gateway: [unclosed\n")
    registry = build(str(tmp_path))
    scrape(registry)
    scrape(registry)
    err = capsys.readouterr().err
    assert err.count("gateway_activation.yaml: cannot read:") == 1
