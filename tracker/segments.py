"""Samples in time order, as segments of appended lines, and the buffer of segments kept.

A run of lines that all start with timestamps of one fixed layout, in strictly increasing
order, becomes a FixedSegment: windows are found by bisect on the raw line strings and only
the rows inside a window are ever parsed, blank and non-numeric values included. The lines
that break such a run (another layout, a bad timestamp, out of order, a duplicate) are
parsed row by row into a ParsedSegment between the runs; slower, but every row is checked
and placed by its own time. A chunk with another column order, or broken too often, is
parsed row by row as a whole.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from itertools import islice, repeat
from operator import itemgetter

import numpy as np

from tracker.contract import SIGNALS
from tracker.csvformat import NAN, Header, parse_values, split_row
from tracker.timeparse import FixedFormat, TimeParser

_PLAIN_NUMBER_CHARS = str.maketrans("", "", "0123456789.,-+[] \t\r")

# A field (between the row's commas or the joins' brackets) that JSON would not read as a
# number: blank, nan, inf, ERR, '.5', '+1', '1_000' ...
_NOT_JSON_NUMBER = re.compile(
    r"(?:(?<=,)(?!\[)|(?<=\[)|^)(?![ \t\r]*(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
    r"|NaN|-?Infinity)[ \t\r]*(?:[,\]]|$))[^,\]]*")


def _as_json(m: re.Match, junk: list[tuple[int, str]]) -> str:
    """A field as JSON: its float() value (what the row-by-row path reads) or NaN."""
    token = m.group()
    try:
        v = float(token)
    except ValueError:
        if token.strip():
            junk.append((m.start(), token))
        return "NaN"
    return repr(v) if math.isfinite(v) else "NaN"


def _fill_blanks(joined: str) -> str:
    """Blank fields as NaN; str.replace does not see overlapping ',,,', hence twice."""
    out = joined.replace(",,", ",NaN,").replace(",,", ",NaN,")
    out = out.replace("[,", "[NaN,").replace(",]", ",NaN]")
    if out[:1] == ",":
        out = "NaN" + out
    if out[-1:] == ",":
        out += "NaN"
    return out


# Integers as float(): what the row-by-row path reads ('-0' is -0.0, a huge one inf). One
# decoder for every call: json.loads with an argument would build a new one each time.
_DECODER = json.JSONDecoder(parse_int=float)


def _loads(joined: str) -> list | None:
    try:
        return _DECODER.decode("[[" + joined + "]]")
    except (ValueError, RecursionError):
        return None


class Segment:
    """Samples in time order; subclasses say how rows are found and parsed."""

    first_us: int
    last_us: int

    def span(self, lo_us: int, hi_us: int) -> tuple[int, int]:
        raise NotImplementedError

    def values(self, i: int, j: int) -> tuple[list[Sequence[float]], bool]:
        """Each metric's values of rows i..j-1, and True when all are known finite."""
        raise NotImplementedError

    def block(self, i: int, j: int) -> np.ndarray:
        """Rows i..j-1 as a (metric, row) array; NaN, inf and left-out rows included."""
        raise NotImplementedError

    def prepare(self, i: int, j: int) -> None:
        """Parses rows i..j-1 ahead of the windows that will read them (no message yet)."""

    def times(self, i: int, j: int) -> list[int]:
        """The time of each of rows i..j-1."""
        raise NotImplementedError

    def drop_before(self, us: int) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError



