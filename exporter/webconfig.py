"""The web configuration file of Prometheus' exporter-toolkit (`--web.config.file`): TLS and
basic auth, in the format node_exporter and Prometheus itself read.

    tls_server_config:
      cert_file: exporter.crt        # relative paths: from this file's directory
      key_file: exporter.key
      # client_auth_type: RequireAndVerifyClientCert   (with client_ca_file)
      # min_version: TLS12
    basic_auth_users:
      prometheus: $2b$12$...         # bcrypt hash: htpasswd -nBC 12 "" | tr -d ':\\n'

A key this exporter does not implement is an error, never silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# client_auth_type values that Python's ssl module can honour (it always verifies a
# certificate it asks for, so RequestClientCert and RequireAnyClientCert are refused).
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
            "max_version"}
# Checked against when the user is unknown, so that a wrong name costs as long as a wrong
# password and the timing does not tell which names exist (as exporter-toolkit does).
_DUMMY_HASH = b"$2b$10$tvPbSbcSM4MDYlM4jW25Nugibw4c2EJyoh6Oc1VMMLS1TZoEcK1o."


class WebConfigError(ValueError):
    pass


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # Successful (user, sha256 of password) pairs: bcrypt costs ~0.1 s a check, and
    # Prometheus sends the same credentials at every scrape.
    _good: set[tuple[str, bytes]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    def authorized(self, header: str | None) -> bool:
        """True when no users are configured, or the Basic credentials match one."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode(
                "utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        with self._lock:
            if key in self._good:
                return True
        import bcrypt  # checked importable by load()

        hashed = self.users.get(user)
        ok = bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH) and hashed is not None
        if ok:
            with self._lock:
                if len(self._good) > 1000:
                    self._good.clear()
                self._good.add(key)
        return ok


def _mapping(doc: object, where: str, path: Path) -> dict:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise WebConfigError(f"{path}: {where} must be a mapping")
    return doc


def _tls(conf: dict, path: Path) -> ssl.SSLContext:
    unknown = sorted(set(conf) - TLS_KEYS)
    if unknown:
        raise WebConfigError(f"{path}: tls_server_config: not supported here: "
                             f"{', '.join(unknown)} (supported: {', '.join(sorted(TLS_KEYS))})")
    for key in ("cert_file", "key_file"):
        if not conf.get(key):
            raise WebConfigError(f"{path}: tls_server_config: {key} is required")

    def file(key: str) -> Path:
        return path.parent / str(conf[key])  # an absolute path stays as it is

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if key in conf:
            if conf[key] not in TLS_VERSIONS:
                raise WebConfigError(f"{path}: tls_server_config: {key}: {conf[key]!r} is not "
                                     f"one of {', '.join(TLS_VERSIONS)}")
            setattr(ctx, attr, TLS_VERSIONS[conf[key]])
    try:
        ctx.load_cert_chain(file("cert_file"), file("key_file"))
    except (OSError, ssl.SSLError) as e:
        raise WebConfigError(f"{path}: tls_server_config: cannot load {file('cert_file')} "
                             f"with {file('key_file')}: {e}") from e
    auth = conf.get("client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH:
        raise WebConfigError(f"{path}: tls_server_config: client_auth_type {auth!r} is not "
                             f"supported (supported: {', '.join(CLIENT_AUTH)})")
    ctx.verify_mode = CLIENT_AUTH[auth]
    if auth != "NoClientCert":
        if not conf.get("client_ca_file"):
            raise WebConfigError(f"{path}: tls_server_config: client_auth_type {auth} needs "
                                 "client_ca_file")
        try:
            ctx.load_verify_locations(file("client_ca_file"))
        except (OSError, ssl.SSLError) as e:
            raise WebConfigError(f"{path}: tls_server_config: cannot load "
                                 f"{file('client_ca_file')}: {e}") from e
    return ctx


def _users(conf: dict, path: Path) -> dict[str, bytes]:
    users = {}
    for name, hashed in conf.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(f"{path}: basic_auth_users: {name}: not a bcrypt hash "
                                 "(make one with: htpasswd -nBC 12 '' | tr -d ':\\n')")
        # Go and Apache write $2y$; Python's bcrypt reads the same hash as $2b$.
        users[str(name)] = ("$2b$" + hashed[4:]).encode()
    if users:
        try:
            import bcrypt  # noqa: F401
        except ImportError as e:
            raise WebConfigError(
                f"{path}: basic_auth_users needs the bcrypt package: pip install "
                "'rules-resonance-tracker[web]' (or Debian's python3-bcrypt)") from e
    return users


def load(path: Path) -> WebConfig:
    """Reads the file; WebConfigError names the file and what is wrong with it."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise WebConfigError(f"{path}: cannot read the web config: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise WebConfigError(f"{path}: not valid YAML: {e}") from e
    doc = _mapping(doc, "the file", path)
    known = {"tls_server_config", "basic_auth_users", "http_server_config"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise WebConfigError(f"{path}: not supported here: {', '.join(unknown)} "
                             f"(supported: {', '.join(sorted(known))})")
    config = WebConfig()
    tls = _mapping(doc.get("tls_server_config"), "tls_server_config", path)
    if tls:
        config.ssl_context = _tls(tls, path)
    config.users = _users(_mapping(doc.get("basic_auth_users"), "basic_auth_users", path), path)
    http = _mapping(doc.get("http_server_config"), "http_server_config", path)
    # http2 is accepted and has nothing to do here: this server speaks HTTP/1.1.
    unknown = sorted(set(http) - {"headers", "http2"})
    if unknown:
        raise WebConfigError(f"{path}: http_server_config: not supported here: "
                             f"{', '.join(unknown)}")
    headers = _mapping(http.get("headers"), "http_server_config.headers", path)
    config.headers = {str(k): str(v) for k, v in headers.items()}
    return config
