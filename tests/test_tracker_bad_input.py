"""Bad input: a clear `file:line: reason` once, no crash, no good event lost."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest

from tests.rootdata import (
    HEADER,
    effects,
    event,
    sample_rows,
    ts,
    write_history,
    write_metrics,
)
from tracker.report import Reporter
from tracker.run import run_once
from tracker.settings import resolve


def run(root):
    out = io.StringIO()
    summary = run_once(resolve(str(root), env={}), Reporter(out))
    return summary, out.getvalue()


def good_metrics(root, **kw):
    return write_metrics(root, sample_rows(-30, 31), **kw)


def messages(log: str, file: str) -> list[tuple[int, str]]:
    return [(int(m.group(1)), m.group(2)) for m in
            re.finditer(rf"{re.escape(file)}:(\d+): (.*)", log)]


HIST = "controls/rules_history.jsonl"
METRICS = "logs/metrics.csv"


@pytest.mark.parametrize("line, reason", [
    ('{"ts": "2025-10-23T13:10:00+09:00", "actor": "x", ', "malformed JSON"),
    ('{"actor": "x", "rule": "r", "old": 1, "new": 2}', "missing ts"),
    ('{"ts": "yesterday", "actor": "x", "rule": "r", "old": 1, "new": 2}', "invalid ts"),
    ('{"ts": "2025-13-45T99:00:00+09:00", "rule": "r", "old": 1, "new": 2}', "invalid ts"),
    ('["not", "an", "object"]', "not a JSON object"),
    ('{"ts": "2025-10-23T13:10:00+09:00", "actor": "x", "old": 1, "new": 2}', "missing rule"),
])
def test_bad_history_line_is_reported_once_and_others_kept(tmp_path, line, reason):
    good_metrics(tmp_path)
    write_history(tmp_path, [event(0)], raw_lines=[line, json.dumps(event(0, rule="b"))])
    summary, log = run(tmp_path)
    assert [r["rule"] for r in effects(tmp_path)] == ["creative_min", "b"]
    (msg,) = messages(log, HIST)
    assert msg[0] == 2 and reason in msg[1]
    assert summary.bad_lines == 1
    summary2, log2 = run(tmp_path)  # a second run reports again (new process) but writes nothing
    assert messages(log2, HIST) == [msg]
    assert summary2.bad_lines == 1 and summary2.written == 0
    assert len(effects(tmp_path)) == 2


def test_string_old_new_are_allowed_and_missing_ones_kept_empty(tmp_path):
    good_metrics(tmp_path)
    write_history(tmp_path, [event(0, old="low", new="high"),
                             {k: v for k, v in event(0, rule="r2").items() if k != "old"},
                             event(0, rule="r3", old=None, new=[1])])
    _, log = run(tmp_path)
    rows = {r["rule"]: r for r in effects(tmp_path)}
    assert (rows["creative_min"]["old"], rows["creative_min"]["new"]) == ("low", "high")
    assert rows["r2"]["old"] == "" and rows["r2"]["new"] == "0.24"
    assert rows["r3"]["old"] == "" and rows["r3"]["new"] == ""
    msgs = messages(log, HIST)
    assert (2, "old missing; kept with an empty old") in msgs
    assert (3, "new not a number or string; kept with an empty new") in msgs


def test_unknown_extra_fields_are_ignored(tmp_path):
    good_metrics(tmp_path)
    write_history(tmp_path, [event(0, ticket="OPS-1", nested={"a": 1}, note="n")])
    _, log = run(tmp_path)
    assert len(effects(tmp_path)) == 1 and log == ""


def test_history_bom_crlf_and_non_utf8(tmp_path):
    good_metrics(tmp_path)
    p = tmp_path / "controls" / "rules_history.jsonl"
    p.parent.mkdir(parents=True)
    lines = [json.dumps(event(0)).encode(), b'{"ts": "\xff\xfe", "rule": "x"}',
             json.dumps(event(0, rule="r2")).encode()]
    p.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    _, log = run(tmp_path)
    assert [r["rule"] for r in effects(tmp_path)] == ["creative_min", "r2"]
    assert messages(log, HIST) == [(2, "not valid UTF-8 (byte 8); line skipped")]


def test_metrics_bom_and_crlf(tmp_path):
    write_metrics(tmp_path, sample_rows(-30, 31), header="\ufeff" + HEADER, newline="\r\n")
    write_history(tmp_path, [event(0)])
    _, log = run(tmp_path)
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "146" and log == ""


def test_metrics_non_utf8_bytes_name_the_line(tmp_path):
    p = good_metrics(tmp_path)
    data = p.read_bytes().split(b"\n")
    data[10] = data[10][:-3] + b"\xff\xfe"  # line 11, in the pre window: risk_band mangled
    p.write_bytes(b"\n".join(data))
    write_history(tmp_path, [event(0)])
    _, log = run(tmp_path)
    (row,) = effects(tmp_path)
    assert row["n_pre_risk"] == "145" and row["n_pre_phase"] == "146"
    (msg,) = messages(log, METRICS)
    assert msg[0] == 11 and "risk_band" in msg[1] and "not a number" in msg[1]


def test_missing_required_column_exits_nonzero_naming_the_fix(tmp_path):
    write_metrics(tmp_path, [r.rsplit(",", 1)[0] for r in sample_rows(-30, 31)],
                  header="ts,phase_diff,entropy_rate,creative_band")
    write_history(tmp_path, [event(0)])
    p = subprocess.run([sys.executable, "-m", "tracker", "--root", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert "metrics.csv:1: header lacks column(s) risk_band" in p.stderr
    assert "the first line must name ts" in p.stderr
    assert effects(tmp_path) == []


def test_rows_with_missing_or_extra_fields_are_reported(tmp_path):
    rows = sample_rows(-30, 31)
    rows[3] = rows[3].rsplit(",", 1)[0]  # a field short
    rows[5] = rows[5] + ",9"  # a field too many
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])
    _, log = run(tmp_path)
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "144"
    msgs = messages(log, METRICS)
    assert [m[0] for m in msgs] == [5, 7]
    assert "4 fields, header has 5" in msgs[0][1] and "6 fields" in msgs[1][1]


def test_unsorted_and_duplicate_rows(tmp_path):
    rows = sample_rows(-30, 31, value=lambda t: (t, 0, 0, 0))
    rows[20], rows[21] = rows[21], rows[20]  # swapped pair
    rows.insert(40, rows[39])  # a retried line
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])
    _, log = run(tmp_path)
    (row,) = effects(tmp_path)
    assert row["n_pre_phase"] == "146"  # every sample once, the duplicate not twice
    pre = [-30 + k / 5 for k in range(146)]
    assert float(row["pre_phase"]) == pytest.approx(sum(pre) / 146, abs=1e-12)
    msgs = messages(log, METRICS)
    assert (23, "timestamp earlier than the row before; placed by its time") in msgs
    assert (42, "duplicate of an earlier row; counted once") in msgs


def test_half_written_last_line_is_left_for_later(tmp_path):
    rows = sample_rows(-30, 29.8)
    p = write_metrics(tmp_path, rows, tail=f"{ts(30)},1,1")  # the writer is mid-line
    write_history(tmp_path, [event(0)])
    summary, log = run(tmp_path)
    assert summary.pending == 1 and log == ""
    with open(p, "a") as f:
        f.write(",1,1\n")
    summary, _ = run(tmp_path)
    assert summary.written == 1


@pytest.mark.parametrize("content", [b"", HEADER.encode(), (HEADER + "\n").encode()])
def test_empty_or_header_only_metrics(tmp_path, content):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.csv").write_bytes(content)
    write_history(tmp_path, [event(0)])
    summary, _ = run(tmp_path)
    assert summary.pending == 1 and summary.written == 0


def test_missing_files_exit_zero_with_a_message(tmp_path):
    p = subprocess.run([sys.executable, "-m", "tracker", "--root", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "rules_history.jsonl: not found" in p.stderr
    assert "metrics.csv: not found" in p.stderr
    assert p.stdout.strip() == "written 0, pending 0, skipped lines 0 (unreliable 0, " \
                               "confounded 0)"
    write_history(tmp_path, [event(0)])
    p = subprocess.run([sys.executable, "-m", "tracker", "--root", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "pending 1" in p.stdout


def test_bad_window_settings_exit_2(tmp_path):
    p = subprocess.run([sys.executable, "-m", "tracker", "--root", str(tmp_path),
                        "--guard", "40"], capture_output=True, text=True)
    assert p.returncode == 2 and "guard must be" in p.stderr
    p = subprocess.run([sys.executable, "-m", "tracker", "--root", str(tmp_path)],
                       capture_output=True, text=True,
                       env={"LUMEN_EFFECT_PRE_S": "abc", "PATH": "/usr/bin"})
    assert p.returncode == 2 and "LUMEN_EFFECT_PRE_S='abc'" in p.stderr


def test_foreign_effects_header_exits_nonzero(tmp_path):
    good_metrics(tmp_path)
    write_history(tmp_path, [event(0)])
    (tmp_path / "logs" / "rules_effects.csv").write_text("a,b,c\n1,2,3\n")
    p = subprocess.run([sys.executable, "-m", "tracker", "--root", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "move the file aside" in p.stderr


def test_original_19_column_file_keeps_its_shape(tmp_path):
    from tracker.store import COLUMNS

    good_metrics(tmp_path)
    write_history(tmp_path, [event(0)])
    (tmp_path / "logs" / "rules_effects.csv").write_text(",".join(COLUMNS) + "\n")
    run(tmp_path)
    (row,) = effects(tmp_path)
    assert list(row) == COLUMNS and row["d_phase"] != ""


@pytest.mark.parametrize("junk", ["[1,2]", "true", "null", '"1"', "{}", "0x10", "1_0"])
def test_values_json_would_accept_or_misread_are_not_numbers(tmp_path, junk):
    rows = sample_rows(-30, 31)
    rows[3] = rows[3].split(",", 1)[0] + f",{junk},1,1,1"
    write_metrics(tmp_path, rows)
    write_history(tmp_path, [event(0)])
    _, log = run(tmp_path)
    (row,) = effects(tmp_path)
    # '[1,2]' is two CSV fields: the whole row is off and left out
    assert row["n_pre_entropy"] == ("145" if "," in junk else "146")
    # Kept: '1_0' is a number to Python's float(), '"1"' is the CSV quoting of 1.
    # Every other value is left out of the 146 samples of the pre window.
    assert row["n_pre_phase"] == ("146" if junk in ("1_0", '"1"') else "145")
    assert all(isinstance(float(row[f"pre_{m}"]), float) for m in ("phase", "entropy"))


def test_damaged_effects_row_is_neither_rewritten_nor_fatal(tmp_path):
    good_metrics(tmp_path)
    write_history(tmp_path, [event(0), event(0, rule="r2")])
    run(tmp_path)
    p = tmp_path / "logs" / "rules_effects.csv"
    lines = p.read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:7])  # first row cut to 7 fields by hand
    p.write_text("\n".join(lines) + "\n")
    summary, _ = run(tmp_path)
    assert summary.written == 0
    assert len(p.read_text().splitlines()) == 3

    from exporter.cli import build
    from tests.test_exporter import one, scrape

    m = scrape(build(str(tmp_path)))
    assert one(m, "lumen_input_parse_errors_total", file="rules_effects.csv") == 1
    assert one(m, "lumen_rule_effects_written_total") == 1


def test_a_value_that_is_not_a_number_is_named_and_left_out():
    from tracker.csvformat import Header, parse_values

    header = Header.parse("risk_band,ts,phase_diff,entropy_rate,creative_band", "m.csv")
    said: list[str] = []
    values = parse_values(["0.5", "t", "ERR", "", "nan"], header, said.append)
    assert values[0] != values[0] and values[1] != values[1]  # NaN: not samples
    assert values[3] == 0.5
    assert said == ["phase_diff 'ERR' is not a number; left out of the means"]


def test_a_header_that_cannot_be_used_is_named_with_the_columns_it_needs():
    from tracker.csvformat import Header, MetricsFileError

    need = "ts, phase_diff, entropy_rate, creative_band, risk_band"
    with pytest.raises(MetricsFileError) as caught:
        Header.parse("ts,risk_band,phase_diff", "m.csv")
    assert str(caught.value) == (
        "m.csv:1: header lacks column(s) entropy_rate, creative_band; the first line must "
        f"name {need} (any order, more columns allowed)")
    with pytest.raises(MetricsFileError) as caught:
        Header.parse('"' + "x" * 140_000 + '",ts', "m.csv")
    assert str(caught.value) == (
        "m.csv:1: header is not a CSV row (field larger than field limit (131072)); "
        f"the first line must name {need}")
    bom = Header.parse("\ufeffts,phase_diff,entropy_rate,creative_band,risk_band", "m.csv")
    assert (bom.ts_index, bom.cols) == (0, (1, 2, 3, 4))


def test_the_metrics_reader_names_its_file_and_says_when_it_was_replaced(tmp_path):
    from tracker.csvformat import MetricsFileError
    from tracker.metrics_reader import MetricsReader
    from tracker.timeparse import TimeParser, parse_zone

    p = write_metrics(tmp_path, sample_rows(0, 1))
    log = io.StringIO()
    reader = MetricsReader(p, TimeParser(parse_zone("+09:00")), Reporter(log))
    assert sum(len(s) for s in reader.chunks()) == 6
    new = write_metrics(tmp_path / "new", sample_rows(0, 2))
    new.replace(p)  # another file in its place
    assert sum(len(s) for s in reader.chunks()) == 11  # read again from its first row
    assert log.getvalue() == f"{p}: replaced or truncated; reading it from the start\n"
    p.write_text("time,foo\n1,2\n")
    with pytest.raises(MetricsFileError) as caught:
        list(reader.chunks())
    assert str(caught.value).startswith(f"{p}:1: header lacks column(s) ts, ")


def test_the_metrics_reader_takes_a_header_with_bytes_not_utf8_and_refuses_a_huge_one(
        tmp_path):
    from tracker.csvformat import MetricsFileError
    from tracker.metrics_reader import MetricsReader
    from tracker.timeparse import TimeParser, parse_zone

    p = tmp_path / "metrics.csv"
    p.write_bytes(b"ts,phase_diff,entropy_rate,creative_band,risk_band,caf\xe9\n"
                  + "".join(r + ",x\n" for r in sample_rows(0, 1)).encode())
    reader = MetricsReader(p, TimeParser(parse_zone("+09:00")), Reporter(io.StringIO()))
    assert sum(len(s) for s in reader.chunks()) == 6
    p.write_bytes(b"ts," + b"x" * (1 << 20) + b"\n")
    with pytest.raises(MetricsFileError) as caught:
        list(MetricsReader(p, TimeParser(parse_zone("+09:00")),
                           Reporter(io.StringIO())).chunks())
    assert str(caught.value) == f"{p}:1: header longer than 1 MiB; is this a metrics.csv?"


def test_each_unusable_path_is_said_with_its_fix(tmp_path):
    import errno as e
    import os as o

    from tracker.fileerrors import dangling, unusable

    def said(code, path="p"):
        return unusable(OSError(code, o.strerror(code), path))

    assert said(e.ELOOP) == "p: cannot use: its symbolic links form a loop; fix the link"
    assert said(e.ENOTDIR) == ("p: cannot use: a part of the path is a file, not a "
                               "directory; check --root")
    assert said(e.ENOSPC) == "p: cannot use: No space left on device; check the path"
    assert said(e.ENOENT) == "p: cannot use: No such file or directory; check the path"
    assert unusable(OSError("gone")) == "?: cannot use: gone; check the path"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    assert said(e.ENOENT, str(link)) == (
        f"{link}: cannot use: a link to {str(tmp_path / 'nowhere')!r}, which does not exist; "
        "fix the link")
    assert dangling(link) == (f" (a link to {str(tmp_path / 'nowhere')!r}, which does not "
                              "exist; fix the link)")
    (tmp_path / "nowhere").write_text("")
    assert dangling(link) == "" and dangling(tmp_path / "nowhere") == ""
