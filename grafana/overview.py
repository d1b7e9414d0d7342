"""The Overview dashboard: gateway status, the four signals, the latest Δs and how to read them."""

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import statetimeline, table, text
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import text as text_model

from grafana.common import (
    DATASOURCE,
    DELTA_FORMULA,
    FEW_SAMPLES,
    NEUTRAL,
    base,
    delta_thresholds,
    override,
    query,
    thresholds,
    value_text,
)
from grafana.layout import Layout, finish
from grafana.panels import stat_panel, table_panel, timeseries_panel
from tracker.contract import SIGNALS, STATES, UNRELIABLE_BELOW

UID = "lumen-overview"

# lumen_gateway_status values (SPEC) as their state names. Resonating is the state the
# loop aims for; locked gets a colour of its own rather than a verdict.
STATE_COLOURS = {
    "unknown": "#808080",
    "initializing": "blue",
    "binding": "yellow",
    "resonating": "green",
    "locked": "purple",
}
GATEWAY_STATES = value_text(
    {str(number): (state, STATE_COLOURS[state]) for number, state in enumerate(STATES)}
)

# What a move of each signal means, from SPEC "Reading an effect".
DIRECTION = {
    "phase_diff": "A fall is good; a rise is a warning sign.",
    "entropy_rate": (
        "A rise together with a phase_diff or risk_band rise means the rule is shaking "
        "the system too hard."
    ),
    "creative_band": "A rise is good.",
    "risk_band": "A fall is good; a rise is a warning sign.",
}

GUIDE = """\
**Δ = post_mean − pre_mean** over the windows in force: pre = ${pre_s} s before the change, \
post = ${post_s} s after it; ${guard_s} s on each side of the change are left out \
(boundary noise).

| signal | good sign | warning sign |
|---|---|---|
| phase_diff | falls (green) | rises (red) |
| risk_band | falls (green) | rises (red) |
| creative_band | rises (green) | falls: not good (orange) |
| entropy_rate | – | rises (orange) **together with** phase_diff or risk_band rising |

**Warning pattern** (red in the table): phase_diff or risk_band up *and* entropy_rate up — \
the rule is shaking the system too hard.

**Trust**: fewer than {few} samples on a side (10 s at 5 Hz) makes a Δ unreliable \
(*Min samples* in red). *Confounded* means another change fell inside the windows.

**Routine**
1. Change one rule; its marker appears on every graph.
2. Watch 2–3 minutes: the effect stays *pending* until the post window has passed.
3. Read the effect here or on *Lumen · Rule history*.
4. Record the favourable pattern (rule, old → new, Δs) in the runbook.
""".replace("{few}", str(UNRELIABLE_BELOW))


def _header(layout: Layout) -> None:
    layout.add(
        stat_panel(
            "Gateway status",
            "lumen_gateway_status from gateway_activation.yaml, shown as its state name.",
            [query("lumen_gateway_status", instant=True)],
            colour=cm.BigValueColorMode.BACKGROUND,
            text=cm.BigValueTextMode.VALUE,
        )
        .mappings([GATEWAY_STATES])
        .thresholds(thresholds((None, "#808080")))
        .no_value("no status"),
        w=6,
        h=5,
    )
    layout.add(
        stat_panel(
            "Since last rule change",
            "Time since the newest rule change. Blue for the first 3 minutes: the routine is "
            "to watch 2–3 minutes before reading the effect.",
            [query("time() - lumen_rule_last_change_timestamp_seconds", instant=True)],
            unit="s",
        ).decimals(0).thresholds(thresholds((None, "blue"), (180, NEUTRAL))).no_value("no changes"),
        w=4,
        h=5,
    )
    layout.add(
        stat_panel(
            "Effects pending",
            "Rule changes whose effect is not written yet: their post window "
            "(${post_s} s) has not ended.",
            [query("lumen_rule_events_pending", instant=True)],
        ).decimals(0).thresholds(thresholds((None, NEUTRAL), (1, "blue"))),
        w=4,
        h=5,
    )
    layout.add(
        stat_panel(
            "Rules showing the warning pattern",
            "Rules whose latest effect has phase_diff or risk_band up together with "
            "entropy_rate up: the rule is shaking the system too hard. " + DELTA_FORMULA,
            [query("sum(lumen:rule_effect_warning)", instant=True)],
            colour=cm.BigValueColorMode.BACKGROUND,
        )
        .decimals(0)
        .thresholds(thresholds((None, "green"), (1, "red")))
        .no_value("no effects yet"),
        w=5,
        h=5,
    )
    layout.add(
        stat_panel(
            "Newest sample age",
            "Seconds since the newest row of logs/metrics.csv (written at 5 Hz). "
            "Red from 30 s: the LumenMetricsStale alert's threshold.",
            [query("lumen:metrics_age_seconds", instant=True)],
            unit="s",
        )
        .decimals(1)
        .thresholds(thresholds((None, "green"), (5, "yellow"), (30, "red")))
        .no_value("no samples"),
        w=5,
        h=5,
    )
    layout.add(
        statetimeline.Panel()
        .title("Gateway status over time")
        .description("lumen_gateway_status as its state name.")
        .datasource(DATASOURCE)
        .targets([query("lumen_gateway_status", legend="gateway")])
        .mappings([GATEWAY_STATES])
        .thresholds(thresholds((None, "#808080")))
        .show_value(cm.VisibilityMode.AUTO)
        .merge_values(True)
        .row_height(0.8)
        .fill_opacity(80)
        .line_width(0)
        .legend(cb.VizLegendOptions().show_legend(False).display_mode(cm.LegendDisplayMode.HIDDEN)),
        w=24,
        h=4,
    )


