"""Random bytes and random mutations of real files: no exception escapes a reader, the
tracker or a scrape, and the good lines around a damaged one still give their events."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from exporter.cli import build
from tests.rootdata import HEADER, effects, event, sample_rows
from tracker.history import HistoryReader
from tracker.report import Reporter
from tracker.run import run_once
from tracker.settings import resolve
from tracker.store import EffectsFileError, EffectsWriter, read_effects
from tracker.timeparse import TimeParser, parse_zone

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
HOSTILE = [b"\x00" * 64, b"\xff\xfe", b"\r", b'"', b",,,", b"\n", b"[" * 50, b"9" * 400,
           b"\xed\xa0\x80", b"nan", b"\\ud800",
           # valid JSON no reader should choke on: nested past the recursion limit, an
           # integer past the digit limit, a float past the range
           b'{"ts":"2025-10-23T13:10:00+09:00","rule":"r","actor":"a","note":'
           + b"[" * 100_000 + b"]" * 100_000 + b"}",
           b'{"ts":"2025-10-23T13:10:00+09:00","rule":"r","actor":"a","old":' + b"9" * 5000
           + b"}",
           b'{"ts":"2025-10-23T13:10:00+09:00","rule":"r","actor":"a","old":1e400}']


@st.composite
def mutations(draw, lines: int):
    """(line index, operation, payload) a few times over."""
    ops = st.sampled_from(["replace", "insert", "cut", "duplicate", "drop_newline"])
    payload = st.one_of(st.binary(max_size=80), st.sampled_from(HOSTILE))
    return draw(st.lists(st.tuples(st.integers(0, lines - 1), ops, payload),
                         min_size=1, max_size=3))


def mutate(lines: list[bytes], muts) -> tuple[list[bytes], set[int]]:
    """The mutated lines, and the indices of the original lines touched."""
    out: list[bytes | None] = list(lines)
    touched = set()
    for i, op, payload in muts:
        touched.update({i, i + 1})  # a lost newline also damages the next line
        line = out[i] or b""
        if op == "replace":
            out[i] = payload
        elif op == "insert":
            k = len(payload) % (len(line) + 1)
            out[i] = line[:k] + payload + line[k:]
        elif op == "cut":
            out[i] = line[: len(payload) % (len(line) + 1)]
        elif op == "duplicate":
            out[i] = line + b"\n" + line
        elif i + 1 < len(out):  # drop_newline: merged with the next line
            out[i] = line + payload.replace(b"\n", b"") + (out[i + 1] or b"")
            out[i + 1] = None
    return [x for x in out if x is not None], touched


def make_root(tmp, metrics: bytes, history: bytes):
    (tmp / "logs").mkdir(exist_ok=True)
    (tmp / "controls").mkdir(exist_ok=True)
    (tmp / "logs" / "metrics.csv").write_bytes(metrics)
    (tmp / "controls" / "rules_history.jsonl").write_bytes(history)
    (tmp / "logs" / "rules_effects.csv").unlink(missing_ok=True)
    return tmp


GOOD_ROWS = [r.encode() for r in sample_rows(-40, 80)]
EVENTS = [event(0, rule="creative_min"), event(40, rule="risk_max")]
HISTORY = b"".join(json.dumps(e).encode() + b"\n" for e in EVENTS)


@FUZZ
@given(muts=mutations(len(GOOD_ROWS) - 10))  # the last rows stay whole: metrics reach t0+POST
def test_metrics_mutations_lose_no_event(tmp_path_factory, muts):
    rows, touched = mutate(GOOD_ROWS, muts)
    root = make_root(tmp_path_factory.mktemp("m"), HEADER.encode() + b"\n" +
                     b"".join(r + b"\n" for r in rows), HISTORY)
    run_once(resolve(str(root), env={}), Reporter(io.StringIO()))
    got = {r["rule"]: r for r in effects(root)}
    assert set(got) == {"creative_min", "risk_max"}
    # Each damaged line can take a sample away or (read as a valid row) add one, no more.
    slack = 2 * len(touched)
    for row in got.values():
        for side in ("pre", "post"):
            n = int(row[f"n_{side}_phase"])
            assert abs(n - 146) <= slack, (row, muts)


@FUZZ
@given(junk=st.binary(max_size=3000))
def test_random_bytes_as_every_input_never_raise(tmp_path_factory, junk):
    root = make_root(tmp_path_factory.mktemp("b"), junk, junk)
    (root / "gateway_activation.yaml").write_bytes(junk)
    run_once(resolve(str(root), env={}), Reporter(io.StringIO()))
    (root / "logs" / "rules_effects.csv").write_bytes(junk)
    try:
        read_effects(root / "logs" / "rules_effects.csv")
    except EffectsFileError:
        pass  # a clear "move the file aside", which is the contract
    generate_latest(build(str(root)))


@FUZZ
@given(muts=mutations(len(EVENTS) * 3))
@example(muts=[(1, "replace", HOSTILE[-3]), (3, "replace", HOSTILE[-2])])
def test_history_mutations_keep_the_good_lines(tmp_path_factory, muts):
    lines = [json.dumps(event(10 * k, rule=f"r{k}")).encode() for k in range(len(EVENTS) * 3)]
    mutated, touched = mutate(lines, muts)
    root = make_root(tmp_path_factory.mktemp("h"), b"", b"".join(x + b"\n" for x in mutated))
    reader = HistoryReader(root / "controls" / "rules_history.jsonl",
                           TimeParser(parse_zone("+09:00")), Reporter(io.StringIO()))
    rules = {ev.rule for ev in reader.read_new()}
    untouched = {f"r{k}" for k in range(len(lines)) if k not in touched}
    assert untouched <= rules
    generate_latest(build(str(root)))


# Any text JSON can carry: lone surrogates, NUL, CR, quotes, commas, newlines.
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | \
    st.sampled_from(["\ud800", "a\rb", "a\r\nb", '"', "x,y", "\x00", "\n", "\ufeff"])


@FUZZ
@given(actor=texts, rule=texts.filter(bool), note=texts, old=texts)
def test_what_the_tracker_writes_it_reads_back(tmp_path_factory, actor, rule, note, old):
    ev = dict(event(0), actor=actor, rule=rule, note=note, old=old)
    root = make_root(tmp_path_factory.mktemp("w"),
                     (HEADER + "\n" + "".join(r + "\n" for r in sample_rows(-40, 40))).encode(),
                     json.dumps(ev).encode() + b"\n")
    for _ in range(2):  # the second run finds the row recorded and adds none
        summary = run_once(resolve(str(root), env={}), Reporter(io.StringIO()))
    assert summary.written == 0 and summary.pending == 0
    _, rows, bad = read_effects(root / "logs" / "rules_effects.csv")
    assert len(rows) == 1 and bad == []
    writer = EffectsWriter(root / "logs" / "rules_effects.csv")
    reader = HistoryReader(root / "controls" / "rules_history.jsonl",
                           TimeParser(parse_zone("+09:00")), Reporter(io.StringIO()))
    (parsed,) = reader.read_new()
    assert parsed.key in writer.keys
    generate_latest(build(str(root)))
