"""The samples of logs/metrics.csv around one moment, for pictures: found by bisect, not a scan.

A month of 5 Hz rows is a gigabyte; a chart needs a minute of it. The reader bisects the
file's bytes to a little before the moment and reads forward only until the rows are past
it, so each picture costs a few reads whatever the file's length.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from tracker.csvformat import MetricsFileError
from tracker.metrics_reader import MetricsReader
from tracker.report import Reporter
from tracker.segments import chunk_segments
from tracker.timeparse import TimeParser

# Rows this far out of order are still found (the tracker allows as much).
DISORDER_MARGIN_US = 60_000_000
READ_BYTES = 64 << 10
# A window never needs more than this: beyond it the file is too disordered to chart.
MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class Window:
    times_us: list[int]
    columns: list[list[float]]  # per signal (METRICS order); NaN where not a finite number


class SampleSource:
    """Reads windows of one metrics.csv; bad lines are the tracker's to report, not ours."""

    def __init__(self, path: Path, tp: TimeParser) -> None:
        self.path = path
        self.tp = tp
        self.reader = MetricsReader(path, tp, Reporter(io.StringIO()))

    def window(self, lo_us: int, hi_us: int) -> Window | None:
        """Samples with lo <= t <= hi in time order; None when the file has none to give."""
        try:
            self.reader.position_at(lo_us - DISORDER_MARGIN_US)
        except MetricsFileError:
            return None
        header = self.reader.header
        if header is None:
            return None
        lines = self._lines_until(self.reader.offset, hi_us + DISORDER_MARGIN_US)
        if not lines:
            return None
        quiet = lambda idx, reason: None  # noqa: E731
        # The tracker's own segments: clean runs are bisected on the raw lines and only the
        # rows inside the window parsed; the lines around a bad one are read row by row.
        rows: list[tuple[int, list[float]]] = []
        for seg in chunk_segments(lines, header, self.tp, quiet, None):
            i, j = seg.span(lo_us, hi_us)
            if i < j:
                cols, _ = seg.values(i, j)
                rows.extend(zip(seg.times(i, j), map(list, zip(*cols))))
        if not rows:
            return None
        rows.sort(key=lambda r: r[0])  # segments are in file order; a late row goes by time
        times = [t for t, _ in rows]
        cols = [list(c) for c in zip(*(v for _, v in rows))]
        return Window(times, [[v if math.isfinite(v) else math.nan for v in c] for c in cols])

    def _lines_until(self, offset: int, stop_us: int) -> list[str]:
        """Complete lines from `offset` until one is dated after `stop_us` (or the end)."""
        ts_index = self.reader.header.ts_index
        data = b""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with f:
            f.seek(offset)
            while len(data) < MAX_BYTES:
                block = f.read(READ_BYTES)
                if not block:
                    break
                data += block
                end = data.rfind(b"\n")
                if end < 0:
                    continue
                last = data[data.rfind(b"\n", 0, end) + 1:end].decode("utf-8", "replace")
                try:
                    if self.tp.parse(last.split(",")[ts_index]) > stop_us:
                        break
                except (ValueError, IndexError, OverflowError):
                    continue
        data = data[: data.rfind(b"\n") + 1]
        return data.decode("utf-8", errors="replace").split("\n")[:-1]