class FixedSegment(Segment):
    def __init__(self, lines: list[str], fmt: FixedFormat, header: Header, tp: TimeParser,
                 report: Callable[[int, str], None]) -> None:
        self.lines = lines
        self.fmt = fmt
        self.header = header
        self.report = report  # (index in the original chunk, reason)
        self.tp = tp
        self.skipped = 0  # lines dropped from the front, to keep reported line numbers right
        self.first_us = tp.parse(lines[0][: fmt.width])
        self.last_us = tp.parse(lines[-1][: fmt.width])
        # Rows parsed so far, kept: the windows of nearby events overlap (pre, post and the
        # history before pre), and each row is parsed once, when a window first needs it.
        self.parsed: np.ndarray | None = None  # (metric, row), allocated on first use
        self.known: np.ndarray | None = None  # which rows `parsed` holds
        # What parsing found wrong in a row (by its index in the original chunk): said
        # whenever a window holds the row, as when each window was parsed on its own.
        self.notes: dict[int, list[str]] = {}
        self.noted: list[int] = []  # the keys of `notes`, sorted

    def __len__(self) -> int:
        return len(self.lines)

    def span(self, lo_us: int, hi_us: int) -> tuple[int, int]:
        lo = self.fmt.key(lo_us, lower=True)
        hi = self.fmt.key(hi_us, lower=False) + "\x7f"  # sorts after every line of that ts
        return bisect_left(self.lines, lo), bisect_right(self.lines, hi)

    def values(self, i: int, j: int) -> tuple[list[Sequence[float]], bool]:
        x = self.block(i, j)
        return x.tolist(), bool(np.isfinite(x).all())

    def block(self, i: int, j: int) -> np.ndarray:
        self.prepare(i, j)
        if self.noted:
            lo = bisect_left(self.noted, self.skipped + i)
            for idx in self.noted[lo:bisect_left(self.noted, self.skipped + j)]:
                for reason in self.notes[idx]:
                    self.report(idx, reason)
        return self.parsed[:, i:j]

    def prepare(self, i: int, j: int) -> None:
        if self.parsed is None:
            self.parsed = np.empty((len(SIGNALS), len(self.lines)))
            self.known = np.zeros(len(self.lines), dtype=bool)
        if not self.known[i:j].all():
            gap = np.flatnonzero(~self.known[i:j])
            # Rows in between that are already known are parsed again: the same values.
            a, b = i + int(gap[0]), i + int(gap[-1]) + 1
            self.parsed[:, a:b] = self._parse(a, b)
            self.known[a:b] = True

    def _note(self, idx: int, reason: str) -> None:
        said = self.notes.get(idx)
        if said is None:
            self.notes[idx] = [reason]
            insort(self.noted, idx)
        elif reason not in said:
            said.append(reason)

    def _parse(self, i: int, j: int) -> np.ndarray:
        """Rows i..j-1 (at least one) as a (metric, row) array."""
        rows = self.lines[i:j]
        width = self.header.ncols - 1
        # The common case, no quotes: the fields are what a split on commas gives. Without
        # blanks (or a carriage return, which loadtxt would take for a line end), numpy's
        # loadtxt reads the rows after the timestamps: it reads a number as float() does or
        # refuses it, and refuses rows of different field counts. Otherwise, when every row
        # has the header's field count, numpy converts each field with float() itself, as
        # the row-by-row path does, blanks as NaN. A field float() does not read (junk), or
        # a row of another field count, sends the rows to the JSON parse below, which says
        # what it found.
        bodies = list(map(itemgetter(slice(self.fmt.width + 1, None)), rows))
        cols = [c - 1 for c in self.header.cols]
        text = "\n".join(bodies)
        if '"' in text:
            return np.array(self._values(i, rows), dtype=float)
        if ("\r" not in text and ",," not in text and ",\n" not in text and "\n," not in text
                and text[:1] != "," and text[-1:] != ","):
            try:
                table = np.loadtxt(bodies, delimiter=",", comments=None, ndmin=2)
            except (ValueError, OverflowError, TypeError):
                table = None
            if table is not None and table.shape == (len(rows), width):
                return table[:, cols].T
        if set(map(str.count, bodies, repeat(","))) == {width - 1}:
            table = None
            if "\r" not in text:
                # Blanks as nan, then the same loadtxt read as above (the quickest).
                filled = (text.replace(",,", ",nan,").replace(",,", ",nan,")
                          .replace("\n,", "\nnan,").replace(",\n", ",nan\n"))
                filled = ("nan" if filled[:1] == "," else "") + filled + (
                    "nan" if filled[-1:] == "," else "")
                try:
                    table = np.loadtxt(filled.split("\n"), delimiter=",", comments=None,
                                       ndmin=2)
                except (ValueError, OverflowError, TypeError):
                    table = None
            if table is not None and table.shape == (len(rows), width):
                return table[:, cols].T
            try:
                flat = np.array(_fill_blanks(text.replace("\n", ",")).split(","), dtype=float)
            except (ValueError, OverflowError):
                flat = None
            if flat is not None:
                return flat.reshape(len(rows), width)[:, cols].T
        return np.array(self._values(i, rows), dtype=float)

    def _values(self, i: int, rows: list[str]) -> list[Sequence[float]]:
        width = self.header.ncols - 1
        joined = "],[".join(map(itemgetter(slice(self.fmt.width + 1, None)), rows))
        # One C-level parse of the whole block as JSON arrays of numbers. What is left once
        # the characters of plain decimals are deleted says what else is there: nothing
        # (plain decimals and blanks), or exponents, NaN, junk, quotes..., which go through
        # a regex that turns each field JSON would not read into its float() value or NaN
        # first. Only a block that still does not parse (quotes, brackets, a field count
        # CSV and JSON see differently) is read row by row.
        brackets = len(rows) - 1  # only the ones this join put in
        if joined.count("[") != brackets or joined.count("]") != brackets:
            return self._values_slowly(i, rows)
        rest = joined.translate(_PLAIN_NUMBER_CHARS)
        table = None
        if not rest:
            table = _loads(joined)
            if table is None:  # most often blank fields, which JSON has no word for
                joined = _fill_blanks(joined)
                table = _loads(joined)
        if table is None or len(table) != len(rows):
            if '"' in joined:
                return self._values_slowly(i, rows)
            junk: list[tuple[int, str]] = []
            # Every field is now a JSON number or NaN, and the only brackets are the join's
            # (counted above): this parse cannot fail, and gives one array per row.
            table = _loads(_NOT_JSON_NUMBER.sub(lambda m: _as_json(m, junk), joined))
            if junk:
                self._report_junk(i, joined, table, junk)
        if set(map(len, table)) != {width}:
            self._report_counts(i, table)
            table = [r if len(r) == width else [NAN] * width for r in table]
        cols = list(zip(*table))
        return [cols[c - 1] for c in self.header.cols]

    def times(self, i: int, j: int) -> list[int]:
        w = self.fmt.width
        return [self.tp.parse(line[:w]) for line in self.lines[i:j]]

    def _report_junk(self, i: int, joined: str, table: list, junk: list[tuple[int, str]]) -> None:
        width = self.header.ncols - 1
        names = {c: m for m, c in zip(SIGNALS, self.header.cols)}
        for pos, token in junk:
            k = joined.count("],[", 0, pos)
            col = joined.count(",", joined.rfind("[", 0, pos) + 1, pos) + 1
            if len(table[k]) == width and col in names:
                self._note(self.skipped + i + k,
                           f"{names[col]} {token!r} is not a number; left out of the means")

    def _report_counts(self, i: int, table: list) -> None:
        for k, r in enumerate(table):
            if len(r) != self.header.ncols - 1:
                self._note(self.skipped + i + k, f"{len(r) + 1} fields, header has "
                           f"{self.header.ncols}; row left out")

    def _values_slowly(self, i: int, rows: list[str]) -> list[list[float]]:
        cols: list[list[float]] = [[] for _ in SIGNALS]
        for k, row in enumerate(rows):
            idx = self.skipped + i + k
            fields = split_row(row)
            if isinstance(fields, str):
                self._note(idx, f"{fields}; row left out")
                vals = [NAN] * len(SIGNALS)
            elif len(fields) != self.header.ncols:
                self._note(idx, f"{len(fields)} fields, header has {self.header.ncols}; "
                                "row left out")
                vals = [NAN] * len(SIGNALS)
            else:
                vals = parse_values(fields, self.header, lambda r, idx=idx: self._note(idx, r))
            for col, v in zip(cols, vals):
                col.append(v)
        return cols

    def drop_before(self, us: int) -> None:
        i, _ = self.span(us, us)
        if i:
            del self.lines[:i]
            self.skipped += i
            if self.parsed is not None and self.known[i:].any():
                # Copies: a view would keep the dropped rows alive.
                self.parsed = self.parsed[:, i:].copy()
                self.known = self.known[i:].copy()
            else:  # nothing kept is parsed yet: allocated again when a window needs it
                self.parsed = self.known = None
            k = bisect_left(self.noted, self.skipped)
            for idx in self.noted[:k]:
                del self.notes[idx]
            del self.noted[:k]
            if self.lines:
                self.first_us = us  # a bound, not the exact first time: only used to trim


