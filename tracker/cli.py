"""`python -m tracker`: compute rule effects into logs/rules_effects.csv."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracker.csvformat import MetricsFileError
from tracker.fileerrors import dangling, unusable
from tracker.report import Reporter
from tracker.run import follow, run_once
from tracker.settings import DEFAULT_NAIVE_ZONE, resolve
from tracker.store import EffectsFileError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lumen-rules-effects",
        description="For every rule change in controls/rules_history.jsonl, the mean of each "
        "signal in logs/metrics.csv just before and just after it, appended to "
        "logs/rules_effects.csv once the post window is complete.",
    )
    p.add_argument("--root", help="data root (default: $LUMEN_ROOT, else the current directory)")
    p.add_argument("--pre", type=float, help="pre window seconds ($LUMEN_EFFECT_PRE_S, 30)")
    p.add_argument("--post", type=float, help="post window seconds ($LUMEN_EFFECT_POST_S, 30)")
    p.add_argument("--guard", type=float,
                   help="seconds left out on each side of the change ($LUMEN_EFFECT_GUARD_S, 1)")
    p.add_argument("--naive-tz", help="zone for timestamps without an offset ($LUMEN_NAIVE_TZ, "
                   f"default {DEFAULT_NAIVE_ZONE}, KST, the teams' habit)")
    p.add_argument("--follow", action="store_true",
                   help="keep running: write each effect as soon as its post window is complete")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between polls in --follow")
    p.add_argument("--heartbeat", type=Path,
                   help="file touched at every poll in --follow, for health checks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    rep = Reporter()
    try:
        s = resolve(args.root, args.pre, args.post, args.guard, args.naive_tz)
    except ValueError as e:
        print(f"lumen-rules-effects: {e}", file=sys.stderr)
        return 2
    if not s.history_path.exists():
        rep.info(f"{s.history_path}: not found{dangling(s.history_path)}; no rule changes "
                 "to track yet")
    if not s.metrics_path.exists():
        rep.info(f"{s.metrics_path}: not found{dangling(s.metrics_path)}; effects stay "
                 "pending until the gateway writes it (wrong --root?)")
    try:
        if args.follow:
            follow(s, rep, args.poll, args.heartbeat)  # until interrupted
        else:
            print(run_once(s, rep).line())
    except (MetricsFileError, EffectsFileError) as e:
        print(f"lumen-rules-effects: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"lumen-rules-effects: {unusable(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
