"""Which path reads a block, and the exact values, messages and line numbers each gives.

Dirty values stay on the fast path and a bad line costs only the lines around it (issue 11):
a slower fallback reads a block to the same values, so these tests watch the paths
themselves (the row-by-row parse, the regex, the blank filling, the timestamp parser) as
well as what comes out. Ties are on purpose: window bounds exactly on a sample's time, a
chunk of exactly MAX_PIECES pieces.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.rootdata import sample_rows, write_metrics
from tests.test_segment_cache import HEADER, T0, TP
from tests.test_tracker_property import fmt_ts
from tracker import segments
from tracker.samples import SampleSource
from tracker.timeparse import FixedFormat

STEP = 200_000  # us between rows


def row(ms: int, body: str = "1,2,3,4", style: str = "kst_ms") -> str:
    return f"{fmt_ts(ms, style)},{body}"


def rows(n: int, body=lambda k: f"{k},{k + 0.5},2,3") -> list[str]:
    """n clean rows, 200 ms apart from T0; phase_diff is the row's index."""
    return [row(k * 200, body(k)) for k in range(n)]


def at(k: float) -> int:
    """The time of row k (fractions fall between rows)."""
    return T0 + round(k * STEP)


class CountingParser:
    """The tracker's TimeParser, counting the timestamps it parses."""

    def __init__(self) -> None:
        self.n = 0

    def parse(self, text: str) -> int:
        self.n += 1
        return TP.parse(text)


def fixed(lines, said=None, tp=TP) -> segments.FixedSegment:
    fmt = FixedFormat.of(lines[0].split(",")[0])
    report = (lambda idx, why: said.append((idx, why))) if said is not None else (
        lambda idx, why: None)
    return segments.FixedSegment(list(lines), fmt, HEADER, tp, report)


def parsed(seconds, values=None) -> segments.ParsedSegment:
    """A row-by-row segment with rows at T0 + seconds; every metric's value is `values`
    (default: the seconds)."""
    vals = [float(v) for v in (values if values is not None else seconds)]
    return segments.ParsedSegment([T0 + round(s * 1e6) for s in seconds],
                                  [list(vals) for _ in range(4)])


def spy(monkeypatch, owner, name) -> list:
    """Replaces owner.name (a function or method) by one that records each call's args."""
    calls: list = []
    orig = getattr(owner, name)
    if isinstance(owner, type):
        def wrapper(self, *args):
            calls.append(args)
            return orig(self, *args)
    else:
        def wrapper(*args):
            calls.append(args)
            return orig(*args)
    monkeypatch.setattr(owner, name, wrapper)
    return calls


@pytest.fixture
def paths(monkeypatch) -> SimpleNamespace:
    """The calls of each slower path of FixedSegment."""
    regex = segments._NOT_JSON_NUMBER
    sub_calls: list = []

    def sub(repl, text):
        sub_calls.append(text)
        return regex.sub(repl, text)

    monkeypatch.setattr(segments, "_NOT_JSON_NUMBER", SimpleNamespace(sub=sub))
    return SimpleNamespace(
        parse=spy(monkeypatch, segments.FixedSegment, "_parse"),
        json=spy(monkeypatch, segments.FixedSegment, "_values"),
        slowly=spy(monkeypatch, segments.FixedSegment, "_values_slowly"),
        fill=spy(monkeypatch, segments, "_fill_blanks"),
        regex=sub_calls,
    )


def nan_str(values) -> list:
    """Values as a list, NaN as the string 'nan' so that it compares equal."""
    return ["nan" if math.isnan(v) else v for v in np.asarray(values, dtype=float).tolist()]


def as_lists(table) -> list[list]:
    return [nan_str(r) for r in table]


# --- blanks as JSON ---------------------------------------------------------------------

