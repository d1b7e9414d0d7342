"""The Overview dashboard: gateway status, the four signals, the latest Δs and how to read them."""

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard, stat, statetimeline, table, text
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import text as text_model

from grafana.common import (
    DATASOURCE,
    DELTA_COLOURS,
    DELTA_FORMULA,
    FEW_SAMPLES,
    INTERVAL_FORMULA,
    NEUTRAL,
    UNCLEAR,
    base,
    override,
    query,
    selector,
    thresholds,
    value_text,
    verdict_mapping,
)
from grafana.layout import Layout, finish
from grafana.panels import stat_panel, table_panel, timeseries_panel
from grafana.rule_history import effect_table
from tracker.contract import SIGNALS, STATES, UNRELIABLE_BELOW

UID = "lumen-overview"
WARNING = 'verdict="warning"'

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

**The interval** next to each Δ, e.g. `+0.031 [+0.012, +0.050]`, is the range the real \
change lies in, 19 times out of 20. If it contains 0, the signal's own wandering could \
have made that Δ: the change is unclear (grey), whatever the sign of the Δ.

| signal | good sign | warning sign |
|---|---|---|
| phase_diff | clearly down (green) | clearly up (red) |
| risk_band | clearly down (green) | clearly up (red) |
| creative_band | clearly up (green) | clearly down: not good (orange) |
| entropy_rate | – | clearly up (orange) **together with** phase_diff or risk_band clearly up |

**Verdict** on each change, read on the intervals:
⚠ **warning** (red): phase_diff or risk_band up *and* entropy_rate up: the rule is shaking \
the system too hard (the alert) ·
**caution** (orange): a warning sign without entropy_rate up ·
**mixed** (purple): a warning sign and a good sign ·
**good** (green): a good sign, no warning sign ·
**no change**, **inconclusive**, **no data** (grey): nothing clear to read.

**Trust**: fewer than {few} samples on a side (10 s at 5 Hz) makes a Δ unreliable \
(*Min samples* in red; verdict inconclusive). *Confounded* means another change fell \
inside the windows.

**Routine**
1. Change one rule; its marker appears on every graph.
2. Watch 2–3 minutes: the effect stays *pending* until the post window has passed.
3. Read the effect here or on *Lumen · Rule history*.
4. Record the favourable pattern (rule, old → new, Δs, intervals, verdict) in the runbook.
""".replace("{few}", str(UNRELIABLE_BELOW))


def _header(layout: Layout) -> None:
    layout.add(
        stat_panel(
            "Gateway status",
            "lumen_gateway_status from gateway_activation.yaml, shown as its state name, per "
            "gateway.",
            [query(f"lumen_gateway_status{selector()}", legend="{{gateway}}", instant=True)],
            colour=cm.BigValueColorMode.BACKGROUND,
            text=cm.BigValueTextMode.VALUE_AND_NAME,
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
            "Time since the newest rule change on the selected gateways. Blue for the first 3 "
            "minutes: the routine is to watch 2–3 minutes before reading the effect.",
            [
                query(
                    f"time() - max(lumen_rule_last_change_timestamp_seconds{selector()})",
                    instant=True,
                )
            ],
            unit="s",
        ).decimals(0).thresholds(thresholds((None, "blue"), (180, NEUTRAL))).no_value("no changes"),
        w=4,
        h=5,
    )
    layout.add(
        stat_panel(
            "Effects pending",
            "Rule changes on the selected gateways whose effect is not written yet: their post "
            "window (${post_s} s) has not ended.",
            [query(f"sum(lumen_rule_events_pending{selector()})", instant=True)],
        ).decimals(0).thresholds(thresholds((None, NEUTRAL), (1, "blue"))),
        w=4,
        h=5,
    )
    layout.add(
        stat_panel(
            "Rules with verdict warning",
            "Rules whose latest effect has the verdict warning: phase_diff or risk_band clearly "
            "up together with entropy_rate clearly up (each 95% interval above 0), the rule is "
            "shaking the system too hard. Counted over the selected gateways. " + DELTA_FORMULA,
            [
                query(
                    f"sum(lumen_rule_effect_verdict{selector(WARNING)})",
                    instant=True,
                )
            ],
            colour=cm.BigValueColorMode.BACKGROUND,
        )
        .decimals(0)
        .thresholds(thresholds((None, "green"), (1, "red")))
        .no_value("no verdicts yet"),
        w=5,
        h=5,
    )
    layout.add(
        stat_panel(
            "Newest sample age",
            "Seconds since the newest row of logs/metrics.csv (written at 5 Hz), per gateway. "
            "Red from 30 s: the LumenMetricsStale alert's threshold.",
            [query(f"lumen:metrics_age_seconds{selector()}", legend="{{gateway}}", instant=True)],
            unit="s",
            text=cm.BigValueTextMode.VALUE_AND_NAME,
        )
        .decimals(1)
        .thresholds(thresholds((None, "green"), (5, "yellow"), (30, "red")))
        .no_value("no samples"),
        w=5,
        h=5,
    )
    layout.add(status_timeline(), w=24, h=4)


def status_timeline() -> statetimeline.Panel:
    """Each selected gateway's state over time, by name (Overview and Fleet)."""
    return (
        statetimeline.Panel()
        .title("Gateway status over time")
        .description("lumen_gateway_status as its state name, one line per gateway.")
        .datasource(DATASOURCE)
        .targets([query(f"lumen_gateway_status{selector()}", legend="{{gateway}}")])
        .mappings([GATEWAY_STATES])
        .thresholds(thresholds((None, "#808080")))
        .show_value(cm.VisibilityMode.AUTO)
        .merge_values(True)
        .row_height(0.8)
        .fill_opacity(80)
        .line_width(0)
        .legend(cb.VizLegendOptions().show_legend(False).display_mode(cm.LegendDisplayMode.HIDDEN))
    )


