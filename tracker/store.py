"""logs/rules_effects.csv: read what is recorded, append whole rows that survive kill -9."""

from __future__ import annotations

import csv
import errno
import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tracker.fileerrors import unusable
from tracker.filestamp import Stamp, file_stamp

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

COLUMNS = (
    "rule_ts,actor,rule,old,new,pre_s,post_s,"
    "pre_phase,post_phase,d_phase,pre_entropy,post_entropy,d_entropy,"
    "pre_creative,post_creative,d_creative,pre_risk,post_risk,d_risk"
).split(",")
EXTRA = (
    "guard_s,n_pre_phase,n_post_phase,n_pre_entropy,n_post_entropy,"
    "n_pre_creative,n_post_creative,n_pre_risk,n_post_risk,confounded,"
    # Issue 10: each Δ's 95% interval, the verdict, and the samples the intervals left out.
    # A file written before keeps its own header: its new rows go without these columns.
    "d_phase_lo,d_phase_hi,d_entropy_lo,d_entropy_hi,d_creative_lo,d_creative_hi,"
    "d_risk_lo,d_risk_hi,verdict,n_glitches"
).split(",")
HEADER = COLUMNS + EXTRA


class EffectsFileError(Exception):
    pass


class EffectsWriteError(EffectsFileError):
    """The effects file cannot be written now (full or read-only volume, permissions)."""

    def __init__(self, path: Path, cause: OSError) -> None:
        if cause.errno in (errno.EISDIR, errno.ELOOP, errno.ENOTDIR):
            # Not a passing condition of the volume: a path to fix, said as unusable files are.
            super().__init__(unusable(cause))
        else:
            code = errno.errorcode.get(cause.errno or 0, "")
            why = cause.strerror or str(cause)
            super().__init__(f"cannot write {path}: {why}" + (f" ({code})" if code else ""))
        self.cause = cause


def _header_ok(fields: list[str], path: Path) -> list[str]:
    if fields[: len(COLUMNS)] != COLUMNS:
        raise EffectsFileError(
            f"{path}:1: header does not start with the 19 columns of rules_effects.csv; "
            "move the file aside and run again to write a new one"
        )
    return fields


def read_effects(path: Path) -> tuple[list[str], list[dict[str, str]], list[list[str]]]:
    """The header, the rows, and the rows with the wrong number of fields (edited by hand?).

    A half row at the end (a crash of an older writer) is ignored.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return HEADER, [], []
    data = data[: data.rfind(b"\n") + 1]
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:  # a field over csv's 128 KiB limit: edited by hand
        raise EffectsFileError(f"{path}: not readable as CSV ({e}); move the file aside and "
                               "run again to write a new one") from e
    if not rows:
        return HEADER, [], []
    header = _header_ok(rows[0], path)
    good = [dict(zip(header, r)) for r in rows[1:] if len(r) == len(header)]
    bad = [r for r in rows[1:] if r and len(r) != len(header)]
    return header, good, bad


KEY_COLUMNS = ("rule_ts", "actor", "rule", "old", "new")


def cell_number(text: str | None) -> float | None:
    """A number cell of a row (a mean, a Δ, an interval's end) as a finite float; None when
    it is empty, not a number, or not finite (how an unknown is written)."""
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def row_key(row: dict[str, str]) -> tuple[str, ...]:
    """The event a row records, in RuleEvent.key's order."""
    return tuple(row[c] for c in KEY_COLUMNS)


def recorded_keys(rows: list[dict[str, str]], bad: list[list[str]]) -> set[tuple[str, ...]]:
    """The events the file records: what is no longer pending, for tracker and exporter alike.

    A damaged row (edited by hand: wrong field count) still names its event in its first
    fields; it counts as recorded, so the tracker never writes it twice and the exporter
    never calls it pending.
    """
    keys = {row_key(r) for r in rows}
    keys.update(tuple(r[: len(KEY_COLUMNS)]) for r in bad if len(r) >= len(KEY_COLUMNS))
    return keys


class EffectsWriter:
    """Adds rows under the file's own header (an older 19-column file keeps its shape).

    Every write replaces the file with a complete new copy (temp file, fsync, rename), so
    at any instant, kill -9 included, readers see either the old rows or old plus new,
    never a half row. The file is small (a row per rule change), so the copy is cheap.
    Writers hold a lock file while they write, and re-read the keys when another process
    changed the file since, so a tracker run by hand beside the stack's adds no duplicate.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(f".{path.name}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.header: list[str] = HEADER
        self.keys: set[tuple[str, ...]] = set()
        self._stamp: Stamp | None = None
        try:
            with self._locked():
                # A copy left by a writer killed before its rename: never part of the file.
                for stale in path.parent.glob(f".{path.name}.*.tmp"):
                    stale.unlink(missing_ok=True)
                self._load()
        except OSError as e:
            raise EffectsWriteError(path, e) from e

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:  # Windows: no advisory locks; one tracker per root there
            yield
            return
        with open(self.lock_path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _load(self) -> None:
        self.header, rows, bad = read_effects(self.path)
        self.keys = recorded_keys(rows, bad)
        self._stamp = file_stamp(self.path)

    def _replace(self, new_rows: list[list[str]]) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        # A file cut short by an older writer or a full disk: keep whole lines only; the
        # cut row's event is still unrecorded, so it is computed again.
        data = data[: data.rfind(b"\n") + 1]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        # csv quotes a field holding a character of the line terminator, "\n" here, but
        # not a bare "\r", at which every reader ends the row: quote such rows whole.
        quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
        if not data:
            writer.writerow(self.header)
        for row in new_rows:
            (quoted if any("\r" in field for field in row) else writer).writerow(row)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data + buf.getvalue().encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.chmod(tmp, self.path.stat().st_mode & 0o777)
            except FileNotFoundError:
                pass
            # No fsync of the directory: if power fails before the rename reaches the disk,
            # the rows are missing, not torn, and the next run computes them again.
            os.replace(tmp, self.path)
        except OSError:
            # A full disk leaves a partial copy: never keep it (the file itself is intact).
            tmp.unlink(missing_ok=True)
            raise

    def write(self, records: list[dict[str, str]]) -> int:
        """Adds the records not yet in the file; returns how many were new.

        Raises EffectsWriteError when the file cannot be written; nothing is then recorded
        as written, so the same records can be written again later.
        """
        try:
            with self._locked():
                if file_stamp(self.path) != self._stamp:
                    self._load()  # another writer was here
                fresh = {row_key(r): r for r in records if row_key(r) not in self.keys}
                if fresh:
                    self._replace([[r.get(c, "") for c in self.header]
                                   for r in fresh.values()])
                    self.keys.update(fresh)
                    self._stamp = file_stamp(self.path)
        except OSError as e:
            raise EffectsWriteError(self.path, e) from e
        return len(fresh)
