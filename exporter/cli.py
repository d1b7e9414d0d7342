"""`python -m exporter`: serve the data root's state to Prometheus."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.collector import DEFAULT_MAX_RULES, LumenCollector
from exporter.fleet import FleetCollector, FleetRegistry
from exporter.server import make_server
from exporter.webconfig import WebConfigError, load
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
    p.add_argument("--port", type=int,
                   help="port ($LUMEN_EXPORTER_PORT, default 9108)")
    p.add_argument("--recent", type=int, default=50,
                   help="rule changes exposed for annotations (default 50)")
    p.add_argument("--max-rules", type=int,
                   help="distinct rule names published per per-rule family, the most "
                   f"recently changed ($LUMEN_MAX_RULE_LABELS, default {DEFAULT_MAX_RULES})")
    p.add_argument("--web.config.file", "--web-config-file", dest="web_config",
                   default=os.environ.get("LUMEN_EXPORTER_WEB_CONFIG"),
                   help="exporter-toolkit web config (YAML) for TLS and basic auth "
                   "($LUMEN_EXPORTER_WEB_CONFIG; default: plain HTTP, no auth)")
    return p


def build(root: str | None = None, recent: int = 50, max_rules: int = DEFAULT_MAX_RULES,
          **window) -> CollectorRegistry:
    """A registry holding the collector for a data root (also used by tests and bench)."""
    args = argparse.Namespace(root=root, **window)
    rep = Reporter(log=options.logger(PROG))
    return FleetRegistry(FleetCollector(options.settings(args), rep,
                                        lambda root: LumenCollector(root, recent, max_rules)))


def max_rules_setting(flag: int | None) -> int:
    """--max-rules, else $LUMEN_MAX_RULE_LABELS, else the default; at least 1."""
    text = os.environ.get("LUMEN_MAX_RULE_LABELS", "")
    try:
        value = flag if flag is not None else int(text) if text else DEFAULT_MAX_RULES
    except ValueError:
        raise ValueError(f"LUMEN_MAX_RULE_LABELS={text!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"--max-rules/LUMEN_MAX_RULE_LABELS must be 1 or more, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body(log: logging.Logger) -> int:
        raw_port = os.environ.get("LUMEN_EXPORTER_PORT", "9108")
        try:
            port = args.port if args.port is not None else int(raw_port)
        except ValueError as e:
            raise options.SettingsError(f"LUMEN_EXPORTER_PORT={raw_port!r} is not a port") from e
        try:
            max_rules = max_rules_setting(args.max_rules)
            web = load(Path(args.web_config)) if args.web_config else None
        except (ValueError, WebConfigError) as e:
            raise options.SettingsError(str(e)) from e
        registry = build(args.root, args.recent, max_rules, pre=args.pre, post=args.post,
                         guard=args.guard, naive_tz=args.naive_tz)
        try:
            server = make_server(registry, args.bind, port, web)
        except OSError as e:
            log.error("cannot listen on %s:%s: %s", args.bind, port, e)
            return options.FAILED
        scheme = web.scheme if web else "http"
        auth = ", basic auth" if web and web.users else ""
        log.info("serving %s://%s:%s/metrics%s", scheme, args.bind, port, auth)
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return options.DONE

    return options.run(PROG, body)
