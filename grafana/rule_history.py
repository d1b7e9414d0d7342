"""The Rule history dashboard: per rule, the effects of its recent changes, for the runbook."""

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model

from grafana.common import (
    CHANGE_LABEL,
    DELTA_FORMULA,
    FEW_SAMPLES,
    NEUTRAL,
    base,
    delta_label_mappings,
    override,
    query,
    rule_variable,
    thresholds,
    value_text,
)
from grafana.layout import Layout, finish
from grafana.panels import table_panel, timeseries_panel
from tracker.contract import SIGNALS, UNRELIABLE_BELOW

UID = "lumen-rule-history"

RULES = 'rule=~"$rule"'
COLOURED_TEXT = {"type": "color-text"}
WARNING = value_text({"1": ("⚠ shaking too hard", "red")})

# lumen:rule_effect_reading codes (prometheus/rules/effects.yml) as the guide's words.
READING = value_text(
    {
        "1": ("good sign", "green"),
        "0": ("neutral", NEUTRAL),
        "-1": ("warning sign", "red"),
        "2": ("entropy up: warning with phase_diff/risk_band up", "orange"),
        "-2": ("entropy down", "blue"),
    }
)


def _changes() -> table.Panel:
    targets = [
        query(
            f"lumen_rule_change_timestamp_seconds{{{RULES}}} * 1000", "A", instant=True, table=True
        ),
        query(f"1 * lumen:rule_change_warning_pattern{{{RULES}}}", "B", instant=True, table=True),
    ]
    labels = [CHANGE_LABEL[signal] for signal in SIGNALS]
    order = ["Value #A", "rule", "actor", "old", "new", *labels, "Value #B"]
    rename = {"Value #A": "Changed at", "Value #B": "Warning pattern"}
    rename |= {CHANGE_LABEL[signal]: f"Δ {signal}" for signal in SIGNALS}
    overrides = [override("Changed at", unit="dateTimeAsIso")]
    overrides += [
        override(
            f"Δ {signal}", mappings=delta_label_mappings(signal), custom__cellOptions=COLOURED_TEXT
        )
        for signal in SIGNALS
    ]
    overrides.append(
        override(
            "Warning pattern", mappings=[WARNING], custom__cellOptions={"type": "color-background"}
        )
    )
    return table_panel(
        "Recent changes of $rule, newest first",
        f"{DELTA_FORMULA}. Every recent change (the exporter keeps the last 50) with who made "
        "it, old → new and its Δs as the tracker wrote them (4 significant digits; pending "
        "until the post window has passed). Green is a good sign, red a warning sign, orange "
        "not good; ⚠ marks the warning pattern. The rows to copy into the runbook.",
        targets,
        order=order,
        rename=rename,
        hide=("Time", "job", "instance"),
        overrides=overrides,
        sort_by="Changed at",
    )


def _latest_detail() -> table.Panel:
    by = "max by (rule, metric)"
    sources = {
        "A": "lumen_rule_effect_pre_mean",
        "B": "lumen_rule_effect_post_mean",
        "C": "lumen_rule_effect_delta",
        "D": "lumen_rule_effect_pre_samples",
        "E": "lumen_rule_effect_post_samples",
        "F": "lumen:rule_effect_reading",
    }
    targets = [
        query(f"{by} ({metric}{{{RULES}}})", ref_id, instant=True, table=True)
        for ref_id, metric in sources.items()
    ]
    # Confounded is per rule; adding it to each of the rule's Δ rows puts it on every row.
    targets.append(
        query(
            f"{by} (lumen_rule_effect_delta{{{RULES}}} * 0"
            " + on (rule) group_left max by (rule) (lumen_rule_effect_confounded))",
            "G",
            instant=True,
            table=True,
        )
    )
    rename = {
        "rule": "Rule",
        "metric": "Signal",
        "Value #A": "pre_mean",
        "Value #B": "post_mean",
        "Value #C": "Δ",
        "Value #D": "pre samples",
        "Value #E": "post samples",
        "Value #F": "Reading",
        "Value #G": "Confounded",
    }
    order = ["rule", "metric", "Value #A", "Value #B", "Value #C", "Value #F"]
    order += ["Value #D", "Value #E", "Value #G"]
    samples = {
        "decimals": 0,
        "thresholds": thresholds(*FEW_SAMPLES),
        "custom__cellOptions": COLOURED_TEXT,
    }
    overrides = [
        override("pre samples", **samples),
        override("post samples", **samples),
        override("Reading", mappings=[READING], custom__cellOptions=COLOURED_TEXT),
        override(
            "Confounded",
            mappings=[value_text({"1": ("yes", "orange"), "0": ("no", NEUTRAL)})],
            custom__cellOptions=COLOURED_TEXT,
        ),
    ]
    return table_panel(
        "Latest effect of $rule, per signal",
        f"{DELTA_FORMULA}. The means behind each rule's latest Δ and how the guide reads "
        f"them. Sample counts under {UNRELIABLE_BELOW} (10 s at 5 Hz) are red: that Δ is "
        "unreliable. "
        "Confounded: another change fell inside the windows.",
        targets,
        order=order,
        rename=rename,
        overrides=overrides,
        sort_by="Rule",
        descending=False,
    )


def build() -> model.Dashboard:
    """The Rule history dashboard model."""
    board = base(
        UID,
        "Lumen · Rule history",
        "Per rule, the effects of its recent changes: the material for the runbook.",
        variables=(rule_variable(),),
    )
    layout = Layout()
    layout.add(_changes(), w=24, h=12)
    layout.add(_latest_detail(), w=24, h=10)
    layout.add(
        timeseries_panel(
            "Latest Δ of $rule over time",
            f"{DELTA_FORMULA}. Each step is a newly written effect; the markers are the changes "
            "that caused them.",
            [query(f"lumen_rule_effect_delta{{{RULES}}}", legend="{{rule}} Δ{{metric}}")],
            calcs=("lastNotNull",),
        )
        .line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .show_points(cm.VisibilityMode.NEVER),
        w=24,
        h=8,
    )
    return finish(board, layout)
