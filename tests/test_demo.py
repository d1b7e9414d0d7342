"""The demo simulator: signal realism, rule changes and their effects, files, on/off, restart."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from demo import cli
from demo.files import (
    METRICS_HEADER,
    append_lines,
    drop_torn_tail,
    history_line,
    last_metrics_ts,
    metrics_line,
    read_history_state,
    write_status,
)
from demo.live import BACKFILL_S, grid_ceil, plan_start, run
from demo.sim import ACTORS, KST, METRICS, RULES, SIGNALS, STATES, Simulator, Tick

REPO = Path(__file__).resolve().parents[1]
START = datetime(2025, 10, 23, 13, 10, 0, tzinfo=KST)
TEN_MIN = 10 * 60 * 5
METRICS_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+09:00$")
T = TypeVar("T")
RULE_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00$")
PHASE, ENTROPY, CREATIVE, RISK = range(4)


def simulate(seed: int, n: int, first_change_s: float = 60.0) -> list[Tick]:
    sim = Simulator(seed, START, first_change_s=first_change_s)
    return [sim.step() for _ in range(n)]


def window_deltas(ticks: list[Tick], i: int) -> list[float]:
    """SPEC effect of a change at tick i: post mean - pre mean, 30 s windows, 1 s guard."""
    pre = ticks[i - 150 : i - 5 + 1]
    post = ticks[i + 5 : i + 150 + 1]
    return [
        statistics.fmean(t.values[k] for t in post) - statistics.fmean(t.values[k] for t in pre)
        for k in range(len(METRICS))
    ]


def lag1_autocorr(xs: list[float]) -> float:
    m = statistics.fmean(xs)
    num = sum((a - m) * (b - m) for a, b in zip(xs, xs[1:], strict=False))
    den = sum((a - m) ** 2 for a in xs)
    return num / den


def warning_pattern(d: list[float]) -> bool:
    return (d[PHASE] > 0 or d[RISK] > 0) and d[ENTROPY] > 0


@pytest.fixture(scope="module")
def ten_minutes() -> list[Tick]:
    return simulate(7, TEN_MIN)


@pytest.fixture(scope="module")
def effects() -> list[tuple[Tick, list[float]]]:
    """Every change, with its windowed deltas, from a few simulated hours over several seeds."""
    out = []
    for seed in range(4):
        ticks = simulate(seed, 5 * 3600 * 1)
        for i, t in enumerate(ticks):
            if t.change is not None and 150 <= i < len(ticks) - 151:
                out.append((t, window_deltas(ticks, i)))
    return out


# --- the simulation core ------------------------------------------------------------------


def test_samples_are_5hz_on_the_grid(ten_minutes: list[Tick]) -> None:
    steps = {b.ts - a.ts for a, b in zip(ten_minutes, ten_minutes[1:], strict=False)}
    assert steps == {timedelta(milliseconds=200)}
    assert ten_minutes[0].ts == START
    assert all(t.ts.utcoffset() == timedelta(hours=9) for t in ten_minutes)


def test_values_stay_in_plausible_ranges(ten_minutes: list[Tick]) -> None:
    for k, metric in enumerate(METRICS):
        xs = [t.values[k] for t in ten_minutes]
        assert all(0.0 <= x <= SIGNALS[metric].high for x in xs), metric
        assert all(math.isfinite(x) for x in xs)
        # Settled part (after the boot transient) sits near the metric's base level.
        settled = xs[300:]
        assert abs(statistics.fmean(settled) - SIGNALS[metric].base) < 0.15, metric
        assert statistics.pstdev(settled) > 0.005, f"{metric} is flat"


def test_noise_is_autocorrelated_not_white(ten_minutes: list[Tick]) -> None:
    for k, metric in enumerate(METRICS):
        xs = [t.values[k] for t in ten_minutes[300:]]
        assert 0.6 < lag1_autocorr(xs) < 1.0, metric
        # ...but it is noise: consecutive samples differ.
        assert sum(a == b for a, b in zip(xs, xs[1:], strict=False)) < len(xs) / 100


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    a, b, c = simulate(3, 2000), simulate(3, 2000), simulate(4, 2000)
    assert a == b
    assert [t.values for t in a] != [t.values for t in c]


def test_rule_changes_every_1_to_3_minutes_with_rotating_actors() -> None:
    ticks = simulate(11, 5 * 7200)
    changes = [t.change for t in ticks if t.change is not None]
    assert len(changes) >= 20
    assert changes[0].ts == START + timedelta(seconds=60)
    gaps = [(b.ts - a.ts).total_seconds() for a, b in zip(changes, changes[1:], strict=False)]
    assert min(gaps) >= 60 and max(gaps) <= 180
    assert len(set(gaps)) > 10, "changes should not come on a fixed beat"
    assert [c.actor for c in changes] == [ACTORS[i % len(ACTORS)] for i in range(len(changes))]
    assert {c.rule for c in changes} == set(RULES)
    current = {name: spec.default for name, spec in RULES.items()}
    for c in changes:
        spec = RULES[c.rule]
        assert c.old == current[c.rule], "old must be the value in force"
        assert spec.low <= c.new <= spec.high
        assert any(math.isclose(abs(c.new - c.old), s, abs_tol=1e-9) for s in spec.steps)
        assert c.note
        current[c.rule] = c.new
        assert RULE_TS.match(c.record()["ts"])


def test_first_change_has_a_full_pre_window_and_is_never_before_it() -> None:
    ticks = simulate(1, 40 * 5, first_change_s=35)
    firsts = [t for t in ticks if t.change is not None]
    assert len(firsts) == 1
    assert firsts[0].ts - START >= timedelta(seconds=30)


def test_start_off_the_second_still_puts_changes_on_whole_seconds() -> None:
    sim = Simulator(2, START + timedelta(milliseconds=400), first_change_s=35)
    change = next(t.change for t in sim.ticks() if t.change is not None)
    assert change.ts.microsecond == 0
    with pytest.raises(ValueError):
        Simulator(2, START + timedelta(milliseconds=100))


def test_raising_creative_min_lifts_creative_band(effects) -> None:
    creative = [(t.change, d) for t, d in effects if t.change.rule == "creative_min"]
    raises = [d for c, d in creative if c.new > c.old]
    lowers = [d for c, d in creative if c.new < c.old]
    assert len(raises) >= 5 and len(lowers) >= 5
    assert statistics.fmean(d[CREATIVE] for d in raises) > 0.005
    assert statistics.fmean(d[CREATIVE] for d in lowers) < -0.005
    assert sum(d[CREATIVE] > 0 for d in raises) >= 0.7 * len(raises)


def test_tightening_risk_max_lowers_risk_band(effects) -> None:
    tight = [
        d
        for t, d in effects
        if t.change.rule == "risk_max" and t.change.new < t.change.old and not t.change.backfire
    ]
    assert len(tight) >= 5
    assert statistics.fmean(d[RISK] for d in tight) < -0.005


def test_backfires_show_the_warning_pattern(effects) -> None:
    backfires = [d for t, d in effects if t.change.backfire]
    others = [d for t, d in effects if not t.change.backfire]
    assert len(backfires) >= 5, "some changes must backfire"
    assert len(others) > 3 * len(backfires), "most changes must not"
    assert statistics.fmean(d[PHASE] for d in backfires) > 0.02
    assert statistics.fmean(d[RISK] for d in backfires) > 0.01
    assert statistics.fmean(d[ENTROPY] for d in backfires) > 0.02
    shown = sum(warning_pattern(d) for d in backfires) / len(backfires)
    assert shown >= 0.9
    assert sum(warning_pattern(d) for d in others) / len(others) < shown / 2


def test_status_boots_through_every_state_then_locks() -> None:
    ticks = simulate(5, TEN_MIN)
    seen: list[str] = []
    for t in ticks:
        if not seen or seen[-1] != t.status:
            seen.append(t.status)
    assert seen[:5] == list(STATES)
    assert all(s in STATES for s in seen)
    assert sum(t.status == "locked" for t in ticks) > len(ticks) / 2


def test_a_backfire_can_cost_the_lock() -> None:
    ticks = simulate(2, 5 * 3600 * 3)
    lost = 0
    for i, t in enumerate(ticks):
        if t.change is not None and t.change.backfire and i + 300 < len(ticks):
            before = ticks[i].status
            after = {x.status for x in ticks[i : i + 300]}
            lost += before == "locked" and ("resonating" in after or "binding" in after)
    assert lost >= 1


def test_simulator_resumes_rule_values_and_actor_rotation() -> None:
    sim = Simulator(9, START, rules={"creative_min": 0.31, "loop_rate_hz": 26.0}, last_actor="Sena")
    assert sim.rules["creative_min"] == 0.31 and sim.rules["loop_rate_hz"] == 26
    change = next(t.change for t in sim.ticks() if t.change is not None)
    assert change.actor == "Lumen"
    assert change.old == {"creative_min": 0.31, "loop_rate_hz": 26}.get(
        change.rule, RULES[change.rule].default
    )


# --- file formats and safe writing ------------------------------------------------------------


def test_line_formats_follow_the_spec(ten_minutes: list[Tick]) -> None:
    line = metrics_line(ten_minutes[1])
    assert line.endswith("\n") and line.count("\n") == 1
    fields = line.rstrip("\n").split(",")
    assert len(fields) == 5 and METRICS_TS.match(fields[0])
    assert fields[0] == "2025-10-23T13:10:00.200+09:00"
    assert all(re.fullmatch(r"\d+\.\d{4}", f) for f in fields[1:])
    assert METRICS_HEADER == "ts,phase_diff,entropy_rate,creative_band,risk_band"
    change = next(t.change for t in ten_minutes if t.change is not None)
    rec = json.loads(history_line(change))
    assert list(rec) == ["ts", "actor", "rule", "old", "new", "note"]
    assert RULE_TS.match(rec["ts"]) and isinstance(rec["new"], int | float)


def test_status_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "gateway_activation.yaml"
    write_status(path, "binding")
    write_status(path, "locked")
    assert yaml.safe_load(path.read_text()) == {"gateway": {"status": "locked"}}
    assert [p.name for p in tmp_path.iterdir()] == ["gateway_activation.yaml"]


def test_torn_tail_is_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "metrics.csv"
    append_lines(path, [METRICS_HEADER + "\n", "2025-10-23T13:10:00.000+09:00,1,2,3,4\n"])
    with open(path, "a") as f:
        f.write("2025-10-23T13:10:00.200+09:00,1,")
    assert last_metrics_ts(path) == START
    drop_torn_tail(path)
    assert path.read_text().endswith(",4\n")
    assert last_metrics_ts(path) == START


def test_history_state_skips_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "rules_history.jsonl"
    lines = [
        {"ts": "2025-10-23T13:10:00+09:00", "actor": "Lubit", "rule": "creative_min", "new": 0.24},
        "not json",
        {"ts": "2025-10-23T13:12:00+09:00", "actor": "Sena", "rule": "risk_max", "new": "0.4"},
        {"ts": "2025-10-23T13:11:00+09:00", "actor": "Lumen", "rule": "other", "new": 2},
        {"ts": "2025-10-23T13:13:00", "actor": "Naive", "rule": "creative_min", "new": 0.3},
    ]
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    # A torn last line (no newline, cut mid-object) is ignored too.
    path.write_text(text + '{"ts":"2025-10-23T13:14:00+09:00","actor":"X","rule":"creative_min"')
    state = read_history_state(path)
    assert state.rules == {"creative_min": 0.24}
    assert state.last_actor == "Lumen"
    assert state.last_ts == START + timedelta(minutes=2)


# --- the live loop, paced by a fake clock -------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def live(root: Path, clock: FakeClock, seconds: float, seed: int | None = 1) -> str:
    out = io.StringIO()
    stop_at = clock.now + seconds
    assert run(root, seed, clock=clock, sleep=clock.sleep, stop_at=stop_at, out=out) == 0
    return out.getvalue()


def read_metrics(root: Path) -> tuple[list[str], list[datetime]]:
    lines = (root / "logs" / "metrics.csv").read_text().splitlines()
    return lines, [datetime.fromisoformat(line.split(",")[0]) for line in lines[1:]]


def read_history(root: Path) -> list[dict]:
    text = (root / "controls" / "rules_history.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


NOW = START.timestamp() + 0.05


def test_fresh_root_gets_backfill_and_an_effect_ready_at_once(tmp_path: Path) -> None:
    now = grid_ceil(NOW)
    for seed in range(8):
        root = tmp_path / str(seed)
        log = live(root, FakeClock(NOW), 60.0, seed)
        assert "new demo" in log
        assert (root / ".lumen-demo").exists()
        lines, ts = read_metrics(root)
        assert lines[0] == METRICS_HEADER
        assert ts[0] == now - timedelta(seconds=BACKFILL_S)
        t0s = [datetime.fromisoformat(h["ts"]) for h in read_history(root)]
        # A change with a full pre window whose post window is already complete at start,
        # so the tracker writes an effect on its very first pass...
        assert any(
            ts[0] <= t0 - timedelta(seconds=30) <= t0 + timedelta(seconds=30) <= now for t0 in t0s
        )
        # ...and another change within the first minute.
        assert len(t0s) >= 2 and t0s[1] <= now + timedelta(seconds=60)
        status = yaml.safe_load((root / "gateway_activation.yaml").read_text())
        assert status["gateway"]["status"] in STATES


def test_live_run_paces_against_the_clock(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    live(tmp_path, clock, 120.0)
    lines, ts = read_metrics(tmp_path)
    assert all(METRICS_TS.match(line.split(",")[0]) for line in lines[1:])
    assert all(b - a == timedelta(milliseconds=200) for a, b in zip(ts, ts[1:], strict=False))
    assert ts[-1].timestamp() <= clock.now + 1e-6, "never writes samples from the future"
    assert clock.now - ts[-1].timestamp() < 0.2
    assert 119 < clock.slept < 121
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        values = [float(row[m]) for m in METRICS]
        assert all(0.0 <= v <= math.pi for v in values)


def test_restart_on_own_root_continues_without_going_back(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    live(tmp_path, clock, 300.0, seed=1)
    first_lines, first_ts = read_metrics(tmp_path)
    first_history = read_history(tmp_path)
    # A crash mid-line elsewhere leaves a torn tail; the restart must not glue onto it.
    with open(tmp_path / "logs" / "metrics.csv", "a") as f:
        f.write("2099-01-01T00:00:00.000+09:00,0.1")
    clock.now += 5.0  # down for five seconds
    log = live(tmp_path, clock, 400.0, seed=2)
    assert "continuing" in log
    lines, ts = read_metrics(tmp_path)
    assert lines[: len(first_lines)] == first_lines
    assert lines.count(METRICS_HEADER) == 1
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))
    assert ts[len(first_ts)] - first_ts[-1] >= timedelta(seconds=5)
    history = read_history(tmp_path)
    assert history[: len(first_history)] == first_history
    new = history[len(first_history) :]
    assert new, "the restarted demo keeps changing rules"
    assert datetime.fromisoformat(new[0]["ts"]) > first_ts[-1]
    # Rule values and the actor rotation carry on from the history.
    last_value = {}
    for h in first_history:
        last_value[h["rule"]] = h["new"]
    assert new[0]["old"] == last_value.get(new[0]["rule"], RULES[new[0]["rule"]].default)
    assert ACTORS.index(new[0]["actor"]) == (ACTORS.index(first_history[-1]["actor"]) + 1) % 5


def test_restart_ahead_of_the_clock_waits_instead_of_rewinding(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    live(tmp_path, clock, 10.0)
    _, ts = read_metrics(tmp_path)
    plan = plan_start(tmp_path, NOW - 3600)  # the host clock jumped back an hour
    assert plan.resumed and plan.start == ts[-1] + timedelta(milliseconds=200)


@pytest.mark.parametrize(
    "user_file",
    ["logs/metrics.csv", "controls/rules_history.jsonl", "gateway_activation.yaml"],
)
def test_user_data_turns_the_demo_off_and_it_idles(tmp_path: Path, user_file: str) -> None:
    path = tmp_path / user_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("mine\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    clock = FakeClock(NOW)
    log = live(tmp_path, clock, 7200.0)
    assert "demo is OFF" in log and user_file in log
    assert clock.slept >= 7200.0, "idles instead of exiting (no crash loop under restart)"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert path.read_text() == "mine\n"


def test_switched_off_it_writes_nothing_even_in_an_empty_root(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    out = io.StringIO()
    run(tmp_path, 1, clock=clock, sleep=clock.sleep, stop_at=NOW + 60, out=out, enabled=False)
    assert "LUMEN_DEMO=off" in out.getvalue()
    assert list(tmp_path.iterdir()) == []
    assert clock.slept >= 60


def test_a_tracker_that_ran_first_does_not_turn_the_demo_off(tmp_path: Path) -> None:
    effects = tmp_path / "logs" / "rules_effects.csv"
    effects.parent.mkdir()
    effects.write_text("rule_ts,actor,rule\n")
    assert "new demo" in live(tmp_path, FakeClock(NOW), 1.0)
    assert effects.read_text() == "rule_ts,actor,rule\n"


def test_marker_makes_existing_files_the_demos_own(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    live(tmp_path, clock, 30.0)
    clock.now += 1
    assert "continuing" in live(tmp_path, clock, 30.0)
    (tmp_path / ".lumen-demo").unlink()
    assert "demo is OFF" in live(tmp_path, clock, 30.0)


# --- the command line -------------------------------------------------------------------------


def test_cli_root_from_flag_env_or_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    def fake_run(root: Path, seed: int | None, enabled: bool, gateways: int) -> int:
        assert gateways == 1
        calls.append((root, seed, enabled))
        return 40 + len(calls)  # a distinct code per call: main must pass run's own through

    monkeypatch.setattr(cli, "run", fake_run)
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)  # keep pytest's handlers
    monkeypatch.delenv("LUMEN_DEMO", raising=False)
    monkeypatch.setenv("LUMEN_ROOT", str(tmp_path / "env"))
    assert cli.main(["--root", str(tmp_path / "flag"), "--seed", "4"]) == 41
    assert cli.main([]) == 42
    monkeypatch.delenv("LUMEN_ROOT")
    monkeypatch.setenv("LUMEN_DEMO", "Off")
    assert cli.main([]) == 43
    assert calls == [
        (tmp_path / "flag", 4, True),
        (tmp_path / "env", None, True),
        (Path("."), None, False),
    ]
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0


@pytest.mark.parametrize(
    "error, code, said",
    [(KeyboardInterrupt(), 130, ""), (PermissionError("denied"), 1, "cannot write the data root")],
)
def test_cli_exit_codes_when_run_stops(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    error: BaseException,
    code: int,
    said: str,
) -> None:
    def failing_run(root: Path, seed: int | None, enabled: bool, gateways: int) -> int:
        raise error

    monkeypatch.setattr(cli, "run", failing_run)
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)
    assert cli.main(["--root", str(tmp_path)]) == code
    err = capsys.readouterr().err
    assert said in err and (str(tmp_path) in err) == bool(said)


def wait_until(condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """condition()'s first true value, polled until timeout_s (then the test fails)."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.02)
    return value


