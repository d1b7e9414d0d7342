"""logs/metrics.csv: read appended lines in chunks into time-searchable segments.

A chunk whose lines all start with timestamps of one fixed layout, in strictly increasing
order, becomes a FixedSegment: windows are found by bisect on the raw line strings and only
the rows inside a window are ever parsed. Any other chunk (other column order, mixed
offsets, bad or unsorted lines, duplicates) is parsed row by row into a ParsedSegment;
slower, but every row is checked and placed by its own time.
"""

from __future__ import annotations

import csv
import json
import math
import os
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path

from tracker import METRICS
from tracker.report import Reporter
from tracker.timeparse import FixedFormat, TimeParser, signatures

CHUNK_BYTES = 4 << 20
NAN = math.nan
_PLAIN_NUMBER_CHARS = str.maketrans("", "", "0123456789.,-+[] \t\r")
_NUMBER_LETTERS = "eENaIfinty"  # exponents, NaN, Infinity


class MetricsFileError(Exception):
    """The file cannot be used at all (the message names the fix)."""


@dataclass(frozen=True)
class Header:
    ncols: int
    ts_index: int
    cols: tuple[int, ...]  # column index of each of METRICS

    @classmethod
    def parse(cls, line: str, name: str) -> Header:
        fields = [f.strip() for f in next(csv.reader([line.lstrip("\ufeff").rstrip("\r")]), [])]
        missing = [c for c in ("ts", *METRICS) if c not in fields]
        if missing:
            raise MetricsFileError(
                f"{name}:1: header lacks column(s) {', '.join(missing)}; the first line must "
                f"name ts, {', '.join(METRICS)} (any order, more columns allowed)"
            )
        return cls(len(fields), fields.index("ts"), tuple(fields.index(m) for m in METRICS))


def _number(text: str) -> tuple[float, bool]:
    """The value and whether it was understood; blank, NaN and inf are understood."""
    try:
        return float(text), True
    except ValueError:
        return NAN, not text.strip()


def parse_values(fields: list[str], header: Header, where: Callable[[str], None]) -> list[float]:
    out = []
    for m, c in zip(METRICS, header.cols):
        v, ok = _number(fields[c])
        if not ok:
            where(f"{m} {fields[c]!r} is not a number; left out of the means")
        out.append(v)
    return out


class Segment:
    """Samples in time order; subclasses say how rows are found and parsed."""

    first_us: int
    last_us: int

    def span(self, lo_us: int, hi_us: int) -> tuple[int, int]:
        raise NotImplementedError

    def values(self, i: int, j: int) -> tuple[list[Sequence[float]], bool]:
        """Each metric's values of rows i..j-1, and True when all are known finite."""
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
        self.skipped = 0  # lines dropped from the front, to keep reported line numbers right
        self.first_us = tp.parse(lines[0][: fmt.width])
        self.last_us = tp.parse(lines[-1][: fmt.width])

    def __len__(self) -> int:
        return len(self.lines)

    def span(self, lo_us: int, hi_us: int) -> tuple[int, int]:
        lo = self.fmt.key(lo_us, lower=True)
        hi = self.fmt.key(hi_us, lower=False) + "\x7f"  # sorts after every line of that ts
        return bisect_left(self.lines, lo), bisect_right(self.lines, hi)

    def values(self, i: int, j: int) -> tuple[list[Sequence[float]], bool]:
        rows = self.lines[i:j]
        if not rows:
            return [[] for _ in METRICS], True
        width = self.header.ncols - 1
        joined = "],[".join(map(itemgetter(slice(self.fmt.width + 1, None)), rows))
        # One C-level parse of the whole block as JSON arrays of numbers. What is left once
        # the characters of plain decimals are deleted says what else is there: nothing
        # (all finite), exponents or NaN/Infinity (finite unknown), or anything that could
        # make JSON true/false/null, strings or objects, which sends the block row by row,
        # as do values JSON rejects (blank, 'nan', '.5', ...) and rows with a field too
        # many or too few.
        rest = joined.translate(_PLAIN_NUMBER_CHARS)
        brackets = len(rows) - 1  # only the ones this join put in
        if (rest.strip(_NUMBER_LETTERS) == "" and joined.count("[") == brackets
                and joined.count("]") == brackets):
            try:
                table = json.loads("[[" + joined + "]]")
            except ValueError:
                table = None
            if table is not None and set(map(len, table)) == {width}:
                cols = list(zip(*table))
                return [cols[c - 1] for c in self.header.cols], rest == ""
        return self._values_slowly(i, rows), False

    def _values_slowly(self, i: int, rows: list[str]) -> list[list[float]]:
        cols: list[list[float]] = [[] for _ in METRICS]
        for k, fields in enumerate(csv.reader(r.rstrip("\r") for r in rows)):
            idx = self.skipped + i + k
            if len(fields) != self.header.ncols:
                self.report(idx, f"{len(fields)} fields, header has {self.header.ncols}; "
                                 "row left out")
                vals = [NAN] * len(METRICS)
            else:
                vals = parse_values(fields, self.header, lambda r, idx=idx: self.report(idx, r))
            for col, v in zip(cols, vals):
                col.append(v)
        return cols

    def drop_before(self, us: int) -> None:
        i, _ = self.span(us, us)
        if i:
            del self.lines[:i]
            self.skipped += i
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
    for idx, fields in enumerate(csv.reader(r.rstrip("\r") for r in lines)):
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