class ParsedSegment(Segment):
    def __init__(self, keys: list[int], cols: list[list[float]]) -> None:
        self.keys = keys
        self.cols = cols
        self.first_us = keys[0]
        self.last_us = keys[-1]

    def __len__(self) -> int:
        return len(self.keys)

    def span(self, lo_us: int, hi_us: int) -> tuple[int, int]:
        return bisect_left(self.keys, lo_us), bisect_right(self.keys, hi_us)

    def values(self, i: int, j: int) -> tuple[list[Sequence[float]], bool]:
        return [c[i:j] for c in self.cols], False

    def block(self, i: int, j: int) -> np.ndarray:
        return np.array([c[i:j] for c in self.cols], dtype=float).reshape(len(self.cols), -1)

    def times(self, i: int, j: int) -> list[int]:
        return self.keys[i:j]

    def drop_before(self, us: int) -> None:
        i = bisect_left(self.keys, us)
        if i:
            del self.keys[:i]
            for c in self.cols:
                del c[:i]
            if self.keys:
                self.first_us = self.keys[0]


def parse_rows(lines: list[str], header: Header, tp: TimeParser,
               report: Callable[[int, str], None],
               prev: tuple[int, str] | None) -> ParsedSegment | None:
    """Row-by-row parse: checks every line and orders rows by their own time.

    `prev` is (latest time, last line) read before this chunk, for order and duplicate
    checks across chunk boundaries. Exact duplicate lines count once: a writer that
    retried a line must not weigh that sample twice.
    """
    rows: list[tuple[int, int, list[float]]] = []
    seen = {prev[1].rstrip("\r")} if prev else set()
    last_us = prev[0] if prev else None
    for idx, line in enumerate(lines):
        fields = split_row(line)
        if isinstance(fields, str):
            report(idx, f"{fields}; row left out")
            continue
        if not fields or fields == [""]:
            report(idx, "empty line; skipped")
            continue
        if len(fields) != header.ncols:
            report(idx, f"{len(fields)} fields, header has {header.ncols}; row left out")
            continue
        ts = fields[header.ts_index]
        try:
            t = tp.parse(ts)
        except (ValueError, OverflowError):
            report(idx, f"invalid ts {ts!r}; row left out")
            continue
        body = lines[idx].rstrip("\r")
        if body in seen:
            report(idx, "duplicate of an earlier row; counted once")
            continue
        seen.add(body)
        if last_us is not None and t < last_us:
            report(idx, "timestamp earlier than the row before; placed by its time")
        else:
            last_us = t
        rows.append((t, idx, parse_values(fields, header, lambda r, idx=idx: report(idx, r))))
    if not rows:
        return None
    rows.sort(key=itemgetter(0, 1))
    cols = [list(c) for c in zip(*(r[2] for r in rows))]
    return ParsedSegment([r[0] for r in rows], cols)


