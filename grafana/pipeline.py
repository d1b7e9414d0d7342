"""The Pipeline health dashboard: is every stage from metrics.csv to Prometheus working?"""

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model

from grafana.common import (
    EXPORTER_JOB,
    GATEWAY,
    NEUTRAL,
    base,
    override,
    query,
    selector,
    thresholds,
    value_text,
)
from grafana.layout import Layout, finish
from grafana.panels import stat_panel, table_panel, timeseries_panel

UID = "lumen-pipeline"

# up has no gateway label: one exporter serves every gateway of its data root.
UP = f'up{{job="{EXPORTER_JOB}"}}'
SEL = selector()
READABLE = value_text({"1": ("readable", "green"), "0": ("unreadable", "red")})
# Same thresholds as the alerts in prometheus/rules/pipeline.yml, so a red panel and a
# firing alert mean the same thing.
METRICS_AGE = thresholds((None, "green"), (5, "yellow"), (30, "red"))
OVERDUE = thresholds((None, "green"), (1, "yellow"), (30, "red"))


def _status(layout: Layout) -> None:
    layout.add(
        stat_panel(
            "Exporter scrape",
            f"Prometheus' last scrape of the exporter ({UP}).",
            [query(UP, legend="{{instance}}", instant=True)],
            colour=cm.BigValueColorMode.BACKGROUND,
            text=cm.BigValueTextMode.VALUE,
        )
        .mappings([value_text({"1": ("up", "green"), "0": ("down", "red")})])
        .thresholds(thresholds((None, NEUTRAL)))
        .no_value("not scraped"),
        w=4,
        h=4,
    )
    layout.add(
        stat_panel(
            "Newest sample age",
            "Seconds since the newest row of logs/metrics.csv (5 Hz when healthy). "
            "LumenMetricsStale fires above 30 s.",
            [query(f"lumen:metrics_age_seconds{SEL}", legend="{{gateway}}", instant=True)],
            unit="s",
            text=cm.BigValueTextMode.VALUE_AND_NAME,
        ).decimals(1).thresholds(METRICS_AGE).no_value("no samples"),
        w=5,
        h=4,
    )
    layout.add(
        stat_panel(
            "Events pending",
            "Rule changes whose effect is not written yet (post window ${post_s} s), per "
            "gateway.",
            [query(f"lumen_rule_events_pending{SEL}", legend="{{gateway}}", instant=True)],
            text=cm.BigValueTextMode.VALUE_AND_NAME,
        ).decimals(0).thresholds(thresholds((None, NEUTRAL), (1, "blue"))),
        w=5,
        h=4,
    )
    layout.add(
        stat_panel(
            "Oldest pending, past its window",
            "How long the oldest pending change has waited beyond its post window "
            "(${post_s} s); at or below 0 the tracker is on time. LumenTrackerStalled "
            "fires above 30 s.",
            [
                query(
                    f"lumen:rule_oldest_pending_overdue_seconds{SEL}",
                    legend="{{gateway}}",
                    instant=True,
                )
            ],
            unit="s",
            text=cm.BigValueTextMode.VALUE_AND_NAME,
        ).decimals(0).thresholds(OVERDUE).no_value("nothing pending"),
        w=5,
        h=4,
    )
    layout.add(
        stat_panel(
            "Bad input lines in range",
            "Lines the exporter could not parse, over the dashboard's time range, all files "
            "of the selected gateways together (per file below).",
            [
                query(
                    f"sum(increase(lumen_input_parse_errors_total{SEL}[$__range]))", instant=True
                )
            ],
        ).decimals(0).thresholds(thresholds((None, "green"), (1, "orange"))),
        w=5,
        h=4,
    )
    layout.add(
        stat_panel(
            "Inputs",
            "Whether the exporter can read each input file of each gateway; the gauges "
            "built from an unreadable file are absent, never 0.",
            [query(f"lumen_input_readable{SEL}", legend="{{gateway}} {{file}}", instant=True)],
            colour=cm.BigValueColorMode.BACKGROUND,
            text=cm.BigValueTextMode.VALUE_AND_NAME,
        ).mappings([READABLE]).thresholds(thresholds((None, NEUTRAL))),
        w=24,
        h=4,
    )


