"""The Prometheus collector: every scrape reads the data root (through change-aware caches)
and builds the families anew; nothing is kept in module-level gauges between scrapes."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.sources import DataRoot
from tracker import METRICS, SHORT
from tracker.history import RuleEvent
from tracker.store import row_key


def _float(text: str | None) -> float | None:
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _delta_label(row: dict[str, str] | None, short: str) -> str:
    if row is None:
        return "pending"
    v = _float(row.get(f"d_{short}"))
    return "n/a" if v is None else f"{v:.4g}"


@dataclass
class Derived:
    """What the families need from the files, rebuilt only when effects or history change."""

    last_row: dict[str, str] | None
    per_rule: dict[str, tuple[dict[str, str], int]]
    pending: list[RuleEvent]
    recent: list[tuple[RuleEvent, dict[str, str] | None]]
    last_change_us: int | None
    rules_dropped: int = 0  # distinct rules over max_rules, left out of the per-rule series


# Distinct rule label values published per family; each costs Prometheus about 22 series.
DEFAULT_MAX_RULES = 300


class LumenCollector:
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
                print(f"lumen-exporter: {len(per_rule) + dropped} distinct rule names, over "
                      f"--max-rules {self.max_rules}: the {self.max_rules} most recently "
                      "changed are published, the rest are counted in "
                      "lumen_rule_labels_dropped", file=sys.stderr, flush=True)
        events = sorted(self.root.history.events.values(), key=lambda e: e.t_us)
        keys = self.root.effects.keys
        pending = [e for e in events if e.key not in keys]
        recent = [(e, by_key.get(e.key)) for e in events[-self.recent:]] if self.recent else []
        return Derived(
            last_row=last[1] if last else None,
            per_rule=per_rule,
            pending=pending,
            recent=recent,
            last_change_us=events[-1].t_us if events else None,
            rules_dropped=dropped,
        )

    def describe(self) -> list[Metric]:
        return []  # families depend on the files; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        with self.lock:
            if self.root.refresh() or self.derived is None:
                if len(self._ts_cache) > 100_000:  # rows of a replaced history: start over
                    self._ts_cache.clear()
                self.derived = self._derive()
            families = list(self._families(self.derived))
        yield from families
        g = GaugeMetricFamily("lumen_exporter_collect_duration_seconds",
                              "Time this scrape spent reading the data root and building metrics.")
        g.add_metric([], time.perf_counter() - started)
        yield g

    def _families(self, d: Derived) -> Iterator[Metric]:
        root = self.root
        s = root.settings
        yield from self._health()

        if root.activation.status is not None:
            g = GaugeMetricFamily("lumen_gateway_status",
                                  "Gateway state: 0 unknown, 1 initializing, 2 binding, "
                                  "3 resonating, 4 locked (gateway_activation.yaml).")
            g.add_metric([], root.activation.status)
            yield g

        sample = root.latest.sample
        if sample is not None:
            t_us, values = sample
            for name, v in zip(METRICS, values):
                if math.isfinite(v):
                    g = GaugeMetricFamily(f"lumen_{name}", f"Latest {name} in logs/metrics.csv.")
                    g.add_metric([], v)
                    yield g
            g = GaugeMetricFamily("lumen_metrics_last_sample_timestamp_seconds",
                                  "Unix time of the newest row in logs/metrics.csv.")
            g.add_metric([], t_us / 1e6)
            yield g

        if d.last_row is not None:
            for name, short in zip(METRICS, SHORT):
                v = _float(d.last_row.get(f"d_{short}"))
                if v is None:
                    continue
                g = GaugeMetricFamily(f"lumen_rule_last_{name}_delta",
                                      f"Δ {name} (post_mean − pre_mean) of the most recent "
                                      "rule change with a written effect.", labels=["rule"])
                g.add_metric([d.last_row["rule"]], v)
                yield g

        yield from self._per_rule(d)
        g = GaugeMetricFamily("lumen_rule_labels_dropped",
                              "Distinct rules left out of the per-rule series (over "
                              "--max-rules, the least recently changed).")
        g.add_metric([], d.rules_dropped)
        yield g

        c = CounterMetricFamily("lumen_rule_events", "Distinct rule changes in the history.")
        c.add_metric([], len(root.history.events))
        yield c
        c = CounterMetricFamily("lumen_rule_effects_written",
                                "Effect rows in logs/rules_effects.csv.")
        c.add_metric([], len(root.effects.rows))
        yield c
        if root.history.health.readable:
            g = GaugeMetricFamily("lumen_rule_events_pending",
                                  "Rule changes whose effect is not written yet.")
            g.add_metric([], len(d.pending))
            yield g
        if d.pending:
            g = GaugeMetricFamily("lumen_rule_oldest_pending_timestamp_seconds",
                                  "Unix time of the oldest rule change still pending.")
            g.add_metric([], d.pending[0].t_us / 1e6)
            yield g
        if d.last_change_us is not None:
            g = GaugeMetricFamily("lumen_rule_last_change_timestamp_seconds",
                                  "Unix time of the newest rule change.")
            g.add_metric([], d.last_change_us / 1e6)
            yield g

        g = GaugeMetricFamily("lumen_effect_window_seconds",
                              "Effect windows in force: pre, post and guard seconds.",
                              labels=["window"])
        for name, v in (("pre", s.pre_s), ("post", s.post_s), ("guard", s.guard_s)):
            g.add_metric([name], v)
        yield g

        if d.recent:
            yield self._recent(d)

    def _health(self) -> Iterator[Metric]:
        root = self.root
        health = {
            "metrics.csv": root.latest.health,
            "rules_history.jsonl": root.history.health,
            "rules_effects.csv": root.effects.health,
            "gateway_activation.yaml": root.activation.health,
        }
        g = GaugeMetricFamily("lumen_input_readable",
                              "1 when the input file was read, 0 when missing or unreadable.",
                              labels=["file"])
        c = CounterMetricFamily("lumen_input_parse_errors",
                                "Bad lines or documents seen in the input file.",
                                labels=["file"])
        for name, h in health.items():
            g.add_metric([name], 1 if h.readable else 0)
            c.add_metric([name], h.errors)
        yield g
        yield c

    def _per_rule(self, d: Derived) -> Iterator[Metric]:
        label = ["rule", "metric"]
        fams = {
            "delta": GaugeMetricFamily("lumen_rule_effect_delta",
                                       "Δ (post_mean − pre_mean) of each rule's latest effect.",
                                       labels=label),
            "pre": GaugeMetricFamily("lumen_rule_effect_pre_mean",
                                     "Mean before each rule's latest change.", labels=label),
            "post": GaugeMetricFamily("lumen_rule_effect_post_mean",
                                      "Mean after each rule's latest change.", labels=label),
            "n_pre": GaugeMetricFamily("lumen_rule_effect_pre_samples",
                                       "Samples in the pre window (under 50: unreliable).",
                                       labels=label),
            "n_post": GaugeMetricFamily("lumen_rule_effect_post_samples",
                                        "Samples in the post window (under 50: unreliable).",
                                        labels=label),
        }
        confounded = GaugeMetricFamily("lumen_rule_effect_confounded",
                                       "1 when another change fell inside the windows.",
                                       labels=["rule"])
        when = GaugeMetricFamily("lumen_rule_effect_timestamp_seconds",
                                 "Unix time of the change behind each rule's latest effect.",
                                 labels=["rule"])
        for rule, (row, t_us) in sorted(d.per_rule.items()):
            for name, short in zip(METRICS, SHORT):
                for key, col in (("delta", f"d_{short}"), ("pre", f"pre_{short}"),
                                 ("post", f"post_{short}"), ("n_pre", f"n_pre_{short}"),
                                 ("n_post", f"n_post_{short}")):
                    v = _float(row.get(col))
                    if v is not None:
                        fams[key].add_metric([rule, name], v)
            if row.get("confounded") in ("0", "1"):
                confounded.add_metric([rule], int(row["confounded"]))
            when.add_metric([rule], t_us / 1e6)
        if d.per_rule:
            yield from fams.values()
            yield confounded
            yield when

    def _recent(self, d: Derived) -> Metric:
        g = GaugeMetricFamily(
            "lumen_rule_change_timestamp_seconds",
            "Recent rule changes, for Grafana annotations: value is the change's Unix time.",
            labels=["rule", "actor", "old", "new", "d_phase", "d_entropy", "d_creative",
                    "d_risk"])
        series: dict[tuple[str, ...], float] = {}
        for ev, row in d.recent:
            labels = (ev.rule, ev.actor, ev.old, ev.new,
                      *(_delta_label(row, short) for short in SHORT))
            # Two changes with identical labels would be one series twice: keep the newest.
            series[labels] = max(series.get(labels, 0.0), ev.t_us / 1e6)
        for labels, v in series.items():
            g.add_metric(list(labels), v)
        return g
