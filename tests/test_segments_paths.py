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

from tests.test_segment_cache import HEADER, T0, TP
from tests.test_tracker_property import fmt_ts
from tracker import segments
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
    looked = []
    for n, seg in enumerate(segs):
        monkeypatch.setattr(seg, "span", lambda lo, hi, n=n, f=seg.span: (
            looked.append(n), f(lo, hi))[1])
    buf = buffer(*segs)
    assert buf.window(T0 + 2_000_000, T0 + 3_000_000)[0].tolist() == [2.0, 3.0]
    buf.prepare(T0 + 2_000_000, T0 + 3_000_000)
    assert looked == [1, 1]


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
