"""What the runbook says, as data: the changes per rule, what each rule does, the patterns.

Reads rules_effects.csv by column name (an older file without intervals or verdicts still
gives every change), the notes from rules_history.jsonl, and, for the pictures, the
samples around the newest changes from metrics.csv. Rendering is runbook_render's job.
"""

from __future__ import annotations

import io
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from tracker.contract import SHORT, SIGNALS, UNRELIABLE_BELOW
from tracker.fleet import gateways
from tracker.history import HistoryReader
from tracker.pooling import DIRECTION_P, Estimate, Pooled, differ, pool, se_from_interval
from tracker.report import Reporter
from tracker.samples import SampleSource, Window
from tracker.settings import Settings
from tracker.store import cell_number, read_effects
from tracker.timeparse import TimeParser

GOOD, WARNING = "good", "warning"
# Fewer usable changes than this and the runbook says "too few changes" instead of a number.
MIN_CHANGES = 3
# A rule and direction is a pattern when at least PATTERN_MIN of its changes, and at least
# PATTERN_SHARE of them, had the verdict.
PATTERN_MIN = 2
PATTERN_SHARE = 0.75
# Seconds of samples drawn beyond each window in a change's picture.
CHART_PAD_S = 5.0
INTERVAL_COLUMNS = [f"d_{s}_{side}" for s in SHORT for side in ("lo", "hi")]
COUNT_COLUMNS = [f"n_{side}_{s}" for s in SHORT for side in ("pre", "post")]


def _count(text: str | None) -> int | None:
    x = cell_number(text)
    return None if x is None else int(x)


@dataclass
class Delta:
    """One signal's effect in one change."""

    signal: str
    d: float | None
    lo: float | None
    hi: float | None
    pre: float | None
    post: float | None
    n_pre: int | None
    n_post: int | None

    @property
    def unreliable(self) -> bool | None:
        """Fewer than 50 valid samples on a side; None when the file does not say."""
        if self.n_pre is None or self.n_post is None:
            return None
        return min(self.n_pre, self.n_post) < UNRELIABLE_BELOW

    @property
    def se(self) -> float | None:
        if self.lo is None or self.hi is None:
            return None
        return se_from_interval(self.lo, self.hi)


@dataclass
class Change:
    ts: str
    t_us: int | None
    actor: str
    rule: str
    old: str
    new: str
    note: str
    pre_s: float
    post_s: float
    guard_s: float
    deltas: list[Delta]
    verdict: str | None  # None when the file has no verdict column
    confounded: bool | None
    line: int  # in rules_effects.csv, for ordering changes at the same ts
    window: Window | None = None  # samples around it, for its picture
    charted: bool = False

    @property
    def size(self) -> float | None:
        """new − old when both are numbers."""
        a, b = cell_number(self.old), cell_number(self.new)
        return None if a is None or b is None else b - a

    @property
    def direction(self) -> str:
        size = self.size
        if size is None:
            return f"set to {self.new}"
        return "raise" if size > 0 else "lower" if size < 0 else "unchanged"

    @property
    def unreliable(self) -> bool | None:
        flags = [d.unreliable for d in self.deltas]
        if any(flags):
            return True
        return None if None in flags else False


@dataclass
class Response:
    """What a rule does to one signal per `step` of its value, pooled over its changes."""

    signal: str
    step: float
    used: int
    excluded: dict[str, int]
    both: Pooled | None  # raising and lowering together, per +step
    up: Pooled | None
    down: Pooled | None
    p_direction: float | None  # raising vs lowering differ? (None: not both measurable)

    @property
    def split(self) -> bool:
        return self.p_direction is not None and self.p_direction < DIRECTION_P

    @property
    def enough(self) -> bool:
        return self.both is not None and self.used >= MIN_CHANGES


@dataclass
class RuleSection:
    name: str
    changes: list[Change]  # newest first
    step: float | None
    responses: list[Response]


