"""`python -m tracker` in process: flags reach the run, messages and exit codes."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from tests.rootdata import event, sample_rows, write_history, write_metrics
from tracker import cli, options, run
from tracker.csvformat import MetricsFileError


def test_flags_reach_the_one_pass_and_its_summary_is_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LUMEN_ROOT", raising=False)
    write_metrics(tmp_path, sample_rows(-30, 31))
    write_history(tmp_path, [event(0)])
    assert cli.main(["--root", str(tmp_path), "--pre", "20", "--post", "10", "--guard", "0.5",
                     "--naive-tz", "+01:00"]) == 0
    out, err = capsys.readouterr()
    assert out == ("written 1, pending 0, skipped lines 0 (unreliable 1, confounded 0); "
                   "verdicts: inconclusive 1\n")
    assert err == ""
    row = (tmp_path / "logs" / "rules_effects.csv").read_text().splitlines()[1].split(",")
    assert row[5:7] == ["20", "10"]


def test_follow_gets_the_settings_poll_and_heartbeat(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "follow", lambda *a: calls.append(a))
    assert cli.main(["--root", str(tmp_path), "--follow", "--poll", "0.25",
                     "--heartbeat", str(tmp_path / "beat"), "--naive-tz", "UTC"]) == 0
    ((s, rep, poll, heartbeat),) = calls
    assert (s.root, s.naive_zone_name, poll, heartbeat) == (
        tmp_path, "UTC", 0.25, tmp_path / "beat")
    assert isinstance(heartbeat, Path) and rep is not None
    cli.main(["--root", str(tmp_path), "--follow"])
    assert calls[1][2:] == (1.0, None)


def test_missing_inputs_are_said_and_are_not_an_error(tmp_path, capsys):
    assert cli.main(["--root", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert (f"lumen-rules-effects: {tmp_path / 'controls' / 'rules_history.jsonl'}: not "
            "found; no rule changes to track yet\n") in err
    assert (f"lumen-rules-effects: {tmp_path / 'logs' / 'metrics.csv'}: not found; effects "
            "stay pending until the gateway writes it (wrong --root?)\n") in err
    write_metrics(tmp_path, sample_rows(0, 1))
    write_history(tmp_path, [])
    assert cli.main(["--root", str(tmp_path)]) == 0
    assert "not found" not in capsys.readouterr().err


@pytest.mark.parametrize("error, code", [(MetricsFileError("m.csv:1: bad header"), 1),
                                         (KeyboardInterrupt(), 130)])
def test_exit_codes(tmp_path, monkeypatch, capsys, error, code):
    def step(self):
        raise error

    # The gateway's own pass fails; the fleet around it and the command are the real ones.
    monkeypatch.setattr(run.Tracker, "step", step)
    assert cli.main(["--root", str(tmp_path)]) == code
    err = capsys.readouterr().err
    said = "lumen-rules-effects: error: m.csv:1: bad header\n"
    assert err.count(said) == (code == 1)


def test_help_names_each_flag_and_its_environment_variable(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: lumen-rules-effects ")
    for flag, env in (("--root", "$LUMEN_ROOT"), ("--pre", "$LUMEN_EFFECT_PRE_S"),
                      ("--post", "$LUMEN_EFFECT_POST_S"), ("--guard", "$LUMEN_EFFECT_GUARD_S"),
                      ("--naive-tz", "$LUMEN_NAIVE_TZ"), ("--follow", "keep running"),
                      ("--poll", "between polls"), ("--heartbeat", "health checks")):
        assert flag in text and env in text, flag
    assert "rules_history.jsonl" in text


def test_each_commands_logger_writes_its_own_lines_once(capsys):
    # A name no other test used, in this process or one forked from it (mutmut's workers).
    name = f"lumen-test-{uuid.uuid4().hex}"
    log = options.logger(name)
    assert options.logger(name) is log and len(log.handlers) == 1
    assert log.level == logging.INFO and log.propagate is False  # not twice via the root
    log.info("plain")
    log.warning("careful")
    assert capsys.readouterr().err == f"{name}: plain\n{name}: warning: careful\n"


def test_a_settings_message_holding_a_percent_sign_is_said_as_it_is(capsys):
    def body(log):
        raise options.SettingsError("LUMEN_EFFECT_PRE_S='30%' is not a number of seconds")

    assert options.run("lumen-test-percent", body) == 2
    assert capsys.readouterr().err == ("lumen-test-percent: error: LUMEN_EFFECT_PRE_S='30%' "
                                       "is not a number of seconds\n")
