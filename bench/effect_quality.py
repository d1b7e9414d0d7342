"""How far a user can trust an effect: the plain sign reading beside the tracker's intervals.

    python3 bench/effect_quality.py [--seed 1,2,3] [--events 1000] [--keep DIR]

Builds its own evaluation set, like the one issue 10 describes, runs the real tracker over
it (tracker.run.run_once on data roots in a temp directory, so the figures are what users
get), and prints side by side for the plain reading (the sign of Δ) and for the intervals
and verdicts: coverage of the true shift, false warnings on changes that did nothing,
signals called up or down that did not move, recall of real warning patterns, and the
point error against the truth.

The set: gateways writing 5 Hz samples of four signals, each signal AR(1) noise with its
own per-sample correlation drawn uniformly from 0.8-0.97 and its own scale and level;
rare single-sample glitches of ±8 noise sd and a few blank fields; rule changes 100-240 s
apart, of which half change nothing and half shift one or two signals by 0.5-3 noise sd
(the stationary, marginal sd), a third of those in the warning pattern (phase_diff or
risk_band up together with entropy_rate up). Shifts are steps at the change and persist.
Half the gateways also drift: a slow sinusoid of 0.5-1 noise sd amplitude whose half
period is 15-45 min (about one noise sd of drift over 15-45 min).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracker.contract import (
    SHORT,  # noqa: E402
    VERDICTS,  # noqa: E402
)
from tracker.contract import SIGNALS as METRICS  # noqa: E402
from tracker.report import Reporter  # noqa: E402
from tracker.run import run_once  # noqa: E402
from tracker.settings import resolve  # noqa: E402

HZ = 5
KST = timezone(timedelta(hours=9))
START = datetime(2025, 10, 23, 9, 0, 0, tzinfo=KST)
EVENTS_PER_GATEWAY = 30
GAP_S = (100, 240)  # seconds between rule changes
LEAD_S = 150  # samples before the first change: its pre window and history
RHO = (0.8, 0.97)
SHIFT_SD = (0.5, 3.0)
WARNING_SD = (1.5, 3.0)  # the warning patterns whose recall is scored
GLITCH_RATE = 1 / 1000  # per sample and signal
GLITCH_SD = 8.0
BLANK_RATE = 0.002
DRIFT_AMP_SD = (0.5, 1.0)
DRIFT_HALF_PERIOD_S = (15 * 60, 45 * 60)
RHO_BUCKETS = (0.8, 0.85, 0.9, 0.93, 0.97)


@dataclass
class Truth:
    ts: str
    shift: list[float]  # per signal, in the signal's units
    sd: list[float]  # per signal noise sd
    rho: list[float]
    kind: str  # "none", "effect" or "warning"


def ar1(rng: np.random.Generator, rho: float, n: int, block: int = 512) -> np.ndarray:
    """n samples of stationary AR(1) noise with unit marginal sd, a block at a time."""
    powers = rho ** np.arange(block)
    # T[j, i] = rho^(j - i) for i <= j: x_block = rho^(j+1) x_prev + T @ e_block
    idx = np.arange(block)
    lower = idx[:, None] - idx[None, :]
    t = np.where(lower >= 0, rho ** np.maximum(lower, 0), 0.0)
    e = rng.standard_normal(n) * math.sqrt(1 - rho * rho)
    out = np.empty(n)
    prev = rng.standard_normal() / 1.0  # the stationary start
    for s in range(0, n, block):
        eb = e[s:s + block]
        m = len(eb)
        xb = t[:m, :m] @ eb + prev * rho * powers[:m]
        out[s:s + m] = xb
        prev = xb[-1]
    return out


def make_gateway(root: Path, rng: np.random.Generator, events: int,
                 drift: bool) -> list[Truth]:
    """Writes one data root; returns the truth of each rule change."""
    gaps = rng.uniform(*GAP_S, size=events)
    t_events = LEAD_S + np.concatenate(([0.0], np.cumsum(gaps[:-1])))
    n = int((t_events[-1] + 60) * HZ)
    t = np.arange(n) / HZ
    rhos = rng.uniform(*RHO, size=4)
    sds = 10 ** rng.uniform(-2.5, 0, size=4)  # scale-free: from 0.003 to 1
    levels = rng.uniform(-1, 1, size=4)
    kinds = rng.permutation(["none"] * (events - events // 2) + ["effect"] * (events // 2))
    truths: list[Truth] = []
    steps = np.zeros((events, 4))
    for k, kind in enumerate(kinds):
        shift = np.zeros(4)
        if kind == "effect" and rng.random() < 1 / 3:
            kind = "warning"
            shift[rng.choice([0, 3])] = rng.uniform(*SHIFT_SD)  # phase_diff or risk_band up
            shift[1] = rng.uniform(*SHIFT_SD)  # entropy_rate up
        elif kind == "effect":
            which = rng.choice(4, size=rng.integers(1, 3), replace=False)
            shift[which] = rng.uniform(*SHIFT_SD, size=len(which)) * rng.choice([-1, 1],
                                                                                size=len(which))
        steps[k] = shift * sds
        truths.append(Truth("", list(steps[k]), list(sds), list(rhos), str(kind)))
    cols = []
    for m in range(4):
        x = levels[m] + sds[m] * ar1(rng, rhos[m], n)
        for k in range(events):
            x[t >= t_events[k]] += steps[k, m]
        if drift:
            amp = rng.uniform(*DRIFT_AMP_SD) * sds[m]
            half = rng.uniform(*DRIFT_HALF_PERIOD_S)
            x += amp * np.sin(math.pi * t / half + rng.uniform(0, 2 * math.pi))
        glitch = rng.random(n) < GLITCH_RATE
        x[glitch] += GLITCH_SD * sds[m] * rng.choice([-1, 1], size=int(glitch.sum()))
        cols.append(x)
    blank = rng.random((4, n)) < BLANK_RATE
    _write_metrics(root / "logs" / "metrics.csv", cols, blank)
    lines = []
    for k, tr in enumerate(truths):
        tr.ts = _ts(round(t_events[k] * 1000))
        lines.append(json.dumps({"ts": tr.ts, "actor": "Bench", "rule": f"rule_{k % 5}",
                                 "old": k, "new": k + 1, "note": tr.kind}) + "\n")
    hist = root / "controls" / "rules_history.jsonl"
    hist.parent.mkdir(parents=True, exist_ok=True)
    hist.write_text("".join(lines), encoding="utf-8")
    return truths


def _ts(ms: int) -> str:
    return (START + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")


def _write_metrics(path: Path, cols: list[np.ndarray], blank: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = [[f"{v:.6g}" for v in c] for c in cols]
    for m in range(4):
        for i in np.flatnonzero(blank[m]):
            text[m][i] = ""
    out = ["ts," + ",".join(METRICS) + "\n"]
    for i in range(len(cols[0])):
        sec, frac = divmod(i, HZ)
        if frac == 0:
            base = (START + timedelta(seconds=sec)).isoformat()
            head, off = base[:19], base[19:]
        out.append(f"{head}.{frac * 200:03d}{off},{text[0][i]},{text[1][i]},"
                   f"{text[2][i]},{text[3][i]}\n")
    path.write_text("".join(out), encoding="utf-8")


@dataclass
class Tally:
    """Counts for one condition (drift or not), for both readings."""

    covered: int = 0
    intervals: int = 0
    missing: int = 0  # event-signals without an interval
    by_rho: dict[float, list[int]] = field(default_factory=dict)
    none_events: int = 0
    none_warning_plain: int = 0
    none_warning_ours: int = 0
    flat_signals: int = 0
    flat_called_plain: int = 0
    flat_called_ours: int = 0
    warn_events: int = 0
    warn_caught_plain: int = 0
    warn_caught_ours: int = 0
    err_plain: list[float] = field(default_factory=list)  # in noise sd
    err_ours: list[float] = field(default_factory=list)
    verdicts_none: dict[str, int] = field(default_factory=dict)
    verdicts_effect: dict[str, int] = field(default_factory=dict)


def _f(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def score(rows: dict[str, dict[str, str]], truths: list[Truth], tally: Tally) -> None:
    for tr in truths:
        row = rows[tr.ts]
        d = [_f(row[f"d_{s}"]) for s in SHORT]
        plain_warning = ((d[0] or 0) > 0 or (d[3] or 0) > 0) and (d[1] or 0) > 0
        ours_warning = row["verdict"] == "warning"
        shifted = [abs(s) > 0 for s in tr.shift]
        bucket = tally.verdicts_none if tr.kind == "none" else tally.verdicts_effect
        bucket[row["verdict"]] = bucket.get(row["verdict"], 0) + 1
        if tr.kind == "none":
            tally.none_events += 1
            tally.none_warning_plain += plain_warning
            tally.none_warning_ours += ours_warning
        if tr.kind == "warning":
            signal = 0 if shifted[0] else 3
            if min(tr.shift[signal] / tr.sd[signal], tr.shift[1] / tr.sd[1]) >= WARNING_SD[0]:
                tally.warn_events += 1
                tally.warn_caught_plain += plain_warning
                tally.warn_caught_ours += ours_warning
        for m, s in enumerate(SHORT):
            lo, hi = _f(row[f"d_{s}_lo"]), _f(row[f"d_{s}_hi"])
            if d[m] is None:
                continue
            tally.err_plain.append((d[m] - tr.shift[m]) / tr.sd[m])
            if lo is None or hi is None:
                tally.missing += 1
                continue
            tally.err_ours.append(((lo + hi) / 2 - tr.shift[m]) / tr.sd[m])
            hit = lo <= tr.shift[m] <= hi
            tally.intervals += 1
            tally.covered += hit
            b = max(x for x in RHO_BUCKETS[:-1] if x <= tr.rho[m])
            tally.by_rho.setdefault(b, [0, 0])
            tally.by_rho[b][0] += hit
            tally.by_rho[b][1] += 1
            if not shifted[m]:
                tally.flat_signals += 1
                tally.flat_called_plain += d[m] != 0
                tally.flat_called_ours += lo > 0 or hi < 0


def run_condition(base: Path, rng: np.random.Generator, events: int, drift: bool) -> Tally:
    tally = Tally()
    gateways = max(1, round(events / EVENTS_PER_GATEWAY))
    for g in range(gateways):
        root = base / f"{'drift' if drift else 'steady'}-{g}"
        truths = make_gateway(root, rng, EVENTS_PER_GATEWAY, drift)
        run_once(resolve(str(root), env={}), Reporter(io.StringIO()))
        with open(root / "logs" / "rules_effects.csv", newline="", encoding="utf-8") as f:
            rows = {r["rule_ts"]: r for r in csv.DictReader(f)}
        score(rows, truths, tally)
    return tally


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}%" if b else "   n/a"


def _err(errs: list[float]) -> str:
    if not errs:
        return "n/a"
    e = np.asarray(errs)
    return f"RMSE {math.sqrt(float(np.mean(e * e))):.3f} sd, mean |err| {np.mean(np.abs(e)):.3f} sd"


def report(seed: int, steady: Tally, drift: Tally, seconds: float) -> dict[str, float]:
    both = Tally()
    for t in (steady, drift):
        for name in ("none_events", "none_warning_plain", "none_warning_ours", "flat_signals",
                     "flat_called_plain", "flat_called_ours", "warn_events",
                     "warn_caught_plain", "warn_caught_ours", "missing"):
            setattr(both, name, getattr(both, name) + getattr(t, name))
        both.err_plain += t.err_plain
        both.err_ours += t.err_ours
    print(f"== seed {seed}: {steady.none_events + drift.none_events} no-effect changes, "
          f"{both.warn_events} warning patterns of {WARNING_SD[0]:g}-{WARNING_SD[1]:g} sd "
          f"({seconds:.0f} s) ==")
    print(f"{'':44s}{'plain sign':>14s}{'intervals':>14s}   target")
    print(f"{'coverage of the true shift, no drift':44s}{'0.0%':>14s}"
          f"{_pct(steady.covered, steady.intervals):>14s}   93-97%")
    print(f"{'coverage of the true shift, drift':44s}{'0.0%':>14s}"
          f"{_pct(drift.covered, drift.intervals):>14s}   >= 90%")
    print(f"{'no-effect changes given warning':44s}"
          f"{_pct(both.none_warning_plain, both.none_events):>14s}"
          f"{_pct(both.none_warning_ours, both.none_events):>14s}   <= 5%")
    print(f"{'no-effect signals called up or down':44s}"
          f"{_pct(both.flat_called_plain, both.flat_signals):>14s}"
          f"{_pct(both.flat_called_ours, both.flat_signals):>14s}")
    print(f"{'real warning patterns caught (recall)':44s}"
          f"{_pct(both.warn_caught_plain, both.warn_events):>14s}"
          f"{_pct(both.warn_caught_ours, both.warn_events):>14s}   >= 80%")
    print(f"point error, plain Δ:           {_err(both.err_plain)}")
    print(f"point error, interval midpoint: {_err(both.err_ours)}")
    cover = []
    for b in RHO_BUCKETS[:-1]:
        hit, n = [x + y for x, y in zip(steady.by_rho.get(b, [0, 0]), drift.by_rho.get(b, [0, 0]))]
        cover.append(f"{b:.2f}+ {_pct(hit, n).strip()}")
    print("coverage by per-sample correlation: " + ", ".join(cover))
    for label, t in (("no-effect changes", (steady, drift)), ("changes with an effect",
                                                              (steady, drift))):
        counts: dict[str, int] = {}
        for x in t:
            src = x.verdicts_none if label == "no-effect changes" else x.verdicts_effect
            for k, v in src.items():
                counts[k] = counts.get(k, 0) + v
        total = sum(counts.values())
        print(f"verdicts on {label}: " + ", ".join(
            f"{v} {_pct(counts[v], total).strip()}" for v in VERDICTS if counts.get(v)))
    if both.missing:
        print(f"signals without an interval: {both.missing}")
    return {
        "coverage_steady": steady.covered / max(steady.intervals, 1),
        "coverage_drift": drift.covered / max(drift.intervals, 1),
        "false_warning": both.none_warning_ours / max(both.none_events, 1),
        "recall": both.warn_caught_ours / max(both.warn_events, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", default="1,2,3",
                    help="a seed or a comma-separated list of seeds (default 1,2,3)")
    ap.add_argument("--events", type=int, default=1000,
                    help="rule changes per condition (steady, drift) and seed (default 1000)")
    ap.add_argument("--keep", type=Path, help="write the data roots here and keep them")
    args = ap.parse_args()
    try:
        seeds = [int(s) for s in args.seed.split(",")]
    except ValueError:
        ap.error(f"--seed {args.seed!r}: give integers separated by commas")
    if args.events < 1:
        ap.error("--events must be at least 1")
    results = []
    for seed in seeds:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="effect-quality-") as tmp:
            base = args.keep / f"seed-{seed}" if args.keep else Path(tmp)
            rng = np.random.default_rng(seed)
            steady = run_condition(base, rng, args.events, drift=False)
            drift = run_condition(base, rng, args.events, drift=True)
        results.append(report(seed, steady, drift, time.perf_counter() - t0))
    if len(results) > 1:
        print("== over the seeds (lowest .. highest) ==")
        for key in results[0]:
            vals = [r[key] for r in results]
            print(f"{key:18s} {100 * min(vals):5.1f}% .. {100 * max(vals):5.1f}%")


if __name__ == "__main__":
    main()
