"""A FixedSegment parses each row once and keeps it: windows read through the kept rows, in
any order, parsed ahead or not, and after rows are dropped, give what a row-by-row read gives."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_tracker_property import BASE, fmt_ts
from tracker import segments
from tracker.csvformat import Header, parse_values, split_row
from tracker.timeparse import FixedFormat, TimeParser, parse_zone

HEADER = Header.parse("ts,phase_diff,entropy_rate,creative_band,risk_band", "metrics.csv")
TP = TimeParser(parse_zone("+09:00"))
T0 = TP.parse(BASE.isoformat(timespec="milliseconds"))

values = st.one_of(
    st.floats(-100, 100, allow_nan=False).map(lambda x: repr(round(x, 3))),
    st.sampled_from(["", " ", "nan", "inf", "ERR", "1e3", "+1", "9" * 400, '"2.5"', "\x00",
                     "1_0", "\u0661", "1.5\r", " 2 ", "-0", ".5"]),
)


def segment(lines, reports):
    fmt = FixedFormat.of(lines[0].split(",")[0])
    return segments.FixedSegment(list(lines), fmt, HEADER, TP,
                                 lambda idx, reason: reports.add((idx, reason)))


def expected(lines, i, j):
    """Each signal's finite values of rows i..j-1, read row by row with float(), and what
    is said about those rows (by line index)."""
    cols = [[] for _ in range(4)]
    said = set()
    for k in range(i, j):
        vals = parse_values(split_row(lines[k]), HEADER, lambda why, k=k: said.add((k, why)))
        for col, v in zip(cols, vals):
            if math.isfinite(v):
                col.append(v)
    return cols, said


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(values, min_size=4, max_size=4), min_size=1, max_size=40),
       ops=st.lists(st.tuples(st.sampled_from(["window", "drop", "prepare"]),
                              st.integers(-2, 42), st.integers(0, 20)), max_size=12))
def test_kept_rows_read_like_a_fresh_parse(rows, ops):
    lines = [",".join([fmt_ts(k * 200, "kst_ms"), *r]) for k, r in enumerate(rows)]
    said: set = set()
    seg = segment(lines, said)
    dropped = 0
    for op, start, length in ops:
        lo_us, hi_us = T0 + start * 200_000, T0 + (start + length) * 200_000
        if op == "prepare":  # parsed ahead, said only when a window holds the row
            said.clear()
            i, j = seg.span(lo_us, hi_us)
            if i < j:
                seg.prepare(i, j)
            assert not said
            continue
        if op == "drop":
            seg.drop_before(lo_us)
            dropped = max(dropped, min(max(start, 0), len(lines)))
            assert seg.lines == lines[dropped:]
            continue
        said.clear()
        i, j = seg.span(lo_us, hi_us)
        if i < j:
            got = seg.block(i, j)
            want, want_said = expected(lines, dropped + i, dropped + j)
            assert [x[[math.isfinite(v) for v in x]].tolist() for x in got] == want
            assert said == want_said
    # The rows dropped take their parsed values and notes with them.
    if seg.parsed is not None:
        assert seg.parsed.shape[1] == len(seg.lines) == len(seg.known)
    assert all(idx >= dropped for idx in seg.notes) and seg.noted == sorted(seg.notes)


def test_row_by_row_parse_says_what_is_wrong_with_each_line_and_orders_by_time():
    def line(s, body="1,2,3,4"):
        return f"{fmt_ts(round(s * 1000), 'kst_ms')},{body}"

    lines = [
        line(1),  # 0
        "x" * 140_000,  # 1: past csv's field size limit
        "",  # 2
        "a,b",  # 3
        "notatime,1,2,3,4",  # 4
        line(1),  # 5: a writer's retry
        line(0.5),  # 6: out of order, placed by its time
        line(2, "9,5,5,ERR"),  # 7
        line(2, "1,1,1,1"),  # 8: the same time as 7: after it, as in the file
        line(1) + "\r",  # 9: a retry with a CRLF ending
        line(0.2),  # 10: the last line read before this chunk, again
        '""',  # 11: one empty field
        line(3),  # 12
        line(3) + " ",  # 13: other bytes, not a retry
        line(4, "1,2,3,X"),  # 14
        line(4, "1,2,3,"),  # 15: not a retry of 14 either
    ]
    said = []
    prev = (T0 + 300_000, line(0.2) + "\r")
    seg = segments.parse_rows(lines, HEADER, TP, lambda i, why: said.append((i, why)), prev)
    assert said == [
        (1, "not a CSV row (field larger than field limit (131072)); row left out"),
        (2, "empty line; skipped"),
        (3, "2 fields, header has 5; row left out"),
        (4, "invalid ts 'notatime'; row left out"),
        (5, "duplicate of an earlier row; counted once"),
        (6, "timestamp earlier than the row before; placed by its time"),
        (7, "risk_band 'ERR' is not a number; left out of the means"),
        (9, "duplicate of an earlier row; counted once"),
        (10, "duplicate of an earlier row; counted once"),
        (11, "empty line; skipped"),
        (14, "risk_band 'X' is not a number; left out of the means"),
    ]
    assert seg.keys == [T0 + k * 100_000 for k in (5, 10, 20, 20, 30, 30, 40, 40)]
    assert seg.cols[0] == [1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert math.isnan(seg.cols[3][2])
    assert segments.parse_rows(["", "a,b"], HEADER, TP, lambda i, why: None, None) is None


def test_trimming_keeps_every_segment_still_needed_and_their_first_times():
    def parsed(*seconds):
        keys = [T0 + round(s * 1e6) for s in seconds]
        return segments.ParsedSegment(keys, [[float(s) for s in seconds] for _ in range(4)])

    buf = segments.SampleBuffer()
    for seg in (parsed(0, 1), parsed(5, 6, 7), parsed(2, 3), parsed(8, 9)):
        buf.add(seg)
    buf.trim(T0 + 3_000_000)
    assert [seg.keys for seg in buf.segments] == [
        [T0 + k * 1_000_000 for k in ks] for ks in ((5, 6, 7), (3,), (8, 9))]
    buf.trim(T0 + 6_000_000)
    assert [seg.first_us for seg in buf.segments] == [T0 + 6_000_000, T0 + 8_000_000]
    assert [list(v) for v in buf.window(T0 + 6_000_000, T0 + 6_000_000)] == [[6.0]] * 4


def test_a_bad_line_repeated_in_a_chunk_is_counted_once():
    def line(s, body="1,2,3,4"):
        return f"{fmt_ts(round(s * 1000), 'kst_ms')},{body}"

    lines = [line(k / 5) for k in range(20)]
    lines[10:10] = [line(0.5, "9,9,9,9"), "junk", line(0.5, "9,9,9,9"), "junk"]
    said = []
    segs = segments.chunk_segments(lines, HEADER, TP, lambda i, why: said.append((i, why)),
                                   None)
    assert (12, "duplicate of an earlier row; counted once") in said
    assert (13, "duplicate of an earlier row; counted once") in said
    assert sum(len(s) for s in segs) == 21  # the 20 good rows and the late one, once
    assert len([w for w in said if "duplicate" in w[1]]) == 2


def test_a_clean_run_says_which_field_of_which_row_is_wrong():
    def line(k, body="1,2,3,4"):
        return f"{fmt_ts(k * 200, 'kst_ms')},{body}"

    lines = [line(k) for k in range(12)]
    lines[0] = line(0, ",ERR,3,4")  # a blank first field, then junk
    lines[5] = line(5, "1,2,3")  # a field short
    lines[6] = line(6, "1,ERR,3")  # a field short and junk: said as the short row only
    lines[10] = line(10, '"' + "x" * 140_000 + '",2,3,4')  # past csv's field size limit
    reports = set()
    seg = segment(lines, reports)
    seg.block(0, 2)
    assert reports == {(0, "entropy_rate 'ERR' is not a number; left out of the means")}
    seg.drop_before(T0 + 3 * 200_000)  # rows 0-2 dropped: indexes still name the file's
    reports.clear()
    x = seg.block(2, 6)  # rows 5 to 8
    assert reports == {(5, "4 fields, header has 5; row left out"),
                       (6, "4 fields, header has 5; row left out")}
    assert math.isnan(x[0, 0]) and math.isnan(x[0, 1]) and x[0, 2] == 1.0
    reports.clear()
    x = seg.block(7, 8)  # row 10
    assert reports == {
        (10, "not a CSV row (field larger than field limit (131072)); row left out")}
    assert math.isnan(x[0, 0])
