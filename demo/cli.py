"""lumen-demo: a simulated gateway writing a live data root (on unless the root holds user data)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from types import FrameType

from demo.live import run
from tracker import options

PROG = "lumen-demo"

_OFF = {"off", "0", "false", "no"}


def _stop(signum: int, frame: FrameType | None) -> None:
    # As PID 1 in a container SIGTERM has no default action; exit so `docker stop` is quick.
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[options.common_flags(windows=False)],
        description=(
            "Simulate the gateway: 5 Hz logs/metrics.csv, rule changes in "
            "controls/rules_history.jsonl every 1-3 minutes and gateway_activation.yaml. "
            "Stays idle if the root already holds data it did not write, "
            "or when LUMEN_DEMO=off."
        ),
    )
    parser.add_argument(
        "--seed", type=int, help="random seed (default: a fresh one, printed at start)"
    )
    parser.add_argument(
        "--gateways", type=int,
        help="simulate a fleet of this many gateways, one subdirectory each, with "
        "different personalities ($LUMEN_DEMO_GATEWAYS, default 1: the root itself)",
    )
    args = parser.parse_args(argv)

    def body(log: logging.Logger) -> int:
        root = options.settings(args).root
        # The stack can switch the demo off outright when the user has named a data
        # directory, even an empty one that their gateway has not written to yet.
        enabled = os.environ.get("LUMEN_DEMO", "auto").strip().lower() not in _OFF
        gateways = args.gateways
        if gateways is None:
            raw = os.environ.get("LUMEN_DEMO_GATEWAYS", "").strip() or "1"
            if not raw.isdigit():
                raise options.SettingsError(f"LUMEN_DEMO_GATEWAYS={raw!r} is not a count")
            gateways = int(raw)
        if not 1 <= gateways <= 100:
            raise options.SettingsError(f"gateways {gateways}: want 1 to 100")
        signal.signal(signal.SIGTERM, _stop)
        try:
            return run(root, args.seed, enabled=enabled, gateways=gateways)
        except KeyboardInterrupt:
            return options.INTERRUPTED  # as every command (docker stop's SIGTERM: 0)
        except OSError as exc:
            log.error("cannot write the data root %s: %s", root, exc)
            return options.FAILED

    return options.run(PROG, body)
