"""What every Lumen dashboard shares: datasource, queries, colours, variables, annotation."""

from grafana_foundation_sdk.builders import dashboard, prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from tracker.contract import EFFECT_WINDOW, UNRELIABLE_BELOW

# Provisioned with this fixed uid (grafana/provisioning/datasources/lumen.yml): a fixed uid
# keeps file-provisioned dashboards working, where ${DS_...} inputs would leave them empty.
DATASOURCE_UID = "lumen-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)

# The scrape job of the exporter in prometheus.yml; prometheus/rules uses the same name.
EXPORTER_JOB = "lumen-exporter"

TAG = "lumen"
# Label that carries each signal's Δ on lumen_rule_change_timestamp_seconds.
CHANGE_LABEL = {
    "phase_diff": "d_phase",
    "entropy_rate": "d_entropy",
    "creative_band": "d_creative",
    "risk_band": "d_risk",
}

# Windows come from the exporter through hidden variables, so the text always shows the
# windows in force instead of numbers typed in here.
DELTA_FORMULA = "Δ = post_mean − pre_mean (pre=${pre_s} s, post=${post_s} s)"

# Colours of a Δ below and above zero, from the interpretation guide: for phase_diff and
# risk_band a fall is good, for creative_band a rise is good; entropy_rate rising is only a
# warning together with phase_diff or risk_band rising, so it gets a caution colour.
DELTA_COLOURS = {
    "phase_diff": ("green", "red"),
    "risk_band": ("green", "red"),
    "creative_band": ("orange", "green"),
    "entropy_rate": ("blue", "orange"),
}
NEUTRAL = "text"
# Sample counts below this are red: SPEC's reliability threshold.
FEW_SAMPLES = (None, "red"), (UNRELIABLE_BELOW, "text")
# Thresholds compare with >=, so a zero Δ needs a small band of its own to read as neutral.
EPSILON = 1e-9

# Annotation: every rule change at its real time. The exporter keeps one series per recent
# change; before the effect is written its d_* labels say "pending", afterwards they carry
# the Δs, so one change is two series over a time range. A pending series is dropped when
# the final series of the same change (same labels and same change time) exists at the
# range's end, leaving one marker per change. Grafana's useValueForTime reads the value as
# a time in milliseconds, hence * 1000.
_CHANGES = "lumen_rule_change_timestamp_seconds"
_KEY = "rule, actor, old, new"
RULE_CHANGE_EXPR = (
    f'({_CHANGES}{{d_phase!="pending"}}'
    f" or (max by ({_KEY}, d_phase, d_entropy, d_creative, d_risk)"
    f' ({_CHANGES}{{d_phase="pending"}})'
    f" unless on({_KEY})"
    f' ({_CHANGES}{{d_phase!="pending"}} @ end()'
    f" == on({_KEY}) group_left()"
    f' max by ({_KEY}) ({_CHANGES}{{d_phase="pending"}}))))'
    " * 1000"
)
RULE_CHANGE_TITLE = "{{rule}} changed by {{actor}}"
RULE_CHANGE_TEXT = (
    "{{old}} → {{new}} · Δphase_diff {{d_phase}} · Δentropy_rate {{d_entropy}}"
    " · Δcreative_band {{d_creative}} · Δrisk_band {{d_risk}}"
)


def query(
    expr: str,
    ref_id: str = "A",
    legend: str | None = None,
    *,
    instant: bool = False,
    table: bool = False,
) -> prometheus.Dataquery:
    """A Prometheus query on the Lumen datasource."""
    q = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    if legend is not None:
        q = q.legend_format(legend)
    q = q.instant() if instant else q.range()
    if table:
        q = q.format(PromQueryFormat.TABLE)
    return q


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (minus infinity)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def delta_thresholds(signal: str) -> dashboard.ThresholdsConfig:
    """Direction-aware colours for a numeric Δ of one signal."""
    below, above = DELTA_COLOURS[signal]
    return thresholds((None, below), (-EPSILON, NEUTRAL), (EPSILON, above))


def delta_label_mappings(signal: str) -> list[model.ValueMapping]:
    """Direction-aware colours for a Δ written as a label value (4 significant digits).

    The value is text, so thresholds cannot apply: regexes read the sign instead. A value
    with a non-zero digit and a leading minus fell, one without the minus rose, the rest
    (0, -0, 0.000) did not move. "$&" keeps the value itself as the displayed text.
    """
    below, above = DELTA_COLOURS[signal]
    return [
        model.ValueMap(
            options={
                "pending": model.ValueMappingResult(text="pending", color="blue", index=0),
                "n/a": model.ValueMappingResult(text="n/a", color=NEUTRAL, index=1),
            }
        ),
        model.RegexMap(
            options=model.DashboardRegexMapOptions(
                pattern="/^-.*[1-9].*$/",
                result=model.ValueMappingResult(text="$&", color=below, index=2),
            )
        ),
        model.RegexMap(
            options=model.DashboardRegexMapOptions(
                pattern="/^[^-]*[1-9].*$/",
                result=model.ValueMappingResult(text="$&", color=above, index=3),
            )
        ),
        model.RegexMap(
            options=model.DashboardRegexMapOptions(
                pattern="/^.*$/",
                result=model.ValueMappingResult(text="$&", color=NEUTRAL, index=4),
            )
        ),
    ]