def _trends(layout: Layout) -> None:
    layout.row("Over time")
    layout.add(
        timeseries_panel(
            "Newest sample age",
            "Seconds since the newest row of logs/metrics.csv; the red line is the "
            "LumenMetricsStale threshold.",
            [query(f"lumen:metrics_age_seconds{SEL}", legend="{{gateway}}")],
            unit="s",
            calcs=("lastNotNull", "max"),
        ).decimals(1)
        .thresholds(METRICS_AGE)
        .thresholds_style(cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)),
        w=12,
        h=8,
    )
    overdue = "oldest pending: past its window"
    layout.add(
        timeseries_panel(
            "Pending events",
            "Events waiting for their effect (left axis) and how far the oldest is past its "
            "post window (right axis, seconds).",
            [
                query(f"lumen_rule_events_pending{SEL}", "A", legend="{{gateway}} pending"),
                query(
                    f"lumen:rule_oldest_pending_overdue_seconds{SEL}",
                    "B",
                    legend="{{gateway}} " + overdue,
                ),
            ],
            calcs=("lastNotNull", "max"),
        ).decimals(0).overrides(
            [override("B", "byFrameRefID", unit="s", custom__axisPlacement="right")]
        ),
        w=12,
        h=8,
    )
    layout.add(
        timeseries_panel(
            "Bad input lines per file",
            "Lines the exporter could not parse, per file and interval.",
            [
                query(
                    "sum by (gateway, file)"
                    f" (increase(lumen_input_parse_errors_total{SEL}[$__rate_interval]))",
                    legend="{{gateway}} {{file}}",
                )
            ],
            calcs=("sum",),
        ).decimals(0).draw_style(cm.GraphDrawStyle.BARS),
        w=12,
        h=8,
    )
    layout.add(
        timeseries_panel(
            "Rule events seen and effects written",
            "Distinct rule events in controls/rules_history.jsonl and rows in "
            "logs/rules_effects.csv; the gap is the pending events.",
            [
                query(f"lumen_rule_events_total{SEL}", "A", legend="{{gateway}} events seen"),
                query(
                    f"lumen_rule_effects_written_total{SEL}",
                    "B",
                    legend="{{gateway}} effects written",
                ),
            ],
            calcs=("lastNotNull",),
        ).decimals(0),
        w=12,
        h=8,
    )
    layout.add(
        timeseries_panel(
            "Exporter collection time",
            "How long the exporter took to read the data root for the last scrape.",
            [
                query(
                    f"lumen_exporter_collect_duration_seconds{SEL}",
                    legend="{{gateway}} {{instance}}",
                )
            ],
            unit="s",
            calcs=("lastNotNull", "max"),
        ),
        w=12,
        h=8,
    )
    layout.add(
        table_panel(
            "Firing Lumen alerts",
            "Alerts from prometheus/rules that are firing now, for the selected gateways and "
            "those about the whole stack (no gateway, such as LumenExporterDown), as "
            "Prometheus sends them to Alertmanager (http://127.0.0.1:9093 routes, silences and "
            "delivers them). One row saying \"none firing\" when none is.",
            [
                query(
                    # "$gateway|" also matches an alert without a gateway label; vector(0)
                    # gives the "none firing" row only when no alert fires.
                    f'ALERTS{{alertname=~"Lumen.*", alertstate="firing", {GATEWAY[:-1]}|"}}'
                    " or on() vector(0)",
                    instant=True,
                    table=True,
                )
            ],
            order=["Value", "alertname", "gateway", "severity"],
            rename={"Value": "state"},
            hide=("Time", "__name__", "alertstate"),
            overrides=[
                override(
                    "state",  # overrides name the columns as renamed
                    mappings=[value_text({"1": ("firing", "red"), "0": ("none firing", "green")})],
                    custom__cellOptions={"type": "color-text"},
                )
            ],
            sort_by="alertname",
            descending=False,
        ),
        w=12,
        h=8,
    )


def build() -> model.Dashboard:
    """The Pipeline health dashboard model."""
    board = base(
        UID,
        "Lumen · Pipeline health",
        "Staleness of the metrics, parse errors, pending events and the exporter's scrape "
        "status: when these are fine, the effect dashboards can be trusted.",
    )
    layout = Layout()
    _status(layout)
    _trends(layout)
    return finish(board, layout)
