"""A fleet of 50 gateways at 5 Hz.

The tracker: one `--follow` process for the whole fleet, side by side with the way before
fleets (one process per gateway): CPU, peak memory, and how soon each effect is written
after its post window ends. The exporter: scrape latency over the 50 gateways, each with a
month of rule changes and effects (one an hour) and a metrics file being appended to.

    python3 bench/fleet_bench.py [--gateways 50] [--seconds 90] [--no-baseline] [--scrapes 500]

Targets (issue "A fleet of gateways"): the one tracker under 25% of one core on average,
peak RSS under 300 MB, every effect written within 2 s of its post window ending; scrape
p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for tracker/exporter

KST = timezone(timedelta(hours=9))
METRICS_HEADER = "ts,phase_diff,entropy_rate,creative_band,risk_band\n"
POST_S = 30.0
CHANGE_EVERY_S = 40.0  # per gateway, staggered: 50 gateways make 1.25 changes a second
TICKS = os.sysconf("SC_CLK_TCK")


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, KST).isoformat(timespec="milliseconds")


def _row(t: float, rnd: random.Random) -> str:
    return f"{_ts(t)},{rnd.random():.4f},{rnd.random():.4f},{rnd.random():.4f},{rnd.random():.4f}\n"


class Gateways:
    """Writes every gateway's metrics at 5 Hz and its rule changes, on the wall clock."""

    def __init__(self, root: Path, n: int, backfill_s: float = 60.0) -> None:
        self.root = root
        self.names = [f"gw{k:02d}" for k in range(n)]
        self.rnd = random.Random(7)
        self.changes: dict[tuple[str, str], float] = {}  # (gateway, rule_ts) -> t0
        self.stop = threading.Event()
        now = time.time()
        self.next_change = {g: now + 5 + k * CHANGE_EVERY_S / n for k, g in enumerate(self.names)}
        for g in self.names:
            (root / g / "logs").mkdir(parents=True)
            (root / g / "controls").mkdir()
            (root / g / "controls" / "rules_history.jsonl").touch()
            rows = [_row(now - backfill_s + i * 0.2, self.rnd) for i in range(int(backfill_s * 5))]
            (root / g / "logs" / "metrics.csv").write_text(METRICS_HEADER + "".join(rows))

    def run(self) -> None:
        tick = time.time()
        while not self.stop.is_set():
            tick += 0.2
            time.sleep(max(0.0, tick - time.time()))
            now = time.time()
            for g in self.names:
                with open(self.root / g / "logs" / "metrics.csv", "a") as f:
                    f.write(_row(now, self.rnd))
                if now >= self.next_change[g]:
                    self.next_change[g] += CHANGE_EVERY_S
                    ts = _ts(now)
                    line = {"ts": ts, "actor": "bench", "rule": "creative_min",
                            "old": 0.2, "new": 0.3}
                    with open(self.root / g / "controls" / "rules_history.jsonl", "a") as f:
                        f.write(json.dumps(line) + "\n")
                    self.changes[(g, ts)] = now


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _written(root: Path, names: list[str]) -> set[tuple[str, str]]:
    seen = set()
    for g in names:
        try:
            with open(root / g / "logs" / "rules_effects.csv", newline="") as f:
                seen.update((g, r["rule_ts"]) for r in csv.DictReader(f))
        except FileNotFoundError:
            pass
    return seen


