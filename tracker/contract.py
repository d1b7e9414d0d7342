"""The facts several parts must agree on (SPEC): signals, gateway states, the reliability
threshold and the exporter's metric names. Stated here once; the tracker, exporter, demo,
dashboards and the tests' checks of Prometheus rules import them.
"""

from __future__ import annotations

# The four signals of logs/metrics.csv, in the order every table and series uses.
SIGNALS = ("phase_diff", "entropy_rate", "creative_band", "risk_band")
# Their short names in rules_effects.csv columns (pre_phase, d_risk, ...), in SIGNALS order.
SHORT = ("phase", "entropy", "creative", "risk")

# gateway_activation.yaml's gateway.status; lumen_gateway_status is the index.
STATES = ("unknown", "initializing", "binding", "resonating", "locked")

# The verdict on an effect, read on the 95% intervals of its Δs (README "How sure is an
# effect" defines each); lumen_*_verdict state sets carry one series per name.
VERDICTS = ("warning", "caution", "mixed", "good", "no_change", "inconclusive", "no_data")

# Fewer valid samples than this on a side (10 s at 5 Hz) makes a Δ unreliable.
UNRELIABLE_BELOW = 50

# --- Exporter metric names (counters without their _total suffix) ---
GATEWAY_STATUS = "lumen_gateway_status"
LAST_SAMPLE_TIME = "lumen_metrics_last_sample_timestamp_seconds"
EVENTS = "lumen_rule_events"  # counter
EFFECTS_WRITTEN = "lumen_rule_effects_written"  # counter
EVENTS_PENDING = "lumen_rule_events_pending"
OLDEST_PENDING_TIME = "lumen_rule_oldest_pending_timestamp_seconds"
LAST_CHANGE_TIME = "lumen_rule_last_change_timestamp_seconds"
EFFECT_WINDOW = "lumen_effect_window_seconds"
EFFECT_WINDOW_VARIANTS = "lumen_effect_window_variants"
CHANGE_TIME = "lumen_rule_change_timestamp_seconds"  # one series per recent change
EFFECT_DELTA = "lumen_rule_effect_delta"
EFFECT_DELTA_LO = "lumen_rule_effect_delta_lo"  # 95% interval of the Δ
EFFECT_DELTA_HI = "lumen_rule_effect_delta_hi"
EFFECT_VERDICT = "lumen_rule_effect_verdict"  # state set, label verdict
LAST_VERDICT = "lumen_rule_last_verdict"  # state set of the most recent event
EFFECT_PRE_MEAN = "lumen_rule_effect_pre_mean"
EFFECT_POST_MEAN = "lumen_rule_effect_post_mean"
EFFECT_PRE_SAMPLES = "lumen_rule_effect_pre_samples"
EFFECT_POST_SAMPLES = "lumen_rule_effect_post_samples"
EFFECT_CONFOUNDED = "lumen_rule_effect_confounded"
EFFECT_TIME = "lumen_rule_effect_timestamp_seconds"
RULE_LABELS_DROPPED = "lumen_rule_labels_dropped"  # rules over the exporter's --max-rules
INPUT_READABLE = "lumen_input_readable"
INPUT_PARSE_ERRORS = "lumen_input_parse_errors"  # counter
COLLECT_DURATION = "lumen_exporter_collect_duration_seconds"


def signal_gauge(signal: str) -> str:
    """The latest sample of a signal: lumen_phase_diff, ..."""
    return f"lumen_{signal}"


def last_delta(signal: str, bound: str = "") -> str:
    """Δ of the most recent event (lumen_rule_last_phase_diff_delta, ...), or an end of its
    95% interval with bound "lo" or "hi" (lumen_rule_last_phase_diff_delta_lo, ...)."""
    return f"lumen_rule_last_{signal}_delta" + (f"_{bound}" if bound else "")


_COUNTERS = (EVENTS, EFFECTS_WRITTEN, INPUT_PARSE_ERRORS)

# Every name as it appears in a scrape (counters with _total): what queries may read.
EXPORTER_METRICS = frozenset(
    {
        GATEWAY_STATUS, LAST_SAMPLE_TIME, EVENTS_PENDING, OLDEST_PENDING_TIME,
        LAST_CHANGE_TIME, EFFECT_WINDOW, EFFECT_WINDOW_VARIANTS, CHANGE_TIME, EFFECT_DELTA,
        EFFECT_PRE_MEAN, EFFECT_POST_MEAN, EFFECT_PRE_SAMPLES, EFFECT_POST_SAMPLES,
        EFFECT_CONFOUNDED, EFFECT_TIME, INPUT_READABLE, COLLECT_DURATION, EFFECT_DELTA_LO,
        EFFECT_DELTA_HI, EFFECT_VERDICT, LAST_VERDICT, RULE_LABELS_DROPPED,
        *(f"{c}_total" for c in _COUNTERS),
        *(signal_gauge(s) for s in SIGNALS),
        *(last_delta(s, bound) for s in SIGNALS for bound in ("", "lo", "hi")),
    }
)

# Series Prometheus itself makes: the scrape status and the alerts' state.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})
