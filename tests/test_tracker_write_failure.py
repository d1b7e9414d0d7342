"""The effects file cannot be written (full or read-only volume): said, retried, caught up."""

from __future__ import annotations

import errno
import io
import json
import os

import pytest

from tests.rootdata import append, effects, event, sample_rows, write_history, write_metrics
from tracker import run as run_mod
from tracker import store as store_mod
from tracker.report import Reporter
from tracker.settings import resolve
from tracker.store import EffectsWriteError


def rows_text(a, b):
    return "".join(r + "\n" for r in sample_rows(a, b))


class Disk:
    """os.replace that fails with a chosen errno while `error` is set, as a full disk does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.error: int | None = None
        real = os.replace

        def replace(src, dst):
            if self.error is not None:
                raise OSError(self.error, os.strerror(self.error), str(src))
            return real(src, dst)

        monkeypatch.setattr(store_mod.os, "replace", replace)


def test_a_failed_write_leaves_the_file_whole_and_the_events_pending(tmp_path, monkeypatch):
    disk = Disk(monkeypatch)
    write_metrics(tmp_path, sample_rows(-60, 40))
    write_history(tmp_path, [event(-20, rule="risk_max")])
    t = run_mod.Tracker(resolve(str(tmp_path), env={}), Reporter(io.StringIO()), keep_warm=True)
    assert t.step() == 1
    before = (tmp_path / "logs" / "rules_effects.csv").read_bytes()

    append(tmp_path / "controls" / "rules_history.jsonl", json.dumps(event(0)) + "\n")
    disk.error = errno.ENOSPC
    with pytest.raises(EffectsWriteError) as caught:
        t.step()
    message = str(caught.value)
    assert "rules_effects.csv" in message and "No space left on device (ENOSPC)" in message
    # The file as it was, no temporary copy left behind, the event still to write.
    assert (tmp_path / "logs" / "rules_effects.csv").read_bytes() == before
    assert not list((tmp_path / "logs").glob(".rules_effects.csv.*.tmp"))
    assert len(t.pending) + len(t.unwritten) == 1 and t.summary.written == 1

    disk.error = None
    assert t.step() == 1
    assert [r["rule"] for r in effects(tmp_path)] == ["risk_max", "creative_min"]
    assert t.step() == 0  # written once


def test_follow_says_why_once_stops_its_heartbeat_and_catches_up(tmp_path, monkeypatch):
    disk = Disk(monkeypatch)
    write_metrics(tmp_path, sample_rows(-60, 40))
    write_history(tmp_path, [event(0)])
    heartbeat = tmp_path / "heartbeat"
    out = io.StringIO()
    beats: list[bool] = []
    polls = 0

    def sleep(_seconds: float) -> None:
        # One poll has run: was the heartbeat touched by it?
        nonlocal polls
        polls += 1
        beats.append(heartbeat.exists())
        heartbeat.unlink(missing_ok=True)
        if polls == 3:
            disk.error = None  # the volume has room again
        if polls == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_mod.time, "sleep", sleep)
    disk.error = errno.EROFS
    with pytest.raises(KeyboardInterrupt):
        run_mod.follow(resolve(str(tmp_path), env={}), Reporter(out), 1.0, heartbeat)

    log = out.getvalue().splitlines()
    failures = [line for line in log if "cannot write" in line]
    assert len(failures) == 1, log  # said once, not at every poll
    assert str(tmp_path / "logs" / "rules_effects.csv") in failures[0]
    assert "Read-only file system (EROFS)" in failures[0]
    assert any("writable again" in line for line in log), log
    assert beats == [False, False, False, True, True]
    assert [r["rule"] for r in effects(tmp_path)] == ["creative_min"]


def test_the_write_error_names_the_file_the_reason_and_its_code(tmp_path):
    path = tmp_path / "logs" / "rules_effects.csv"
    full = EffectsWriteError(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert str(full) == f"cannot write {path}: No space left on device (ENOSPC)"
    assert full.cause.errno == errno.ENOSPC
    # An error without an errno: its own words, no code.
    assert str(EffectsWriteError(path, OSError("the volume went away"))) == (
        f"cannot write {path}: the volume went away")
    # A path to fix rather than a passing state of the volume: said as unusable files are.
    as_dir = EffectsWriteError(path, IsADirectoryError(errno.EISDIR, "Is a directory",
                                                       str(path)))
    assert str(as_dir) == (f"{path}: cannot use: it is a directory; point --root at the data "
                           "root holding logs/ and controls/")


def _fail_open(monkeypatch, suffix: str, code: int) -> None:
    """The effects writer's open() of a path ending in `suffix` fails with errno `code`."""
    real_open = open

    def failing(path, mode="r", *args, **kwargs):
        if str(path).endswith(suffix):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(store_mod, "open", failing, raising=False)


def test_a_temporary_file_that_could_not_even_be_created_is_said_as_the_cause(
        tmp_path, monkeypatch):
    write_metrics(tmp_path, sample_rows(-60, 40))
    write_history(tmp_path, [event(0)])
    _fail_open(monkeypatch, ".tmp", errno.ENOSPC)
    t = run_mod.Tracker(resolve(str(tmp_path), env={}), Reporter(io.StringIO()))
    with pytest.raises(EffectsWriteError) as caught:
        t.step()
    assert "No space left on device (ENOSPC)" in str(caught.value)


def test_a_lock_that_cannot_be_taken_names_the_effects_file(tmp_path, monkeypatch):
    _fail_open(monkeypatch, ".lock", errno.EROFS)
    path = tmp_path / "logs" / "rules_effects.csv"
    with pytest.raises(EffectsWriteError) as caught:
        store_mod.EffectsWriter(path)
    assert str(caught.value) == f"cannot write {path}: Read-only file system (EROFS)"


def test_an_effects_file_that_is_not_csv_says_what_to_do(tmp_path):
    path = tmp_path / "rules_effects.csv"
    path.write_text(",".join(store_mod.HEADER) + '\n"' + "x" * 140_000 + '"\n')
    with pytest.raises(store_mod.EffectsFileError) as caught:
        store_mod.read_effects(path)
    assert str(caught.value).startswith(f"{path}: not readable as CSV (")
    assert str(caught.value).endswith("move the file aside and run again to write a new one")
