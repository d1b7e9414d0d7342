"""The exporter beyond localhost: TLS and basic auth from an exporter-toolkit web config file,
checked with a real TLS client against a self-signed certificate made here by openssl."""

from __future__ import annotations

import base64
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from exporter import cli
from exporter.server import make_server
from exporter.webconfig import WebConfigError, load
from tests.rootdata import event, sample_rows, write_history, write_metrics

bcrypt = pytest.importorskip("bcrypt")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "exporter.crt", d / "exporter.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )
    return crt, key


def serve(root: Path, web_yml: Path | None):
    write_metrics(root, sample_rows(-60, 40))
    write_history(root, [event(0)])
    registry = cli.build(str(root))
    server = make_server(registry, "127.0.0.1", 0, load(web_yml) if web_yml else None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def get(url: str, auth: tuple[str, str] | None = None, ca: Path | None = None):
    req = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def web_config(d: Path, crt: Path, key: Path, password: str = "s3cret",
               prefix: str = "$2b$") -> Path:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    yml = d / "web.yml"
    # Relative paths are read from the config file's directory, as exporter-toolkit does.
    shutil.copy(crt, d / "exporter.crt")
    shutil.copy(key, d / "exporter.key")
    yml.write_text(
        "tls_server_config:\n  cert_file: exporter.crt\n  key_file: exporter.key\n"
        f"basic_auth_users:\n  prometheus: '{prefix}{hashed[4:]}'\n",
        encoding="utf-8",
    )
    return yml


def test_tls_and_basic_auth(tmp_path, cert, capsys):
    crt, key = cert
    conf = tmp_path / "conf"
    conf.mkdir()
    server = serve(tmp_path / "root", web_config(conf, crt, key))
    base = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        status, body, _ = get(base + "/metrics", ("prometheus", "s3cret"), ca=crt)
        assert status == 200
        assert re.search(rb"^lumen_rule_events_total\{[^}]*\} 1\.0$", body, re.M)
        # Again: the cached check answers the same.
        assert get(base + "/metrics", ("prometheus", "s3cret"), ca=crt)[0] == 200

        status, body, headers = get(base + "/metrics", ("prometheus", "wrong"), ca=crt)
        assert status == 401 and body == b"Unauthorized\n"
        assert headers["Content-Type"].lower() == "text/plain; charset=utf-8"
        assert headers["WWW-Authenticate"].startswith("Basic")
        assert get(base + "/metrics", ("nobody", "s3cret"), ca=crt)[0] == 401
        assert get(base + "/metrics", ca=crt)[0] == 401
        assert get(base + "/elsewhere", ca=crt)[0] == 401  # no redirect before auth
        # /healthz stays open for container health checks (over TLS all the same).
        assert get(base + "/healthz", ca=crt)[:2] == (200, b"ok\n")

        # The certificate is really checked by the client: an unknown CA is refused...
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get(base + "/healthz", ca=None)
        # ...and plain HTTP gets no answer from the TLS port.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            get(f"http://127.0.0.1:{server.server_address[1]}/healthz")
    finally:
        server.shutdown()
        server.server_close()
    # Every connection was closed cleanly: no error in a handler said on stderr.
    assert "Traceback" not in capsys.readouterr().err


def test_a_client_that_never_starts_tls_is_let_go(tmp_path, cert, monkeypatch):
    """A connection that sends nothing must not hold a thread forever (slowloris)."""
    monkeypatch.setattr("exporter.server.HANDSHAKE_TIMEOUT_S", 0.5)
    crt, key = cert
    conf = tmp_path / "conf"
    conf.mkdir()
    server = serve(tmp_path / "root", web_config(conf, crt, key))
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1])) as silent:
            silent.settimeout(10)
            started = time.monotonic()
            assert silent.recv(1) == b""  # closed by the server, not by our timeout
            assert time.monotonic() - started < 5
    finally:
        server.shutdown()
        server.server_close()


def test_go_style_2y_hashes_are_read(tmp_path, cert):
    crt, key = cert
    yml = web_config(tmp_path, crt, key, prefix="$2y$")
    config = load(yml)
    token = base64.b64encode(b"prometheus:s3cret").decode()
    assert config.authorized(f"Basic {token}")
    assert not config.authorized("Basic " + base64.b64encode(b"prometheus:nope").decode())
    assert not config.authorized("Bearer x") and not config.authorized("Basic %%%")


