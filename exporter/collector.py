"""The Prometheus collector: every scrape reads the data root (through change-aware caches)
and builds the families anew; nothing is kept in module-level gauges between scrapes."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.sources import DataRoot
from tracker import contract as names
from tracker.contract import SHORT, SIGNALS, VERDICTS
from tracker.history import RuleEvent
from tracker.store import cell_number, row_key

WINDOWS = ("pre", "post", "guard")



def _delta_label(row: dict[str, str] | None, short: str) -> str:
    if row is None:
        return "pending"
    v = cell_number(row.get(f"d_{short}"))
    return "n/a" if v is None else f"{v:.4g}"


def _interval_label(row: dict[str, str] | None, short: str) -> str:
    """A Δ's 95% interval as "[low, high]", so that no Δ is read without it."""
    if row is None:
        return "pending"
    lo, hi = (cell_number(row.get(f"d_{short}_{end}")) for end in ("lo", "hi"))
    return "n/a" if lo is None or hi is None else f"[{lo:.4g}, {hi:.4g}]"


def _verdict(row: dict[str, str]) -> str | None:
    """The row's verdict; None for a row without one (a file written before verdicts)."""
    v = row.get("verdict")
    return v if v in VERDICTS else None


def _verdict_label(row: dict[str, str] | None) -> str:
    return "pending" if row is None else _verdict(row) or "n/a"


def _state_set(g: GaugeMetricFamily, labels: list[str], current: str) -> None:
    """One series per verdict, 1 for the current one (a state set)."""
    for v in VERDICTS:
        g.add_metric([*labels, v], 1 if v == current else 0)


def duration(started: float) -> Metric:
    g = GaugeMetricFamily(names.COLLECT_DURATION,
                          "Time this scrape spent reading the data root and building metrics.")
    g.add_metric([], time.perf_counter() - started)
    return g


# Distinct rule label values published per family; each costs Prometheus about 22 series.
DEFAULT_MAX_RULES = 300


@dataclass
class Derived:
    """What the families need from the files, rebuilt only when effects or history change."""

    last_row: dict[str, str] | None
    per_rule: dict[str, tuple[dict[str, str], int]]
    pending: list[RuleEvent]
    recent: list[tuple[RuleEvent, dict[str, str] | None]]
    last_change_us: int | None
    windows: dict[str, str]  # pre/post/guard of the row written last, as written
    window_variants: int
    rules_dropped: int = 0  # distinct rules over max_rules, left out of the per-rule series


