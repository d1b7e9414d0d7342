"""logs/metrics.csv's format: the header that locates the columns, and number parsing.

Blank, NaN, inf and non-numeric values are not samples (SPEC): they are never counted as 0.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass

from tracker.contract import SIGNALS

NAN = math.nan


class MetricsFileError(Exception):
    """The file cannot be used at all (the message names the fix)."""


@dataclass(frozen=True)
class Header:
    ncols: int
    ts_index: int
    cols: tuple[int, ...]  # column index of each of SIGNALS

    @classmethod
    def parse(cls, line: str, name: str) -> Header:
        split = split_row(line.lstrip("\ufeff"))
        if isinstance(split, str):
            raise MetricsFileError(f"{name}:1: header is {split}; the first line must name "
                                   f"ts, {', '.join(SIGNALS)}")
        fields = [f.strip() for f in split]
        missing = [c for c in ("ts", *SIGNALS) if c not in fields]
        if missing:
            raise MetricsFileError(
                f"{name}:1: header lacks column(s) {', '.join(missing)}; the first line must "
                f"name ts, {', '.join(SIGNALS)} (any order, more columns allowed)"
            )
        return cls(len(fields), fields.index("ts"), tuple(fields.index(m) for m in SIGNALS))



def split_row(line: str) -> list[str] | str:
    """The row's fields, or why it is not a CSV row at all.

    A stray carriage return inside a row is a blank to float() and to the timestamp parser,
    so it is read as one; csv's field size limit (128 KiB) is what a runaway field meets.
    """
    line = line.rstrip("\r")
    if "\r" in line:
        line = line.replace("\r", " ")
    try:
        return next(csv.reader([line]), [])
    except csv.Error as e:
        return f"not a CSV row ({e})"


def number(text: str) -> tuple[float, bool]:
    """The value and whether it was understood; blank, NaN and inf are understood."""
    try:
        return float(text), True
    except ValueError:
        return NAN, not text.strip()


def parse_values(fields: list[str], header: Header, where: Callable[[str], None]) -> list[float]:
    out = []
    for m, c in zip(SIGNALS, header.cols):
        v, ok = number(fields[c])
        if not ok:
            where(f"{m} {fields[c]!r} is not a number; left out of the means")
        out.append(v)
    return out