def _signals(layout: Layout) -> None:
    layout.row("Signals")
    for signal in SIGNALS:
        # The signals are dimensionless and their scales are the gateway's business:
        # no unit, and automatic decimals so small and large values both stay readable.
        layout.add(
            timeseries_panel(
                signal,
                f"lumen_{signal}: the latest sample at each scrape. {DIRECTION[signal]} "
                "Purple markers are rule changes.",
                [query(f"lumen_{signal}", legend=signal)],
            ),
            w=12,
            h=8,
        )


def _delta_table() -> table.Panel:
    names = {"A": "phase_diff", "B": "entropy_rate", "C": "creative_band", "D": "risk_band"}
    targets = [
        query(
            f'max by (rule) (lumen_rule_effect_delta{{metric="{signal}"}})',
            ref_id,
            instant=True,
            table=True,
        )
        for ref_id, signal in names.items()
    ]
    targets += [
        query("max by (rule) (lumen:rule_effect_warning)", "E", instant=True, table=True),
        query("max by (rule) (lumen_rule_effect_confounded)", "F", instant=True, table=True),
        query("max by (rule) (lumen:rule_effect_min_samples)", "G", instant=True, table=True),
        query(
            "max by (rule) (lumen_rule_effect_timestamp_seconds) * 1000",
            "H",
            instant=True,
            table=True,
        ),
    ]
    rename = {"rule": "Rule"} | {f"Value #{r}": f"Δ {s}" for r, s in names.items()}
    rename |= {
        "Value #E": "Warning pattern",
        "Value #F": "Confounded",
        "Value #G": "Min samples",
        "Value #H": "Changed at",
    }
    order = ["Value #H", "rule", "Value #A", "Value #B", "Value #C", "Value #D"]
    order += ["Value #E", "Value #G", "Value #F"]
    coloured_text = {"type": "color-text"}
    overrides = [
        override(
            f"Δ {signal}", thresholds=delta_thresholds(signal), custom__cellOptions=coloured_text
        )
        for signal in SIGNALS
    ]
    overrides += [
        override(
            "Warning pattern",
            mappings=[value_text({"1": ("⚠ shaking too hard", "red"), "0": ("no", NEUTRAL)})],
            custom__cellOptions={"type": "color-background"},
        ),
        override(
            "Confounded",
            mappings=[value_text({"1": ("yes", "orange"), "0": ("no", NEUTRAL)})],
            custom__cellOptions=coloured_text,
        ),
        override(
            "Min samples",
            decimals=0,
            thresholds=thresholds(*FEW_SAMPLES),
            custom__cellOptions=coloured_text,
        ),
        override("Changed at", unit="dateTimeAsIso"),
    ]
    return table_panel(
        "Latest Δ per rule and signal",
        f"{DELTA_FORMULA}. One row per rule: the effect of its latest change. Green is a good "
        "sign, red a warning sign, orange not good; Min samples in red means unreliable "
        f"(under {UNRELIABLE_BELOW} on a side); Confounded means another change fell inside "
        "the windows.",
        targets,
        order=order,
        rename=rename,
        overrides=overrides,
        sort_by="Changed at",
    )


def _effects(layout: Layout) -> None:
    layout.row("Rule effects (Δ)")
    for signal in SIGNALS:
        layout.add(
            stat_panel(
                f"Latest Δ {signal}",
                f"{DELTA_FORMULA}. The most recent written effect, named by its rule. "
                f"{DIRECTION[signal]}",
                [
                    query(
                        f'lumen_rule_last_{signal}_delta{{rule=~".*"}}',
                        legend="{{rule}}",
                        instant=True,
                    )
                ],
                text=cm.BigValueTextMode.VALUE_AND_NAME,
            ).thresholds(delta_thresholds(signal)).no_value("no effect yet"),
            w=6,
            h=5,
        )
    layout.add(_delta_table(), w=16, h=11)
    layout.add(
        text.Panel()
        .title("How to read an effect")
        .description("The interpretation guide and the routine.")
        .mode(text_model.TextMode.MARKDOWN)
        .content(GUIDE),
        w=8,
        h=11,
    )


def build() -> model.Dashboard:
    """The Overview dashboard model."""
    board = base(
        UID,
        "Lumen · Overview",
        "Gateway status, the four signals with every rule change marked, and the latest "
        "effect (Δ) of each rule with how to read it.",
    )
    layout = Layout()
    _header(layout)
    _signals(layout)
    _effects(layout)
    return finish(board, layout)
