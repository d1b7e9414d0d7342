"""One pass (one-shot) or a polling loop (--follow) from the two inputs to rules_effects.csv."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from tracker.contract import VERDICTS
from tracker.csvformat import MetricsFileError
from tracker.effects import EventTimes, effect_records, final_at, needs_from, unreliable, us
from tracker.fileerrors import unusable
from tracker.fleet import gateways
from tracker.history import HistoryReader, RuleEvent
from tracker.metrics_reader import MetricsReader
from tracker.report import Reporter
from tracker.segments import SampleBuffer
from tracker.settings import Settings
from tracker.store import EffectsFileError, EffectsWriteError, EffectsWriter
from tracker.timeparse import TimeParser

# Rows this far out of order are still found when the reader skips to a time.
DISORDER_MARGIN_US = 60_000_000
# While catching up through a file, effects are written at most this often (and at the end
# of the pass): each write is a whole copy of the file and an fsync.
WRITE_EVERY_S = 0.25
# Below this size a file is read from its first line: exact, and every bad line is named.
SKIP_THRESHOLD_BYTES = 16 << 20


@dataclass
class Summary:
    written: int = 0
    pending: int = 0
    bad_lines: int = 0
    unreliable: int = 0
    confounded: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)  # events written, per verdict

    def line(self) -> str:
        counts = ", ".join(f"{v} {self.verdicts[v]}" for v in VERDICTS if self.verdicts.get(v))
        return (f"written {self.written}, pending {self.pending}, skipped lines "
                f"{self.bad_lines} (unreliable {self.unreliable}, confounded "
                f"{self.confounded})" + (f"; verdicts: {counts}" if counts else ""))


class Tracker:
    """Keeps only what pending and soon-to-come events can need: memory stays bounded."""

    def __init__(self, s: Settings, rep: Reporter, lookback_s: float = 300.0,
                 keep_warm: bool = False) -> None:
        self.s = s
        self.rep = rep
        self.tp = TimeParser(s.naive_zone)
        self.history = HistoryReader(s.history_path, self.tp, rep)
        self.metrics = MetricsReader(s.metrics_path, self.tp, rep)
        self.writer = EffectsWriter(s.effects_path)
        self.buffer = SampleBuffer()
        self.times = EventTimes()
        self.known: set[tuple] = set()
        self.pending: list[RuleEvent] = []
        self.unwritten: list[dict[str, str]] = []  # effects computed, not yet in the file
        self._last_write = time.monotonic()
        # How far behind the newest sample to keep rows for events logged a little late.
        self.lookback_us = us(s.pre_s + s.guard_s + lookback_s)
        self.started = False
        # Following keeps recent rows for events still to come; one pass needs none.
        self.keep_warm = keep_warm
        self.summary = Summary()
        self._zone_logged = False

    def _add_events(self, events: list[RuleEvent]) -> bool:
        """Registers new events; True when one needs rows older than the buffer holds."""
        late = False
        for ev in events:
            if ev.key in self.known:
                continue
            self.known.add(ev.key)
            self.times.add(ev.t_us)
            if ev.key in self.writer.keys:
                continue
            self.pending.append(ev)
            oldest = self._oldest_kept()
            if self.started and oldest is not None and needs_from(ev, self.s) < oldest:
                late = True
        self.pending.sort(key=lambda e: e.t_us)
        return late

    def _oldest_kept(self) -> int | None:
        if self.buffer.max_us is None:
            return None
        segs = self.buffer.segments
        return min(seg.first_us for seg in segs) if segs else self.buffer.max_us

    def _start_reading(self) -> None:
        """Skip the part of a long metrics file that no pending or future event needs."""
        self.buffer.clear()
        try:
            size = self.s.metrics_path.stat().st_size
        except FileNotFoundError:
            return
        if size < SKIP_THRESHOLD_BYTES:
            self.metrics.rewind()
            return
        if self.pending:
            want = needs_from(self.pending[0], self.s)
        else:
            last = self.metrics.last_time()
            if last is None:
                return
            want = last - self.lookback_us
        self.metrics.position_at(want - DISORDER_MARGIN_US)

    def _finalize(self, settle_us: int = 0) -> None:
        """Writes the events whose post window the metrics have passed by `settle_us`.

        While catching up through a file, rows a little out of order may still follow, so
        an event waits for DISORDER_MARGIN_US more data; at the end of what is written so
        far it is final as SPEC says, once the metrics reach t0 + POST.
        """
        if self.buffer.max_us is None or not self.pending:
            return
        done, keep = [], []
        for ev in self.pending:
            ready = final_at(ev, self.s) + settle_us <= self.buffer.max_us
            (done if ready else keep).append(ev)
        if not done:
            return
        self.unwritten += effect_records(
            done, self.buffer, self.s, [self.times.confounded(ev.t_us, self.s) for ev in done])
        self.pending = keep
        if not settle_us or time.monotonic() - self._last_write >= WRITE_EVERY_S:
            self._flush()

    def _flush(self) -> None:
        """Writes the computed effects. Raises EffectsWriteError when the file cannot be
        written: they are then kept and written at the next try."""
        if not self.unwritten:
            return
        self.summary.written += self.writer.write(self.unwritten)
        for rec in self.unwritten:
            self.summary.unreliable += unreliable(rec)
            self.summary.confounded += rec["confounded"] == "1"
            v = rec["verdict"]
            self.summary.verdicts[v] = self.summary.verdicts.get(v, 0) + 1
        self.unwritten = []
        self._last_write = time.monotonic()

    def _trim(self) -> None:
        if self.buffer.max_us is None:
            return
        keep = self.buffer.max_us - self.lookback_us - DISORDER_MARGIN_US
        if self.pending:
            keep = min(keep, needs_from(self.pending[0], self.s))
        self.buffer.trim(keep)

    def step(self) -> int:
        """Reads what is new in both files and writes every effect now complete."""
        before = self.summary.written
        late = self._add_events(self.history.read_new())
        if not self.started or late:
            self._start_reading()
            self.started = True
        if self.pending or self.keep_warm:
            for seg in self.metrics.chunks():
                self.buffer.add(seg)
                self._finalize(DISORDER_MARGIN_US)
                self._trim()
        self._finalize()
        self._flush()
        if self.tp.saw_naive and not self._zone_logged:
            self._zone_logged = True
            self.rep.info(f"timestamps without an offset are read as {self.s.naive_zone_name} "
                          "(set --naive-tz or LUMEN_NAIVE_TZ to change)")
        self.summary.pending = len(self.pending) + len(self.unwritten)
        self.summary.bad_lines = self.rep.count
        return self.summary.written - before


def run_once(s: Settings, rep: Reporter) -> Summary:
    """One pass over one gateway's files."""
    t = Tracker(s, rep)
    t.step()
    return t.summary


