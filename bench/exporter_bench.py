"""Exporter benchmark: scrape latency on a month of metrics and 10,000 effects rows.

    python3 bench/exporter_bench.py [--data DIR] [--original-scrapes N]

Side by side in one run: (1) the original approach, every row of every file read on every
scrape, (2) this exporter's collector, in process and over HTTP, p50/p99; then 50
concurrent HTTP clients for 10 s, counting errors. Reuses bench/run.py's month data.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gen import START  # noqa: E402
from bench.run import MONTH_ROWS, make_month  # noqa: E402

EFFECT_ROWS = 10_000


def make_root(data: Path) -> Path:
    month = data / "month"
    make_month(month)
    root = data / "exporter"
    (root / "logs").mkdir(parents=True, exist_ok=True)
    (root / "controls").mkdir(parents=True, exist_ok=True)
    link = root / "logs" / "metrics.csv"
    if not link.exists():
        link.symlink_to((month / "logs" / "metrics.csv").resolve())
    (root / "gateway_activation.yaml").write_text("gateway:\n  status: locked\n")
    from tracker.store import HEADER

    span = MONTH_ROWS / 5
    with open(root / "logs" / "rules_effects.csv", "w", newline="") as fe, \
            open(root / "controls" / "rules_history.jsonl", "w") as fh:
        w = csv.writer(fe, lineterminator="\n")
        w.writerow(HEADER)
        for k in range(EFFECT_ROWS):
            ts = (START + timedelta(seconds=60 + k * (span - 120) / EFFECT_ROWS)).isoformat()
            rule = f"rule_{k % 12}"
            ev = {"ts": ts, "actor": "Lubit", "rule": rule, "old": k, "new": k + 1}
            fh.write(json.dumps(ev) + "\n")
            d = (k % 7 - 3) / 100
            w.writerow([ts, "Lubit", rule, k, k + 1, 30, 30, 0.5, 0.5 + d, d, 0.4, 0.41, 0.01,
                        0.3, 0.3 - d, -d, 0.2, 0.2, 0.0, 1, 146, 146, 146, 146, 146, 146, 146,
                        146, 0])
    return root


def original_scrape(root: Path) -> str:
    """What the original exporter did per scrape: read every row of every file."""
    import yaml

    last: dict[str, str] = {}
    with open(root / "logs" / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            last = row
    with open(root / "logs" / "rules_effects.csv", newline="") as f:
        effects = list(csv.DictReader(f))
    status = yaml.safe_load((root / "gateway_activation.yaml").read_text())["gateway"]["status"]
    lines = [f"lumen_gateway_status {status!r}"]
    lines += [f"lumen_{m} {last[m]}" for m in ("phase_diff", "entropy_rate", "creative_band",
                                               "risk_band")]
    lines.append(f'lumen_rule_last_phase_diff_delta{{rule="{effects[-1]["rule"]}"}} '
                 f'{effects[-1]["d_phase"]}')
    return "\n".join(lines)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def load(url: str, clients: int, seconds: float) -> tuple[int, int, list[float]]:
    ok = errors = 0
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal ok, errors
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    good = r.status == 200 and b"lumen_gateway_status" in r.read()
            except OSError:
                good = False
            with lock:
                lat.append(time.perf_counter() - t)
                ok += good
                errors += not good

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return ok, errors, lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    ap.add_argument("--original-scrapes", type=int, default=2)
    ap.add_argument("--scrapes", type=int, default=2000)
    args = ap.parse_args()
    root = make_root(args.data)

    from prometheus_client import generate_latest

    from exporter.cli import build
    from exporter.server import make_server

    print(f"== {MONTH_ROWS:,} metrics rows, {EFFECT_ROWS:,} effects and history rows ==")
    orig = []
    for _ in range(args.original_scrapes):
        t = time.perf_counter()
        original_scrape(root)
        orig.append(time.perf_counter() - t)
    o50 = statistics.median(orig)
    print(f"original (every row, every scrape): median {o50:8.3f} s over {len(orig)} scrapes")

    registry = build(str(root))
    t = time.perf_counter()
    generate_latest(registry)
    print(f"exporter first scrape (parses effects and history once): "
          f"{(time.perf_counter() - t) * 1000:.1f} ms")
    lat = []
    for _ in range(args.scrapes):
        t = time.perf_counter()
        generate_latest(registry)
        lat.append(time.perf_counter() - t)
    p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
    print(f"exporter in process: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms over "
          f"{len(lat)} scrapes; {o50 / p50:,.0f}x faster than the original (p50)")

    srv = make_server(registry, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/metrics"
    _, _, lat = load(url, 1, 3.0)
    print(f"exporter over HTTP, one client: p50 {pct(lat, 0.5) * 1000:.2f} ms, "
          f"p99 {pct(lat, 0.99) * 1000:.2f} ms over {len(lat)} scrapes")
    ok, errors, lat = load(url, 50, 10.0)
    print(f"50 concurrent clients for 10 s: {ok} scrapes ok, {errors} errors, "
          f"p50 {pct(lat, 0.5) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} ms")
    srv.shutdown()


if __name__ == "__main__":
    main()