def test_module_runs_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo", "--root", str(tmp_path), "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    metrics = tmp_path / "logs" / "metrics.csv"

    def newest_after(after: datetime) -> datetime | None:
        newest = last_metrics_ts(metrics)
        return newest if newest is not None and newest > after else None

    try:
        # Past the backfill: a sample within 2 s of now; then a newer one, written live.
        live = wait_until(
            lambda: newest_after(datetime.now(KST) - timedelta(seconds=2)), 20, "a live sample"
        )
        wait_until(lambda: newest_after(live), 5, "a sample newer than the first live one")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "new demo" in out
    assert metrics.read_text().endswith("\n")


# --- VS Code tasks ------------------------------------------------------------------------------


def test_vscode_tasks() -> None:
    tasks = {t["label"]: t for t in json.loads((REPO / ".vscode/tasks.json").read_text())["tasks"]}
    assert set(tasks) >= {
        "lumen:rules:effects",
        "lumen:exporter",
        "lumen:stack:up",
        "lumen:stack:down",
        "lumen:demo",
    }
    effects = tasks["lumen:rules:effects"]
    assert effects["command"] == "python3" and effects["args"][:2] == ["-m", "tracker"]
    assert "--follow" not in effects["args"]
    assert effects["options"]["env"]["PYTHONUTF8"] == "1"
    assert tasks["lumen:exporter"]["args"][:2] == ["-m", "exporter"]
    assert tasks["lumen:demo"]["args"][:2] == ["-m", "demo"]
    assert tasks["lumen:stack:up"]["command"] == "docker compose up -d"
    assert tasks["lumen:stack:down"]["command"] == "docker compose down"


# --- with the tracker, once it exists ---------------------------------------------------------


def test_tracker_writes_effects_for_the_demo(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    live(tmp_path, clock, 600.0)
    history = read_history(tmp_path)
    _, ts = read_metrics(tmp_path)
    complete = [
        h for h in history if datetime.fromisoformat(h["ts"]) + timedelta(seconds=30) <= ts[-1]
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUTF8": "1"}
    subprocess.run(
        [sys.executable, "-m", "tracker", "--root", str(tmp_path)], check=True, env=env, timeout=60
    )
    with open(tmp_path / "logs" / "rules_effects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["rule_ts"] for r in rows) == sorted(h["ts"] for h in complete)
    for row in rows:
        # Full windows on both sides: every delta is a number.
        deltas = [row[c] for c in ("d_phase", "d_entropy", "d_creative", "d_risk")]
        assert all(math.isfinite(float(d)) for d in deltas)
