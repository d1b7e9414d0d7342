"""The exporter's HTTP answers byte by byte: headers, HEAD, query strings, IPv6."""

from __future__ import annotations

import socket
import threading

import pytest

from exporter.cli import build
from exporter.server import make_server
from tests.test_exporter import server  # noqa: F401 - the fixture


def raw(url: str, request: str) -> tuple[str, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


def test_get_sends_length_and_type(server):  # noqa: F811
    for path, ctype in (("/metrics?x=1?y=2", "text/plain; version=0.0.4; charset=utf-8"),
                        ("/healthz", "text/plain; charset=utf-8")):
        status, headers, body = raw(server, f"GET {path} HTTP/1.0\r\n\r\n")
        assert status.split()[1] == "200", path
        assert headers["Content-Type"].lower() == ctype
        assert headers["Content-Length"] == str(len(body)) and body
    status, headers, body = raw(server, "GET /other HTTP/1.0\r\n\r\n")
    assert status.split()[1] == "302" and headers["Location"] == "/metrics"
    assert body == b"see /metrics\n" and headers["Content-Length"] == str(len(body))
    assert headers["Content-Type"].lower() == "text/plain; charset=utf-8"


def test_head_sends_the_headers_only(server):  # noqa: F811
    _, get_headers, body = raw(server, "GET /metrics HTTP/1.0\r\n\r\n")
    status, headers, head_body = raw(server, "HEAD /metrics HTTP/1.0\r\n\r\n")
    assert status.split()[1] == "200" and head_body == b""
    assert headers["Content-Type"] == get_headers["Content-Type"]
    assert int(headers["Content-Length"]) > 0


def test_an_ipv6_bind_address_serves_ipv6(tmp_path):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    srv = make_server(build(str(tmp_path)), "::1", 0)
    assert srv.address_family == socket.AF_INET6
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, _, body = raw_v6(srv.server_address[1])
        assert status.split()[1] == "200" and body == b"ok\n"
    finally:
        srv.shutdown()
        srv.server_close()


def raw_v6(port: int) -> tuple[str, dict, bytes]:
    with socket.create_connection(("::1", port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode().split("\r\n")[0], {}, body
