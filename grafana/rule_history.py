"""The Rule history dashboard: per rule, the effects of its recent changes, for the runbook."""

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model

from grafana.common import (
    CHANGE_LABEL,
    DELTA_FORMULA,
    FEW_SAMPLES,
    INTERVAL_FORMULA,
    INTERVAL_LABEL,
    NEUTRAL,
    base,
    guide_reading,
    interval_overrides,
    override,
    query,
    reading_mapping,
    rule_variable,
    selector,
    thresholds,
    value_text,
    verdict_mapping,
)
from grafana.layout import Layout, finish
from grafana.panels import table_panel, timeseries_panel
from tracker.contract import SIGNALS, UNRELIABLE_BELOW

UID = "lumen-rule-history"

RULES = 'rule=~"$rule"'
COLOURED_TEXT = {"type": "color-text"}
VERDICT_CELL = {"type": "color-background"}
# A Δ label is text the tracker wrote (4 significant digits): shown as it is, never coloured
# by its sign; only "pending" stands out.
DELTA_LABEL = value_text({"pending": ("pending", "blue"), "n/a": ("n/a", NEUTRAL)})


def _changes() -> table.Panel:
    targets = [
        query(
            f"lumen_rule_change_timestamp_seconds{selector(RULES)} * 1000",
            "A",
            instant=True,
            table=True,
        ),
    ]
    # Each Δ followed by its 95% interval.
    labels = [label for signal in SIGNALS
              for label in (CHANGE_LABEL[signal], INTERVAL_LABEL[signal])]
    order = ["Value #A", "gateway", "rule", "actor", "old", "new", "verdict", *labels]
    rename = {"Value #A": "Changed at", "gateway": "Gateway", "verdict": "Verdict"}
    rename |= {CHANGE_LABEL[signal]: f"Δ {signal}" for signal in SIGNALS}
    rename |= {INTERVAL_LABEL[signal]: f"{signal} 95% interval" for signal in SIGNALS}
    overrides = [
        override("Changed at", unit="dateTimeAsIso"),
        override("Verdict", mappings=[verdict_mapping()], custom__cellOptions=VERDICT_CELL),
    ]
    overrides += [
        override(name, mappings=[DELTA_LABEL], custom__cellOptions=COLOURED_TEXT)
        for signal in SIGNALS for name in (f"Δ {signal}", f"{signal} 95% interval")
    ]
    return table_panel(
        "Recent changes of $rule, newest first",
        f"{DELTA_FORMULA}. Every recent change (the exporter keeps the last 50 per gateway) "
        "with who made it, old → new, its verdict and its Δs as the tracker wrote them, each "
        "followed by its 95% interval [low, high] (4 significant digits; pending until the "
        "post window has passed, n/a for an effect written before intervals). The Δs are "
        "not coloured: a sign alone says little. The verdict, read on the intervals, is the "
        "colour to go by. The rows to copy into the runbook.",
        targets,
        order=order,
        rename=rename,
        hide=("Time", "job", "instance", "__name__"),
        overrides=overrides,
        sort_by="Changed at",
    )


