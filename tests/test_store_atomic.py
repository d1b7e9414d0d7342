"""EffectsWriter's crash safety, shown deterministically: the new file reaches the disk as a
temporary copy that is fsynced and then renamed over the old one, so a write that fails at
any point leaves the old file as it was."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tracker import store
from tracker.store import HEADER, EffectsWriter, read_effects, row_key


def record(rule: str, **extra: str) -> dict[str, str]:
    rec = {c: "" for c in HEADER}
    rec.update(rule_ts="2025-10-23T13:10:00+09:00", actor="Lubit", rule=rule, old="1", new="2",
               pre_s="30", post_s="30", d_phase="0.5", confounded="0")
    rec.update(extra)
    return rec


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "logs" / "rules_effects.csv"
    EffectsWriter(p).write([record("a"), record("b")])
    return p


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_new_rows_reach_the_disk_through_an_fsynced_temp_file_then_a_rename(path, monkeypatch):
    calls: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        # What is on the disk once fsync returns: the complete new file, under the temp name.
        name = fd_path(fd)
        real_fsync(fd)
        calls.append(("fsync", name, Path(name).read_bytes()))

    def replace(src, dst) -> None:
        calls.append(("replace", os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    before = path.read_bytes()
    inode = path.stat().st_ino
    assert EffectsWriter(path).write([record("c")]) == 1

    (fsync_call, tmp, synced), (replace_call, src, dst) = calls
    assert (fsync_call, replace_call) == ("fsync", "replace")
    assert src == tmp and dst == str(path)
    assert Path(tmp).parent == path.parent  # a rename within one directory is atomic
    assert synced == path.read_bytes() and synced.startswith(before)
    assert path.stat().st_ino != inode, "the old file was written in place"
    assert [r["rule"] for r in read_effects(path)[1]] == ["a", "b", "c"]


class DiskFull:
    """A file whose write stores the first half of the data, then fails (ENOSPC)."""

    def __init__(self, f) -> None:
        self.f = f

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def fail_write_partway(monkeypatch, path: Path) -> None:
    def open_(file, mode="r", *args, **kwargs):
        f = open(file, mode, *args, **kwargs)
        # Any write that is not to the lock file fails halfway, wherever it goes.
        return DiskFull(f) if "w" in mode and Path(file).name != f".{path.name}.lock" else f

    monkeypatch.setattr(store, "open", open_, raising=False)


def fail(name: str):
    def raise_(*args, **kwargs):
        raise OSError(errno.EIO, f"{name} failed")

    return raise_


@pytest.mark.parametrize("how", ["write", "fsync", "replace"])
def test_a_write_failing_partway_leaves_the_old_file_intact(path, monkeypatch, how):
    before = path.read_bytes()
    inode = path.stat().st_ino
    writer = EffectsWriter(path)
    with monkeypatch.context() as m:
        if how == "write":
            fail_write_partway(m, path)
        else:
            m.setattr(os, how, fail(how))
        with pytest.raises(store.EffectsWriteError) as raised:
            writer.write([record("c"), record("d")])
    # Said as the planted failure, naming the file (the tracker logs it and carries on).
    assert raised.value.cause.errno == (errno.ENOSPC if how == "write" else errno.EIO)
    assert str(path) in str(raised.value)
    # Checked before the next write, which would reuse (and rename away) the same temp name.
    assert not list(path.parent.glob(".*.tmp")), "a temp file was left behind"
    assert path.read_bytes() == before
    assert path.stat().st_ino == inode
    # Not taken as written: the next write (or the next run, after a crash) adds them.
    assert writer.write([record("c"), record("d")]) == 2
    assert [r["rule"] for r in read_effects(path)[1]] == ["a", "b", "c", "d"]
    assert not list(path.parent.glob(".*.tmp")), "a temp file was left behind"


def test_a_temp_file_left_by_a_killed_writer_is_never_read_and_is_removed(path):
    stale = path.with_name(f".{path.name}.99999.tmp")
    stale.write_bytes(path.read_bytes() + b"2025-10-23T13:10:00+09:00,Lubit,half")
    writer = EffectsWriter(path)
    assert not stale.exists()
    assert {k[2] for k in writer.keys} == {"a", "b"}
    assert {row_key(r)[2] for r in read_effects(path)[1]} == {"a", "b"}


# --- what the writer writes -----------------------------------------------------------------


def test_first_write_makes_the_directories_and_a_header_and_lf_lines(tmp_path):
    p = tmp_path / "new" / "root" / "logs" / "rules_effects.csv"
    rec = record("a")
    del rec["confounded"]  # a column the record lacks is written empty
    assert EffectsWriter(p).write([rec]) == 1
    data = p.read_bytes()
    assert b"\r" not in data and data.count(b"\n") == 2
    header, rows, bad = read_effects(p)
    assert header == HEADER and bad == []
    assert rows[0]["confounded"] == "" and rows[0]["rule"] == "a"


def test_file_mode_is_kept(path):
    path.chmod(0o640)
    EffectsWriter(path).write([record("c")])
    assert path.stat().st_mode & 0o7777 == 0o640


def test_a_half_row_at_the_end_is_dropped_and_the_new_rows_are_whole(path):
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b"2025-10-23T13:10:00+09:00,Lubit,cut")
    assert EffectsWriter(path).write([record("c")]) == 1
    data = path.read_bytes()
    assert data.startswith(whole)
    assert data[len(whole):].startswith(b"2025-10-23T13:10:00+09:00,Lubit,c,1,2,")
    _, rows, bad = read_effects(path)
    assert [r["rule"] for r in rows] == ["a", "b", "c"] and bad == []


def test_a_writer_sees_rows_another_wrote_since(path):
    first, second = EffectsWriter(path), EffectsWriter(path)
    assert first.write([record("c")]) == 1
    assert second.write([record("c"), record("d")]) == 1
    assert first.write([record("d")]) == 0
    assert [r["rule"] for r in read_effects(path)[1]] == ["a", "b", "c", "d"]


# --- what the reader reads ------------------------------------------------------------------


def test_reader_ignores_a_cut_last_row_and_a_bom_and_keeps_odd_bytes(path):
    header = path.read_bytes().split(b"\n", 1)[0]
    row = b"2025-10-23T13:10:00+09:00,Lubit,\xff\xfe," + b",".join([b"1"] * (len(HEADER) - 3))
    path.write_bytes(b"\xef\xbb\xbf" + header + b"\n" + row + b"\n" + b"2025-10-23T13:1")
    got_header, rows, bad = read_effects(path)
    assert got_header == HEADER and bad == []
    assert [r["rule"] for r in rows] == ["\ufffd\ufffd"]


def test_fields_with_carriage_returns_and_newlines_read_back_as_written(path):
    # The last column holds a value, so the row's end shows it was quoted whole.
    odd = record("c", actor="A\rB", old="1\r\n2", new="x\ny", **{HEADER[-1]: "0"})
    writer = EffectsWriter(path)
    assert writer.write([odd]) == 1
    (row,) = [r for r in read_effects(path)[1] if r["rule"] == "c"]
    assert (row["actor"], row["old"], row["new"]) == ("A\rB", "1\r\n2", "x\ny")
    assert path.read_bytes().endswith(b'"0"\n') and not path.read_bytes().endswith(b"\r\n")
    assert EffectsWriter(path).write([odd]) == 0


def test_a_damaged_row_with_just_its_key_fields_is_not_written_again(path):
    lines = path.read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:5])  # row a cut to the 5 fields of its key
    path.write_text("\n".join(lines) + "\n")
    writer = EffectsWriter(path)
    assert writer.write([record("a")]) == 0
    assert len(read_effects(path)[2]) == 1


def test_a_header_not_starting_with_the_19_columns_is_refused(path):
    from tracker.store import EffectsFileError

    path.write_text("X" + path.read_text())
    with pytest.raises(EffectsFileError, match="header does not start with the 19 columns"):
        read_effects(path)