@pytest.mark.parametrize("joined, want", [
    ("1,,,2", [[1.0, "nan", "nan", 2.0]]),  # two blanks in a row: ',,,' overlaps
    ("1,,2,,,3", [[1.0, "nan", 2.0, "nan", "nan", 3.0]]),
    ("1,2],[,3", [[1.0, 2.0], ["nan", 3.0]]),  # a row that starts blank
    ("1,],[2,3", [[1.0, "nan"], [2.0, 3.0]]),  # a row that ends blank
    (",1,2", [["nan", 1.0, 2.0]]),  # the block starts blank
    ("1,2,", [[1.0, 2.0, "nan"]]),  # the block ends blank
    (",", [["nan", "nan"]]),
    ("1,2", [[1.0, 2.0]]),
])
def test_blanks_are_filled_with_what_json_reads_as_nan(joined, want):
    assert as_lists(segments._loads(segments._fill_blanks(joined))) == want


# --- which path reads a block of a clean run --------------------------------------------

def test_clean_blanks_nan_and_inf_are_read_by_loadtxt_alone(paths):
    lines = rows(20)
    lines[3] = row(600, "1,,2,3")
    lines[7] = row(1400, "nan,inf,-inf,NaN")
    lines[19] = row(3800, "4,5,6,")  # the block ends blank
    said = []
    x = fixed(lines, said).block(0, 20)
    assert (paths.json, paths.slowly, paths.regex, paths.fill) == ([], [], [], [])
    assert len(paths.parse) == 1 and said == []
    assert nan_str(x[:, 3]) == [1.0, "nan", 2.0, 3.0]
    assert nan_str(x[:, 7]) == ["nan", math.inf, -math.inf, "nan"]
    assert nan_str(x[:, 19]) == [4.0, 5.0, 6.0, "nan"]
    assert x[0, :3].tolist() == [0.0, 1.0, 2.0]


def test_a_junk_field_is_read_by_the_regex_not_row_by_row_and_said_with_its_row(paths):
    lines = rows(20)
    lines[11] = row(2200, "1e3, ERR ,,+7")  # an exponent, junk, a blank, a '+' JSON refuses
    said = []
    seg = fixed(lines, said)
    seg.skipped = 100  # the segment starts at line 100 of its chunk
    x = seg.block(5, 15)
    assert paths.slowly == [] and len(paths.json) == 1 and len(paths.regex) == 1
    assert said == [(111, "entropy_rate ' ERR ' is not a number; left out of the means")]
    assert nan_str(x[:, 6]) == [1000.0, "nan", "nan", 7.0]
    assert x[0].tolist() == [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 1000.0, 12.0, 13.0, 14.0]
    assert x[1, 0] == 5.5


def test_a_short_row_is_read_as_json_without_the_regex(paths):
    lines = rows(10)
    lines[4] = row(800, "1,2,3")  # a field short: the JSON parse says so
    said = []
    x = fixed(lines, said).block(2, 8)
    assert paths.slowly == [] and paths.regex == [] and paths.fill == []
    assert len(paths.json) == 1
    assert said == [(4, "4 fields, header has 5; row left out")]
    assert nan_str(x[:, 2]) == ["nan"] * 4
    assert x[0].tolist()[:2] + x[0].tolist()[3:] == [2.0, 3.0, 5.0, 6.0, 7.0]


def test_a_short_row_among_blanks_is_read_as_json_once_blanks_are_filled(paths):
    lines = rows(10)
    lines[2] = row(400, ",2,,")  # blanks at both ends and inside
    lines[4] = row(800, "1,2,3")
    lines[5] = row(1000, "5,,,3")
    said = []
    x = fixed(lines, said).block(0, 10)
    assert paths.slowly == [] and paths.regex == []
    assert len(paths.json) == 1 and len(paths.fill) == 1
    assert said == [(4, "4 fields, header has 5; row left out")]
    assert nan_str(x[:, 2]) == ["nan", 2.0, "nan", "nan"]
    assert nan_str(x[:, 5]) == [5.0, "nan", "nan", 3.0]
    assert nan_str(x[:, 4]) == ["nan"] * 4
    assert x[0, 6:].tolist() == [6.0, 7.0, 8.0, 9.0]


def test_a_field_with_a_bracket_is_read_row_by_row(paths):
    lines = rows(4)
    lines[1] = row(200, "[1,2,3,4")  # JSON would read the bracket as an array
    said = []
    x = fixed(lines, said).block(0, 4)
    assert len(paths.slowly) == 1
    assert said == [(1, "phase_diff '[1' is not a number; left out of the means")]
    assert nan_str(x[:, 1]) == ["nan", 2.0, 3.0, 4.0]
    assert nan_str(x[:, 0]) == [0.0, 0.5, 2.0, 3.0]