# A chunk whose good lines fall into more pieces than this is read row by row as a whole:
# many small segments would cost every window a walk over them all.
MAX_PIECES = 32


def chunk_segments(lines: list[str], header: Header, tp: TimeParser,
                   report: Callable[[int, str], None],
                   prev: tuple[int, str] | None) -> list[Segment]:
    """The chunk's segments in file order: runs of good lines as FixedSegments, and the lines
    that break a run (another layout, a bad timestamp, out of order, a duplicate, an
    undecodable byte) with their neighbours read row by row, so one bad line costs the
    slow path for itself, not for the chunk."""
    if not lines:
        return []
    fmt = _first_format(lines) if header.ts_index == 0 else None
    if fmt is not None:
        w, k = fmt.width, len(fmt.suffix)
        sig = (fmt.sep, fmt.suffix + ",")
        floor = fmt.key(prev[0], lower=False) + "\x7f" if prev else ""
        if (floor < lines[0] and all(map(str.__lt__, lines, islice(lines, 1, None)))
                and _same_layout(lines, sig, w, k)
                # An undecodable byte anywhere: in a timestamp it sorts like a digit, but
                # the time cannot be read when a window's first or last row is that line.
                and "\ufffd" not in "".join(lines)  # one C scan, quicker than per line
                and _whole(lines[-1], header.ncols)):
            seg = _fixed(lines, 0, fmt, header, tp, report)
            if seg is not None:
                return [seg]  # the common case: the whole chunk is one clean run
        pieces = _split(lines, fmt, floor, header.ncols)
        if len(pieces) <= MAX_PIECES:
            return _build(lines, pieces, fmt, header, tp, report, prev)
    seg = parse_rows(lines, header, tp, report, prev)
    return [seg] if seg is not None else []


