"""logs/rules_effects.csv: read what is recorded, append whole rows that survive kill -9."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

COLUMNS = (
    "rule_ts,actor,rule,old,new,pre_s,post_s,"
    "pre_phase,post_phase,d_phase,pre_entropy,post_entropy,d_entropy,"
    "pre_creative,post_creative,d_creative,pre_risk,post_risk,d_risk"
).split(",")
EXTRA = (
    "guard_s,n_pre_phase,n_post_phase,n_pre_entropy,n_post_entropy,"
    "n_pre_creative,n_post_creative,n_pre_risk,n_post_risk,confounded"
).split(",")
HEADER = COLUMNS + EXTRA


class EffectsFileError(Exception):
    pass


def _header_ok(fields: list[str], path: Path) -> list[str]:
    if fields[: len(COLUMNS)] != COLUMNS:
        raise EffectsFileError(
            f"{path}:1: header does not start with the 19 columns of rules_effects.csv; "
            "move the file aside and run again to write a new one"
        )
    return fields


def read_effects(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the complete rows; a half row at the end (a crash) is ignored."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return HEADER, []
    data = data[: data.rfind(b"\n") + 1]
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return HEADER, []
    header = _header_ok(rows[0], path)
    return header, [dict(zip(header, r)) for r in rows[1:] if r]


def row_key(row: dict[str, str]) -> tuple[str, str, str, str, str]:
    return (row["rule_ts"], row["actor"], row["rule"], row["old"], row["new"])


class EffectsWriter:
    """Appends rows under the file's own header (an older 19-column file keeps its shape).

    Each batch is one write() of whole lines, fsynced; a crash can only cut the last line
    short, and opening repairs that by cutting back to the last newline, so the cut row's
    event is computed again rather than lost or doubled.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self.header, rows = read_effects(path)
        self.keys = {row_key(r) for r in rows}
        self.rows_written = len(rows)
        if path.stat().st_size == 0 if path.exists() else True:
            self._append([self.header])

    def _repair(self) -> None:
        try:
            with open(self.path, "rb+") as f:
                data = f.read()
                cut = data.rfind(b"\n") + 1
                if cut != len(data):
                    f.truncate(cut)
        except FileNotFoundError:
            pass

    def _append(self, rows: list[list[str]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = buf.getvalue().encode("utf-8")
            while data:
                n = os.write(fd, data)
                data = data[n:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def write(self, records: list[dict[str, str]]) -> int:
        """Appends the records not yet in the file; returns how many were new."""
        fresh = []
        for rec in records:
            k = row_key(rec)
            if k not in self.keys:
                self.keys.add(k)
                fresh.append([rec.get(c, "") for c in self.header])
        if fresh:
            self._append(fresh)
            self.rows_written += len(fresh)
        return len(fresh)
