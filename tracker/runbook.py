"""`lumen-runbook`: write DIR/runbook.md and DIR/runbook.html from a data root's effects.

Once, or with --watch whenever a gateway's logs/rules_effects.csv changes, so the stack can
serve a runbook that is never older than the last effect written.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import logging
import os
import re
import threading
import time
from pathlib import Path

from tracker import options
from tracker.csvformat import MetricsFileError
from tracker.filestamp import file_stamp
from tracker.fleet import gateways
from tracker.httpserver import QuietServer
from tracker.runbook_data import load
from tracker.runbook_render import html_page, markdown
from tracker.settings import DEFAULT_NAIVE_ZONE, EFFECTS_CSV, Settings
from tracker.store import EffectsFileError

PROG = "lumen-runbook"
DEFAULT_GRAFANA = "http://localhost:3000"
DEFAULT_CHARTS = 10
DEFAULT_POLL_S = 2.0
_URL = re.compile(r"^https?://[^\s<>\"'()\\`]+$")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        parents=[options.common_flags(windows=False)],
        description="Per rule, every change with its Δs, intervals and verdict, what the "
        "rule does per unit of change pooled over its changes, the favourable patterns and "
        "those to avoid, with pictures: OUT/runbook.md and a self-contained OUT/runbook.html.",
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write the runbook to")
    p.add_argument("--grafana-url",
                   help=f"Grafana base URL for the links ($LUMEN_GRAFANA_URL, {DEFAULT_GRAFANA})")
    p.add_argument("--charts-per-rule", type=int, default=DEFAULT_CHARTS,
                   help=f"pictures of the newest N changes of each rule ({DEFAULT_CHARTS})")
    # The windows are read from each effects row; only the zone of rule_ts is a setting.
    p.add_argument("--naive-tz", help="zone for timestamps without an offset "
                   f"($LUMEN_NAIVE_TZ, default {DEFAULT_NAIVE_ZONE})")
    p.add_argument("--watch", action="store_true",
                   help="keep running: write the runbook again whenever rules_effects.csv "
                   "changes")
    p.add_argument("--poll", type=float, default=DEFAULT_POLL_S,
                   help=f"seconds between checks in --watch ({DEFAULT_POLL_S:g})")
    p.add_argument("--heartbeat", type=Path,
                   help="file touched at every check in --watch, for health checks")
    p.add_argument("--serve", metavar="[ADDR:]PORT",
                   help="with --watch, also serve OUT over HTTP (the stack's runbook page; "
                   "read-only, directory listings off)")
    return p


class _Page(http.server.SimpleHTTPRequestHandler):
    """Serves the runbook files only: no listing of the directory, no request log."""

    def list_directory(self, path):  # noqa: ANN001 - http.server's signature
        self.send_error(404)
        return None

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


def serve(out: Path, where: str) -> QuietServer:
    """An HTTP server for OUT in a background thread; `where` is PORT or ADDR:PORT."""
    host, _, port = where.rpartition(":")
    if not port.isdigit():
        raise options.SettingsError(f"--serve {where!r}: want PORT or ADDR:PORT")
    out.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_Page, directory=str(out))
    server = QuietServer((host or "0.0.0.0", int(port)), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


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


def _stamps(root: Path) -> list[tuple[str, object]]:
    """Every gateway's effects file as it is now; a new gateway changes this too."""
    return [(str(gw.root), file_stamp(gw.root / EFFECTS_CSV)) for gw in gateways(root)]


def watch(s: Settings, out: Path, grafana: str, charts_per_rule: int, poll_s: float,
          log: logging.Logger, heartbeat: Path | None = None) -> None:
    """Until interrupted; a failed run is said and retried at the next change."""
    last: object = None
    while True:
        now = _stamps(s.root)
        if now != last:
            last = now
            try:
                rules, changes = generate(s, out, grafana, charts_per_rule)
                log.info("wrote %s and runbook.html (%d rules, %d changes)",
                         out / "runbook.md", rules, changes)
            except (MetricsFileError, EffectsFileError, OSError) as e:
                log.error("%s", e)
        if heartbeat is not None:
            heartbeat.touch()
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body(log: logging.Logger) -> int:
        s = options.settings(args)
        grafana = args.grafana_url or os.environ.get("LUMEN_GRAFANA_URL") or DEFAULT_GRAFANA
        if not s.root.is_dir():
            raise options.SettingsError(f"data root {s.root} is not a directory "
                                        "(--root, $LUMEN_ROOT)")
        if not _URL.match(grafana):
            raise options.SettingsError(f"Grafana URL {grafana!r} must be "
                                        "http(s)://host[:port][/path] without spaces, quotes "
                                        "or brackets")
        if args.charts_per_rule < 0:
            raise options.SettingsError("--charts-per-rule must be 0 or more")
        if not args.poll > 0:
            raise options.SettingsError("--poll must be a positive number of seconds")
        if args.serve and not args.watch:
            raise options.SettingsError("--serve needs --watch (a page that stays current)")
        if args.watch:
            if args.serve:
                try:
                    server = serve(args.out, args.serve)
                except OSError as e:
                    log.error("cannot serve on %s: %s", args.serve, e)
                    return options.FAILED
                log.info("serving %s on http://%s:%d/runbook.html", args.out,
                         *server.server_address[:2])
            watch(s, args.out, grafana, args.charts_per_rule, args.poll, log,
                  args.heartbeat)
        try:
            rules, changes = generate(s, args.out, grafana, args.charts_per_rule)
        except (MetricsFileError, EffectsFileError, OSError) as e:
            log.error("%s", e)
            return options.FAILED
        print(f"wrote {args.out / 'runbook.md'} and {args.out / 'runbook.html'}: "
              f"{rules} rules, {changes} changes")
        return options.DONE

    return options.run(PROG, body)


if __name__ == "__main__":
    raise SystemExit(main())
