"""tracker.history: each line's reading and message, and the reader's incremental bookkeeping."""

from __future__ import annotations

import io
import json
import math
import os
from datetime import timedelta, timezone

import pytest

from tracker import history
from tracker.history import HistoryReader, parse_line, value_text
from tracker.report import Reporter
from tracker.timeparse import TimeParser

KST = timezone(timedelta(hours=9))
TS = "2025-10-23T13:10:00+09:00"
T_US = 1761192600 * 1_000_000


@pytest.mark.parametrize("value, text", [
    (True, None), (False, None), (None, None), (3, "3"), (-0, "0"), (0.24, "0.24"),
    (1e20, "1e+20"), (math.nan, None), (math.inf, None), ("abc", "abc"), ("", ""),
    ([1], None), ({"a": 1}, None),
])
def test_value_text(value, text):
    assert value_text(value) == text


def parse(raw: bytes | str, lineno: int = 7):
    out = io.StringIO()
    rep = Reporter(out)
    ev = parse_line(raw if isinstance(raw, bytes) else raw.encode(), "h.jsonl", lineno,
                    TimeParser(KST), rep)
    return ev, out.getvalue().splitlines()


def line(**fields) -> str:
    obj = {"ts": TS, "actor": "Lubit", "rule": "r", "old": 1, "new": 2}
    obj.update(fields)
    return json.dumps({k: v for k, v in obj.items() if v is not ...})


def test_a_good_line():
    ev, said = parse("\ufeff " + line(note="why", old=0.22, new="high") + " \r")
    assert said == []
    assert (ev.ts, ev.t_us, ev.actor, ev.rule, ev.old, ev.new, ev.note, ev.line) == (
        TS, T_US, "Lubit", "r", "0.22", "high", "why", 7)
    assert ev.key == (TS, "Lubit", "r", "0.22", "high")


@pytest.mark.parametrize("raw, message", [
    (b'{"ts": "\xff"}', "not valid UTF-8 (byte 8); line skipped"),
    ('{"ts": ', "malformed JSON (Expecting value at column 7); line skipped"),
    ("[1, 2]", "not a JSON object; line skipped"),
    (line(ts=...), "missing ts; line skipped"),
    (line(ts=5), "missing ts; line skipped"),
    (line(ts="  "), "missing ts; line skipped"),
    (line(ts="soon"), "invalid ts 'soon' (want ISO 8601 with offset); line skipped"),
    (line(ts="2025-10-23T25:00:00+09:00"),
     "invalid ts '2025-10-23T25:00:00+09:00' (want ISO 8601 with offset); line skipped"),
    (line(rule=...), "missing rule; line skipped"),
    (line(rule=""), "missing rule; line skipped"),
    (line(rule=3), "missing rule; line skipped"),
    ("X" + line(), "malformed JSON (Expecting value at column 1); line skipped"),
])
def test_lines_left_out_say_why(raw, message):
    ev, said = parse(raw)
    assert ev is None and said == [f"h.jsonl:7: {message}"]


def test_blank_line_is_nothing_to_say():
    assert parse("   \r") == (None, [])


@pytest.mark.parametrize("fields, kept, message", [
    ({"actor": ...}, ("", "1", "2"), "missing actor; kept with an empty actor"),
    ({"actor": 5}, ("", "1", "2"), "missing actor; kept with an empty actor"),
    ({"old": ...}, ("Lubit", "", "2"), "old missing; kept with an empty old"),
    ({"old": None}, ("Lubit", "", "2"), "old missing; kept with an empty old"),
    ({"new": [1]}, ("Lubit", "1", ""), "new not a number or string; kept with an empty new"),
    ({"new": True}, ("Lubit", "1", ""), "new not a number or string; kept with an empty new"),
])
def test_lines_kept_with_an_empty_field_say_which(fields, kept, message):
    ev, said = parse(line(**fields, note=5))
    assert (ev.actor, ev.old, ev.new, ev.note) == (*kept, "")
    assert said == [f"h.jsonl:7: {message}"]


# --- the reader -----------------------------------------------------------------------------


@pytest.fixture
def reader(tmp_path):
    out = io.StringIO()
    r = HistoryReader(tmp_path / "h.jsonl", TimeParser(KST), Reporter(out))
    r.said = out
    return r


def write(reader, text: str, mode: str = "a") -> None:
    with open(reader.path, mode, encoding="utf-8") as f:
        f.write(text)


def rules(events) -> list[str]:
    return [e.rule for e in events]


def test_missing_then_appended_lines_each_read_once_with_their_numbers(reader):
    assert reader.read_new() == [] and reader.exists is False
    write(reader, line(rule="a") + "\n" + line(rule="b") + "\n")
    got = reader.read_new()
    assert reader.exists is True and rules(got) == ["a", "b"] and [e.line for e in got] == [1, 2]
    assert reader.read_new() == [] and reader.generation == 1
    write(reader, "{bad\n" + line(rule="c") + "\n")
    got = reader.read_new()
    assert rules(got) == ["c"] and got[0].line == 4
    assert reader.said.getvalue().startswith(f"{reader.path}:3: malformed JSON")
    assert reader.offset == reader.path.stat().st_size and reader.lineno == 4


