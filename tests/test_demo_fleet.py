"""The demo as a fleet: a subdirectory per simulated gateway, each with its personality,
all of them followed by one tracker."""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from demo.live import fleet, run
from demo.sim import KST
from tests.rootdata import effects
from tracker.fleet import gateways
from tracker.report import Reporter
from tracker.run import Fleet
from tracker.settings import resolve

NOW = datetime(2025, 10, 23, 13, 10, 0, tzinfo=KST).timestamp() + 0.05


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _column(root: Path, k: int) -> list[float]:
    lines = (root / "logs" / "metrics.csv").read_text().splitlines()[1:]
    return [float(line.split(",")[k]) for line in lines]


def test_a_fleet_demo_writes_a_gateway_per_personality_and_one_tracker_follows_them(tmp_path):
    clock = Clock(NOW)
    out = io.StringIO()
    assert run(tmp_path, 3, clock=clock, sleep=clock.sleep, stop_at=NOW + 120, out=out,
               gateways=5) == 0
    names = [name for name, _ in fleet(5)]
    assert names == ["steady", "jittery", "drifting", "busy", "steady-2"]
    assert [g.name for g in gateways(tmp_path, env={})] == sorted(names)
    for name in names:
        assert (tmp_path / name / ".lumen-demo").exists()
        assert (tmp_path / name / "gateway_activation.yaml").exists()
    # jittery's sample-to-sample noise is clearly larger than steady's (2.5x in sd).
    def jitter(name: str) -> float:
        xs = _column(tmp_path / name, 1)
        return statistics.pstdev(b - a for a, b in zip(xs, xs[1:]))
    assert jitter("jittery") > 1.8 * jitter("steady")
    # busy changes its rules about twice as often as steady.
    def changes(name: str) -> int:
        return len((tmp_path / name / "controls" / "rules_history.jsonl").read_text()
                   .splitlines())
    assert changes("busy") > changes("steady")
    assert "jittery: " in out.getvalue()

    tracker = Fleet(resolve(str(tmp_path), env={}), Reporter(io.StringIO()))
    written = tracker.step()
    assert set(written) == set(names) and all(n >= 1 for n in written.values())
    assert all(effects(tmp_path / name) for name in names)


def test_the_fleet_demo_stays_off_where_a_gateway_holds_user_data(tmp_path):
    (tmp_path / "jittery" / "logs").mkdir(parents=True)
    (tmp_path / "jittery" / "logs" / "metrics.csv").write_text("ts,phase_diff\n")
    clock = Clock(NOW)
    out = io.StringIO()
    run(tmp_path, 3, clock=clock, sleep=clock.sleep, stop_at=NOW + 10, out=out, gateways=2)
    assert "demo is OFF" in out.getvalue()
    assert not (tmp_path / "steady").exists()


def test_the_demo_stays_off_on_a_fleet_root_of_user_gateways(tmp_path):
    """A root holding only the user's gateway directories is not empty: a single-gateway
    demo written over it would turn the fleet into one gateway for the tracker."""
    for name in ("site-a", "site-b"):
        (tmp_path / name / "controls").mkdir(parents=True)
        (tmp_path / name / "controls" / "rules_history.jsonl").write_text("")
    clock = Clock(NOW)
    out = io.StringIO()
    run(tmp_path, 3, clock=clock, sleep=clock.sleep, stop_at=NOW + 10, out=out)
    assert "demo is OFF" in out.getvalue()
    assert "site-a/controls/rules_history.jsonl" in out.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site-a", "site-b"]


def test_bad_gateway_counts_are_bad_settings(tmp_path):
    for env in ({"LUMEN_DEMO_GATEWAYS": "many"}, {"LUMEN_DEMO_GATEWAYS": "0"}):
        p = subprocess.run([sys.executable, "-m", "demo", "--root", str(tmp_path)],
                           capture_output=True, text=True, env={"PATH": "", **env}, timeout=30)
        assert p.returncode == 2 and "gateways" in p.stderr.lower(), p.stderr
