"""Every PromQL expression a dashboard JSON runs, with its template variables filled in.

Grafana cannot run in this project's test environment, so the tests (and the stack's
integration test, against a live Prometheus) run these expressions instead:

    from grafana.queries import expressions
    for expr in expressions(json.load(open("grafana/dashboards/overview.json"))):
        ...  # GET /api/v1/query?query=expr

Panel targets, annotation queries and the PromQL inside query variables
(query_result(...), label_values(<selector>, label)) are all included.
"""

import re
from collections.abc import Iterator, Mapping
from typing import Any

# Values for Grafana's built-in variables: any valid durations do for a syntax check or a
# query against a live Prometheus.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# $name, ${name}, ${name:format} and the deprecated [[name]].
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]")
_QUERY_RESULT = re.compile(r"^query_result\((.+)\)\s*$", re.DOTALL)
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)\s*$", re.DOTALL)
_NO_PROMQL = re.compile(r"^(label_values\([^,]*\)|label_names\(.*\)|metrics\(.*\))\s*$")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"')
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of the dashboard, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_values(
    dashboard: Mapping[str, Any], values: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A value for each variable: given ones first, then the "All" value, then the current.

    A variable with none of these gets no entry; substitute() then reports it.
    """
    result = dict(BUILTINS)
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        current = variable.get("current", {}).get("value")
        if variable.get("includeAll"):
            result[name] = variable.get("allValue") or ".*"
        elif variable.get("type") in ("constant", "custom", "textbox"):
            result[name] = str(variable.get("query", ""))
        elif isinstance(current, list) and current:
            result[name] = "|".join(current)
        elif isinstance(current, str) and current:
            result[name] = current
    result.update(values or {})
    return result


def substitute(text: str, known: Mapping[str, str]) -> str:
    """text with every template variable replaced; KeyError names one without a value."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in known:
            raise KeyError(f"no value for template variable ${name}")
        return known[name]

    return _VARIABLE.sub(replace, text)


def _variable_promql(variable: Mapping[str, Any]) -> str | None:
    if variable.get("type") != "query":
        return None
    raw = variable.get("query", "")
    text = raw.get("query", "") if isinstance(raw, Mapping) else str(raw)
    text = text.strip()
    if not text or _NO_PROMQL.match(text):
        return None
    for pattern in (_QUERY_RESULT, _LABEL_VALUES):
        match = pattern.match(text)
        if match:
            return match.group(1).strip()
    return text


def raw_expressions(dashboard: Mapping[str, Any]) -> list[str]:
    """The expressions as written in the dashboard, variables not substituted."""
    found: list[str] = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr") and not target.get("hide"):
                found.append(target["expr"])
    for annotation in dashboard.get("annotations", {}).get("list", []):
        expr = annotation.get("target", {}).get("expr") or annotation.get("expr")
        if expr and annotation.get("enable", True):
            found.append(expr)
    for variable in dashboard.get("templating", {}).get("list", []):
        expr = _variable_promql(variable)
        if expr:
            found.append(expr)
    return list(dict.fromkeys(found))


def expressions(dashboard: Mapping[str, Any], values: Mapping[str, str] | None = None) -> list[str]:
    """Every distinct PromQL expression of the dashboard, ready to send to Prometheus.

    values overrides variable values (name -> text, without the $); by default a
    multi-value variable matches everything and built-ins get fixed durations.
    """
    known = variable_values(dashboard, values)
    return list(dict.fromkeys(substitute(expr, known) for expr in raw_expressions(dashboard)))


def series_names(expr: str, known: frozenset[str] | set[str]) -> set[str]:
    """Names of the series expr reads: "lumen…" identifiers outside string literals, and
    the known names that a __name__ matcher selects.

    Only names starting with "lumen" are taken from the text, so label names, functions
    and keywords never count; the caller checks them against the published names.
    """
    names = {n for n in _IDENTIFIER.findall(_STRING.sub(" ", expr)) if n.startswith("lumen")}
    for operator, pattern in _NAME_MATCHER.findall(expr):
        if operator == "=":
            names.add(pattern)
        else:
            selected = {name for name in known if re.fullmatch(pattern, name)}
            # A matcher that selects nothing is reported as itself, so it fails a check.
            names |= selected or {f"__name__=~{pattern}"}
    return names