def value_text(entries: dict[str, tuple[str, str]]) -> model.ValueMap:
    """Value mapping from exact values to (text, colour)."""
    return model.ValueMap(
        options={
            value: model.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(entries.items())
        }
    )


def override(name: str, **properties: object) -> dashboard.DashboardFieldConfigSourceOverrides:
    """Field override by field name; keyword names use __ for dots (custom__width).

    Values may be SDK builders (thresholds), which are built here.
    """
    built = {
        key.replace("__", "."): value.build() if isinstance(value, cogbuilder.Builder) else value
        for key, value in properties.items()
    }
    return (
        dashboard.DashboardFieldConfigSourceOverrides()
        .matcher(model.MatcherConfig(id_val="byName", options=name))
        .properties(
            [model.DynamicConfigValue(id_val=key, value=value) for key, value in built.items()]
        )
    )


def window_variables() -> list[dashboard.QueryVariable]:
    """Hidden variables holding the windows of the effects the exporter serves."""
    variables = []
    for window in ("pre", "post", "guard"):
        expr = f'scalar(max({EFFECT_WINDOW}{{window="{window}"}}))'
        variables.append(
            dashboard.QueryVariable(f"{window}_s")
            .label(f"{window} window (s)")
            .description(f"The {window} window of the effects shown, from {EFFECT_WINDOW}.")
            .hide(model.VariableHide.HIDE_VARIABLE)
            .datasource(DATASOURCE)
            .query(f"query_result({expr})")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
    return variables


def rule_variable() -> dashboard.QueryVariable:
    """Multi-select of the rules that changed recently, defaulting to all of them."""
    return (
        dashboard.QueryVariable("rule")
        .label("Rule")
        .description("Rules with a recent change (lumen_rule_change_timestamp_seconds).")
        .datasource(DATASOURCE)
        .query("label_values(lumen_rule_change_timestamp_seconds, rule)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


class _PrometheusAnnotationQuery(model.AnnotationQuery):
    """AnnotationQuery plus the Prometheus fields the SDK's generic model lacks.

    Grafana's Prometheus annotation support reads titleFormat, textFormat, tagKeys and
    useValueForTime from the annotation itself and runs annotation.target; releases
    that still read the older top-level expr and step move them into target.
    """

    def __init__(self, name: str, expr: str, step: str, icon_color: str) -> None:
        super().__init__(name=name, datasource=DATASOURCE, enable=True, hide=False)
        self.icon_color = icon_color
        self.expr = expr
        self.step = step

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(
            {
                "step": self.step,
                "target": {
                    "datasource": DATASOURCE,
                    "expr": self.expr,
                    "interval": self.step,
                    "refId": "Anno",
                },
                "titleFormat": RULE_CHANGE_TITLE,
                "textFormat": RULE_CHANGE_TEXT,
                "tagKeys": "rule",
                "useValueForTime": True,
            }
        )
        return payload


class RuleChangeAnnotation(cogbuilder.Builder[model.AnnotationQuery]):
    """Every rule change, as a marker on every time-series panel of the dashboard."""

    def build(self) -> model.AnnotationQuery:
        return _PrometheusAnnotationQuery(
            name="Rule changes", expr=RULE_CHANGE_EXPR, step="30s", icon_color="purple"
        )


def links() -> list[dashboard.DashboardLink]:
    """Links to the other Lumen dashboards, keeping the time range."""
    return [
        dashboard.DashboardLink("Lumen dashboards")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(False)
        .keep_time(True)
        .include_vars(False)
        .target_blank(False)
    ]


def base(
    uid: str,
    title: str,
    description: str,
    variables: tuple[dashboard.QueryVariable, ...] = (),
) -> dashboard.Dashboard:
    """A dashboard with what all Lumen dashboards share: settings, links, the rule-change
    annotation and the hidden window variables (after the dashboard's own `variables`).

    30 minutes at a 10 s refresh fits the routine: change a rule, watch 2-3 minutes,
    read the effect, with enough history to compare with the changes before it.
    """
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time("now-30m", "now")
        .refresh("10s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .editable()
        .links(links())
        .annotation(RuleChangeAnnotation())
    )
    for variable in (*variables, *window_variables()):
        board = board.with_variable(variable)
    return board
