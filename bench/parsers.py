"""How to read a window's values: the tracker's fast path against the alternatives.

    python3 bench/parsers.py [--data DIR]

On the day of bench/run.py, clean and dirty, every pre and post window of the 1,000 rule
changes is read into each signal's finite values in time order, by each method in one
run; every method must give exactly the tracker's values. Methods that need a package not
installed are left out with a note.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gen import KST, make_day, make_dirty_day  # noqa: E402
from tracker.csvformat import Header, number, split_row  # noqa: E402
from tracker.segments import SampleBuffer, chunk_segments  # noqa: E402
from tracker.timeparse import TimeParser  # noqa: E402

Window = list[str]  # the raw lines of one window
Values = list[list[float]]  # each signal's finite values, in time order


def buffer(lines: list[str], header: Header, tp: TimeParser) -> SampleBuffer:
    """The tracker's buffer of these lines, nothing parsed yet."""
    buf = SampleBuffer()
    for seg in chunk_segments(list(lines), header, tp, lambda i, r: None, None):
        buf.add(seg)
    return buf


def load(root: Path) -> tuple[SampleBuffer, list[tuple[int, int]], Header, list[Window]]:
    text = (root / "logs" / "metrics.csv").read_text(encoding="utf-8")
    head, _, body = text.partition("\n")
    header = Header.parse(head, "metrics.csv")
    lines = body.split("\n")[:-1]
    tp = TimeParser(KST)
    buf = buffer(lines, header, tp)
    bounds = []
    for line in (root / "controls" / "rules_history.jsonl").read_text().splitlines():
        t0 = tp.parse(json.loads(line)["ts"])
        bounds += [(t0 - 30_000_000, t0 - 1_000_000), (t0 + 1_000_000, t0 + 30_000_000)]
    seg = buf.segments[0]
    windows = []
    for lo, hi in bounds:
        i, j = seg.span(lo, hi)
        windows.append(seg.lines[i:j])
    return buf, bounds, header, windows


def row_by_row(header: Header) -> Callable[[Window], Values]:
    """csv and float() per field: the tracker's slow path, and the original script's way."""
    def read(rows: Window) -> Values:
        cols: Values = [[] for _ in header.cols]
        for row in rows:
            fields = split_row(row)
            for col, c in zip(cols, header.cols):
                v, _ = number(fields[c])
                if math.isfinite(v):
                    col.append(v)
        return cols
    return read


def with_orjson(header: Header) -> Callable[[Window], Values] | None:
    """orjson (Debian: python3-orjson) on the same joined block; it has no NaN, so every
    field that is not a JSON number becomes null first."""
    try:
        import orjson
    except ImportError:
        return None
    import re

    not_number = re.compile(
        r"(?:(?<=,)(?!\[)|(?<=\[)|^)(?![ \t\r]*-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
        r"(?:[eE][-+]?[0-9]+)?[ \t\r]*(?:[,\]]|$))[^,\]]*")
    width = len(header.cols)
    skip = 30  # the timestamp and its comma

    def read(rows: Window) -> Values:
        joined = "],[".join(r[skip:] for r in rows)
        try:
            table = orjson.loads("[[" + joined + "]]")
        except orjson.JSONDecodeError:
            table = orjson.loads("[[" + not_number.sub("null", joined) + "]]")
        cols = list(zip(*table)) if table else [()] * width
        return [[v for v in cols[c - 1] if v is not None and math.isfinite(v)]
                for c in header.cols]
    return read


def with_pandas(header: Header) -> Callable[[Window], Values] | None:
    """pandas' C parser (read_csv) on each window's text, NaN for what is not a number."""
    try:
        import numpy as np
        import pandas as pd
    except ImportError:
        return None

    def read(rows: Window) -> Values:
        df = pd.read_csv(io.StringIO("\n".join(rows)), header=None, usecols=list(header.cols),
                         engine="c", low_memory=False)
        out = []
        for c in header.cols:
            v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
            out.append(v[np.isfinite(v)].tolist())
        return out
    return read


def with_numpy(header: Header) -> Callable[[Window], Values] | None:
    """numpy over the window's fields: one split, one coercing conversion, one mask."""
    try:
        import numpy as np
        import pandas as pd
    except ImportError:
        return None
    ncols = header.ncols

    def read(rows: Window) -> Values:
        fields = ",".join(rows).split(",")
        if len(fields) != ncols * len(rows):
            return row_by_row(header)(rows)
        grid = pd.to_numeric(np.array(fields, dtype=object), errors="coerce").reshape(-1, ncols)
        out = []
        for c in header.cols:
            v = grid[:, c].astype(float)
            out.append(v[np.isfinite(v)].tolist())
        return out
    return read


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args()
    for label, name, make in (("clean", "day", make_day), ("dirty", "dirty", make_dirty_day)):
        root = args.data / name
        if not (root / "logs" / "metrics.csv").exists():
            make(root)
        buf, bounds, header, windows = load(root)
        want = [[v.tolist() for v in buf.window(lo, hi)] for lo, hi in bounds]
        # The tracker keeps the rows it parsed: each run starts from a buffer parsed nowhere.
        fresh = [buffer(buf.segments[0].lines, header, buf.segments[0].tp) for _ in range(3)]
        t_fast = timed(lambda fresh=fresh, bounds=bounds:
                       [fresh[-1].window(a, b) for a, b in bounds] and fresh.pop())
        print(f"== {label} day: {len(bounds)} windows of ~145 rows ==")
        print(f"tracker (loadtxt, numpy, json)     {t_fast * 1000:8.1f} ms")
        for what, make_reader in (("row by row (csv, float)          ", row_by_row),
                                  ("orjson (python3-orjson)          ", with_orjson),
                                  ("numpy/pandas over the fields     ", with_numpy),
                                  ("pandas read_csv per window       ", with_pandas)):
            read = make_reader(header)
            if read is None:
                print(f"{what} not installed")
                continue
            got = [read(w) for w in windows]
            same = all(g == w for g, w in zip(got, want))
            t = timed(lambda read=read, windows=windows: [read(w) for w in windows])
            print(f"{what}  {t * 1000:8.1f} ms   {t / t_fast:6.2f}x the fast path's time"
                  f"   {'same values' if same else 'DIFFERENT values'}")


if __name__ == "__main__":
    main()