def test_junk_after_an_empty_first_row_is_said_for_its_own_row():
    lines = rows(3)
    lines[0] = row(0, "")  # nothing after the timestamp: the block's text starts '],['
    lines[1] = row(200, "1,ERR,3,4")
    said = []
    x = fixed(lines, said).block(0, 3)
    assert sorted(said) == [(0, "2 fields, header has 5; row left out"),
                            (1, "entropy_rate 'ERR' is not a number; left out of the means")]
    assert nan_str(x[:, 1]) == [1.0, "nan", 3.0, 4.0]
    assert nan_str(x[:, 0]) == ["nan"] * 4


def test_values_are_those_of_the_rows_asked_for_only():
    lines = rows(10)
    lines[6] = row(1200, "1,ERR,3,4")
    said = []
    seg = fixed(lines, said)
    cols, finite = seg.values(1, 3)
    assert [list(c) for c in cols] == [[1.0, 2.0], [1.5, 2.5], [2.0, 2.0], [3.0, 3.0]]
    assert finite is True and said == []
    assert seg.known.tolist() == [False, True, True] + [False] * 7
    cols, finite = seg.values(5, 7)
    assert finite is False and said == [
        (6, "entropy_rate 'ERR' is not a number; left out of the means")]


def test_rows_kept_after_a_drop_are_not_parsed_again_and_keep_what_was_said(paths):
    lines = rows(10)
    lines[6] = row(1200, "1,ERR,3,4")
    said = []
    seg = fixed(lines, said)
    seg.prepare(0, 10)
    assert said == [] and len(paths.parse) == 1
    seg.drop_before(at(3))
    assert seg.skipped == 3 and seg.lines == lines[3:]
    x = seg.block(0, 7)
    assert len(paths.parse) == 1  # the kept rows' values were kept
    assert said == [(6, "entropy_rate 'ERR' is not a number; left out of the means")]
    assert x[0].tolist() == [3.0, 4.0, 5.0, 1.0, 7.0, 8.0, 9.0]


# --- windows over the buffer ------------------------------------------------------------

def buffer(*segs) -> segments.SampleBuffer:
    buf = segments.SampleBuffer()
    for seg in segs:
        buf.add(seg)
    return buf


def test_windows_parse_only_the_timestamps_of_each_segments_first_and_last_rows():
    tp = CountingParser()
    a = fixed(rows(11), tp=tp)  # rows 0..10
    b = fixed([row(2000, "-1,-1,-1,-1")] + [row(k * 200) for k in range(11, 31)], tp=tp)
    tp.n = 0
    buf = buffer(a, b)
    x = buf.window(at(1), at(5))  # one segment: found by bisect, no timestamp parsed
    assert x[0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and tp.n == 0
    # Two segments that meet on a tie (a's last row and b's first share a time): in order
    # as they are, told by the first and last rows in the window of each.
    x = buf.window(at(3), at(20))
    assert x[0].tolist() == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, -1.0] + [1.0] * 10
    assert tp.n == 4


def test_rows_of_a_later_segment_placed_before_go_by_time_in_file_order_on_ties():
    late = parsed([5.0])
    early = parsed([5.5])
    assert [list(v) for v in buffer(early, late).window(T0, T0 + 10_000_000)] == [
        [5.0, 5.5]] * 4
    # A segment between them with no row in the window does not hide the disorder.
    around = parsed([3.0, 7.0])
    assert [list(v) for v in buffer(early, around, late).window(T0 + 4_000_000,
                                                                T0 + 6_000_000)] == [
        [5.0, 5.5]] * 4
    # The order is told by the last row in the window of the first segment, not its first.
    first = parsed([1.0, 2.0, 3.0])
    assert buffer(first, parsed([2.5])).window(T0, T0 + 10_000_000)[0].tolist() == [
        1.0, 2.0, 2.5, 3.0]
    # Many ties: rows of the same time keep their file order (a stable sort).
    a = parsed([1.0] * 8, range(100, 108))
    b = parsed([0.0] * 8 + [1.0] * 8, range(16))
    x = buffer(a, b).window(T0, T0 + 1_000_000)
    assert x[0].tolist() == [*range(8), *range(100, 108), *range(8, 16)]


