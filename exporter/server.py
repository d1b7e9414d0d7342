"""HTTP(S): GET /metrics, /healthz; any other path redirects to /metrics.

With a web config (exporter/webconfig.py): TLS on every connection, and basic auth on every
path but /healthz, which says only "ok" and serves container health checks.
"""

from __future__ import annotations

import socket
import ssl
from http.server import BaseHTTPRequestHandler

from prometheus_client import CollectorRegistry, generate_latest

from exporter.webconfig import WebConfig
from tracker.httpserver import QuietServer

# The classic text format, which every Prometheus 2.x and 3.x scrapes. Newer clients label
# the same bytes version=1.0.0; the names here need none of what that version adds.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# A TLS client that never finishes its handshake must not hold a thread for long.
HANDSHAKE_TIMEOUT_S = 10


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's text exposition; a registry that keeps its text cached says so."""
    cached = getattr(registry, "exposition", None)
    return cached() if cached is not None else generate_latest(registry)


def make_server(registry: CollectorRegistry, bind: str, port: int,
                web: WebConfig | None = None) -> QuietServer:
    web = web or WebConfig()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: bytes, ctype: str, extra=()) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in [*web.headers.items(), *extra]:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the http.server naming
            path = self.path.split("?", 1)[0]
            if path != "/healthz" and not web.authorized(self.headers.get("Authorization")):
                self._reply(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                            [("WWW-Authenticate", 'Basic realm="lumen-exporter"')])
            elif path == "/metrics":
                self._reply(200, exposition(registry), CONTENT_TYPE)
            elif path == "/healthz":
                self._reply(200, b"ok\n", "text/plain; charset=utf-8")
            else:
                self._reply(302, b"see /metrics\n", "text/plain; charset=utf-8",
                            [("Location", "/metrics")])

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass  # a scrape every few seconds is not news

    class Server(QuietServer):
        address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        request_queue_size = 128  # many clients at once must queue, not be refused

        def finish_request(self, request, client_address) -> None:
            if web.ssl_context is None:
                super().finish_request(request, client_address)
                return
            # The handshake runs here, in the connection's own thread, not in accept().
            request.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                tls = web.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # not TLS, a refused certificate, or gone: nothing to answer
            tls.settimeout(None)
            try:
                super().finish_request(tls, client_address)
            finally:
                # wrap_socket took over the connection: the server closes only the husk.
                self.shutdown_request(tls)

    return Server((bind, port), Handler)