def test_without_web_config_nothing_is_asked(tmp_path):
    server = serve(tmp_path, None)
    try:
        status, body, _ = get(f"http://127.0.0.1:{server.server_address[1]}/metrics")
        assert status == 200 and b"lumen_rule_events_total" in body
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "text, message",
    [
        ("tls_server_config:\n  cert_file: a.crt\n", "key_file is required"),
        ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n", "cannot load"),
        ("basic_auth_users:\n  bob: plain\n", "bob: not a bcrypt hash"),
        ("tls_config:\n  cert_file: a\n", "not supported here: tls_config"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n",
         "not supported here: cipher_suites"),
        ("tls_server_config: [\n", "not valid YAML"),
    ],
)
def test_a_bad_web_config_names_the_file_and_the_fault(tmp_path, text, message):
    yml = tmp_path / "web.yml"
    yml.write_text(text, encoding="utf-8")
    with pytest.raises(WebConfigError) as caught:
        load(yml)
    assert str(caught.value).startswith(str(yml)) and message in str(caught.value)


def test_cli_refuses_a_bad_web_config_with_exit_2(tmp_path, capsys):
    yml = tmp_path / "web.yml"
    yml.write_text("basic_auth_users:\n  bob: plain\n", encoding="utf-8")
    assert cli.main(["--root", str(tmp_path), "--port", "0", "--web.config.file", str(yml)]) == 2
    assert "web.yml: basic_auth_users: bob: not a bcrypt hash" in capsys.readouterr().err


# --- every key of the file, and every way it can be wrong ---------------------------------------
TLS = "tls_server_config:\n  cert_file: exporter.crt\n  key_file: exporter.key\n"


def load_text(d: Path, cert, text: str):
    """The file's settings, beside a copy of the test certificate and key."""
    crt, key = cert
    shutil.copy(crt, d / "exporter.crt")
    shutil.copy(key, d / "exporter.key")
    yml = d / "web.yml"
    yml.write_text(text, encoding="utf-8")
    return load(yml)


def test_tls_settings_reach_the_ssl_context(tmp_path, cert):
    ctx = load_text(tmp_path, cert, TLS).ssl_context
    assert ctx.protocol == ssl.PROTOCOL_TLS_SERVER
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default
    assert ctx.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    assert ctx.verify_mode == ssl.CERT_NONE

    ctx = load_text(tmp_path, cert, TLS + "  min_version: TLS13\n").ssl_context
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    ctx = load_text(tmp_path, cert, TLS + "  max_version: TLS12\n").ssl_context
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2

    # The client CA, relative to the file or absolute.
    for ca in ("exporter.crt", str(tmp_path / "exporter.crt")):
        for auth, mode in (("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
                           ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL)):
            ctx = load_text(tmp_path, cert, TLS + f"  client_auth_type: {auth}\n"
                            f"  client_ca_file: {ca}\n").ssl_context
            assert ctx.verify_mode == mode
            assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName",
                                                                     "localhost"),),)]


def test_users_and_headers(tmp_path, cert):
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    config = load_text(tmp_path, cert, (
        f"basic_auth_users:\n  alice: '$2a${hashed[4:]}'\n  1234: '{hashed}'\n"
        "http_server_config:\n  http2: true\n"
        "  headers:\n    X-Frame-Options: deny\n    X-Count: 3\n"))
    assert config.ssl_context is None and config.scheme == "http"
    assert config.users == {"alice": f"$2b${hashed[4:]}".encode(), "1234": hashed.encode()}
    assert config.headers == {"X-Frame-Options": "deny", "X-Count": "3"}
    token = base64.b64encode(b"1234:pw").decode()
    assert config.authorized(f"Basic {token}")