class Fleet:
    """A Tracker per gateway under the root (tracker.fleet), looked up again at every step.

    A gateway whose files cannot be used (a foreign effects header, a metrics file without
    the signal columns, a directory where a file should be, no permission) is said once per
    new reason and tried again at the next step; the others go on.
    """

    def __init__(self, s: Settings, rep: Reporter, keep_warm: bool = False) -> None:
        self.s = s
        self.rep = rep
        self.keep_warm = keep_warm
        self.trackers: dict[str, Tracker] = {}
        self.failing: dict[str, str] = {}  # gateway -> the reason last said
        self.unwritable: set[str] = set()  # gateways whose effects file cannot be written
        self.is_fleet = False

    def step(self) -> dict[str, int]:
        """Steps every gateway; returns how many effects each wrote (failed ones: absent)."""
        written = {}
        found = gateways(self.s.root)
        self.is_fleet = [gw.root for gw in found] != [self.s.root]
        for gone in self.trackers.keys() - {gw.name for gw in found}:
            del self.trackers[gone]  # its directory went away: nothing left to follow
        for gw in found:
            try:
                t = self.trackers.get(gw.name)
                if t is None or t.s.root != gw.root:
                    t = Tracker(replace(self.s, root=gw.root), self.rep,
                                keep_warm=self.keep_warm)
                    self.trackers[gw.name] = t
                written[gw.name] = t.step()
            except (MetricsFileError, EffectsFileError, OSError) as e:
                why = unusable(e) if isinstance(e, OSError) else str(e)
                if isinstance(e, EffectsWriteError):
                    self.unwritable.add(gw.name)
                    why += "; its effects wait, trying again at every poll"
                if self.failing.get(gw.name) != why:
                    self.failing[gw.name] = why
                    self.rep.error(f"{self._who(gw.name)}{why}")
                continue
            if self.failing.pop(gw.name, None) is not None:
                again = ("is writable again" if gw.name in self.unwritable
                         else "can be used again")
                self.rep.info(f"{self._who(gw.name)}{t.s.effects_path} {again}")
            self.unwritable.discard(gw.name)
        return written

    def _who(self, name: str) -> str:
        return f"gateway {name}: " if self.is_fleet else ""

    def lines(self, names: list[str] | None = None) -> list[str]:
        """Summary lines, prefixed by the gateway's name in a fleet."""
        return [f"{self._who(name)}{t.summary.line()}" for name, t in self.trackers.items()
                if names is None or name in names]


def follow(s: Settings, rep: Reporter, poll_s: float = 1.0,
           heartbeat: Path | None = None, stop: threading.Event | None = None) -> None:
    """Polls every gateway until interrupted; says a gateway's summary when it wrote.

    A file that cannot be used (a directory, a link loop, no permission, a bad header) is
    said once and retried at every poll: whoever fixes it need not restart the tracker.
    While an effects file cannot be written (full or read-only volume) its events stay
    pending and the heartbeat stops, so a health check sees the tracker is not doing its
    job. `stop`, when given and set, ends the loop after its poll (an embedding program's
    clean shutdown; the command runs until interrupted).
    """
    fleet = Fleet(s, rep, keep_warm=True)
    while stop is None or not stop.is_set():
        wrote = [name for name, n in fleet.step().items() if n]
        for line in fleet.lines(wrote):
            rep.info(line)
        if heartbeat is not None and not fleet.unwritable:
            heartbeat.touch()
        time.sleep(poll_s)
