"""Pace the simulator against the wall clock into a data root, unless it holds user data."""

from __future__ import annotations

import heapq
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from demo.files import (
    DATA_FILES,
    HISTORY_FILE,
    MARKER_FILE,
    MARKER_TEXT,
    METRICS_FILE,
    STATUS_FILE,
    append_lines,
    drop_torn_tail,
    ensure_metrics_header,
    format_ts,
    history_line,
    last_metrics_ts,
    metrics_line,
    read_history_state,
    write_status,
)
from demo.sim import KST, PERSONALITIES, TICK, Personality, Simulator, Tick
from tracker.fleet import gateways

# A fresh root gets this much history at once, with its first change 120 s back: that
# effect is complete immediately and the next change lands within the first minute.
BACKFILL_S = 180
# The first change comes this long after the simulated gateway (re)starts: past its boot
# transient, so the first pre window is full and clean.
FIRST_CHANGE_S = 60
BATCH_LINES = 1000
IDLE_SLEEP_S = 3600.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def grid_ceil(unix_s: float) -> datetime:
    """The first 200 ms sample slot at or after unix_s (to the millisecond), in KST."""
    # Whole milliseconds first: float noise such as ...600.2 * 1000 = ...600200.0001
    # must not push the slot a whole tick later.
    ms = -(-round(unix_s * 1000) // 200) * 200
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(KST)


def fleet(n: int) -> list[tuple[str, Personality]]:
    """Names and personalities of a demo fleet of n gateways: steady, jittery, drifting,
    busy, then steady-2, ..."""
    out = []
    for k in range(n):
        p = PERSONALITIES[k % len(PERSONALITIES)]
        lap = k // len(PERSONALITIES)
        out.append((p.name if lap == 0 else f"{p.name}-{lap + 1}", p))
    return out


def user_data_found(root: Path) -> list[Path]:
    """Data files in a root that the demo did not write (no marker): the demo must stay off.

    A fleet root counts too: the demo marks the root before it writes any gateway, so a
    gateway directory (as the tracker finds them) under an unmarked root is the user's.
    """
    if (root / MARKER_FILE).exists():
        return []
    return [gateway.root.relative_to(root) / rel for gateway in gateways(root)
            for rel in DATA_FILES if (gateway.root / rel).exists()]


@dataclass(frozen=True)
class Plan:
    start: datetime
    first_change_s: float
    rules: dict[str, float]
    last_actor: str | None
    resumed: bool


def plan_start(root: Path, now_unix: float) -> Plan:
    """Where the simulation starts: backfilled on a new root, after the newest line on a restart."""
    history = read_history_state(root / HISTORY_FILE)
    last_sample = last_metrics_ts(root / METRICS_FILE)
    now = grid_ceil(now_unix)
    floors = []
    if last_sample is not None:
        floors.append(last_sample + TICK)
    if history.last_ts is not None:
        floors.append(history.last_ts + timedelta(seconds=1))
    if not floors:
        start = now - timedelta(seconds=BACKFILL_S)
        return Plan(start, FIRST_CHANGE_S, {}, None, resumed=False)
    # A gap while the demo was down stays a gap, like a real gateway restart.
    start = max(now, grid_ceil(max(floors).timestamp()))
    return Plan(start, FIRST_CHANGE_S, history.rules, history.last_actor, resumed=True)


class _Writer:
    """Buffers complete metrics lines; flushes them and the status file together."""

    def __init__(self, root: Path) -> None:
        self.metrics = root / METRICS_FILE
        self.history = root / HISTORY_FILE
        self.status_path = root / STATUS_FILE
        self.batch: list[str] = []
        self.status: str | None = None
        self.written_status: str | None = None
        ensure_metrics_header(self.metrics)
        drop_torn_tail(self.history)

    def add(self, tick: Tick) -> None:
        if tick.change is not None:
            # Keep the files in time order: samples before the change go out first.
            self.flush()
            append_lines(self.history, [history_line(tick.change)])
        self.batch.append(metrics_line(tick))
        self.status = tick.status
        if len(self.batch) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        append_lines(self.metrics, self.batch)
        self.batch.clear()
        if self.status is not None and self.status != self.written_status:
            try:
                write_status(self.status_path, self.status)
            except PermissionError:
                # Windows refuses to replace a file a reader has open; the next flush retries.
                if os.name != "nt":
                    raise
                return
            self.written_status = self.status


def idle(clock: Callable[[], float], sleep: Callable[[float], None], stop_at: float | None) -> None:
    """Stay up doing nothing, so a restart policy does not turn 'off' into a crash loop."""
    while stop_at is None or clock() < stop_at:
        sleep(IDLE_SLEEP_S if stop_at is None else min(IDLE_SLEEP_S, stop_at - clock()))


def _keyed(k: int, sim: Simulator) -> Iterator[tuple[datetime, int, Tick]]:
    for tick in sim.ticks():
        yield tick.ts, k, tick


def run(
    root: Path,
    seed: int | None = None,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    stop_at: float | None = None,
    out: TextIO | None = None,
    enabled: bool = True,
    gateways: int = 1,
) -> int:
    """Simulate into root forever (or until the clock reaches stop_at); 0 when stopped.

    enabled=False (LUMEN_DEMO=off) keeps the demo idle whatever the root holds. With
    gateways > 1 the root becomes a fleet: one subdirectory per simulated gateway.
    """
    out = out or sys.stdout

    def say(msg: str) -> None:
        print(f"lumen-demo: {msg}", file=out, flush=True)

    if not enabled:
        say("demo is OFF (LUMEN_DEMO=off): nothing will be written.")
        idle(clock, sleep, stop_at)
        return 0
    found = user_data_found(root)
    if gateways > 1:
        found += [name / rel for name, _ in fleet(gateways)
                  for rel in user_data_found(root / name)]
    if found:
        names = ", ".join(str(p) for p in found)
        say(
            f"demo is OFF: {root} already holds your data ({names}) and no {MARKER_FILE} "
            "marker. Nothing will be written; the tracker and exporter use your data as is. "
            "To watch the demo instead, run the stack without LUMEN_DATA_DIR "
            "or point it at an empty directory."
        )
        idle(clock, sleep, stop_at)
        return 0

    root.mkdir(parents=True, exist_ok=True)
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    # One gateway writes the root itself, as before fleets; a fleet one subdirectory each.
    members = [("", PERSONALITIES[0])] if gateways == 1 else fleet(gateways)
    sims: list[Simulator] = []
    writers: list[_Writer] = []
    for k, (name, personality) in enumerate(members):
        gw_root = root / name if name else root
        gw_root.mkdir(exist_ok=True)
        # The marker goes first: data without it would look like the user's on the next start.
        for marked in {root, gw_root}:
            (marked / MARKER_FILE).write_text(MARKER_TEXT, encoding="utf-8")
        plan = plan_start(gw_root, clock())
        sims.append(Simulator(seed + k, plan.start, plan.rules, plan.last_actor,
                              plan.first_change_s, personality))
        writers.append(_Writer(gw_root))
        who = f"{gw_root} ({personality.name}, seed {seed + k})" if name else (
            f"{root} (seed {seed})")
        if plan.resumed:
            say(f"continuing the demo in {who} from {format_ts(plan.start)}")
        else:
            say(f"new demo in {who}: {BACKFILL_S} s of history, then live at 5 Hz")

    # Every gateway's ticks in time order; k breaks ties so ticks never get compared.
    stream = heapq.merge(*(_keyed(k, sim) for k, sim in enumerate(sims)))
    for ts, k, tick in stream:
        wait = ts.timestamp() - clock()
        if wait > 0:
            for writer in writers:
                writer.flush()
            if stop_at is not None and clock() >= stop_at:
                return 0
            sleep(wait)
        writers[k].add(tick)
        if tick.change is not None:
            c = tick.change
            where = f"{members[k][0]}: " if members[k][0] else ""
            say(f"{where}{c.record()['ts']} {c.actor}: {c.rule} {c.old} -> {c.new} ({c.note})")
    return 0