class LumenCollector:
    """One gateway's families. The registry's Collector is exporter.fleet.FleetCollector,
    which labels these with the gateway and merges them across the fleet."""

    def __init__(self, root: DataRoot, recent: int = 50,
                 max_rules: int = DEFAULT_MAX_RULES) -> None:
        self.root = root
        self.recent = recent
        self.max_rules = max_rules
        self._cap_logged = False
        self.lock = threading.Lock()
        self.derived: Derived | None = None
        self._ts_cache: dict[str, int | None] = {}

    def _instant(self, ts: str) -> int | None:
        if ts not in self._ts_cache:
            try:
                self._ts_cache[ts] = self.root.tp.parse(ts)
            except (ValueError, OverflowError):
                self._ts_cache[ts] = None
        return self._ts_cache[ts]

    def _derive(self) -> Derived:
        rows = self.root.effects.rows
        by_key = {row_key(r): r for r in rows}
        per_rule: dict[str, tuple[dict[str, str], int]] = {}
        last: tuple[int, dict[str, str]] | None = None
        for r in rows:
            t = self._instant(r["rule_ts"])
            if t is None:
                continue
            if r["rule"] not in per_rule or t >= per_rule[r["rule"]][1]:
                per_rule[r["rule"]] = (r, t)
            if last is None or t >= last[0]:
                last = (t, r)
        dropped = max(0, len(per_rule) - self.max_rules)
        if dropped:
            # A history with thousands of rule names (a bug, a typo loop) must not cost
            # Prometheus thousands of series: the most recently changed rules stay.
            newest = sorted(per_rule.items(), key=lambda kv: kv[1][1], reverse=True)
            per_rule = dict(newest[: self.max_rules])
            if not self._cap_logged:
                self._cap_logged = True
                logging.getLogger("lumen-exporter").warning(
                    "%s: %d distinct rule names, over --max-rules %d: the %d most recently "
                    "changed are published, the rest are counted in %s",
                    self.root.settings.effects_path, len(per_rule) + dropped, self.max_rules,
                    self.max_rules, names.RULE_LABELS_DROPPED)
        events = sorted(self.root.history.events.values(), key=lambda e: e.t_us)
        keys = self.root.effects.keys
        pending = [e for e in events if e.key not in keys]
        recent = [(e, by_key.get(e.key)) for e in events[-self.recent:]] if self.recent else []
        variants = {tuple(r.get(f"{w}_s") for w in WINDOWS) for r in rows}
        # The row written last holds the windows the tracker uses now.
        newest = rows[-1] if rows else {}
        return Derived(
            windows={w: newest[f"{w}_s"] for w in WINDOWS if newest.get(f"{w}_s")},
            window_variants=len(variants),
            last_row=last[1] if last else None,
            per_rule=per_rule,
            pending=pending,
            recent=recent,
            last_change_us=events[-1].t_us if events else None,
            rules_dropped=dropped,
        )

    def refresh(self) -> Derived:
        """Brings the sources up to date; the Derived is a new object only when effects or
        history changed, so callers may cache what they build from it by identity."""
        if self.root.refresh() or self.derived is None:
            if len(self._ts_cache) > 100_000:  # rows of a replaced history: start over
                self._ts_cache.clear()
            self.derived = self._derive()
        return self.derived

    def live_families(self, d: Derived) -> list[Metric]:
        """The families that follow the files from scrape to scrape: health, status, the
        newest sample, counts."""
        return list(self._live(d))

    def derived_families(self, d: Derived) -> list[Metric]:
        """The families that are a function of the effects and history alone (the bulk of
        a scrape: per rule, per recent change)."""
        return list(self._derived(d))

    def _live(self, d: Derived) -> Iterator[Metric]:
        root = self.root
        yield from self._health()

        if root.activation.status is not None:
            g = GaugeMetricFamily(names.GATEWAY_STATUS,
                                  "Gateway state: 0 unknown, 1 initializing, 2 binding, "
                                  "3 resonating, 4 locked (gateway_activation.yaml).")
            g.add_metric([], root.activation.status)
            yield g

        sample = root.latest.sample
        if sample is not None:
            t_us, values = sample
            for name, v in zip(SIGNALS, values):
                if math.isfinite(v):
                    g = GaugeMetricFamily(names.signal_gauge(name),
                                          f"Latest {name} in logs/metrics.csv.")
                    g.add_metric([], v)
                    yield g
            g = GaugeMetricFamily(names.LAST_SAMPLE_TIME,
                                  "Unix time of the newest row in logs/metrics.csv.")
            g.add_metric([], t_us / 1e6)
            yield g

        c = CounterMetricFamily(names.EVENTS, "Distinct rule changes in the history.")
        c.add_metric([], len(root.history.events))
        yield c
        c = CounterMetricFamily(names.EFFECTS_WRITTEN,
                                "Effect rows in logs/rules_effects.csv.")
        c.add_metric([], len(root.effects.rows))
        yield c
        if root.history.health.readable:
            g = GaugeMetricFamily(names.EVENTS_PENDING,
                                  "Rule changes whose effect is not written yet.")
            g.add_metric([], len(d.pending))
            yield g

    def _derived(self, d: Derived) -> Iterator[Metric]:
        if d.last_row is not None:
            for name, short in zip(SIGNALS, SHORT):
                v = cell_number(d.last_row.get(f"d_{short}"))
                if v is None:
                    continue
                g = GaugeMetricFamily(names.last_delta(name),
                                      f"Δ {name} (post_mean − pre_mean) of the most recent "
                                      "rule change with a written effect.", labels=["rule"])
                g.add_metric([d.last_row["rule"]], v)
                yield g
                for bound, word in (("lo", "Lower"), ("hi", "Upper")):
                    b = cell_number(d.last_row.get(f"d_{short}_{bound}"))
                    if b is None:
                        continue
                    g = GaugeMetricFamily(names.last_delta(name, bound),
                                          f"{word} end of the 95% interval of Δ {name} of the "
                                          "most recent rule change with a written effect.",
                                          labels=["rule"])
                    g.add_metric([d.last_row["rule"]], b)
                    yield g
            verdict = _verdict(d.last_row)
            if verdict is not None:
                g = GaugeMetricFamily(names.LAST_VERDICT,
                                      "Verdict on the most recent rule change with a written "
                                      "effect: 1 for its verdict, 0 for the others.",
                                      labels=["rule", "verdict"])
                _state_set(g, [d.last_row["rule"]], verdict)
                yield g

        yield from self._per_rule(d)
        g = GaugeMetricFamily(names.RULE_LABELS_DROPPED,
                              "Distinct rules left out of the per-rule series (over "
                              "--max-rules, the least recently changed).")
        g.add_metric([], d.rules_dropped)
        yield g

        if d.pending:
            g = GaugeMetricFamily(names.OLDEST_PENDING_TIME,
                                  "Unix time of the oldest rule change still pending.")
            g.add_metric([], d.pending[0].t_us / 1e6)
            yield g
        if d.last_change_us is not None:
            g = GaugeMetricFamily(names.LAST_CHANGE_TIME,
                                  "Unix time of the newest rule change.")
            g.add_metric([], d.last_change_us / 1e6)
            yield g

        yield from self._windows(d)

        if d.recent:
            yield self._recent(d)

    def _windows(self, d: Derived) -> Iterator[Metric]:
        """The windows of the effects served, as the tracker recorded them in the rows.

        Before the first effect is written there are no rows to read them from; the
        exporter's own settings (the same LUMEN_EFFECT_* as the tracker's in the stack)
        stand in, labelled source="settings", so a pending event can still be judged late.
        """
        g = GaugeMetricFamily(names.EFFECT_WINDOW,
                              "Effect windows (pre, post, guard seconds) of the newest written "
                              "effect; source=settings before any effect is written.",
                              labels=["window", "source"])
        if d.windows:
            for name, text in d.windows.items():
                v = cell_number(text)
                if v is not None:
                    g.add_metric([name, "effects"], v)
        else:
            s = self.root.settings
            for name, v in (("pre", s.pre_s), ("post", s.post_s), ("guard", s.guard_s)):
                g.add_metric([name, "settings"], v)
        yield g
        if d.window_variants:
            v = GaugeMetricFamily(names.EFFECT_WINDOW_VARIANTS,
                                  "Distinct (pre, post, guard) windows among the written "
                                  "effects: above 1, Δs were measured over different windows.")
            v.add_metric([], d.window_variants)
            yield v

    def _health(self) -> Iterator[Metric]:
        root = self.root
        health = {
            "metrics.csv": root.latest.health,
            "rules_history.jsonl": root.history.health,
            "rules_effects.csv": root.effects.health,
            "gateway_activation.yaml": root.activation.health,
        }
        g = GaugeMetricFamily(names.INPUT_READABLE,
                              "1 when the input file was read, 0 when missing or unreadable.",
                              labels=["file"])
        c = CounterMetricFamily(names.INPUT_PARSE_ERRORS,
                                "Bad lines or documents seen in the input file.",
                                labels=["file"])
        for name, h in health.items():
            g.add_metric([name], 1 if h.readable else 0)
            c.add_metric([name], h.errors)
        yield g
        yield c

    def _per_rule(self, d: Derived) -> Iterator[Metric]:
        label = ["rule", "metric"]
        few = f"under {names.UNRELIABLE_BELOW}: unreliable"
        fams = {
            "delta": GaugeMetricFamily(names.EFFECT_DELTA,
                                       "Δ (post_mean − pre_mean) of each rule's latest effect.",
                                       labels=label),
            "pre": GaugeMetricFamily(names.EFFECT_PRE_MEAN,
                                     "Mean before each rule's latest change.", labels=label),
            "post": GaugeMetricFamily(names.EFFECT_POST_MEAN,
                                      "Mean after each rule's latest change.", labels=label),
            "n_pre": GaugeMetricFamily(names.EFFECT_PRE_SAMPLES,
                                       f"Samples in the pre window ({few}).",
                                       labels=label),
            "n_post": GaugeMetricFamily(names.EFFECT_POST_SAMPLES,
                                        f"Samples in the post window ({few}).",
                                        labels=label),
            "lo": GaugeMetricFamily(names.EFFECT_DELTA_LO,
                                    "Lower end of the 95% interval of each rule's latest Δ.",
                                    labels=label),
            "hi": GaugeMetricFamily(names.EFFECT_DELTA_HI,
                                    "Upper end of the 95% interval of each rule's latest Δ.",
                                    labels=label),
        }
        verdicts = GaugeMetricFamily(names.EFFECT_VERDICT,
                                     "Verdict on each rule's latest effect: 1 for its verdict, "
                                     "0 for the others.", labels=["rule", "verdict"])
        confounded = GaugeMetricFamily(names.EFFECT_CONFOUNDED,
                                       "1 when another change fell inside the windows.",
                                       labels=["rule"])
        # The verdict rides on the time series too, so an alert reads one series a rule.
        when = GaugeMetricFamily(names.EFFECT_TIME,
                                 "Unix time of the change behind each rule's latest effect; "
                                 "verdict: that effect's verdict.", labels=["rule", "verdict"])
        for rule, (row, t_us) in sorted(d.per_rule.items()):
            for name, short in zip(SIGNALS, SHORT):
                for key, col in (("delta", f"d_{short}"), ("pre", f"pre_{short}"),
                                 ("post", f"post_{short}"), ("n_pre", f"n_pre_{short}"),
                                 ("n_post", f"n_post_{short}"), ("lo", f"d_{short}_lo"),
                                 ("hi", f"d_{short}_hi")):
                    v = cell_number(row.get(col))
                    if v is not None:
                        fams[key].add_metric([rule, name], v)
            if row.get("confounded") in ("0", "1"):
                confounded.add_metric([rule], int(row["confounded"]))
            verdict = _verdict(row)
            if verdict is not None:
                _state_set(verdicts, [rule], verdict)
            when.add_metric([rule, verdict or ""], t_us / 1e6)
        if d.per_rule:
            yield from fams.values()
            yield confounded
            yield when
            if verdicts.samples:
                yield verdicts

    def _recent(self, d: Derived) -> Metric:
        g = GaugeMetricFamily(
            names.CHANGE_TIME,
            "Recent rule changes, for Grafana annotations: value is the change's Unix time.",
            labels=["rule", "actor", "old", "new",
                    *(f"d_{short}" for short in SHORT),
                    *(f"d_{short}_interval" for short in SHORT), "verdict"])
        series: dict[tuple[str, ...], float] = {}
        for ev, row in d.recent:
            labels = (ev.rule, ev.actor, ev.old, ev.new,
                      *(_delta_label(row, short) for short in SHORT),
                      *(_interval_label(row, short) for short in SHORT), _verdict_label(row))
            # Two changes with identical labels would be one series twice: the events come
            # oldest first, so the newest one's time is the one kept.
            series[labels] = ev.t_us / 1e6
        for labels, v in series.items():
            g.add_metric(list(labels), v)
        return g
