"""What every Lumen dashboard shares: datasource, queries, colours, variables, annotation."""

from grafana_foundation_sdk.builders import dashboard, prometheus
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from tracker.contract import EFFECT_WINDOW, GATEWAY_STATUS, UNRELIABLE_BELOW

# The two datasources provisioned with fixed uids (grafana/provisioning/datasources/
# lumen.yml): the stack's Prometheus, and the long-term store of the `longterm` profile.
# Every query reads the one picked in the $datasource variable (a template variable works
# in file-provisioned dashboards, where ${DS_...} inputs would be left empty), Prometheus
# by default; the same dashboards then read months of history from the long-term store.
DATASOURCE_UID = "lumen-prometheus"
LONGTERM_DATASOURCE_UID = "lumen-longterm"
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")

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

# Every query reads only the gateways picked in the $gateway variable (issue 13): a data
# root may hold a fleet, and the same rule on two gateways is two different effects.
GATEWAY = 'gateway=~"$gateway"'

# Label with each Δ's 95% interval, "[low, high]", on lumen_rule_change_timestamp_seconds.
INTERVAL_LABEL = {signal: f"{label}_interval" for signal, label in CHANGE_LABEL.items()}

# Colours of a Δ that is clearly down and clearly up (its 95% interval below or above 0),
# from the interpretation guide: for phase_diff and risk_band a fall is good, for
# creative_band a rise is good; entropy_rate rising is only a warning together with
# phase_diff or risk_band rising, so it gets a caution colour. A Δ whose interval contains
# 0 is neutral whatever its sign: the sign alone is mostly the signal's own wandering.
DELTA_COLOURS = {
    "phase_diff": ("green", "red"),
    "risk_band": ("green", "red"),
    "creative_band": ("orange", "green"),
    "entropy_rate": ("blue", "orange"),
}
NEUTRAL = "text"
UNCLEAR = "#808080"
# Sample counts below this are red: SPEC's reliability threshold.
FEW_SAMPLES = (None, "red"), (UNRELIABLE_BELOW, "text")

# The verdict on an effect (README "How sure is an effect"), its words and colour.
VERDICT_COLOURS = {
    "warning": ("⚠ warning", "red"),
    "caution": ("caution", "orange"),
    "mixed": ("mixed", "purple"),
    "good": ("good", "green"),
    "no_change": ("no change", UNCLEAR),
    "inconclusive": ("inconclusive", UNCLEAR),
    "no_data": ("no data", UNCLEAR),
    "pending": ("pending", "blue"),
    "n/a": ("n/a (no verdict)", UNCLEAR),
}

# lumen:rule_effect_reading (prometheus/rules/effects.yml) turned into the guide's reading
# per signal: 1 good sign clearly there, -1 warning sign clearly there, 2 / -2 entropy_rate
# clearly up / down, 0 unclear (the interval contains 0), as READING_TEXT words them.
GUIDE_READING = (
    '-1 * lumen:rule_effect_reading{metric=~"phase_diff|risk_band", SEL}'
    ' or lumen:rule_effect_reading{metric="creative_band", SEL}'
    ' or 2 * lumen:rule_effect_reading{metric="entropy_rate", SEL}'
)
READING_TEXT = {
    "1": ("good sign, clearly", "green"),
    "0": ("unclear: interval contains 0", UNCLEAR),
    "-1": ("warning sign, clearly", "red"),
    "2": ("entropy clearly up: warning with phase_diff/risk_band up", "orange"),
    "-2": ("entropy clearly down", "blue"),
}

INTERVAL_FORMULA = (
    "Each Δ shows its 95% interval [low, high]: the range the true change lies in, 19 times "
    "out of 20. An interval containing 0 means the change is too small to tell from the "
    "signal's own wandering, so it is grey whatever its sign."
)

# Annotation: every rule change at its real time. The exporter keeps one series per recent
# change; before the effect is written its d_* labels say "pending", afterwards they carry
# the Δs, so one change is two series over a time range. A pending series is dropped when
# the final series of the same change (same labels and same change time) exists at the
# range's end, leaving one marker per change. Grafana's useValueForTime reads the value as
# a time in milliseconds, hence * 1000.
_CHANGES = "lumen_rule_change_timestamp_seconds"
_KEY = "gateway, rule, actor, old, new"
_LABELS = ("d_phase, d_entropy, d_creative, d_risk, d_phase_interval, d_entropy_interval, "
           "d_creative_interval, d_risk_interval, verdict")
RULE_CHANGE_EXPR = (
    f'({_CHANGES}{{d_phase!="pending", {GATEWAY}}}'
    f" or (max by ({_KEY}, {_LABELS})"
    f' ({_CHANGES}{{d_phase="pending", {GATEWAY}}})'
    f" unless on({_KEY})"
    f' ({_CHANGES}{{d_phase!="pending", {GATEWAY}}} @ end()'
    f" == on({_KEY}) group_left()"
    f' max by ({_KEY}) ({_CHANGES}{{d_phase="pending", {GATEWAY}}}))))'
    " * 1000"
)
RULE_CHANGE_TITLE = "{{rule}} changed by {{actor}} on {{gateway}}: {{verdict}}"
RULE_CHANGE_TEXT = (
    "verdict {{verdict}} · {{old}} → {{new}} · Δ with its 95% interval:"
    " phase_diff {{d_phase}} {{d_phase_interval}}"
    " · entropy_rate {{d_entropy}} {{d_entropy_interval}}"
    " · creative_band {{d_creative}} {{d_creative_interval}}"
    " · risk_band {{d_risk}} {{d_risk_interval}}"
)

