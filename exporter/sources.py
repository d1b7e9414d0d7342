"""The data root as the exporter sees it: each file re-read only when it changed.

Every reader is the tracker's own (tracker.history, tracker.metrics_reader, tracker.store),
so the exporter and the tracker never disagree about a file format or about which events
are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tracker import options
from tracker.contract import STATES
from tracker.csvformat import MetricsFileError
from tracker.filestamp import Stamp, file_stamp
from tracker.history import HistoryReader, RuleEvent
from tracker.metrics_reader import read_tail
from tracker.report import Reporter
from tracker.settings import Settings
from tracker.store import EffectsFileError, read_effects, recorded_keys
from tracker.timeparse import TimeParser


@dataclass
class Health:
    """readable 0 with no new error: the file is missing; with one: it could not be read."""

    readable: bool = False
    errors: int = 0
    last_error: str = ""

    def unreadable(self, path: Path, error: Exception, count: bool = True) -> None:
        """Marks the file unreadable and says why on stderr, once for each new reason."""
        if str(error) != self.last_error:
            self.last_error = str(error)
            # options.logger, not a bare getLogger: the common format whoever reads first.
            options.logger("lumen-exporter").warning("%s: cannot read: %s", path, error)
        self.readable = False
        self.errors += count


# gateway_activation.yaml holds a few lines; reading more would only cost memory.
MAX_YAML_BYTES = 1 << 20


class Activation:
    """gateway_activation.yaml: gateway.status as 0..4."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.health = Health()
        self._stamp: Stamp | None = None
        self.status: int | None = None

    def refresh(self) -> None:
        stamp = file_stamp(self.path)
        if stamp is None:
            self._stamp, self.status = None, None
            self.health.readable = False
            return
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_YAML_BYTES + 1)
            if len(raw) > MAX_YAML_BYTES:
                raise ValueError(f"larger than {MAX_YAML_BYTES >> 10} KiB; not an activation "
                                 "file")
            doc = yaml.safe_load(raw.decode("utf-8", errors="replace"))
        except (OSError, ValueError, RecursionError, yaml.YAMLError) as e:
            self.status = None
            self.health.unreadable(self.path, e)
            return
        self.health.readable = True
        gateway = doc.get("gateway") if isinstance(doc, dict) else None
        raw = gateway.get("status") if isinstance(gateway, dict) else None
        status = str(raw).strip().lower()  # None, a number, a list: no state
        if status in STATES:
            self.status = STATES.index(status)
        else:
            # A present file with no known state: 'unknown' is SPEC's own state 0.
            self.status = 0
            self.health.errors += 1


class LatestSample:
    """The newest row of logs/metrics.csv, from the file's tail only."""

    def __init__(self, path: Path, tp: TimeParser) -> None:
        self.path = path
        self.tp = tp
        self.health = Health()
        self._stamp: Stamp | None = None
        self.sample: tuple[int, list[float]] | None = None
        # Bad rows met in the tail, by byte offset: each is counted once, however many
        # scrapes see it, until the file is replaced.
        self._bad: set[int] = set()

    def refresh(self) -> None:
        stamp = file_stamp(self.path)
        if stamp == self._stamp and stamp is not None:
            return
        if stamp is None or self._stamp is None or stamp[0] != self._stamp[0]:
            self._bad.clear()
        self._stamp = stamp
        bad: list[int] = []
        try:
            self.sample = read_tail(self.path, self.tp, bad=bad)
        except FileNotFoundError:
            self.sample = None
            self.health.readable = False
            return
        except (OSError, MetricsFileError) as e:
            self.sample = None
            self.health.unreadable(self.path, e)
            return
        fresh = set(bad) - self._bad
        self.health.errors += len(fresh)
        self._bad |= fresh
        if len(self._bad) > 10_000:  # keep the memo bounded: old offsets won't be read again
            self._bad = set(sorted(self._bad)[-1000:])
        self.health.readable = True


@dataclass
class History:
    """controls/rules_history.jsonl, read incrementally: only appended lines are parsed."""

    path: Path
    tp: TimeParser
    rep: Reporter
    events: dict[tuple, RuleEvent] = field(default_factory=dict)
    health: Health = field(default_factory=Health)

    def __post_init__(self) -> None:
        self.reader = HistoryReader(self.path, self.tp, self.rep)

    def refresh(self) -> bool:
        """True when the events changed: lines appended, or the file replaced or truncated
        (told by its identity and size, so a new file with as many events still counts)."""
        generation = self.reader.generation
        try:
            new = self.reader.read_new()
        except OSError as e:
            self.health.unreadable(self.path, e, count=False)
            return False
        replaced = self.reader.generation != generation
        if replaced:
            self.events = {ev.key: ev for ev in new}
        else:
            for ev in new:
                self.events.setdefault(ev.key, ev)
        self.health.readable = self.reader.exists
        self.health.errors = self.rep.by_file.get(str(self.path), 0)
        return replaced or bool(new)


class Effects:
    """logs/rules_effects.csv, parsed again only after the tracker replaced it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.health = Health()
        self._stamp: Stamp | None = None
        self.rows: list[dict[str, str]] = []
        self.keys: set[tuple] = set()

    def refresh(self) -> bool:
        """True when the rows changed."""
        stamp = file_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        if stamp is None:
            self.rows, self.keys = [], set()
            self.health.readable = False
            return True
        try:
            _, rows, bad = read_effects(self.path)
        except (OSError, EffectsFileError) as e:
            self.rows, self.keys = [], set()
            self.health.unreadable(self.path, e)
            return True
        self.health.errors = len(bad)
        self.rows = rows
        self.keys = recorded_keys(rows, bad)
        self.health.readable = True
        return True


class DataRoot:
    def __init__(self, s: Settings, rep: Reporter) -> None:
        tp = TimeParser(s.naive_zone)
        self.settings = s
        self.tp = tp
        self.activation = Activation(s.activation_path)
        self.latest = LatestSample(s.metrics_path, tp)
        self.history = History(s.history_path, tp, rep)
        self.effects = Effects(s.effects_path)

    def refresh(self) -> bool:
        """Brings every source up to date; True when effects or history changed.

        Each reader names what it can anticipate; anything else one file provokes is still
        that file's problem, said in its health series, never a failed scrape.
        """
        changed = False
        for source in (self.activation, self.latest, self.history, self.effects):
            try:
                changed = bool(source.refresh()) or changed
            except Exception as e:  # noqa: BLE001 - the last guard of a scrape
                source.health.unreadable(source.path, e)
                changed = True
        return changed
