"""Panel builders with the Lumen defaults: datasource, legends, tooltips, colours."""

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as model

from grafana.common import DATASOURCE


def stat_panel(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    *,
    unit: str = "none",
    colour: cm.BigValueColorMode = cm.BigValueColorMode.VALUE,
    text: cm.BigValueTextMode = cm.BigValueTextMode.AUTO,
) -> stat.Panel:
    """A single-number panel showing the latest value of each series.

    Decimals, thresholds, mappings and the no-value text are the SDK builder's own
    methods: callers chain them.
    """
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets)
        .unit(unit)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(cm.BigValueGraphMode.NONE)
        .color_mode(colour)
        .text_mode(text)
        .justify_mode(cm.BigValueJustifyMode.AUTO)
        .orientation(cm.VizOrientation.AUTO)
    )


def timeseries_panel(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    *,
    unit: str = "none",
    calcs: tuple[str, ...] = ("lastNotNull", "mean"),
) -> timeseries.Panel:
    """Lines over time; the legend lists each series with the given calculations.

    Rule-change annotations come from the dashboard, so every panel made here shows them.
    """
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets)
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .calcs(list(calcs))
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.NONE))
    )


def table_panel(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    *,
    order: list[str],
    rename: dict[str, str],
    hide: tuple[str, ...] = ("Time",),
    overrides: list[dashboard.DashboardFieldConfigSourceOverrides],
    sort_by: str,
    descending: bool = True,
) -> table.Panel:
    """Instant table queries merged into one row per shared label set.

    merge joins the queries' rows on their common label columns; organize then hides,
    orders and renames the columns (its options use the original field names).
    """
    organize = {
        "excludeByName": {name: True for name in hide},
        "indexByName": {name: index for index, name in enumerate(order)},
        "renameByName": rename,
    }
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets)
        .transformations(
            [
                model.DataTransformerConfig(id_val="merge", options={}),
                model.DataTransformerConfig(id_val="organize", options=organize),
            ]
        )
        .overrides(overrides)
        .sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(descending)])
        .cell_height(cm.TableCellHeight.SM)
        .filterable(True)
    )
