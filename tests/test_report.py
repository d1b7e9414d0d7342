"""tracker.report: each bad-input message once, counted per file."""

import io

from tracker.report import Reporter


def test_each_message_once_and_counted_per_file():
    out = io.StringIO()
    rep = Reporter(out)
    rep.bad("a.csv", 3, "bad")
    rep.bad("a.csv", 3, "bad")
    rep.bad("a.csv", 4, "bad")
    rep.bad("b.jsonl", 3, "bad")
    rep.info("note")
    assert out.getvalue().splitlines() == ["a.csv:3: bad", "a.csv:4: bad", "b.jsonl:3: bad", "note"]
    assert rep.count == 3 and rep.by_file == {"a.csv": 2, "b.jsonl": 1}


def test_stderr_when_no_stream(capsys):
    rep = Reporter()
    rep.bad("a.csv", 1, "bad")
    rep.info("note")
    assert capsys.readouterr().err == "a.csv:1: bad\nnote\n"