def test_a_window_over_one_clean_block_gives_views_of_the_kept_rows():
    seg = fixed(rows(10))
    x = buffer(seg).window(at(2), at(6))
    assert x[0].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert all(np.shares_memory(v, seg.parsed) for v in x)


def test_windows_and_prepares_look_only_into_the_segments_they_overlap(monkeypatch):
    segs = [parsed([0.0, 1.0]), parsed([2.0, 3.0]), parsed([4.0, 5.0])]
    looked = [spy(monkeypatch, seg, "span") for seg in segs]
    buf = buffer(*segs)
    assert buf.window(T0 + 2_000_000, T0 + 3_000_000)[0].tolist() == [2.0, 3.0]
    buf.prepare(T0 + 2_000_000, T0 + 3_000_000)
    assert [len(calls) for calls in looked] == [0, 2, 0]


@pytest.mark.parametrize("lo, hi, known", [
    (at(9), at(12), [9]),  # the window starts exactly on the segment's last row
    (at(-3), at(0), [0]),  # ends exactly on its first row
    (at(4), at(6), [4, 5, 6]),  # bounds exactly on rows
    (at(3.5), at(6.5), [4, 5, 6]),
])
def test_prepare_parses_the_rows_of_the_window_only(lo, hi, known):
    seg = fixed(rows(10))
    buffer(seg).prepare(lo, hi)
    assert np.flatnonzero(seg.known).tolist() == known


def test_prepare_of_a_window_between_two_rows_allocates_nothing():
    seg = fixed(rows(10))
    buffer(seg).prepare(at(3.2), at(3.8))
    assert seg.parsed is None and seg.known is None


# --- a chunk's lines into runs and the lines read row by row ----------------------------

EARLIER = "timestamp earlier than the row before; placed by its time"
DUPLICATE = "duplicate of an earlier row; counted once"
SHORT = "3 fields, header has 5; row left out"


def read(lines, prev=None):
    """The chunk's segments as (kind, rows) with kind 'fixed' or 'rows', and what was said
    while reading it (in order)."""
    said: list = []
    segs = segments.chunk_segments(list(lines), HEADER, TP,
                                   lambda idx, why: said.append((idx, why)), prev)
    kinds = [("fixed" if isinstance(s, segments.FixedSegment) else "rows", len(s))
             for s in segs]
    return kinds, said, segs


def grid(a: int, b: int) -> list[str]:
    """Rows a..b-1 of the 200 ms grid."""
    return [row(k * 200) for k in range(a, b)]


SPIKE = row(100_000)  # a row far ahead of its neighbours


@pytest.mark.parametrize("lines, kinds, said", [
    # The chunk's first row is the spike: the run goes on after it.
    ([SPIKE, *grid(0, 20)], [("rows", 1), ("fixed", 20)], []),
    # A row after the spike that is earlier than the run before it is not the run's.
    ([*grid(0, 6), SPIKE, row(500), *grid(6, 16)],
     [("fixed", 6), ("rows", 2), ("fixed", 10)], [(7, EARLIER)]),
    # ... nor is one earlier than the run's only row before the spike.
    ([row(1000), SPIKE, row(500), *grid(6, 16)],
     [("fixed", 1), ("rows", 2), ("fixed", 10)], [(2, EARLIER)]),
    # The spike two rows before the end.
    ([*grid(0, 6), SPIKE, *grid(6, 8)], [("fixed", 6), ("rows", 1), ("fixed", 2)], []),
    # A repeat of the run's last row after the spike is a duplicate.
    ([*grid(0, 6), SPIKE, row(1000), *grid(6, 16)],
     [("fixed", 6), ("rows", 1), ("fixed", 10)], [(7, DUPLICATE)]),
    # A repeat of the spike after a row: that row is not the run's next one either.
    ([*grid(0, 6), SPIKE, row(1200), SPIKE, *grid(7, 17)],
     [("fixed", 6), ("rows", 2), ("fixed", 10)], [(7, EARLIER), (8, DUPLICATE)]),
])
def test_a_spike_ahead_costs_the_row_by_row_path_only_its_own_lines(lines, kinds, said):
    got_kinds, got_said, _ = read(lines)
    assert (got_kinds, sorted(got_said)) == (kinds, said)


