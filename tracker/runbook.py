"""`lumen-runbook`: write DIR/runbook.md and DIR/runbook.html from a data root's effects.

Once, or with --watch whenever logs/rules_effects.csv changes, so the stack can serve a
runbook that is never older than the last effect written.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from tracker.metrics import MetricsFileError
from tracker.runbook_data import load
from tracker.runbook_render import html_page, markdown
from tracker.settings import Settings, resolve
from tracker.store import EffectsFileError

PROG = "lumen-runbook"
DEFAULT_GRAFANA = "http://localhost:3000"
DEFAULT_CHARTS = 10
_URL = re.compile(r"^https?://[^\s<>\"'()\\`]+$")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Per rule, every change with its Δs, intervals and verdict, what the "
        "rule does per unit of change pooled over its changes, the favourable patterns and "
        "those to avoid, with pictures: OUT/runbook.md and a self-contained OUT/runbook.html.",
    )
    p.add_argument("--root", help="data root (default: $LUMEN_ROOT, else the current directory)")
    p.add_argument("--out", type=Path, required=True, help="directory to write the runbook to")
    p.add_argument("--grafana-url",
                   help=f"Grafana base URL for the links ($LUMEN_GRAFANA_URL, {DEFAULT_GRAFANA})")
    p.add_argument("--charts-per-rule", type=int, default=DEFAULT_CHARTS,
                   help=f"pictures of the newest N changes of each rule ({DEFAULT_CHARTS})")
    p.add_argument("--naive-tz", help="zone for timestamps without an offset ($LUMEN_NAIVE_TZ, "
                   "+09:00)")
    p.add_argument("--watch", action="store_true",
                   help="keep running: write the runbook again whenever rules_effects.csv "
                   "changes")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between checks in --watch")
    p.add_argument("--heartbeat", type=Path,
                   help="file touched at every check in --watch, for health checks")
    return p


def write_atomically(path: Path, text: str) -> None:
    """Readers (a web server, a browser reload) see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def generate(s: Settings, out: Path, grafana: str, charts_per_rule: int) -> tuple[int, int]:
    """Writes both files; returns (rules, changes)."""
    rb = load(s, charts_per_rule)
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "runbook.md", markdown(rb, grafana))
    write_atomically(out / "runbook.html", html_page(rb, grafana))
    return (sum(len(g.rules) for g in rb.gateways), sum(g.changes for g in rb.gateways))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def watch(s: Settings, out: Path, grafana: str, charts_per_rule: int, poll_s: float,
          heartbeat: Path | None = None) -> None:
    """Until interrupted; a failed run is said and retried at the next change."""
    last: object = object()  # differs from any stamp: the first check writes
    while True:
        now = _stamp(s.effects_path)
        if now != last:
            last = now
            try:
                rules, changes = generate(s, out, grafana, charts_per_rule)
                print(f"{PROG}: wrote {out}/runbook.md and runbook.html "
                      f"({rules} rules, {changes} changes)", file=sys.stderr, flush=True)
            except (MetricsFileError, EffectsFileError, OSError) as e:
                print(f"{PROG}: {e}", file=sys.stderr, flush=True)
        if heartbeat is not None:
            heartbeat.touch()
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    grafana = (args.grafana_url or os.environ.get("LUMEN_GRAFANA_URL") or DEFAULT_GRAFANA)
    try:
        s = resolve(args.root, naive_zone=args.naive_tz)
        if not s.root.is_dir():
            raise ValueError(f"data root {s.root} is not a directory (--root, $LUMEN_ROOT)")
        if not _URL.match(grafana):
            raise ValueError(f"Grafana URL {grafana!r} must be http(s)://host[:port][/path] "
                             "without spaces, quotes or brackets")
        if args.charts_per_rule < 0:
            raise ValueError("--charts-per-rule must be 0 or more")
        if not args.poll > 0:
            raise ValueError("--poll must be a positive number of seconds")
    except ValueError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    try:
        if args.watch:
            watch(s, args.out, grafana, args.charts_per_rule, args.poll, args.heartbeat)
        rules, changes = generate(s, args.out, grafana, args.charts_per_rule)
    except (MetricsFileError, EffectsFileError, OSError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"wrote {args.out / 'runbook.md'} and {args.out / 'runbook.html'}: "
          f"{rules} rules, {changes} changes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