def effect_table(
    title: str,
    description: str,
    matchers: tuple[str, ...] = (),
    *,
    first: tuple[str, ...] = ("gateway", "rule", "metric"),
    sort_by: str = "Rule",
) -> table.Panel:
    """One row per gateway, rule and signal: the latest effect's means, Δ with its 95%
    interval, how the guide reads the interval, the verdict and the sample counts.

    first orders the label columns (gateway, rule, metric); sort_by names the sorted column.
    """
    sel = selector(*matchers)
    by = "max by (gateway, rule, metric)"
    sources = {
        "A": "lumen_rule_effect_pre_mean",
        "B": "lumen_rule_effect_post_mean",
        "C": "lumen_rule_effect_delta",
        "H": "lumen_rule_effect_delta_lo",
        "I": "lumen_rule_effect_delta_hi",
        "D": "lumen_rule_effect_pre_samples",
        "E": "lumen_rule_effect_post_samples",
    }
    targets = [
        query(f"{by} ({metric}{sel})", ref_id, instant=True, table=True)
        for ref_id, metric in sources.items()
    ]
    targets.append(query(f"{by} ({guide_reading(*matchers)})", "F", instant=True, table=True))
    # Confounded and the verdict are per rule; joined onto each of the rule's Δ rows.
    per_signal = f"lumen_rule_effect_delta{sel} * 0"
    targets.append(
        query(
            f"{by} ({per_signal}"
            f" + on (gateway, rule) group_left max by (gateway, rule)"
            f" (lumen_rule_effect_confounded{sel}))",
            "G",
            instant=True,
            table=True,
        )
    )
    targets.append(
        query(
            f"max by (gateway, rule, metric, verdict) ({per_signal}"
            f" + on (gateway, rule) group_left (verdict) max by (gateway, rule, verdict)"
            f" (lumen_rule_effect_verdict{sel} == 1))",
            "J",
            instant=True,
            table=True,
        )
    )
    rename = {
        "gateway": "Gateway",
        "rule": "Rule",
        "metric": "Signal",
        "verdict": "Verdict",
        "Value #A": "pre_mean",
        "Value #B": "post_mean",
        "Value #C": "Δ",
        "Value #H": "95% low",
        "Value #I": "95% high",
        "Value #D": "pre samples",
        "Value #E": "post samples",
        "Value #F": "Reading",
        "Value #G": "Confounded",
    }
    order = [*first, "Value #A", "Value #B", "Value #C", "Value #H"]
    order += ["Value #I", "Value #F", "verdict", "Value #D", "Value #E", "Value #G"]
    samples = {
        "decimals": 0,
        "thresholds": thresholds(*FEW_SAMPLES),
        "custom__cellOptions": COLOURED_TEXT,
    }
    overrides = [
        override("Δ", decimals=4),
        *interval_overrides("95% low", "95% high"),
        override("pre samples", **samples),
        override("post samples", **samples),
        override("Reading", mappings=[reading_mapping()], custom__cellOptions=COLOURED_TEXT),
        override("Verdict", mappings=[verdict_mapping()], custom__cellOptions=VERDICT_CELL),
        override(
            "Confounded",
            mappings=[value_text({"1": ("yes", "orange"), "0": ("no", NEUTRAL)})],
            custom__cellOptions=COLOURED_TEXT,
        ),
    ]
    return table_panel(
        title,
        f"{DELTA_FORMULA}. {description} {INTERVAL_FORMULA} Reading: how the guide reads the "
        "interval (green a good sign clearly there, red a warning sign clearly there, grey "
        f"unclear). Sample counts under {UNRELIABLE_BELOW} (10 s at 5 Hz) are red: that Δ is "
        "unreliable. Confounded: another change fell inside the windows.",
        targets,
        order=order,
        rename=rename,
        hide=("Time", "Value #J"),
        overrides=overrides,
        sort_by=sort_by,
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
    layout.add(
        effect_table(
            "Latest effect of $rule, per signal",
            "The means behind each rule's latest Δ, per gateway, and how the guide reads them.",
            (RULES,),
        ),
        w=24,
        h=10,
    )
    sel = selector(RULES)
    dashed = {"fill": "dash", "dash": [4, 4]}
    layout.add(
        timeseries_panel(
            "Latest Δ of $rule over time",
            f"{DELTA_FORMULA}. Each step is a newly written effect; the markers are the changes "
            "that caused them. Solid: the Δ; dashed: the low and high ends of its 95% interval "
            "(same legend name plus low / high). The verdicts are in the tables above.",
            [
                query(
                    f"lumen_rule_effect_delta{sel}", "A", legend="{{gateway}} {{rule}} Δ{{metric}}"
                ),
                query(
                    f"lumen_rule_effect_delta_lo{sel}",
                    "B",
                    legend="{{gateway}} {{rule}} Δ{{metric}} 95% low",
                ),
                query(
                    f"lumen_rule_effect_delta_hi{sel}",
                    "C",
                    legend="{{gateway}} {{rule}} Δ{{metric}} 95% high",
                ),
            ],
            calcs=("lastNotNull",),
        )
        .line_interpolation(cm.LineInterpolation.STEP_AFTER)
        .show_points(cm.VisibilityMode.NEVER)
        .overrides(
            [
                override(ref_id, "byFrameRefID", custom__lineStyle=dashed, custom__fillOpacity=0)
                for ref_id in ("B", "C")
            ]
        ),
        w=24,
        h=8,
    )
    return finish(board, layout)