def _same_layout(lines: list[str], sig: tuple[str, str], w: int, k: int) -> bool:
    """Every line of a strictly sorted chunk has the separator and offset of `sig`."""
    if lines[0][:11] == lines[-1][:11] and lines[0][10:11] == sig[0]:
        # Sorted lines between two that share a prefix share it too: one day's chunk
        # needs only the offsets checked.
        return set(map(itemgetter(slice(w - k, w + 1)), lines)) == {sig[1]}
    return all(map(sig.__eq__, map(itemgetter(slice(10, 11), slice(w - k, w + 1)), lines)))


def _first_format(lines: list[str]) -> FixedFormat | None:
    for line in islice(lines, 64):
        comma = line.find(",")
        fmt = FixedFormat.of(line[:comma]) if comma > 0 else None
        if fmt is not None:
            return fmt
    return None


def _whole(line: str, ncols: int) -> bool:
    return line.count(",") == ncols - 1 and '"' not in line


def _split(lines: list[str], fmt: FixedFormat, floor: str,
           ncols: int) -> list[tuple[bool, int, int]]:
    """(good, start, end) pieces: good lines have the layout and strictly increase."""
    w, k = fmt.width, len(fmt.suffix)
    sig = (fmt.sep, fmt.suffix + ",")
    good = [False] * len(lines)
    last = -1  # index of the latest good line
    before = -1  # the good line before it
    for n, line in enumerate(lines):
        if (line[10:11], line[w - k:w + 1]) != sig or "\ufffd" in line:
            continue
        top = lines[last] if last >= 0 else floor
        if line > top:
            good[n], before, last = True, last, n
        elif (last >= 0 and line != top and line > (lines[before] if before >= 0 else floor)
              and n + 1 < len(lines) and lines[n + 1] < top):
            # This line and the next are both before the latest: that one was a spike ahead.
            good[last], good[n], last = False, True, n
    # A run's last time says how far the metrics reach: a row left out must not say it.
    for n in range(len(lines) - 1, -1, -1):
        if good[n] and not (n + 1 < len(lines) and good[n + 1]) and not _whole(lines[n], ncols):
            good[n] = False
    pieces: list[tuple[bool, int, int]] = []
    for n, g in enumerate(good):
        if pieces and pieces[-1][0] == g:
            pieces[-1] = (g, pieces[-1][1], n + 1)
        else:
            pieces.append((g, n, n + 1))
    return pieces


def _fixed(lines: list[str], base: int, fmt: FixedFormat, header: Header, tp: TimeParser,
           report: Callable[[int, str], None]) -> FixedSegment | None:
    try:
        seg = FixedSegment(lines, fmt, header, tp, report)
    except (ValueError, OverflowError):  # first or last timestamp unreadable
        return None
    seg.skipped = base
    return seg