# The runbook page (lumen-runbook's runbook.html) as the stack serves it. A dashboard JSON
# cannot read the environment, so the address is a hidden variable: change it per link
# with ?var-runbook_url=... or in the dashboard's settings.
RUNBOOK_URL = "http://localhost:8088/runbook.html"


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


def selector(*matchers: str) -> str:
    """A label selector with the gateway filter and the given matchers."""
    return "{" + ", ".join((*matchers, GATEWAY)) + "}"


def guide_reading(*matchers: str) -> str:
    """The guide's reading of each Δ from its interval (READING_TEXT), for the selected
    gateways and the given extra matchers (e.g. 'rule=~"$rule"')."""
    extra = "".join(f"{m}, " for m in matchers)
    return GUIDE_READING.replace("SEL", extra + GATEWAY)


def reading_mapping() -> model.ValueMap:
    """lumen:rule_effect_reading as the guide's words and colours."""
    return value_text(READING_TEXT)


def verdict_mapping() -> model.ValueMap:
    """A verdict label value as its words and colour."""
    return value_text(VERDICT_COLOURS)


def interval_overrides(low: str, high: str) -> list[dashboard.DashboardFieldConfigSourceOverrides]:
    """The two ends of a 95% interval, side by side as [low, high]."""
    return [
        override(low, unit="prefix:[", decimals=4, custom__cellOptions={"type": "auto"}),
        override(high, unit="suffix:]", decimals=4, custom__cellOptions={"type": "auto"}),
    ]


def value_text(entries: dict[str, tuple[str, str]]) -> model.ValueMap:
    """Value mapping from exact values to (text, colour)."""
    return model.ValueMap(
        options={
            value: model.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(entries.items())
        }
    )


def override(
    name: str, matcher: str = "byName", **properties: object
) -> dashboard.DashboardFieldConfigSourceOverrides:
    """Field override by field name (or by the given matcher, e.g. byFrameRefID); keyword
    names use __ for dots (custom__width).

    Values may be SDK builders (thresholds), which are built here.
    """
    built = {
        key.replace("__", "."): value.build() if isinstance(value, cogbuilder.Builder) else value
        for key, value in properties.items()
    }
    return (
        dashboard.DashboardFieldConfigSourceOverrides()
        .matcher(model.MatcherConfig(id_val=matcher, options=name))
        .properties(
            [model.DynamicConfigValue(id_val=key, value=value) for key, value in built.items()]
        )
    )


def window_variables() -> list[dashboard.QueryVariable]:
    """Hidden variables holding the windows of the effects the exporter serves."""
    variables = []
    for window in ("pre", "post", "guard"):
        expr = f'scalar(max({EFFECT_WINDOW}{{window="{window}", {GATEWAY}}}))'
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


def _pick_all(name: str, label: str, description: str,
              query_text: str) -> dashboard.QueryVariable:
    """A multi-select of a label's values, All (any value) selected at first."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query_text)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def datasource_variable() -> dashboard.DatasourceVariable:
    """Which Prometheus-compatible datasource every query reads, the stack's Prometheus
    at first; any other one added to Grafana (Mimir, Thanos, ...) is offered too."""
    return (
        dashboard.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Data source")
        .description(
            "Prometheus: the last LUMEN_PROMETHEUS_RETENTION (15 days). Long-term store: "
            "months of history (the longterm profile, README \"Months of history\")."
        )
        .type("prometheus")
        .current(model.VariableOption(selected=True, text="Prometheus", value=DATASOURCE_UID))
    )


def gateway_variable() -> dashboard.QueryVariable:
    """Multi-select of the gateways the exporter serves, defaulting to all of them."""
    return _pick_all("gateway", "Gateway",
                     f"Gateways of the data root ({GATEWAY_STATUS}); All is every gateway.",
                     f"label_values({GATEWAY_STATUS}, gateway)")


def runbook_variable() -> dashboard.TextBoxVariable:
    """Hidden address of the runbook page, for the dashboards' Runbook link."""
    return (
        dashboard.TextBoxVariable("runbook_url")
        .label("Runbook URL")
        .description(
            "Where the stack serves runbook.html; set it with ?var-runbook_url=... in the "
            "dashboard's address."
        )
        .hide(model.VariableHide.HIDE_VARIABLE)
        .default_value(RUNBOOK_URL)
        .current(model.VariableOption(selected=True, text=RUNBOOK_URL, value=RUNBOOK_URL))
    )


def rule_variable() -> dashboard.QueryVariable:
    """Multi-select of the rules that changed recently, defaulting to all of them."""
    return _pick_all("rule", "Rule",
                     "Rules with a recent change (lumen_rule_change_timestamp_seconds).",
                     f"label_values({_CHANGES}{{{GATEWAY}}}, rule)")


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
        .target_blank(False),
        dashboard.DashboardLink("Runbook")
        .type(model.DashboardLinkType.LINK)
        .url("${runbook_url}")
        .icon("doc")
        .tooltip("The runbook: per rule, every change with its Δs, intervals and verdict")
        .keep_time(False)
        .include_vars(False)
        .target_blank(True),
    ]


def base(
    uid: str,
    title: str,
    description: str,
    variables: tuple[dashboard.QueryVariable, ...] = (),
) -> dashboard.Dashboard:
    """A dashboard with what all Lumen dashboards share: settings, links, the rule-change
    annotation, the datasource and gateway variables (before the dashboard's own
    `variables`), the hidden
    window variables and the runbook address (after them).

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
    for variable in (datasource_variable(), gateway_variable(), *variables,
                     *window_variables(), runbook_variable()):
        board = board.with_variable(variable)
    return board