def measure(n: int, seconds: float, one_process: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gws = Gateways(root, n)
        writer = threading.Thread(target=gws.run, daemon=True)
        writer.start()
        base = [sys.executable, "-m", "tracker", "--follow"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        roots = [root] if one_process else [root / g for g in gws.names]
        procs = [subprocess.Popen([*base, "--root", str(r)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for r in roots]
        first_seen: dict[tuple[str, str], float] = {}
        try:
            time.sleep(5)  # start-up is not the steady state
            cpu0 = sum(_cpu_seconds(p.pid) for p in procs)
            start = time.time()
            while time.time() - start < seconds:
                time.sleep(0.1)
                now = time.time()
                for key in _written(root, gws.names) - first_seen.keys():
                    first_seen[key] = now
            cpu = sum(_cpu_seconds(p.pid) for p in procs) - cpu0
            elapsed = time.time() - start
            rss = sum(_peak_rss_mb(p.pid) for p in procs)
        finally:
            gws.stop.set()
            writer.join()
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
        # Effects whose post window ended inside the measured span, and when they came.
        due = {k: t0 + POST_S for k, t0 in gws.changes.items()
               if start <= t0 + POST_S <= start + seconds - 3}
        lags = sorted(first_seen[k] - end for k, end in due.items() if k in first_seen)
        return {
            "cpu_pct": 100 * cpu / elapsed,
            "rss_mb": rss,
            "due": len(due),
            "written": len(lags),
            "lag_p50": lags[len(lags) // 2] if lags else float("nan"),
            "lag_max": lags[-1] if lags else float("nan"),
        }


def scrape_bench(n: int, scrapes: int) -> None:
    """Scrape latency of one exporter over n gateways, each with a month of changes."""
    from prometheus_client import generate_latest

    from exporter.cli import build
    from exporter.server import exposition
    from tracker.store import HEADER

    rnd = random.Random(3)
    month_start = time.time() - 30 * 86400
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for k in range(n):
            gw = root / f"gw{k:02d}"
            (gw / "logs").mkdir(parents=True)
            (gw / "controls").mkdir()
            (gw / "gateway_activation.yaml").write_text("gateway:\n  status: resonating\n")
            # The exporter reads only the tail of metrics.csv (tracker.metrics_reader.read_tail
            # reads a bounded block), so the file holds the month's last hour, not all of it.
            now = time.time()
            rows = [_row(now - 3600 + i * 0.2, rnd) for i in range(3600 * 5)]
            (gw / "logs" / "metrics.csv").write_text(METRICS_HEADER + "".join(rows))
            with open(gw / "controls" / "rules_history.jsonl", "w") as fh, \
                    open(gw / "logs" / "rules_effects.csv", "w", newline="") as fe:
                w = csv.writer(fe, lineterminator="\n")
                w.writerow(HEADER)
                for h in range(30 * 24):
                    ts = _ts(month_start + h * 3600)
                    rule = f"rule_{h % 12}"
                    fh.write(json.dumps({"ts": ts, "actor": "bench", "rule": rule,
                                         "old": h, "new": h + 1}) + "\n")
                    d = f"{(h % 7 - 3) / 100}"
                    row = {c: "146" for c in HEADER}
                    row.update(rule_ts=ts, actor="bench", rule=rule, old=str(h), new=str(h + 1),
                               pre_s="30", post_s="30", guard_s="1", confounded="0",
                               d_phase=d, d_entropy=d, d_creative=d, d_risk=d)
                    w.writerow([row[c] for c in HEADER])
        registry = build(str(root))
        t = time.perf_counter()
        exposition(registry)
        first = time.perf_counter() - t
        print(f"== exporter over {n} gateways, {30 * 24} changes and effects each ==\n"
              f"first scrape (reads every history and effects file) {first * 1000:.0f} ms",
              flush=True)
        results = {}
        for label, scrape in (("served (families of unchanged files kept as text)",
                               lambda: exposition(registry)),
                              ("every family formatted at every scrape (generate_latest)",
                               lambda: generate_latest(registry))):
            lat = []
            for _ in range(scrapes):
                # Between two scrapes every gateway wrote a sample: each tail is read again.
                now = time.time()
                for k in range(n):
                    with open(root / f"gw{k:02d}" / "logs" / "metrics.csv", "a") as f:
                        f.write(_row(now, rnd))
                t = time.perf_counter()
                scrape()
                lat.append(time.perf_counter() - t)
            lat.sort()
            p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            results[label] = p50
            print(f"{label}: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms over "
                  f"{scrapes} scrapes", flush=True)
        served, plain = results.values()
        print(f"served scrape is {plain / served:.1f}x faster (p50)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateways", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the one-process-per-gateway run")
    ap.add_argument("--scrapes", type=int, default=500)
    args = ap.parse_args()
    scrape_bench(args.gateways, args.scrapes)
    runs = [("one --follow process for the fleet", True)]
    if not args.no_baseline:
        runs.append((f"{args.gateways} --follow processes, one per gateway", False))
    print(f"== {args.gateways} gateways at 5 Hz, a change every {CHANGE_EVERY_S:.0f} s each, "
          f"measured over {args.seconds:.0f} s ==")
    results = []
    for label, one in runs:
        r = measure(args.gateways, args.seconds, one)
        results.append(r)
        print(f"{label}:\n  CPU {r['cpu_pct']:.1f}% of one core, peak RSS {r['rss_mb']:.0f} MB, "
              f"effects written {r['written']}/{r['due']}, after the post window: "
              f"p50 {r['lag_p50']:.2f} s, max {r['lag_max']:.2f} s", flush=True)
    if len(results) == 2:
        a, b = results
        print(f"one process uses {b['cpu_pct'] / a['cpu_pct']:.1f}x less CPU and "
              f"{b['rss_mb'] / a['rss_mb']:.1f}x less memory than one process per gateway")


if __name__ == "__main__":
    main()