@dataclass(frozen=True)
class Pattern:
    rule: str
    direction: str
    verdict: str
    k: int
    n: int
    example: str  # a typical change, e.g. "0.22 → 0.24"


@dataclass
class Gateway:
    name: str | None  # None for a single-gateway root
    root: Path
    effects_path: Path
    has_intervals: bool
    has_verdict: bool
    has_counts: bool
    has_confounded: bool
    rules: list[RuleSection]
    favourable: list[Pattern]
    avoid: list[Pattern]
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return sum(len(r.changes) for r in self.rules)


@dataclass
class Runbook:
    gateways: list[Gateway]
    charts_per_rule: int


def _notes_by_key(path: Path, tp: TimeParser) -> dict[tuple[str, ...], str]:
    events = HistoryReader(path, tp, Reporter(io.StringIO())).read_new()
    return {ev.key: ev.note for ev in events if ev.note}


def _change(row: dict[str, str], line: int, tp: TimeParser,
            notes: dict[tuple[str, ...], str]) -> Change:
    try:
        t_us: int | None = tp.parse(row["rule_ts"])
    except (ValueError, OverflowError):
        t_us = None
    deltas = [Delta(m, cell_number(row.get(f"d_{s}")), cell_number(row.get(f"d_{s}_lo")),
                    cell_number(row.get(f"d_{s}_hi")), cell_number(row.get(f"pre_{s}")),
                    cell_number(row.get(f"post_{s}")), _count(row.get(f"n_pre_{s}")),
                    _count(row.get(f"n_post_{s}")))
              for s, m in zip(SHORT, SIGNALS)]
    conf = row.get("confounded")
    key = tuple(row[c] for c in ("rule_ts", "actor", "rule", "old", "new"))
    return Change(
        ts=row["rule_ts"], t_us=t_us, actor=row["actor"], rule=row["rule"], old=row["old"],
        new=row["new"], note=notes.get(key, ""),
        pre_s=cell_number(row.get("pre_s")) or 30.0, post_s=cell_number(row.get("post_s")) or 30.0,
        guard_s=cell_number(row.get("guard_s")) or 0.0, deltas=deltas,
        verdict=row.get("verdict") or None if "verdict" in row else None,
        confounded=None if conf is None or conf == "" else conf == "1", line=line)


def display_step(sizes: list[float]) -> float:
    """A round unit near a typical change: the power of ten at or below the median |size|."""
    typical = statistics.median(abs(x) for x in sizes)
    return 10.0 ** math.floor(math.log10(typical))


def rule_responses(changes: list[Change], step: float) -> list[Response]:
    out = []
    for k, m in enumerate(SIGNALS):
        excluded: dict[str, int] = defaultdict(int)
        up: list[Estimate] = []
        down: list[Estimate] = []
        for ch in changes:
            size, d = ch.size, ch.deltas[k]
            if size is None or size == 0:
                excluded["not a numeric change"] += 1
            elif ch.confounded:
                excluded["confounded"] += 1
            elif d.unreliable:
                excluded["unreliable"] += 1
            elif d.d is None or d.se is None:
                excluded["no interval"] += 1
            elif not d.se > 0:  # constant data: no weight can be given to "certain"
                excluded["zero-width interval"] += 1
            else:
                # Per +step of the rule's value: Δ / (size / step), its se likewise.
                e = Estimate(d.d * step / size, d.se * step / abs(size))
                (up if size > 0 else down).append(e)
        both = pool(up + down)
        p_up, p_down = pool(up), pool(down)
        p_dir = None
        if len(up) >= MIN_CHANGES and len(down) >= MIN_CHANGES and p_up and p_down:
            p_dir = differ(p_up, p_down)
        out.append(Response(m, step, len(up) + len(down), dict(excluded), both,
                            p_up, p_down, p_dir))
    return out


