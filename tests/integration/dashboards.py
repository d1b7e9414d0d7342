"""The PromQL of the provisioned Grafana dashboards, with template variables filled in."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Grafana's own variables, as a 2 s scrape over a few minutes of test data needs them.
# Grafana fills these itself, so they are replaced only for queries sent to Prometheus.
BUILTINS = {
    "__interval": "10s",
    "__interval_ms": "10000",
    "__rate_interval": "30s",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}

# $name, ${name}, ${name:format}, [[name]], [[name:format]]
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$")


@dataclass(frozen=True)
class Query:
    dashboard_uid: str
    where: str  # e.g. 'panel "Gateway status" target A' or 'annotation "Rule changes"'
    expr: str
    datasource: object  # the target's datasource reference, if any


def dashboard_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.json"))


def load(path: Path) -> dict:
    doc = json.loads(path.read_text(encoding="utf-8"))
    # Some exports wrap the model: {"dashboard": {...}, "meta": ...}
    return doc["dashboard"] if "dashboard" in doc and "panels" not in doc else doc


def queries(dashboard: dict) -> Iterator[Query]:
    """Every targets[].expr of every panel (rows included) and every annotation expr."""
    uid = dashboard.get("uid", "")

    def panels(items: list) -> Iterator[dict]:
        for panel in items or []:
            yield panel
            yield from panels(panel.get("panels", []))  # panels inside collapsed rows

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets") or []:
            if isinstance(target.get("expr"), str) and target["expr"].strip():
                where = f'panel "{panel.get("title", "")}" target {target.get("refId", "?")}'
                ds = target.get("datasource") or panel.get("datasource")
                yield Query(uid, where, target["expr"], ds)
    for annotation in (dashboard.get("annotations") or {}).get("list", []):
        expr = annotation.get("expr") or (annotation.get("target") or {}).get("expr")
        if isinstance(expr, str) and expr.strip():
            yield Query(
                uid,
                f'annotation "{annotation.get("name", "")}"',
                expr,
                annotation.get("datasource"),
            )


def variable_values(
    dashboard: dict, label_values: Callable[[str | None, str], list[str]]
) -> dict[str, str]:
    """The value each template variable has when the dashboard opens, else a real one, else '.*'.

    'All' becomes the variable's allValue or '.*' (what Grafana sends for it, as a regex).
    label_values(match, label) asks Prometheus for the values of a label (match may be None).
    """
    values: dict[str, str] = {}
    for var in (dashboard.get("templating") or {}).get("list", []):
        name, kind = var.get("name"), var.get("type")
        if not name or kind == "datasource":
            continue
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = current[0] if len(current) == 1 else None
        value = None
        if current == "$__all":
            value = var.get("allValue") or ".*"
        elif current:
            value = current
        elif kind == "query":
            query = var.get("query")
            text = query.get("query", "") if isinstance(query, dict) else (query or "")
            m = _LABEL_VALUES.match(text or var.get("definition", ""))
            if m:
                found = label_values(m.group(1), m.group(2))
                value = found[0] if found else None
        elif kind in ("custom", "constant", "textbox", "interval"):
            options = [o.get("value") for o in var.get("options") or [] if o.get("value")]
            value = options[0] if options else var.get("query")
        values[name] = value if isinstance(value, str) and value else ".*"
    return values


def substitute(expr: str, values: dict[str, str], builtins: bool) -> str:
    """Fill in dashboard variables (unknown ones as '.*'); Grafana's own only if builtins."""

    def fill(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name] if builtins else m.group(0)
        return values.get(name, ".*")

    return _VARIABLE.sub(fill, expr)
