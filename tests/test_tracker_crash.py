"""kill -9 at many moments: the effects file stays whole; the next run completes it."""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.gen import make_day
from tracker.store import HEADER

KILLS = 30
EVENTS = 1000  # over a day of rows: one-shot writes every 0.25 s while it catches up


def check_whole(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "half row left behind"
    rows = list(csv.reader(data.decode().splitlines()))
    assert rows[0] == HEADER
    keys = [tuple(r[:5]) for r in rows[1:]]
    assert all(len(r) == len(HEADER) for r in rows[1:])
    assert len(keys) == len(set(keys)), "duplicate row"
    return set(keys)


def test_kill_9_at_many_points_never_leaves_half_row_or_duplicate(tmp_path):
    root = tmp_path / "root"
    make_day(root, events=EVENTS)
    clean = tmp_path / "clean"
    make_day(clean, events=EVENTS)
    cmd = [sys.executable, "-m", "tracker", "--root"]
    subprocess.run([*cmd, str(clean)], check=True, capture_output=True)
    want = (clean / "logs" / "rules_effects.csv").read_bytes()

    # Time a whole run to spread the kills over a run's life, start-up to last write.
    again = tmp_path / "again"
    make_day(again, events=EVENTS)
    t = time.perf_counter()
    subprocess.run([*cmd, str(again)], capture_output=True)
    span = 1.2 * (time.perf_counter() - t)
    rnd = random.Random(7)
    out = root / "logs" / "rules_effects.csv"
    seen: set[tuple] = set()
    completed = partial = 0
    for _ in range(KILLS):
        p = subprocess.Popen([*cmd, str(root)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0, span))
        p.send_signal(signal.SIGKILL)
        p.wait()
        completed += p.returncode == 0
        keys = check_whole(out)
        assert seen <= keys, "a recorded row was lost"
        partial += 0 < len(keys) < EVENTS
        seen = keys
        if len(keys) == EVENTS:
            out.unlink()  # start over, to kill the next runs at other points
            seen = set()
    subprocess.run([*cmd, str(root)], check=True, capture_output=True)
    assert out.read_bytes() == want
    assert list(out.parent.glob(".*.tmp")) == []  # no copy left from a killed write
    assert completed < KILLS // 2, "most runs must really be killed"
    assert partial > 0, "some kills must land between two writes"


def test_two_trackers_on_one_root_write_each_event_once(tmp_path):
    root = tmp_path / "root"
    make_day(root, events=300, rows=60_000)
    cmd = [sys.executable, "-m", "tracker", "--root", str(root)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    keys = check_whole(root / "logs" / "rules_effects.csv")
    assert len(keys) == 300