def test_a_run_does_not_end_on_a_short_row():
    lines = [
        row(1000, "1,2"),  # 0: a run of one short row, then a row out of order
        row(500),  # 1
        row(1200),  # 2
        row(1400, "1,2"),  # 3: the end of a run of two
        row(700),  # 4
        row(1600),  # 5
        row(1800, "1,2"),  # 6: inside a run: its run reads it
        *grid(10, 14),  # 7-10
        row(900),  # 11
        row(3000),  # 12
        row(3200, "1,2"),  # 13: a short row just before the chunk's last
        row(3400),  # 14
        row(3600, "1,2"),  # 15: the chunk's last row, still being written
    ]
    kinds, said, segs = read(lines)
    # The short rows are left out: the pieces read row by row hold only the others.
    assert kinds == [("rows", 1), ("fixed", 1), ("rows", 1), ("fixed", 6), ("rows", 1),
                     ("fixed", 3)]
    assert said == [(0, SHORT), (3, SHORT), (4, EARLIER), (11, EARLIER), (15, SHORT)]
    # A run's last time says how far the metrics reach.
    assert [s.last_us for s in segs if isinstance(s, segments.FixedSegment)] == [
        T0 + 1_200_000, T0 + 2_600_000, T0 + 3_400_000]


def test_a_short_row_just_before_the_chunks_last_is_inside_its_run():
    lines = [*grid(0, 4), row(100), *grid(4, 8), row(1600, "1,2"), row(1800)]
    kinds, said, _ = read(lines)
    assert (kinds, said) == ([("fixed", 4), ("rows", 1), ("fixed", 6)], [(4, EARLIER)])


def test_a_clean_chunk_is_one_run_without_a_look_at_each_line(monkeypatch):
    looked = spy(monkeypatch, segments, "_split")
    kinds, said, _ = read(rows(50), prev=(at(-1), row(-200)))
    assert (kinds, said, looked) == ([("fixed", 50)], [], [])
    # The same chunk with an undecodable byte in a value: the line is read row by row.
    lines = rows(50)
    lines[20] = row(4000, "1,2,\ufffd,4")
    kinds, said, _ = read(lines)
    assert len(looked) == 1 and kinds == [("fixed", 20), ("rows", 1), ("fixed", 29)]
    assert said == [(20, "creative_band '\ufffd' is not a number; left out of the means")]


def test_an_undecodable_byte_in_a_timestamp_inside_a_sorted_chunk_makes_a_bad_line():
    lines = rows(10)
    # Row 5's last digit of milliseconds replaced: the chunk's lines still sort.
    lines[5] = lines[5][:22] + "\ufffd" + lines[5][23:]
    kinds, said, segs = read(lines)
    assert kinds == [("fixed", 5), ("fixed", 4)]
    assert said == [(5, "invalid ts '2025-10-23T13:10:01.00\ufffd+09:00'; row left out")]
    # Once a window's first row in a run was this line, and its time could not be read.
    assert buffer(*segs).window(at(4), at(6))[0].tolist() == [4.0, 6.0]
    assert buffer(*segs, parsed([1.1])).window(at(5), at(6))[0].tolist() == [1.1, 6.0]


def pieces_chunk(units: int, tail: bool) -> list[str]:
    """Each unit: a run of two rows, a short row (read row by row as the run's end), and a
    row out of order (2 pieces); then a clean run at the end if `tail`."""
    lines = []
    for u in range(units):
        ms = u * 10_000
        lines += [row(ms), row(ms + 200), row(ms + 400, "1,2"), row(ms + 100)]
    if tail:
        lines += grid(units * 50, units * 50 + 3)
    return lines


