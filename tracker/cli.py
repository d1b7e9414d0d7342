"""`python -m tracker`: compute rule effects into logs/rules_effects.csv."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tracker import options
from tracker.fileerrors import dangling
from tracker.fleet import gateways
from tracker.report import Reporter
from tracker.run import Fleet, follow

PROG = "lumen-rules-effects"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        parents=[options.common_flags()],
        description="For every rule change in controls/rules_history.jsonl, the mean of each "
        "signal in logs/metrics.csv just before and just after it, appended to "
        "logs/rules_effects.csv once the post window is complete.",
    )
    p.add_argument("--follow", action="store_true",
                   help="keep running: write each effect as soon as its post window is complete")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between polls in --follow")
    p.add_argument("--heartbeat", type=Path,
                   help="file touched at every poll in --follow, for health checks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body(log: logging.Logger) -> int:
        s = options.settings(args)
        rep = Reporter(log=log)
        single = [gw.root for gw in gateways(s.root)] == [s.root]
        if single and not s.history_path.exists():
            log.info("%s: not found%s; no rule changes to track yet", s.history_path,
                     dangling(s.history_path))
        if single and not s.metrics_path.exists():
            log.info("%s: not found%s; effects stay pending until the gateway writes it "
                     "(wrong --root?)", s.metrics_path, dangling(s.metrics_path))
        if args.follow:
            follow(s, rep, args.poll, args.heartbeat)  # until interrupted
        fleet = Fleet(s, rep)
        fleet.step()
        for line in fleet.lines():
            print(line)  # the result, on stdout; diagnostics on stderr
        return options.FAILED if fleet.failing else options.DONE

    return options.run(PROG, body)