def test_a_last_line_without_newline_is_taken_only_when_whole(reader):
    write(reader, line(rule="a") + "\n" + line(rule="b"))  # the writer left the newline off
    assert rules(reader.read_new()) == ["a", "b"]
    write(reader, "\n" + line(rule="c")[:10])  # its newline, then half of the next line
    assert reader.read_new() == []
    write(reader, line(rule="c")[10:] + "\n")
    got = reader.read_new()
    assert rules(got) == ["c"] and got[0].line == 3
    assert reader.said.getvalue() == ""


def test_both_lines_of_a_first_read_with_an_unterminated_last(reader):
    write(reader, line(rule="a") + "\n" + line(rule="b"))
    got = reader.read_new()
    assert rules(got) == ["a", "b"] and [e.line for e in got] == [1, 2]
    write(reader, "\n")
    assert reader.read_new() == [] and reader.lineno == 2
    write(reader, "\n" + line(rule="c") + "\n")  # an empty line 3, then line 4
    got = reader.read_new()
    assert rules(got) == ["c"] and got[0].line == 4


@pytest.mark.parametrize("tail", ["[1, 2]", "5", "  ", '"text"'])
def test_an_unterminated_tail_that_is_not_an_object_waits(reader, tail):
    write(reader, line(rule="a") + "\n" + tail)
    assert rules(reader.read_new()) == ["a"]
    assert reader.offset == len(line(rule="a")) + 1
    assert reader.said.getvalue() == ""


def test_truncated_or_replaced_file_is_read_from_the_top(reader):
    write(reader, line(rule="a") + "\n" + line(rule="b") + "\n")
    reader.read_new()
    write(reader, line(rule="x") + "\n", mode="w")  # truncated and rewritten: shorter
    got = reader.read_new()
    assert rules(got) == ["x"] and got[0].line == 1 and reader.generation == 2
    new = reader.path.with_name("h.new")
    new.write_text(line(rule="y") + "\n" + line(rule="z") + "\n", encoding="utf-8")
    os.replace(new, reader.path)  # replaced: same size or longer, a new inode
    got = reader.read_new()
    assert rules(got) == ["y", "z"] and [e.line for e in got] == [1, 2]
    assert reader.generation == 3


def test_a_new_file_starting_with_an_empty_line_after_an_unterminated_one(reader):
    write(reader, line(rule="a"))  # taken without its newline
    assert rules(reader.read_new()) == ["a"]
    new = reader.path.with_name("h.new")
    new.write_text("\n{bad\n" + line(rule="b") + "\n", encoding="utf-8")
    os.replace(new, reader.path)
    got = reader.read_new()
    assert rules(got) == ["b"] and got[0].line == 3
    assert f"{reader.path}:2: malformed JSON" in reader.said.getvalue()


# --- every message a history line can get, in full ---------------------------------------------
GOOD = '"ts": "2025-10-23T13:10:00+09:00", "actor": "Lubit", "rule": "r", "old": 1, "new": 2'


@pytest.mark.parametrize("raw, message", [
    # An integer too long for Python to read (over 4300 digits).
    ('{"ts": "2025-10-23T13:10:00+09:00", "rule": "r", "n": ' + "1" * 5000 + "}",
     "unreadable JSON (Exceeds the limit (4300 digits) for integer string conversion"),
    ("[" * 100_000 + "]" * 100_000, "JSON nested too deep to read; line skipped"),
    ("[1, 2]", "not a JSON object; line skipped"),
    ('{"actor": "a", "rule": "r"}', "missing ts; line skipped"),
    ('{"ts": "yesterday", "rule": "r"}', "invalid ts 'yesterday' (want ISO 8601 with offset); "
     "line skipped"),
    ('{"ts": "2025-10-23T13:10:00+09:00", "actor": "a"}', "missing rule; line skipped"),
    ("{" + GOOD.replace('"actor": "Lubit", ', "") + "}",
     "missing actor; kept with an empty actor"),
    ("{" + GOOD.replace('"old": 1', '"old": [1]') + "}",
     "old not a number or string; kept with an empty old"),
    ("{" + GOOD.replace(', "new": 2', "") + "}", "new missing; kept with an empty new"),
    ("{" + GOOD.replace('"Lubit"', '"Lu\\rbit"') + "}",
     "text with a lone surrogate or a carriage return; kept with U+FFFD and a newline in "
     "their place"),
    ("{" + GOOD.replace('"Lubit"', '"Lu\\ud800bit"') + "}",
     "text with a lone surrogate or a carriage return; kept with U+FFFD and a newline in "
     "their place"),
])
def test_each_bad_line_is_said_with_its_file_line_and_reason(raw, message):
    out = io.StringIO()
    parse_line(raw.encode("utf-8"), "controls/rules_history.jsonl", 7, TimeParser(KST),
               Reporter(out))
    said = out.getvalue()
    assert said.startswith(f"controls/rules_history.jsonl:7: {message}"), said


@pytest.mark.parametrize("text, kept", [
    ("plain", "plain"), ("a\r\nb", "a\nb"), ("a\rb", "a\nb"), ("a\r\rb", "a\n\nb"),
    ("\ud800x\udfff", "\ufffdx\ufffd"), ("é\ud83d", "é\ufffd"), ("😀", "😀"),
])
def test_text_is_made_writable_the_same_way_every_time(text, kept):
    assert history._writable(text) == kept
