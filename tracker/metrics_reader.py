"""Follows logs/metrics.csv by byte offset: appended lines, rotation, bisecting to a time,
and the newest row read from the file's tail alone."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

from tracker.contract import SIGNALS
from tracker.csvformat import NAN, Header, MetricsFileError, number, split_row
from tracker.report import Reporter
from tracker.segments import Segment, chunk_segments
from tracker.timeparse import TimeParser

CHUNK_BYTES = 4 << 20
# No row of a 5 Hz stream is near this long: what is longer is a writer gone wrong.
MAX_LINE_BYTES = 1 << 20


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
        self.skipping = False  # inside a line longer than MAX_LINE_BYTES

    def _reset(self, ino: int | None) -> None:
        self.ino, self.offset, self.header, self.prev = ino, 0, None, None
        self.skipping = False
        self.numbers = LineNumbers(self.path)

    def _read_header(self, f) -> None:
        first = f.readline(MAX_LINE_BYTES)
        if not first.endswith(b"\n"):
            if len(first) >= MAX_LINE_BYTES:
                raise MetricsFileError(f"{self.name}:1: header longer than "
                                       f"{MAX_LINE_BYTES >> 20} MiB; is this a metrics.csv?")
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
                f.readline(MAX_LINE_BYTES)
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
            line = f.readline(MAX_LINE_BYTES)
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
                if self.skipping:  # the rest of a line too long to be a row
                    nl = block.find(b"\n")
                    self.offset += len(block) if nl < 0 else nl + 1
                    if nl < 0:
                        continue
                    self.skipping = False
                    block = block[nl + 1:]
                data = carry + block
                end = data.rfind(b"\n") + 1
                if end == 0:
                    carry = data
                    if len(carry) > MAX_LINE_BYTES:
                        # Keep memory bounded whatever a writer left: drop it to its newline.
                        self.rep.bad(self.name, self.numbers.at(self.offset) + 1,
                                     f"line longer than {MAX_LINE_BYTES >> 20} MiB; skipped")
                        self.offset += len(carry)
                        carry, self.skipping = b"", True
                    continue
                carry = data[end:]
                chunk_offset = self.offset
                self.offset += end
                yield from self._segment(data[:end], chunk_offset)

    def _segment(self, data: bytes, chunk_offset: int) -> list[Segment]:
        text = data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        lines.pop()  # after the final newline
        numbers = self.numbers
        name = self.name

        def report(idx: int, reason: str) -> None:
            self.rep.bad(name, numbers.at(chunk_offset) + idx + 1, reason)

        segs = chunk_segments(lines, self.header, self.tp, report, self.prev)
        if segs:
            last = max(seg.last_us for seg in segs)
            self.prev = (max(last, self.prev[0]) if self.prev else last, lines[-1])
        return segs

    def last_time(self) -> int | None:
        """Time of the last complete row, read from the file's tail."""
        try:
            last = read_tail(self.path, self.tp)
        except (OSError, MetricsFileError):
            return None
        return None if last is None else last[0]


def read_tail(path: Path, tp: TimeParser, max_bytes: int = 65536,
              bad: list[int] | None = None) -> tuple[int, list[float]] | None:
    """The newest row's time and each signal's newest finite value, from the file's end.

    Reads the header and at most `max_bytes` more however long the file is; a signal with
    no finite value there is NaN. None when there is no complete row. The byte offsets of
    the bad rows it looked at are appended to `bad`. Raises OSError when the file cannot
    be opened (FileNotFoundError when missing) and MetricsFileError for a bad header.
    """
    with open(path, "rb") as f:
        first = f.readline(MAX_LINE_BYTES)
        if not first.endswith(b"\n"):
            return None
        header = Header.parse(first.decode("utf-8", errors="replace"), str(path))
        data_start = len(first)
        size = os.fstat(f.fileno()).st_size
        start = max(data_start, size - max_bytes)
        f.seek(start)
        block = f.read(size - start)
    end = block.rfind(b"\n")  # what follows may be half written
    first_row = 0 if start == data_start else block.find(b"\n") + 1  # may be cut
    newest: int | None = None
    values = [NAN] * len(SIGNALS)
    while end > first_row:
        begin = max(block.rfind(b"\n", first_row, end) + 1, first_row)
        raw = block[begin:end]
        end = begin - 1
        fields = split_row(raw.decode("utf-8", errors="replace"))
        try:
            if isinstance(fields, str) or len(fields) != header.ncols:
                raise ValueError
            t = tp.parse(fields[header.ts_index])
        except (ValueError, OverflowError):
            if bad is not None:
                bad.append(start + begin)
            continue
        if newest is None:
            newest = t
        for k, c in enumerate(header.cols):
            if math.isnan(values[k]):
                v, _ = number(fields[c])
                if math.isfinite(v):
                    values[k] = v
        if not any(math.isnan(v) for v in values):
            break
    return None if newest is None else (newest, values)
