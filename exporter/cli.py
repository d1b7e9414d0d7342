"""`python -m exporter`: serve the data root's state to Prometheus."""

from __future__ import annotations

import argparse
import os
import sys

from prometheus_client import CollectorRegistry

from exporter.collector import LumenCollector
from exporter.server import make_server
from exporter.sources import DataRoot
from tracker.report import Reporter
from tracker.settings import resolve


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lumen-exporter",
        description="Prometheus exporter for a Rules Resonance Tracker data root: gateway "
        "status, latest signals, rule effects and pipeline health, read at scrape time.",
    )
    p.add_argument("--root", help="data root (default: $LUMEN_ROOT, else the current directory)")
    p.add_argument("--bind", default=os.environ.get("LUMEN_EXPORTER_BIND", "0.0.0.0"),
                   help="address to listen on ($LUMEN_EXPORTER_BIND, default 0.0.0.0)")
    p.add_argument("--port", type=int, default=None,
                   help="port ($LUMEN_EXPORTER_PORT, default 9108)")
    p.add_argument("--recent", type=int, default=50,
                   help="rule changes exposed for annotations (default 50)")
    p.add_argument("--pre", type=float, help="pre window seconds ($LUMEN_EFFECT_PRE_S, 30)")
    p.add_argument("--post", type=float, help="post window seconds ($LUMEN_EFFECT_POST_S, 30)")
    p.add_argument("--guard", type=float, help="guard seconds ($LUMEN_EFFECT_GUARD_S, 1)")
    p.add_argument("--naive-tz", help="zone for timestamps without an offset ($LUMEN_NAIVE_TZ)")
    return p


def build(root: str | None = None, recent: int = 50, **window) -> CollectorRegistry:
    """A registry holding the collector for a data root (also used by tests and bench)."""
    s = resolve(root, window.get("pre"), window.get("post"), window.get("guard"),
                window.get("naive_tz"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LumenCollector(DataRoot(s, Reporter()), recent))
    return registry


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        port = args.port if args.port is not None else int(
            os.environ.get("LUMEN_EXPORTER_PORT", "9108"))
        registry = build(args.root, args.recent, pre=args.pre, post=args.post,
                         guard=args.guard, naive_tz=args.naive_tz)
    except ValueError as e:
        print(f"lumen-exporter: {e}", file=sys.stderr)
        return 2
    try:
        server = make_server(registry, args.bind, port)
    except OSError as e:
        print(f"lumen-exporter: cannot listen on {args.bind}:{port}: {e}", file=sys.stderr)
        return 1
    print(f"lumen-exporter: serving http://{args.bind}:{port}/metrics", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
