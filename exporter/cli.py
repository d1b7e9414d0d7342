"""`python -m exporter`: serve the data root's state to Prometheus."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.collector import DEFAULT_MAX_RULES, LumenCollector
from exporter.server import make_server
from exporter.sources import DataRoot
from exporter.webconfig import WebConfigError, load
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
    p.add_argument("--max-rules", type=int, default=None,
                   help="distinct rule names published per per-rule family, the most "
                   f"recently changed ($LUMEN_MAX_RULE_LABELS, default {DEFAULT_MAX_RULES})")
    p.add_argument("--pre", type=float, help="pre window seconds ($LUMEN_EFFECT_PRE_S, 30)")
    p.add_argument("--post", type=float, help="post window seconds ($LUMEN_EFFECT_POST_S, 30)")
    p.add_argument("--guard", type=float, help="guard seconds ($LUMEN_EFFECT_GUARD_S, 1)")
    p.add_argument("--naive-tz", help="zone for timestamps without an offset ($LUMEN_NAIVE_TZ)")
    p.add_argument("--web.config.file", "--web-config-file", dest="web_config",
                   default=os.environ.get("LUMEN_EXPORTER_WEB_CONFIG") or None,
                   help="exporter-toolkit web config (YAML) for TLS and basic auth "
                   "($LUMEN_EXPORTER_WEB_CONFIG; default: plain HTTP, no auth)")
    return p


def build(root: str | None = None, recent: int = 50, max_rules: int = DEFAULT_MAX_RULES,
          **window) -> CollectorRegistry:
    """A registry holding the collector for a data root (also used by tests and bench)."""
    s = resolve(root, window.get("pre"), window.get("post"), window.get("guard"),
                window.get("naive_tz"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LumenCollector(DataRoot(s, Reporter()), recent, max_rules))
    return registry


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
    try:
        port = args.port if args.port is not None else int(
            os.environ.get("LUMEN_EXPORTER_PORT", "9108"))
        registry = build(args.root, args.recent, max_rules_setting(args.max_rules),
                         pre=args.pre, post=args.post, guard=args.guard,
                         naive_tz=args.naive_tz)
        web = load(Path(args.web_config)) if args.web_config else None
    except (ValueError, WebConfigError) as e:
        print(f"lumen-exporter: {e}", file=sys.stderr)
        return 2
    try:
        server = make_server(registry, args.bind, port, web)
    except OSError as e:
        print(f"lumen-exporter: cannot listen on {args.bind}:{port}: {e}", file=sys.stderr)
        return 1
    scheme = web.scheme if web else "http"
    auth = ", basic auth" if web and web.users else ""
    print(f"lumen-exporter: serving {scheme}://{args.bind}:{port}/metrics{auth}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