def test_a_chunk_of_max_pieces_is_read_as_runs_and_one_more_piece_row_by_row():
    kinds, _, _ = read(pieces_chunk(segments.MAX_PIECES // 2, tail=False))
    assert kinds == [("fixed", 2), ("rows", 1)] * (segments.MAX_PIECES // 2)
    kinds, _, _ = read(pieces_chunk(segments.MAX_PIECES // 2, tail=True))
    assert kinds == [("rows", 16 * 3 + 3)]


@pytest.mark.parametrize("first, second, duplicate", [
    ("1,2,3,4", "1,2,3,4\r", True),  # a retry with a CRLF ending
    ("1,2,3,4\r", "1,2,3,4", True),
    ("1,2,3,4", "1,2,3,4 ", False),  # other bytes
    ("1,2,3,4 ", "1,2,3,4", False),
    ("1,2,3,", "1,2,3,X", False),
    ("1,2,3,X", "1,2,3,", False),
])
def test_a_late_row_repeated_in_a_later_piece_is_counted_once(first, second, duplicate):
    lines = [*grid(0, 4), row(100, first), *grid(4, 8), row(100, second), *grid(8, 12)]
    kinds, said, _ = read(lines)
    junk = [(n, "risk_band 'X' is not a number; left out of the means")
            for n, body in ((4, first), (9, second)) if body.endswith("X")]
    if duplicate:
        assert kinds == [("fixed", 4), ("rows", 1), ("fixed", 4), ("fixed", 4)]
        assert said == [(4, EARLIER), *junk, (9, DUPLICATE)]
    else:
        assert kinds == [("fixed", 4), ("rows", 1), ("fixed", 4), ("rows", 1), ("fixed", 4)]
        assert sorted(said) == sorted([(4, EARLIER), (9, EARLIER), *junk])


def test_a_late_row_is_checked_against_the_latest_time_so_far_not_the_last_runs():
    utc = row(50_000, style="utc_z")  # another layout: read row by row, by its time
    lines = [*grid(0, 6), SPIKE, *grid(6, 11), utc, *grid(11, 15)]
    kinds, said, _ = read(lines)
    assert kinds == [("fixed", 6), ("rows", 1), ("fixed", 5), ("rows", 1), ("fixed", 4)]
    assert said == [(12, EARLIER)]


def test_a_repeat_of_the_last_line_read_before_the_chunk_is_told_by_its_exact_bytes():
    prev = (T0, row(0, "1,2,3,X"))
    said: list = []
    seg = segments.parse_rows([row(0, "1,2,3,"), row(0, "1,2,3,X\r")], HEADER, TP,
                              lambda idx, why: said.append((idx, why)), prev)
    assert said == [(1, DUPLICATE)] and seg.keys == [T0]


# Whatever else a row holds (no bracket or quote: those rows are read row by row), the regex
# leaves JSON of one array per row: the JSON path needs no fallback after it.
FIELD_CHARS = st.sampled_from([*"0123456789,,,, \t\r.eE+-xX_\x00\x0b\u00a0\u0661\ufffd",
                               "NaN", "nan", "Infinity", "-inf", "1e400", "9" * 30, "0x1"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(FIELD_CHARS, max_size=20).map("".join), min_size=1, max_size=5))
def test_the_regex_leaves_one_json_array_per_row(bodies):
    junk: list = []
    text = segments._NOT_JSON_NUMBER.sub(lambda m: segments._as_json(m, junk), "],[".join(bodies))
    table = segments._loads(text)
    assert table is not None and len(table) == len(bodies)


def test_a_picture_window_over_a_timestamp_with_an_undecodable_byte_leaves_that_row_out(
        tmp_path):
    """Once the whole chunk was one run, and the picture's window could not read the row's
    time (ValueError)."""
    path = write_metrics(tmp_path, sample_rows(0, 10))
    data = path.read_bytes()
    good = sample_rows(0, 10)[25].encode()  # the row at 5 s
    path.write_bytes(data.replace(good, good[:22] + b"\xff" + good[23:]))
    window = SampleSource(path, TP).window(T0 + 4_000_000, T0 + 6_000_000)
    assert window.times_us == [T0 + k * 200_000 for k in (20, 21, 22, 23, 24, 26, 27, 28, 29,
                                                          30)]
