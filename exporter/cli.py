"""`python -m exporter`: serve the data root's state to Prometheus."""

from __future__ import annotations

import argparse
import logging
import os

from prometheus_client import CollectorRegistry

from exporter.collector import LumenCollector
from exporter.fleet import FleetCollector, FleetRegistry
from exporter.server import make_server
from tracker import options
from tracker.report import Reporter

PROG = "lumen-exporter"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        parents=[options.common_flags()],
        description="Prometheus exporter for a Rules Resonance Tracker data root: gateway "
        "status, latest signals, rule effects and pipeline health, read at scrape time.",
    )
    p.add_argument("--bind", default=os.environ.get("LUMEN_EXPORTER_BIND", "0.0.0.0"),
                   help="address to listen on ($LUMEN_EXPORTER_BIND, default 0.0.0.0)")
    p.add_argument("--port", type=int, default=None,
                   help="port ($LUMEN_EXPORTER_PORT, default 9108)")
    p.add_argument("--recent", type=int, default=50,
                   help="rule changes exposed for annotations (default 50)")
    return p


def build(root: str | None = None, recent: int = 50, **window) -> CollectorRegistry:
    """A registry holding the collector for a data root (also used by tests and bench)."""
    args = argparse.Namespace(root=root, **window)
    rep = Reporter(log=options.logger(PROG))
    return FleetRegistry(FleetCollector(options.settings(args), rep,
                                        lambda root: LumenCollector(root, recent)))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body(log: logging.Logger) -> int:
        raw_port = os.environ.get("LUMEN_EXPORTER_PORT", "9108")
        try:
            port = args.port if args.port is not None else int(raw_port)
        except ValueError as e:
            raise options.SettingsError(f"LUMEN_EXPORTER_PORT={raw_port!r} is not a port") from e
        registry = build(args.root, args.recent, pre=args.pre, post=args.post,
                         guard=args.guard, naive_tz=args.naive_tz)
        try:
            server = make_server(registry, args.bind, port)
        except OSError as e:
            log.error("cannot listen on %s:%s: %s", args.bind, port, e)
            return options.FAILED
        log.info("serving http://%s:%s/metrics", args.bind, port)
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return options.DONE

    return options.run(PROG, body)
