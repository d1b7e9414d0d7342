"""`python -m exporter` in process: where it listens, what it serves, messages and exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from exporter import cli
from tests.test_exporter import scrape
from tests.test_exporter_edges import effect, write_root

INTERRUPTED = 130  # SPEC "Commands": Ctrl-C ends the exporter as interrupted


def test_serves_the_root_with_its_windows_until_interrupted(tmp_path, servers, capsys):
    assert cli.main(["--root", str(tmp_path), "--bind", "127.0.0.1", "--port", "9999",
                     "--pre", "20", "--post", "10", "--guard", "0.5", "--recent", "0",
                     "--naive-tz", "UTC"]) == INTERRUPTED
    (srv,) = servers
    assert (srv.bind, srv.port, srv.web, srv.closed) == ("127.0.0.1", 9999, None, True)
    # Before any effect is written the windows served are the flags' own.
    m = scrape(srv.registry)
    assert {(lab["window"], lab["source"]): v for lab, v in
            m["lumen_effect_window_seconds"]} == {
        ("pre", "settings"): 20, ("post", "settings"): 10, ("guard", "settings"): 0.5}
    # The same registry reads the root at each scrape: the effect written since is served.
    write_root(tmp_path, [effect("2025-10-23T13:10:00+09:00", "r", 1.0)])
    m = scrape(srv.registry)
    assert "lumen_rule_change_timestamp_seconds" not in m  # --recent 0
    assert "lumen_rule_effect_delta" in m
    assert capsys.readouterr().err == "lumen-exporter: serving http://127.0.0.1:9999/metrics\n"


def test_port_and_bind_from_flags_then_environment_then_defaults(tmp_path, servers,
                                                                 monkeypatch):
    assert cli.main(["--root", str(tmp_path)]) == INTERRUPTED
    monkeypatch.setenv("LUMEN_EXPORTER_PORT", "9200")
    monkeypatch.setenv("LUMEN_EXPORTER_BIND", "127.0.0.2")
    assert cli.main(["--root", str(tmp_path)]) == INTERRUPTED
    assert cli.main(["--root", str(tmp_path), "--port", "9300", "--bind", "::1"]) == INTERRUPTED
    assert [(s.bind, s.port) for s in servers] == [
        ("0.0.0.0", 9108), ("127.0.0.2", 9200), ("::1", 9300)]
    assert [len(list(s.registry.collect())) > 0 for s in servers] == [True] * 3


def test_bad_settings_exit_2_and_a_port_taken_exits_1(tmp_path, servers, monkeypatch, capsys):
    monkeypatch.setenv("LUMEN_EXPORTER_PORT", "not-a-port")
    assert cli.main(["--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "lumen-exporter: error: LUMEN_EXPORTER_PORT='not-a-port' is not a port\n")
    assert cli.main(["--root", str(tmp_path), "--port", "1", "--guard", "30"]) == 2
    assert "lumen-exporter: error: guard" in capsys.readouterr().err
    assert servers == []

    def taken(*a):
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(cli, "make_server", taken)
    assert cli.main(["--root", str(tmp_path), "--bind", "127.0.0.1", "--port", "9108"]) == 1
    assert capsys.readouterr().err == (
        "lumen-exporter: error: cannot listen on 127.0.0.1:9108: "
        "[Errno 98] Address already in use\n")


def test_help_names_each_flag_and_its_environment_variable(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: lumen-exporter ")
    for flag, said in (("--root", "$LUMEN_ROOT"),
                       ("--bind", "address to listen on ($LUMEN_EXPORTER_BIND, default 0.0.0.0)"),
                       ("--port", "port ($LUMEN_EXPORTER_PORT, default 9108)"),
                       ("--recent", "rule changes exposed for annotations (default 50)"),
                       ("--max-rules", "distinct rule names published per per-rule family, the "
                        "most recently changed ($LUMEN_MAX_RULE_LABELS, default 300)"),
                       ("--web.config.file WEB_CONFIG, --web-config-file WEB_CONFIG",
                        "exporter-toolkit web config (YAML) for TLS and basic auth "
                        "($LUMEN_EXPORTER_WEB_CONFIG; default: plain HTTP, no auth)"),
                       ("--pre", "$LUMEN_EFFECT_PRE_S"), ("--post", "$LUMEN_EFFECT_POST_S"),
                       ("--guard", "$LUMEN_EFFECT_GUARD_S"), ("--naive-tz", "$LUMEN_NAIVE_TZ")):
        assert flag in text and said in text, flag
    assert "Prometheus exporter" in text


def test_defaults_50_recent_changes_and_the_naive_zone_flag(tmp_path, servers):
    (tmp_path / "controls").mkdir()
    lines = [json.dumps({"ts": f"2025-10-23T04:{k:02d}:00", "actor": "a", "rule": f"r{k}",
                         "old": 1, "new": 2}) for k in range(60)]
    (tmp_path / "controls" / "rules_history.jsonl").write_text("\n".join(lines) + "\n")
    assert cli.main(["--root", str(tmp_path)]) == INTERRUPTED
    assert cli.main(["--root", str(tmp_path), "--naive-tz", "UTC"]) == INTERRUPTED
    kst, utc = (scrape(s.registry) for s in servers)
    assert len(kst["lumen_rule_change_timestamp_seconds"]) == 50
    newest = datetime(2025, 10, 23, 4, 59, tzinfo=UTC).timestamp()  # the last, read as UTC
    gateway = {"gateway": tmp_path.name}  # a single root is the gateway named by its directory
    assert utc["lumen_rule_last_change_timestamp_seconds"] == [(gateway, newest)]
    assert kst["lumen_rule_last_change_timestamp_seconds"] == [(gateway, newest - 9 * 3600)]
