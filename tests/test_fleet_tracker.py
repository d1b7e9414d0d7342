"""One tracker for a fleet: each gateway's own effects file, a broken gateway never stops
the others, new gateway directories are picked up."""

from __future__ import annotations

import errno
import io
import subprocess
import sys
from pathlib import Path

from tests.rootdata import effects, event, sample_rows, write_history, write_metrics
from tracker.fleet import gateways
from tracker.report import Reporter
from tracker.run import Fleet
from tracker.settings import resolve


def _gateway(root: Path, name: str, rule: str = "creative_min") -> Path:
    gw = root / name
    write_metrics(gw, sample_rows(-40, 40))
    write_history(gw, [event(0, rule=rule)])
    return gw


def test_a_single_root_is_one_gateway_named_by_setting_or_directory(tmp_path):
    write_history(tmp_path, [event(0)])
    assert [g.name for g in gateways(tmp_path, env={})] == [tmp_path.name]
    assert [g.name for g in gateways(tmp_path, env={"LUMEN_GATEWAY": "prod"})] == ["prod"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gateways(empty, env={}) == [gateways(empty, env={})[0]]
    assert gateways(empty, env={})[0].root == empty


def test_empty_logs_and_controls_in_the_root_do_not_hide_a_fleet(tmp_path):
    """A fresh volume of the project image has empty logs/ and controls/ in the root
    (Dockerfile); the demo's fleet written into it is still a fleet."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "controls").mkdir()
    assert [g.root for g in gateways(tmp_path, env={})] == [tmp_path]  # nothing yet
    for name in ("steady", "jittery"):
        _gateway(tmp_path, name)
    assert [g.name for g in gateways(tmp_path, env={})] == ["jittery", "steady"]
    # The tracker's own effects file in the root, from before the fleet, changes nothing.
    (tmp_path / "logs" / "rules_effects.csv").write_text("rule_ts\n")
    assert [g.name for g in gateways(tmp_path, env={})] == ["jittery", "steady"]
    # Any of a gateway's own files in the root makes it one gateway.
    for rel in ("logs/metrics.csv", "controls/rules_history.jsonl", "gateway_activation.yaml"):
        (tmp_path / rel).write_text("")
        assert [g.root for g in gateways(tmp_path, env={})] == [tmp_path], rel
        (tmp_path / rel).unlink()


def test_a_fleet_is_every_subdirectory_laid_out_like_a_root(tmp_path):
    for name in ("site-b", "site-a"):
        _gateway(tmp_path, name)
    (tmp_path / ".hidden" / "logs").mkdir(parents=True)
    (tmp_path / "notes").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # a link to itself is not a gateway
    assert [(g.name, g.root) for g in gateways(tmp_path, env={})] == [
        ("site-a", tmp_path / "site-a"), ("site-b", tmp_path / "site-b")]


def test_each_gateway_gets_its_own_effects_and_a_broken_one_stops_no_other(tmp_path):
    _gateway(tmp_path, "a", rule="creative_min")
    _gateway(tmp_path, "b", rule="risk_max")
    broken = _gateway(tmp_path, "c")
    (broken / "logs" / "rules_effects.csv").write_text("not,our,header\n")
    out = io.StringIO()
    fleet = Fleet(resolve(str(tmp_path), env={}), Reporter(out))
    assert fleet.step() == {"a": 1, "b": 1}
    assert [r["rule"] for r in effects(tmp_path / "a")] == ["creative_min"]
    assert [r["rule"] for r in effects(tmp_path / "b")] == ["risk_max"]
    assert "gateway c: " in out.getvalue() and "rules_effects.csv:1" in out.getvalue()
    assert set(fleet.failing) == {"c"}
    fleet.step()
    assert out.getvalue().count("gateway c: ") == 1  # said once, tried again

    (broken / "logs" / "rules_effects.csv").unlink()
    assert fleet.step() == {"a": 0, "b": 0, "c": 1}
    assert fleet.failing == {} and "rules_effects.csv can be used again" in out.getvalue()


def test_a_gateway_that_appears_is_picked_up(tmp_path):
    _gateway(tmp_path, "a")
    fleet = Fleet(resolve(str(tmp_path), env={}), Reporter(io.StringIO()), keep_warm=True)
    assert fleet.step() == {"a": 1}
    _gateway(tmp_path, "new")
    assert fleet.step() == {"a": 0, "new": 1}
    assert [line.split(":")[0] for line in fleet.lines()] == ["gateway a", "gateway new"]


def test_the_command_on_a_fleet_prints_a_line_per_gateway_and_exits_1_on_a_broken_one(
        tmp_path):
    _gateway(tmp_path, "a")
    broken = _gateway(tmp_path, "b")
    cmd = [sys.executable, "-m", "tracker", "--root", str(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "gateway a: written 1, pending 0, skipped lines 0 (unreliable 0, confounded 0); "
        "verdicts: inconclusive 1",
        "gateway b: written 1, pending 0, skipped lines 0 (unreliable 0, confounded 0); "
        "verdicts: inconclusive 1"]
    (broken / "logs" / "rules_effects.csv").write_text("foreign\n")
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 1
    assert "error: gateway b: " in p.stderr and "move the file aside" in p.stderr
    assert "gateway a: written 0" in p.stdout


def test_a_broken_gateway_first_in_order_stops_none_after_it(tmp_path):
    broken = _gateway(tmp_path, "a")
    (broken / "logs" / "rules_effects.csv").write_text("not,our,header\n")
    _gateway(tmp_path, "b", rule="risk_max")
    assert Fleet(resolve(str(tmp_path), env={}), Reporter(io.StringIO())).step() == {"b": 1}
    assert [r["rule"] for r in effects(tmp_path / "b")] == ["risk_max"]


def test_a_gateway_whose_effects_cannot_be_written_waits_and_says_when_it_can(
        tmp_path, monkeypatch):
    from tests.test_tracker_write_failure import Disk

    disk = Disk(monkeypatch)
    _gateway(tmp_path, "a")
    _gateway(tmp_path, "b")
    out = io.StringIO()
    fleet = Fleet(resolve(str(tmp_path), env={}), Reporter(out), keep_warm=True)
    disk.error = errno.ENOSPC
    assert fleet.step() == {}
    said = out.getvalue().splitlines()
    assert [line.split(": ")[0] for line in said] == ["gateway a", "gateway b"]
    assert all(line.endswith("; its effects wait, trying again at every poll")
               for line in said), said
    disk.error = None
    assert fleet.step() == {"a": 1, "b": 1}
    again = out.getvalue().splitlines()[2:]
    assert again == [
        f"gateway {g}: {tmp_path / g / 'logs' / 'rules_effects.csv'} "
        "is writable again" for g in ("a", "b")]


def test_a_root_that_is_not_a_fleet_is_named_by_the_given_setting(tmp_path, monkeypatch):
    from tracker.fleet import single_name

    monkeypatch.delenv("LUMEN_GATEWAY", raising=False)
    env = {"LUMEN_GATEWAY": " prod "}
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "missing", tmp_path / "empty"):  # nothing written yet
        assert [(g.name, g.root) for g in gateways(root, env=env)] == [("prod", root)]
        assert [g.name for g in gateways(root, env={})] == [root.name]
    assert single_name(Path("/"), env={}) == "gateway"  # a directory without a name
