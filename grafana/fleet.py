"""The Fleet dashboard: every gateway of the data root at a glance, and the same rule's
effects across gateways side by side."""

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model

from grafana.common import (
    DATASOURCE,
    NEUTRAL,
    VERDICT_COLOURS,
    base,
    override,
    query,
    rule_variable,
    selector,
    thresholds,
    verdict_mapping,
)
from grafana.layout import Layout, finish
from grafana.overview import GATEWAY_STATES, status_timeline
from grafana.panels import table_panel
from grafana.rule_history import RULES, effect_table
from tracker.contract import VERDICTS

UID = "lumen-fleet"

SEL = selector()
WARNING = 'verdict="warning"'
COLOURED_TEXT = {"type": "color-text"}
VERDICT_CELL = {"type": "color-background"}
# Same thresholds as the LumenMetricsStale alert (prometheus/rules/pipeline.yml).
METRICS_AGE = thresholds((None, "green"), (5, "yellow"), (30, "red"))


def _gateways() -> table.Panel:
    targets = [
        query(f"max by (gateway) (lumen_gateway_status{SEL})", "A", instant=True, table=True),
        query(f"max by (gateway) (lumen:metrics_age_seconds{SEL})", "B", instant=True, table=True),
        query(f"max by (gateway) (lumen_rule_events_pending{SEL})", "C", instant=True, table=True),
        query(
            f"max by (gateway, rule, verdict) (lumen_rule_last_verdict{SEL} == 1)",
            "D",
            instant=True,
            table=True,
        ),
        query(
            f"time() - max by (gateway) (lumen_rule_last_change_timestamp_seconds{SEL})",
            "E",
            instant=True,
            table=True,
        ),
        query(
            f"sum by (gateway) (lumen_rule_effect_verdict{selector(WARNING)})",
            "F",
            instant=True,
            table=True,
        ),
    ]
    rename = {
        "gateway": "Gateway",
        "Value #A": "Status",
        "Value #B": "Newest sample age",
        "Value #C": "Effects pending",
        "rule": "Latest change",
        "verdict": "Its verdict",
        "Value #E": "Since latest change",
        "Value #F": "Rules with verdict warning",
    }
    order = ["gateway", "Value #A", "Value #B", "Value #C", "rule", "verdict", "Value #E"]
    order.append("Value #F")
    overrides = [
        override("Status", mappings=[GATEWAY_STATES], custom__cellOptions=VERDICT_CELL),
        override(
            "Newest sample age",
            unit="s",
            decimals=1,
            thresholds=METRICS_AGE,
            custom__cellOptions=COLOURED_TEXT,
        ),
        override(
            "Effects pending",
            decimals=0,
            thresholds=thresholds((None, NEUTRAL), (1, "blue")),
            custom__cellOptions=COLOURED_TEXT,
        ),
        override("Its verdict", mappings=[verdict_mapping()], custom__cellOptions=VERDICT_CELL),
        override("Since latest change", unit="s", decimals=0),
        override(
            "Rules with verdict warning",
            decimals=0,
            thresholds=thresholds((None, NEUTRAL), (1, "red")),
            custom__cellOptions=COLOURED_TEXT,
        ),
    ]
    return table_panel(
        "Gateways",
        "One row per gateway: its status (gateway_activation.yaml), the age of its newest "
        "sample (red from 30 s, the LumenMetricsStale threshold), its effects still pending, "
        "the rule of its latest change with that change's verdict, and how many rules have "
        "the verdict warning on their latest change.",
        targets,
        order=order,
        rename=rename,
        hide=("Time", "Value #D"),
        overrides=overrides,
        sort_by="Gateway",
        descending=False,
    )


def _matrix(
    title: str,
    description: str,
    expr: str,
    *,
    rows: str,
    columns: str,
    value: str,
    overrides: list[object],
    cell: cm.TableColoredBackgroundCellOptions | cm.TableColorTextCellOptions,
    mappings: list[model.ValueMap],
    order: tuple[str, ...] = (),
) -> table.Panel:
    """A table with one row per value of the label `rows` and one column per value of the
    label `columns` (Grafana's groupingToMatrix), each cell the field `value`; `order`
    orders the columns whose names it lists."""
    # groupingToMatrix names the first column "<rows>\<columns>".
    corner = f"{rows}\\{columns}"
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets([query(expr, instant=True, table=True)])
        .transformations(
            [
                model.DataTransformerConfig(
                    id_val="groupingToMatrix",
                    options={"rowField": rows, "columnField": columns, "valueField": value},
                ),
                model.DataTransformerConfig(
                    id_val="organize",
                    options={
                        "renameByName": {corner: rows.capitalize()},
                        "indexByName": {name: i for i, name in enumerate((corner, *order))},
                    },
                ),
            ]
        )
        .mappings(mappings)
        .cell_options(cell)
        .overrides(overrides)
        .cell_height(cm.TableCellHeight.SM)
        .filterable(True)
    )


def _verdict_counts() -> table.Panel:
    overrides = [
        override(
            verdict,
            decimals=0,
            thresholds=thresholds((None, NEUTRAL), (1, VERDICT_COLOURS[verdict][1])),
        )
        for verdict in VERDICTS
    ]
    return _matrix(
        "Verdicts per gateway",
        "How many rules have each verdict on their latest change, per gateway: warning red, "
        "caution orange, mixed purple, good green; no_change, inconclusive and no_data say "
        "nothing clear. Verdicts are read on the 95% intervals of the Δs (README).",
        f"sum by (gateway, verdict) (lumen_rule_effect_verdict{SEL})",
        rows="gateway",
        columns="verdict",
        value="Value",
        overrides=overrides,
        cell=cm.TableColorTextCellOptions(),
        mappings=[],
        order=VERDICTS,
    )


def _rule_by_gateway() -> table.Panel:
    return _matrix(
        "Verdict on $rule, by gateway",
        "The same rule side by side: one row per rule, one column per gateway, each cell the "
        "verdict on that rule's latest change on that gateway (empty: not changed there "
        "recently). The Δs with their intervals are in the table below.",
        f"max by (rule, gateway, verdict) (lumen_rule_effect_verdict{selector(RULES)} == 1)",
        rows="rule",
        columns="gateway",
        value="verdict",
        overrides=[],
        cell=cm.TableColoredBackgroundCellOptions(),
        mappings=[verdict_mapping()],
    )


def build() -> model.Dashboard:
    """The Fleet dashboard model."""
    board = base(
        UID,
        "Lumen · Fleet",
        "Every gateway of the data root: status, freshness, pending effects and verdicts; "
        "and the same rule's effects across gateways side by side.",
        variables=(rule_variable(),),
    )
    layout = Layout()
    layout.add(_gateways(), w=24, h=8)
    layout.add(_verdict_counts(), w=12, h=8)
    layout.add(status_timeline(), w=12, h=8)
    layout.row("The same rule across gateways ($rule)")
    layout.add(_rule_by_gateway(), w=24, h=6)
    layout.add(
        effect_table(
            "Latest effect of $rule on each gateway, per signal",
            "Rows grouped by signal, one per gateway, so the same rule's Δs sit side by side.",
            (RULES,),
            first=("rule", "metric", "gateway"),
            sort_by="Signal",
        ),
        w=24,
        h=12,
    )
    return finish(board, layout)
