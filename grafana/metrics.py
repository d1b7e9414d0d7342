"""The series the dashboards and Prometheus rules may read, from the team contract.

Kept here so the tests can hold every query to the exporter's published names: a typo
in a dashboard would otherwise only show up as an empty panel in a running Grafana.
"""

# Exact names the exporter serves (counters with their _total suffix).
EXPORTER_METRICS = frozenset(
    {
        "lumen_gateway_status",
        "lumen_phase_diff",
        "lumen_entropy_rate",
        "lumen_creative_band",
        "lumen_risk_band",
        "lumen_rule_last_phase_diff_delta",
        "lumen_rule_last_entropy_rate_delta",
        "lumen_rule_last_creative_band_delta",
        "lumen_rule_last_risk_band_delta",
        "lumen_rule_effect_delta",
        "lumen_rule_effect_pre_mean",
        "lumen_rule_effect_post_mean",
        "lumen_rule_effect_pre_samples",
        "lumen_rule_effect_post_samples",
        "lumen_rule_effect_confounded",
        "lumen_rule_effect_timestamp_seconds",
        "lumen_rule_events_total",
        "lumen_rule_effects_written_total",
        "lumen_rule_events_pending",
        "lumen_rule_oldest_pending_timestamp_seconds",
        "lumen_metrics_last_sample_timestamp_seconds",
        "lumen_rule_last_change_timestamp_seconds",
        "lumen_effect_window_seconds",
        "lumen_rule_change_timestamp_seconds",
        "lumen_input_readable",
        "lumen_input_parse_errors_total",
        "lumen_exporter_collect_duration_seconds",
    }
)

# Series Prometheus itself makes: the scrape status and the alerts' state.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})
