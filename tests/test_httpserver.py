"""The exporter's and the runbook page's HTTP server: a client gone early is no traceback
in the log (a health check reading only the status did that every 5 s), a real error is."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

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
        server.handle_error(None, ("127.0.0.1", 1))
    assert "ValueError: a bug in a handler" in capsys.readouterr().err