def patterns(rules: list[RuleSection]) -> tuple[list[Pattern], list[Pattern]]:
    """Rules and directions consistently `good`, and consistently `warning`.

    Confounded and unreliable changes are left out of both counts: their verdicts say
    more about the neighbouring change or the gap in the data than about this one.
    """
    favourable, avoid = [], []
    for r in rules:
        groups: dict[str, list[Change]] = defaultdict(list)
        for ch in r.changes:
            if ch.verdict is None or ch.confounded or ch.unreliable:
                continue
            groups[ch.direction].append(ch)
        for direction, chs in sorted(groups.items()):
            n = len(chs)
            example = f"{chs[0].old} → {chs[0].new}"
            for verdict, out in ((GOOD, favourable), (WARNING, avoid)):
                k = sum(ch.verdict == verdict for ch in chs)
                if k >= PATTERN_MIN and k >= PATTERN_SHARE * n:
                    out.append(Pattern(r.name, direction, verdict, k, n, example))
    key = lambda p: (-p.k / p.n, -p.k, p.rule, p.direction)  # noqa: E731
    return sorted(favourable, key=key), sorted(avoid, key=key)


def load_gateway(s: Settings, name: str | None, charts_per_rule: int) -> Gateway:
    """Everything the runbook says about the gateway whose data root is `s.root`."""
    tp = TimeParser(s.naive_zone)
    header, rows, bad = read_effects(s.effects_path)
    notes = _notes_by_key(s.history_path, tp)
    by_rule: dict[str, list[Change]] = defaultdict(list)
    for line, row in enumerate(rows, start=2):
        ch = _change(row, line, tp, notes)
        by_rule[ch.rule].append(ch)
    gw = Gateway(
        name=name, root=s.root, effects_path=s.effects_path,
        has_intervals=all(c in header for c in INTERVAL_COLUMNS),
        has_verdict="verdict" in header, has_counts=all(c in header for c in COUNT_COLUMNS),
        has_confounded="confounded" in header, rules=[], favourable=[], avoid=[])
    if not s.effects_path.exists():
        gw.notes.append(f"{s.effects_path} does not exist yet: no effects recorded "
                        "(run lumen-rules-effects on this root).")
    if bad:
        gw.notes.append(f"{len(bad)} row(s) of {s.effects_path} have the wrong number of "
                        "fields (edited by hand?) and are left out.")
    if rows and not (gw.has_intervals and gw.has_verdict):
        gw.notes.append(
            f"{s.effects_path} has no interval or verdict columns (written by an older "
            "tracker): each Δ is shown without its interval, the verdict as —, and nothing "
            "is pooled. Move the file aside and run lumen-rules-effects to recompute it.")
    unparsed = sum(ch.t_us is None for chs in by_rule.values() for ch in chs)
    if unparsed:
        gw.notes.append(f"{unparsed} change(s) have a rule_ts that is not a valid time; "
                        "they are listed last.")
    source = SampleSource(s.metrics_path, tp)
    for rule in sorted(by_rule):
        changes = sorted(by_rule[rule], reverse=True,
                         key=lambda c: (c.t_us is not None, c.t_us or 0, c.line))
        for ch in changes[:charts_per_rule]:
            ch.charted = True
            if ch.t_us is not None:
                ch.window = source.window(ch.t_us - round((ch.pre_s + CHART_PAD_S) * 1e6),
                                          ch.t_us + round((ch.post_s + CHART_PAD_S) * 1e6))
        sizes = [x for x in (c.size for c in changes) if x]
        step = display_step(sizes) if sizes else None
        responses = rule_responses(changes, step) if step and gw.has_intervals else []
        gw.rules.append(RuleSection(rule, changes, step, responses))
    gw.favourable, gw.avoid = patterns(gw.rules)
    return gw


def load(s: Settings, charts_per_rule: int) -> Runbook:
    """One section per gateway of a fleet root; a single-gateway root has one, unnamed."""
    found = gateways(s.root)
    if [gw.root for gw in found] == [s.root]:
        return Runbook([load_gateway(s, None, charts_per_rule)], charts_per_rule)
    return Runbook([load_gateway(replace(s, root=gw.root), gw.name, charts_per_rule)
                    for gw in found], charts_per_rule)
