"""The exporter's and the runbook page's HTTP server: a client gone early is no traceback
in the log (a health check reading only the status did that every 5 s), a real error is."""

from __future__ import annotations

import threading
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Gauge

from exporter.server import make_server
from tracker.httpserver import QuietServer
from tracker.runbook import serve


@pytest.fixture(params=["exporter", "runbook"])
def server(request, tmp_path):
    made = (make_server(CollectorRegistry(), "127.0.0.1", 0) if request.param == "exporter"
            else serve(tmp_path / "out", "127.0.0.1:0"))
    yield made
    if request.param == "runbook":
        made.shutdown()  # serve() started it in a thread
    made.server_close()


def test_a_client_gone_early_is_no_traceback_but_a_real_error_still_is(server, capsys):
    assert isinstance(server, QuietServer) and server.daemon_threads
    for gone in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset")):
        try:
            raise gone
        except ConnectionError:
            server.handle_error(None, ("127.0.0.1", 1))
    assert capsys.readouterr().err == ""
    try:
        raise ValueError("a bug in a handler")
    except ValueError:
        server.handle_error(None, ("127.0.0.1", 54321))
    err = capsys.readouterr().err
    assert "ValueError: a bug in a handler" in err and "('127.0.0.1', 54321)" in err


def test_a_plain_registry_is_served_too():
    """The exporter's registry has its own cached text; any other is formatted anew."""
    registry = CollectorRegistry()
    Gauge("plain_gauge", "A gauge.", registry=registry).set(3)
    server = make_server(registry, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert b"plain_gauge 3.0" in answer.read()
    finally:
        server.shutdown()
        server.server_close()