def _signals(layout: Layout) -> None:
    layout.row("Signals")
    for signal in SIGNALS:
        # The signals are dimensionless and their scales are the gateway's business:
        # no unit, and automatic decimals so small and large values both stay readable.
        layout.add(
            timeseries_panel(
                signal,
                f"lumen_{signal}: the latest sample at each scrape, one line per gateway. "
                f"{DIRECTION[signal]} Purple markers are rule changes.",
                [query(f"lumen_{signal}{selector()}", legend="{{gateway}}")],
            ),
            w=12,
            h=8,
        )


def last_delta_stat(signal: str) -> stat.Panel:
    """The most recent effect's Δ of one signal per gateway with its 95% interval, and how
    the interval reads it: clearly down, clearly up or unclear.

    A stat colours a value by thresholds on that value alone, which would read the sign;
    so the colour is on a reading of its own, computed from the interval's ends (1 when
    the interval is above 0, -1 below, 0 when it holds 0), and the Δ and its ends stay
    neutral. Every query has data whenever an effect does.
    """
    sel = selector('rule=~".*"')
    delta = f"lumen_rule_last_{signal}_delta{sel}"
    low = f"lumen_rule_last_{signal}_delta_lo{sel}"
    high = f"lumen_rule_last_{signal}_delta_hi{sel}"
    down, up = DELTA_COLOURS[signal]
    targets = [
        query(f"({low} > bool 0) - ({high} < bool 0)", "A",
              legend="{{gateway}} {{rule}}", instant=True),
        query(delta, "B", legend="{{gateway}} Δ", instant=True),
        query(low, "C", legend="{{gateway}} 95% low", instant=True),
        query(high, "D", legend="{{gateway}} 95% high", instant=True),
    ]
    reading = value_text({"1": ("clearly up", up), "0": ("unclear", UNCLEAR),
                          "-1": ("clearly down", down)})

    def fixed(ref_id: str, colour: str, **more: object) -> object:
        colour_of = {"mode": "fixed", "fixedColor": colour}
        return override(ref_id, "byFrameRefID", color=colour_of, **more)

    overrides = [
        override("A", "byFrameRefID", mappings=[reading], decimals=0,
                 color={"mode": "thresholds"}),
        fixed("B", UNCLEAR),
        fixed("C", UNCLEAR, unit="prefix:["),
        fixed("D", UNCLEAR, unit="suffix:]"),
    ]
    return (
        stat_panel(
            f"Latest Δ {signal}",
            f"{DELTA_FORMULA}. The most recent written effect per gateway, named by its rule: "
            f"how its 95% interval reads it, the Δ, and the interval [low, high]. "
            f"{INTERVAL_FORMULA} {DIRECTION[signal]}",
            targets,
            text=cm.BigValueTextMode.VALUE_AND_NAME,
        )
        .decimals(4)
        .color_scheme(dashboard.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color(UNCLEAR))
        .overrides(overrides)
        .no_value("no effect yet")
    )


def _verdict_table() -> table.Panel:
    sel = selector()
    targets = [
        query(
            f"max by (gateway, rule, verdict) (lumen_rule_effect_timestamp_seconds{sel}) * 1000",
            "A",
            instant=True,
            table=True,
        ),
        query(
            f"max by (gateway, rule) (lumen:rule_effect_min_samples{sel})",
            "B",
            instant=True,
            table=True,
        ),
        query(
            f"max by (gateway, rule) (lumen_rule_effect_confounded{sel})",
            "C",
            instant=True,
            table=True,
        ),
    ]
    rename = {
        "gateway": "Gateway",
        "rule": "Rule",
        "verdict": "Verdict",
        "Value #A": "Changed at",
        "Value #B": "Min samples",
        "Value #C": "Confounded",
    }
    order = ["Value #A", "gateway", "rule", "verdict", "Value #B", "Value #C"]
    coloured_text = {"type": "color-text"}
    overrides = [
        override(
            "Verdict",
            mappings=[verdict_mapping()],
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
        "Latest verdict per rule",
        "One row per gateway and rule: the verdict on its latest change, read on the 95% "
        "intervals (red warning, orange caution, purple mixed, green good, grey nothing clear). "
        f"Min samples in red means unreliable (under {UNRELIABLE_BELOW} on a side); Confounded "
        "means another change fell inside the windows. The Δs with their intervals are below.",
        targets,
        order=order,
        rename=rename,
        overrides=overrides,
        sort_by="Changed at",
    )


def _effects(layout: Layout) -> None:
    layout.row("Rule effects (Δ)")
    for signal in SIGNALS:
        layout.add(last_delta_stat(signal), w=6, h=6)
    layout.add(_verdict_table(), w=14, h=13)
    layout.add(
        text.Panel()
        .title("How to read an effect")
        .description("The interpretation guide, the intervals, the verdicts and the routine.")
        .mode(text_model.TextMode.MARKDOWN)
        .content(GUIDE),
        w=10,
        h=13,
    )
    layout.add(
        effect_table(
            "Latest Δ per rule and signal",
            "One row per gateway, rule and signal: the effect of the rule's latest change.",
        ),
        w=24,
        h=10,
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