def _build(lines: list[str], pieces: list[tuple[bool, int, int]], fmt: FixedFormat,
           header: Header, tp: TimeParser, report: Callable[[int, str], None],
           prev: tuple[int, str] | None) -> list[Segment]:
    good_lines = [lines[a:b] for g, a, b in pieces if g]
    seen: set[str] = set()  # the lines read row by row so far
    out: list[Segment] = []
    for g, a, b in pieces:
        seg: Segment | None = None
        if g:
            seg = _fixed(lines[a:b], a, fmt, header, tp, report)
        if seg is None:
            # Exact copies of a good line elsewhere in the chunk are a writer's retries.
            fresh = []
            for n in range(a, b):
                line = lines[n]
                if not g and (line.rstrip("\r") in seen
                              or any(_contains(run, line) for run in good_lines)):
                    report(n, "duplicate of an earlier row; counted once")
                else:
                    fresh.append((n, line))
                    seen.add(line.rstrip("\r"))
            if fresh:
                idx = [n for n, _ in fresh]
                seg = parse_rows([line for _, line in fresh], header, tp,
                                 lambda i, reason, idx=idx: report(idx[i], reason), prev)
        if seg is not None:
            out.append(seg)
            # The next piece's order is checked against the latest time so far.
            latest = seg.last_us if prev is None else max(prev[0], seg.last_us)
            prev = (latest, lines[b - 1])
    return out


def _contains(run: list[str], line: str) -> bool:
    i = bisect_left(run, line)
    return i < len(run) and run[i] == line


def _in_order(hits: list[tuple[Segment, int, int]]) -> bool:
    """Whether each segment's rows in the window all come after the previous segment's."""
    last = None
    for seg, i, j in hits:
        first = seg.times(i, i + 1)[0]
        if last is not None and first < last:
            return False
        last = seg.times(j - 1, j)[0]
    return True


class SampleBuffer:
    """The segments kept in memory: what the pending and future windows can still need."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.max_us: int | None = None

    def add(self, seg: Segment) -> None:
        self.segments.append(seg)
        if self.max_us is None or seg.last_us > self.max_us:
            self.max_us = seg.last_us

    def clear(self) -> None:
        self.segments.clear()
        self.max_us = None

    def window(self, lo_us: int, hi_us: int) -> list[np.ndarray]:
        """Finite values of each metric with lo <= t <= hi, over every segment."""
        hits = []
        for seg in self.segments:
            if seg.last_us < lo_us or seg.first_us > hi_us:
                continue
            i, j = seg.span(lo_us, hi_us)
            if i < j:
                hits.append((seg, i, j))
        if not hits:
            return [np.empty(0) for _ in SIGNALS]
        blocks = [seg.block(i, j) for seg, i, j in hits]
        x = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        if len(hits) > 1 and not _in_order(hits):
            # A row placed by its own time (out of order, another layout) sits between the
            # runs of the file: put every row of the window in time order (file order on
            # ties), as the statistics over these values assume.
            times = np.array([t for seg, i, j in hits for t in seg.times(i, j)], dtype=np.int64)
            x = x[:, np.argsort(times, kind="stable")]
        ok = np.isfinite(x)
        if ok.all():
            return list(x)  # the common case: views of one clean block, no copy
        return [row[keep] for row, keep in zip(x, ok)]

    def prepare(self, lo_us: int, hi_us: int) -> None:
        """Parses the rows with lo <= t <= hi in one go, for the windows that will read them:
        one parse per event, of the rows no earlier event read, instead of one per window."""
        for seg in self.segments:
            if seg.last_us >= lo_us and seg.first_us <= hi_us:
                i, j = seg.span(lo_us, hi_us)
                if i < j:
                    seg.prepare(i, j)

    def trim(self, keep_from_us: int) -> None:
        kept = []
        for seg in self.segments:
            if seg.last_us < keep_from_us:
                continue
            seg.drop_before(keep_from_us)
            if len(seg):
                kept.append(seg)
        self.segments = kept