def fixed_segment(lines: list[str], header: Header, tp: TimeParser,
                  report: Callable[[int, str], None],
                  prev: tuple[int, str] | None) -> FixedSegment | None:
    """A FixedSegment when the chunk qualifies (see module doc), else None."""
    if header.ts_index != 0 or not lines:
        return None
    comma = lines[0].find(",")
    fmt = FixedFormat.of(lines[0][:comma]) if comma > 0 else None
    if fmt is None:
        return None
    try:
        if set(signatures(fmt, lines)) != {fmt.signature()}:
            return None
    except IndexError:  # a line too short to hold the timestamp
        return None
    if not all(map(str.__lt__, lines, islice(lines, 1, None))):
        return None
    seg = FixedSegment(lines, fmt, header, tp, report)
    if prev and seg.first_us <= prev[0]:
        return None  # out of order or duplicate across the chunk boundary: check row by row
    return seg


class LineNumbers:
    """Line numbers for messages, counted only when a message needs one.

    A reader that starts mid-file (to skip a month it does not need) does not know how many
    lines lie before it; counting them costs a pass over the file, paid only on bad input.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known: tuple[int, int] = (0, 0)  # (byte offset, lines before it)

    def at(self, offset: int) -> int:
        base_off, base_n = self.known
        if offset < base_off:
            base_off, base_n = 0, 0
        n = base_n
        with open(self.path, "rb") as f:
            f.seek(base_off)
            left = offset - base_off
            while left > 0:
                block = f.read(min(left, 16 << 20))
                if not block:
                    break
                n += block.count(b"\n")
                left -= len(block)
        self.known = (offset, n)
        return n


class MetricsReader:
    """Follows logs/metrics.csv by byte offset: new complete lines only, rotation-aware."""

    def __init__(self, path: Path, tp: TimeParser, rep: Reporter) -> None:
        self.path = path
        self.name = str(path)
        self.tp = tp
        self.rep = rep
        self.header: Header | None = None
        self.offset = 0
        self.data_start = 0  # where the row after the header begins
        self.ino: int | None = None
        self.exists = False
        self.prev: tuple[int, str] | None = None  # last row read: (time, line)
        self.numbers = LineNumbers(path)

    def _reset(self, ino: int | None) -> None:
        self.ino, self.offset, self.header, self.prev = ino, 0, None, None
        self.numbers = LineNumbers(self.path)

    def _read_header(self, f) -> None:
        first = f.readline()
        if not first.endswith(b"\n"):
            return  # empty, or the header itself is still being written
        self.header = Header.parse(first.decode("utf-8", errors="replace"), self.name)
        self.offset = self.data_start = len(first)
        self.numbers.known = (self.offset, 1)

    def _open(self):
        """The file at the current offset, or None; handles a missing, new or rotated file."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self.exists = False
            return None
        self.exists = True
        st = os.fstat(f.fileno())
        if st.st_ino != self.ino or st.st_size < self.offset:
            if self.ino is not None:
                self.rep.info(f"{self.name}: replaced or truncated; reading it from the start")
            self._reset(st.st_ino)
        if self.header is None:
            self._read_header(f)
            if self.header is None:
                f.close()
                return None
        return f

    def rewind(self) -> None:
        """Read again from the first row (the header is kept)."""
        if self.header is not None:
            self.offset, self.prev = self.data_start, None

    def position_at(self, us: int) -> None:
        """Skip to about the first row at or after `us`, by bisecting the file's bytes.

        Assumes rows are roughly in time order, which a 5 Hz stream is; the caller asks
        for a margin before the time it needs.
        """
        f = self._open()
        if f is None:
            return
        with f:
            lo, hi = self.data_start, os.fstat(f.fileno()).st_size
            while hi - lo > 65536:
                mid = (lo + hi) // 2
                f.seek(mid)
                f.readline()
                start = f.tell()
                t = self._first_time(f)
                if t is None or start >= hi:
                    hi = mid
                elif t < us:
                    lo = start
                else:
                    hi = mid
            self.offset = lo
            self.prev = None

    def _first_time(self, f) -> int | None:
        for _ in range(32):  # step over a few bad lines
            line = f.readline()
            if not line.endswith(b"\n"):
                return None
            fields = line.decode("utf-8", errors="replace").rstrip("\r\n").split(",")
            try:
                return self.tp.parse(fields[self.header.ts_index])
            except (ValueError, IndexError, OverflowError):
                continue
        return None

    def chunks(self) -> Iterator[Segment]:
        """Segments of the complete lines appended since the last call, chunk by chunk."""
        f = self._open()
        if f is None:
            return
        with f:
            f.seek(self.offset)
            carry = b""
            while True:
                block = f.read(CHUNK_BYTES)
                if not block:
                    break
                data = carry + block
                end = data.rfind(b"\n") + 1
                if end == 0:
                    carry = data
                    continue
                carry = data[end:]
                chunk_offset = self.offset
                self.offset += end
                seg = self._segment(data[:end], chunk_offset)
                if seg is not None:
                    yield seg

    def _segment(self, data: bytes, chunk_offset: int) -> Segment | None:
        text = data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        lines.pop()  # after the final newline
        numbers = self.numbers
        name = self.name

        def report(idx: int, reason: str) -> None:
            self.rep.bad(name, numbers.at(chunk_offset) + idx + 1, reason)

        seg: Segment | None = None
        if "\ufffd" not in text:  # undecodable bytes: let the row-by-row parse name the line
            seg = fixed_segment(lines, self.header, self.tp, report, self.prev)
        if seg is None:
            seg = parse_rows(lines, self.header, self.tp, report, self.prev)
        if seg is not None and lines:
            self.prev = (max(seg.last_us, self.prev[0] if self.prev else seg.last_us), lines[-1])
        return seg

    def tail(self, max_bytes: int = 65536,
             bad: list[int] | None = None) -> tuple[int, list[float]] | None:
        """The newest row's time and each metric's newest finite value, from the file's end.

        Reads at most `max_bytes` however long the file is; a metric with no finite value
        there is NaN. None when there is no complete row. The byte offsets of the bad rows
        it looked at are appended to `bad`.
        """
        f = self._open()
        if f is None:
            return None
        with f:
            size = os.fstat(f.fileno()).st_size
            start = max(self.data_start, size - max_bytes)
            f.seek(start)
            block = f.read(size - start)
        end = block.rfind(b"\n")  # what follows may be half written
        first = 0 if start == self.data_start else block.find(b"\n") + 1  # may be cut
        newest: int | None = None
        values = [NAN] * len(METRICS)
        header = self.header
        while end > first:
            begin = max(block.rfind(b"\n", first, end) + 1, first)
            raw = block[begin:end]
            end = begin - 1
            fields = next(csv.reader([raw.decode("utf-8", errors="replace").rstrip("\r")]), [])
            try:
                if len(fields) != header.ncols:
                    raise ValueError
                t = self.tp.parse(fields[header.ts_index])
            except (ValueError, OverflowError):
                if bad is not None:
                    bad.append(start + begin)
                continue
            if newest is None:
                newest = t
            for k, c in enumerate(header.cols):
                if math.isnan(values[k]):
                    v, _ = _number(fields[c])
                    if math.isfinite(v):
                        values[k] = v
            if not any(math.isnan(v) for v in values):
                break
        return None if newest is None else (newest, values)

    def last_time(self) -> int | None:
        """Time of the last complete row, read from the file's tail."""
        last = self.tail()
        return None if last is None else last[0]


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

    def window(self, lo_us: int, hi_us: int) -> list[Sequence[float]]:
        """Finite values of each metric with lo <= t <= hi, over every segment."""
        parts: list[list[Sequence[float]]] = [[] for _ in METRICS]
        finite = True
        for seg in self.segments:
            if seg.last_us < lo_us or seg.first_us > hi_us:
                continue
            i, j = seg.span(lo_us, hi_us)
            if i < j:
                cols, ok = seg.values(i, j)
                finite = finite and ok
                for acc, col in zip(parts, cols):
                    acc.append(col)
        if finite and all(len(p) == 1 for p in parts):
            return [p[0] for p in parts]  # the common case: one clean block, no copy
        return [list(filter(math.isfinite, chain.from_iterable(p))) for p in parts]

    def trim(self, keep_from_us: int) -> None:
        kept = []
        for seg in self.segments:
            if seg.last_us < keep_from_us:
                continue
            seg.drop_before(keep_from_us)
            if len(seg):
                kept.append(seg)
        self.segments = kept
