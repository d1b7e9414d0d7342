"""The HTTP server under the exporter's /metrics and the runbook page: a thread per
connection, and quiet about clients that leave before their answer is sent."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - socketserver's
        # A client gone early (a scrape past its timeout, a health check that reads only
        # the status, a closed browser tab) is routine, not a traceback in the log; any
        # other error in a handler still is one.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
