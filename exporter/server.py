"""HTTP: GET /metrics, /healthz; any other path redirects to /metrics."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest

# The classic text format, which every Prometheus 2.x and 3.x scrapes. Newer clients label
# the same bytes version=1.0.0; the names here need none of what that version adds.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's text exposition; a registry that keeps its text cached says so."""
    cached = getattr(registry, "exposition", None)
    return cached() if cached is not None else generate_latest(registry)


def make_server(registry: CollectorRegistry, bind: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: bytes, ctype: str, extra=()) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the http.server naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, exposition(registry), CONTENT_TYPE)
            elif path == "/healthz":
                self._reply(200, b"ok\n", "text/plain; charset=utf-8")
            else:
                self._reply(302, b"see /metrics\n", "text/plain; charset=utf-8",
                            [("Location", "/metrics")])

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass  # a scrape every few seconds is not news

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        request_queue_size = 128  # many clients at once must queue, not be refused

    return Server((bind, port), Handler)