@pytest.mark.parametrize("text, message", [
    ("- a list\n", "the file must be a mapping"),
    ("b: 1\na: 2\ntls_server_config:\n", "not supported here: a, b (supported: "
     "basic_auth_users, http_server_config, tls_server_config)"),
    ("tls_server_config: [1]\n", "tls_server_config must be a mapping"),
    ("basic_auth_users: [1]\n", "basic_auth_users must be a mapping"),
    ("basic_auth_users:\n  bob: 12\n", "basic_auth_users: bob: not a bcrypt hash (make one "
     "with: htpasswd -nBC 12 '' | tr -d ':\\n')"),
    ("http_server_config: [1]\n", "http_server_config must be a mapping"),
    ("http_server_config:\n  headers: [1]\n", "http_server_config.headers must be a mapping"),
    ("http_server_config:\n  tls: 1\n  a: 2\n", "http_server_config: not supported here: a, tls"),
    (TLS + "  z: 1\n  y: 2\n", "tls_server_config: not supported here: y, z (supported: "
     "cert_file, client_auth_type, client_ca_file, key_file, max_version, min_version)"),
    (TLS + "  min_version: TLS99\n", "tls_server_config: min_version: 'TLS99' is not one of "
     "TLS10, TLS11, TLS12, TLS13"),
    (TLS + "  max_version: tls12\n", "tls_server_config: max_version: 'tls12' is not one of "
     "TLS10, TLS11, TLS12, TLS13"),
    (TLS + "  client_auth_type: RequestClientCert\n", "tls_server_config: client_auth_type "
     "'RequestClientCert' is not supported (supported: NoClientCert, "
     "VerifyClientCertIfGiven, RequireAndVerifyClientCert)"),
    (TLS + "  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config: "
     "client_auth_type RequireAndVerifyClientCert needs client_ca_file"),
    (TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n",
     "tls_server_config: cannot load {dir}/ca.pem: [Errno 2] No such file or directory"),
])
def test_each_fault_of_the_file_is_named_in_full(tmp_path, cert, text, message):
    with pytest.raises(WebConfigError) as caught:
        load_text(tmp_path, cert, text)
    assert str(caught.value) == f"{tmp_path / 'web.yml'}: {message.format(dir=tmp_path)}"


def test_a_missing_file_and_a_missing_bcrypt_are_named(tmp_path, cert, monkeypatch):
    missing = tmp_path / "nowhere.yml"
    with pytest.raises(WebConfigError) as caught:
        load(missing)
    assert str(caught.value) == (f"{missing}: cannot read the web config: "
                                 "No such file or directory")
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # import bcrypt raises ImportError
    with pytest.raises(WebConfigError) as caught:
        load_text(tmp_path, cert, "basic_auth_users:\n  bob: $2b$04$abc\n")
    assert str(caught.value) == (
        f"{tmp_path / 'web.yml'}: basic_auth_users needs the bcrypt package: pip install "
        "'rules-resonance-tracker[web]' (or Debian's python3-bcrypt)")


def test_the_command_serves_with_the_web_config_and_says_how(tmp_path, cert, servers,
                                                              monkeypatch, capsys):
    crt, key = cert
    tls = web_config(tmp_path, crt, key)
    users = tmp_path / "users.yml"
    users.write_text("\n".join(tls.read_text().splitlines()[3:]) + "\n")  # no TLS
    assert users.read_text().startswith("basic_auth_users:")
    plain = tmp_path / "plain.yml"
    plain.write_text("\n".join(tls.read_text().splitlines()[:3]) + "\n")  # no users
    for flag, path, said in (("--web.config.file", tls, "https://0.0.0.0:0/metrics, basic auth"),
                             ("--web-config-file", users, "http://0.0.0.0:0/metrics, basic auth"),
                             ("--web.config.file", plain, "https://0.0.0.0:0/metrics")):
        assert cli.main(["--root", str(tmp_path), "--port", "0", flag, str(path)]) == 130
        assert servers[-1].web.users == load(path).users
        assert capsys.readouterr().err == f"lumen-exporter: serving {said}\n"
    # From the environment; an empty value is no web config.
    monkeypatch.setenv("LUMEN_EXPORTER_WEB_CONFIG", str(plain))
    assert cli.main(["--root", str(tmp_path), "--port", "0"]) == 130
    assert servers[-1].web.scheme == "https"
    monkeypatch.setenv("LUMEN_EXPORTER_WEB_CONFIG", "")
    assert cli.main(["--root", str(tmp_path), "--port", "0"]) == 130
    assert servers[-1].web is None
