"""The runbook as Markdown and as one self-contained HTML page.

Everything people typed (rule names, actors, notes, old/new values, timestamps) goes
through md() or html.escape, so a rule named `<script>` or `| x |` is just text.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from tracker.charts import MAX_POINTS, change_chart, response_chart
from tracker.contract import SIGNALS
from tracker.pooling import HETEROGENEITY_P, Pooled
from tracker.runbook_data import (
    GOOD,
    MIN_CHANGES,
    PATTERN_MIN,
    PATTERN_SHARE,
    WARNING,
    Change,
    Delta,
    Gateway,
    Pattern,
    Response,
    RuleSection,
    Runbook,
)

# The dashboard whose annotations are the rule changes (grafana/dashboards/rule-history.json).
GRAFANA_UID = "lumen-rule-history"
# Grafana links show this much time on each side of a change's windows.
GRAFANA_MARGIN_S = 120
NO_VERDICT = "—"

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def md(text: str) -> str:
    """User text as inert Markdown for a table cell or a heading: one line, no markup."""
    one_line = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", escape(one_line, quote=False))


def h(text: str) -> str:
    return escape(text, quote=True)


def num(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def _digits(*xs: float | None) -> int:
    """Decimals that show the value to 2 significant digits and, given [lo, hi] as the last
    two, the interval's width to 2 as well (a tight pooled interval is not [x, x])."""
    present = [x for x in xs if x is not None]
    scales = [max(map(abs, present), default=0.0)]
    if len(present) == 3:
        scales.append(present[2] - present[1])
    want = [1 - math.floor(math.log10(x)) for x in scales if x > 0]
    return min(8, max([3, *want]))


def delta_text(d: Delta) -> str:
    """`+0.031 [+0.012, +0.050]`, or the bare Δ without an interval, or — without data."""
    if d.d is None:
        return NO_VERDICT
    n = _digits(d.d, d.lo, d.hi)
    if d.lo is None or d.hi is None:
        return num(d.d, n)
    return f"{num(d.d, n)} [{num(d.lo, n)}, {num(d.hi, n)}]"


def step_text(step: float, sign: str = "+") -> str:
    return f"{sign}{step:g}"


def pooled_text(p: Pooled, lowering: bool = False) -> str:
    q = p.scaled(-1.0) if lowering else p
    n = _digits(q.value, q.lo, q.hi)
    return f"{num(q.value, n)} [{num(q.lo, n)}, {num(q.hi, n)}]"


def model_text(p: Pooled) -> str:
    return f"{p.method}, I² {p.i2 * 100:.0f}%"


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def response_lines(r: Response) -> list[tuple[str, str, str]]:
    """(which changes, response with interval, from and how) for one signal; plain text.

    The response is per +step of the rule (the section heading says so); lowering, when
    pooled apart, per −step.
    """
    left_out = ", ".join(f"{n} {why}" for why, n in sorted(r.excluded.items()))
    left_out = f"; left out: {left_out}" if left_out else ""
    if not r.enough:
        return [("", f"too few changes ({r.used} usable, at least {MIN_CHANGES} needed)",
                 left_out.lstrip("; "))]
    if r.split and r.up and r.down:
        p = f"raising and lowering differ ({p_text(r.p_direction)}), so pooled apart"
        return [("raising", pooled_text(r.up),
                 f"from {r.up.k} changes, {model_text(r.up)}; {p}{left_out}"),
                (f"lowering, per {step_text(r.step, '−')}", pooled_text(r.down, lowering=True),
                 f"from {r.down.k} changes, {model_text(r.down)}")]
    assert r.both is not None
    agree = (f"; raising and lowering agree ({p_text(r.p_direction)})"
             if r.p_direction is not None else "")
    return [("all", pooled_text(r.both),
             f"from {r.both.k} changes, {model_text(r.both)}{agree}{left_out}")]


def does_heading(r: RuleSection) -> str:
    return f"What the rule does, per {step_text(r.step)} of {r.name}" if r.step else \
        "What the rule does"


def flags(ch: Change) -> list[str]:
    out = []
    if ch.confounded:
        out.append("confounded")
    bad = [d.signal for d in ch.deltas if d.unreliable]
    if bad:
        out.append(f"unreliable: {', '.join(bad)}")
    return out


def grafana_link(base: str, ch: Change) -> str | None:
    if ch.t_us is None:
        return None
    start = ch.t_us // 1000 - round((ch.pre_s + GRAFANA_MARGIN_S) * 1000)
    end = ch.t_us // 1000 + round((ch.post_s + GRAFANA_MARGIN_S) * 1000)
    # The dashboard's rule variable takes the rule name as the exporter labels it (as is).
    return (f"{base.rstrip('/')}/d/{GRAFANA_UID}?from={start}&to={end}"
            f"&var-rule={quote(ch.rule, safe='')}")


def pattern_text(p: Pattern) -> str:
    if p.direction.startswith("set to "):
        what = f"set {p.rule} to {p.direction.removeprefix('set to ')}"
    elif p.direction == "unchanged":
        what = f"set {p.rule} to the value it had"
    else:
        what = f"{p.direction} {p.rule}"
    return f"{what} (e.g. {p.example}): {p.verdict} in {p.k} of {p.n} changes"


NO_INTERVALS = "Not pooled: the effects file has no intervals."
# Set to the value it had (5 -> 5) is numeric but no step to pool per.
NO_STEP = "Not pooled: no change of this rule moved it from one number to another."

METHOD = (
    "Each Δ is post mean − pre mean with its 95% interval, as the tracker wrote it. A change "
    "is confounded when another change fell within its windows, unreliable when a side "
    "had fewer than 50 samples (10 s at 5 Hz). What a rule does is each change's Δ divided "
    "by its size (new − old), pooled over the rule's numeric changes by inverse variance, "
    "the variance read from each interval (half width / 1.96), leaving out confounded and "
    "unreliable effects. When the changes disagree more than their own uncertainty allows "
    f"(Cochran's Q, p < {HETEROGENEITY_P:g}) the DerSimonian-Laird random-effects model is "
    "used instead; I² says how much of the spread between changes is more than chance. "
    "Raising and lowering are pooled apart when they differ (p < 0.05). Below "
    f"{MIN_CHANGES} usable changes the runbook says too few changes. A pattern is a rule "
    f"and direction whose changes were {GOOD} (or {WARNING}) at least {PATTERN_MIN} "
    f"times and in at least {PATTERN_SHARE:.0%} of them, confounded and unreliable ones "
    "left out."
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------- Markdown


def fleet(rb: Runbook) -> bool:
    return any(gw.name is not None for gw in rb.gateways)


def compared(rb: Runbook) -> list[tuple[str, list[tuple[Gateway, RuleSection]]]]:
    """The rules a fleet's gateways share, with each gateway's section of the rule."""
    by_rule: dict[str, list[tuple[Gateway, RuleSection]]] = {}
    for gw in rb.gateways:
        for r in gw.rules:
            by_rule.setdefault(r.name, []).append((gw, r))
    return [(name, pairs) for name, pairs in sorted(by_rule.items()) if len(pairs) > 1]


def compare_cell(r: RuleSection, k: int) -> str:
    if not r.responses:
        return NO_VERDICT
    resp = r.responses[k]
    if not resp.enough:
        return f"too few changes ({resp.used})"
    assert resp.both is not None
    return f"{pooled_text(resp.both)} ({resp.both.k})"


def markdown(rb: Runbook, grafana: str) -> str:
    out = ["# Runbook: what each rule does", ""]
    depth = 1 if fleet(rb) else 0
    if depth:
        out += _md_compare(rb)
    for gw in rb.gateways:
        out += _md_gateway(gw, rb, grafana, depth)
    return "\n".join(out) + "\n"


def _md_compare(rb: Runbook) -> list[str]:
    out = ["## Same rule across gateways", "",
           "Each gateway's pooled response per step of the rule (number of changes pooled).",
           ""]
    for name, pairs in compared(rb):
        out += [f"### {md(name)}", "", "| gateway | per | " + " | ".join(SIGNALS) + " |",
                "|---|---|" + "---|" * len(SIGNALS)]
        for gw, r in pairs:
            per = step_text(r.step) if r.step else NO_VERDICT
            out.append(f"| {md(gw.name or '')} | {per} | "
                       + " | ".join(compare_cell(r, k) for k in range(len(SIGNALS))) + " |")
        out.append("")
    return out


def _md_gateway(gw: Gateway, rb: Runbook, grafana: str, depth: int = 0) -> list[str]:
    out: list[str] = []
    h2 = "#" * (2 + depth)
    if gw.name is not None:
        out += [f"## Gateway {md(gw.name)}", ""]
    out += [f"Generated {_now()} from {md(str(gw.effects_path))}: {gw.changes} changes of "
            f"{len(gw.rules)} rules. Pictures of the newest {rb.charts_per_rule} changes of "
            "each rule are in runbook.html.", ""]
    out += [f"> {md(n)}" for n in gw.notes]
    if gw.notes:
        out.append("")
    for title, pats in (("Favourable patterns", gw.favourable),
                        ("Patterns to avoid", gw.avoid)):
        out += [f"{h2} {title}", ""]
        out += [f"- {md(pattern_text(p))}" for p in pats] or ["- none yet"]
        out.append("")
    out += [f"{h2} How to read this", "", METHOD, ""]
    for r in gw.rules:
        out += _md_rule(r, gw, grafana, depth)
    return out


def _md_rule(r: RuleSection, gw: Gateway, grafana: str, depth: int = 0) -> list[str]:
    h2, h3 = "#" * (2 + depth), "#" * (3 + depth)
    out = [f"{h2} Rule {md(r.name)}", "", f"{h3} {md(does_heading(r))}", ""]
    if not gw.has_intervals:
        out += [NO_INTERVALS, ""]
    elif r.step is None:
        out += [NO_STEP, ""]
    else:
        out += ["| signal | changes | response [95% interval] | from |", "|---|---|---|---|"]
        for resp in r.responses:
            for what, value, how in response_lines(resp):
                out.append(f"| {resp.signal} | {what} | {value} | {md(how)} |")
        out.append("")
    out += [f"{h3} Changes, newest first ({len(r.changes)})", "",
            "| when | who | old → new | " + " | ".join(f"{m} Δ" for m in SIGNALS)
            + " | verdict | marked | note | Grafana |",
            "|" + "---|" * (8 + len(SIGNALS) - 1)]
    for ch in r.changes:
        link = grafana_link(grafana, ch)
        cells = [md(ch.ts), md(ch.actor), f"{md(ch.old)} → {md(ch.new)}",
                 *(delta_text(d) for d in ch.deltas), md(ch.verdict or NO_VERDICT),
                 md("; ".join(flags(ch))), md(ch.note), f"[view]({link})" if link else ""]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return out


# ---------------------------------------------------------------- HTML

CSS = """
:root{--fg:#1d2329;--mute:#5f6b76;--line:#d8dde3;--good:#1e7b34;--warn:#b3261e;--bg:#fff}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1180px;padding:12px 16px 40px;color:var(--fg);background:var(--bg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:1.6em;margin:.4em 0}h2{font-size:1.3em;margin:1.6em 0 .4em;
border-bottom:1px solid var(--line);padding-bottom:.2em}h3{font-size:1.05em;margin:1.2em 0 .4em}
.meta,.note,figcaption,.small{color:var(--mute);font-size:.9em;overflow-wrap:anywhere}
.note{border-left:3px solid #e0a800;padding:.3em .7em;background:#fff8e1;color:var(--fg)}
nav ul{display:flex;flex-wrap:wrap;gap:.3em .9em;padding:0;list-style:none}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.88em}
th,td{border-bottom:1px solid var(--line);padding:.3em .45em;text-align:left;vertical-align:top}
th{background:#f3f5f7;position:sticky;top:0}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.v{display:inline-block;padding:0 .45em;border-radius:.6em;background:#eceff2;white-space:nowrap}
.v-good{background:#dff3e4;color:var(--good)}.v-warning{background:#fbe0de;color:var(--warn)}
.flag{color:var(--warn);font-size:.85em}.ci{color:var(--mute);font-size:.85em}
.links{font-size:.85em}
.pats li{margin:.2em 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px}
.responses{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:10px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px}
svg{width:100%;height:auto;display:block}
svg text{font:10px system-ui,sans-serif;fill:#333}svg text.num,svg text.ax{fill:#5f6b76}
svg text.sig{font-weight:600}
a{color:#1f4e8c}
@media (max-width:640px){body{font-size:14px;padding:8px}table{font-size:.8em}
th,td{padding:.25em .3em}.charts{grid-template-columns:1fr}
.responses{grid-template-columns:1fr 1fr;gap:6px}figure{padding:3px}}
@media print{nav,.grafana{display:none}body{max-width:none;font-size:10pt;padding:0}
a{color:inherit;text-decoration:none}th{position:static}
figure,tr,.pats{break-inside:avoid}section.rule{break-before:page}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def html_page(rb: Runbook, grafana: str) -> str:
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width,initial-scale=1">'
           # Nothing is fetched and nothing runs: the page is one file, whatever it shows.
           '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
           "style-src 'unsafe-inline'; img-src data:\">"
           "<title>Runbook: what each rule does</title>"
           f"<style>{CSS}</style></head><body><h1>Runbook: what each rule does</h1>"]
    depth = 1 if fleet(rb) else 0
    if depth:
        out += _html_compare(rb)
    for g, gw in enumerate(rb.gateways):
        out += _html_gateway(gw, rb, grafana, depth, f"g{g}-" if depth else "")
    out.append("</body></html>")
    return "".join(out) + "\n"


def _verdict(v: str | None) -> str:
    if v is None:
        return f'<span class="v">{NO_VERDICT}</span>'
    cls = f" v-{v}" if v in (GOOD, WARNING) else ""
    return f'<span class="v{cls}">{h(v)}</span>'


def _delta_cell(d: Delta) -> str:
    """The Δ, its interval on a line below: four of them fit a laptop's width."""
    text = delta_text(d)
    value, _, interval = text.partition(" ")
    below = f'<div class="ci">{interval}</div>' if interval else ""
    return f'<td class="num">{h(value)}{below}</td>'


def _html_compare(rb: Runbook) -> list[str]:
    out = ["<h2>Same rule across gateways</h2><p class=\"small\">Each gateway's pooled "
           "response per step of the rule (number of changes pooled).</p>"]
    for name, pairs in compared(rb):
        rows = "".join(
            f"<tr><td>{h(gw.name or '')}</td><td>{step_text(r.step) if r.step else NO_VERDICT}"
            "</td>" + "".join(f'<td class="num">{h(compare_cell(r, k))}</td>'
                              for k in range(len(SIGNALS))) + "</tr>" for gw, r in pairs)
        out.append(f"<h3>{h(name)}</h3><div class=\"scroll\"><table><thead><tr>"
                   "<th>gateway</th><th>per</th>" + "".join(f"<th>{m}</th>" for m in SIGNALS)
                   + f"</tr></thead><tbody>{rows}</tbody></table></div>")
    return out


def _html_gateway(gw: Gateway, rb: Runbook, grafana: str, depth: int = 0,
                  pre: str = "") -> list[str]:
    """One gateway's part; `pre` keeps element ids apart between a fleet's gateways."""
    out: list[str] = []
    h2 = f"h{2 + depth}"
    if gw.name is not None:
        out.append(f'<h2 id="{pre}gw">Gateway {h(gw.name)}</h2>')
    out.append(f'<p class="meta">Generated {_now()} from {h(str(gw.effects_path))}: '
               f"{gw.changes} changes of {len(gw.rules)} rules. Pictures are drawn for the "
               f"newest {rb.charts_per_rule} changes of each rule; the response charts show "
               f"the newest {MAX_POINTS}.</p>")
    out += [f'<p class="note">{h(n)}</p>' for n in gw.notes]
    out.append("<nav><ul>" + "".join(
        f'<li><a href="#{pre}r{i}">{h(r.name)}</a></li>' for i, r in enumerate(gw.rules)
    ) + "</ul></nav>")
    for title, pats in (("Favourable patterns", gw.favourable),
                        ("Patterns to avoid", gw.avoid)):
        items = "".join(f"<li>{h(pattern_text(p))}</li>" for p in pats) or "<li>none yet</li>"
        out.append(f'<{h2}>{title}</{h2}><ul class="pats">{items}</ul>')
    out.append(f"<{h2}>How to read this</{h2}><p class=\"small\">{h(METHOD)}</p>")
    for i, r in enumerate(gw.rules):
        out += _html_rule(i, r, gw, grafana, depth, pre)
    return out


def _html_rule(i: int, r: RuleSection, gw: Gateway, grafana: str, depth: int,
               pre: str) -> list[str]:
    h2, h3 = f"h{2 + depth}", f"h{3 + depth}"
    out = [f'<section class="rule" id="{pre}r{i}"><{h2}>Rule {h(r.name)}</{h2}>',
           f"<{h3}>{h(does_heading(r))}</{h3}>"]
    if not gw.has_intervals:
        out.append(f"<p>{NO_INTERVALS}</p>")
    elif r.step is None:
        out.append(f"<p>{NO_STEP}</p>")
    else:
        rows = []
        for resp in r.responses:
            for what, value, how in response_lines(resp):
                rows.append(f"<tr><td>{resp.signal}</td><td>{h(what)}</td>"
                            f'<td class="num">{h(value)}</td><td>{h(how)}</td></tr>')
        out.append('<div class="scroll"><table><thead><tr><th>signal</th><th>changes</th>'
                   "<th>response [95% interval]</th><th>from</th></tr></thead><tbody>"
                   + "".join(rows) + "</tbody></table></div>")
        out.append('<div class="responses">' + "".join(
            f"<figure>{response_chart(r.changes, k, resp)}</figure>"
            for k, resp in enumerate(r.responses)) + "</div>")
        out.append('<p class="small">Each dot a change (hollow: left out, confounded or '
                   "unreliable), its bar the 95% interval; the line and band the pooled "
                   "response.</p>")
    out.append(f"<{h3}>Changes, newest first ({len(r.changes)})</{h3}>")
    head = "".join(f"<th>{m} Δ</th>" for m in SIGNALS)
    rows = []
    for ch in r.changes:
        link = grafana_link(grafana, ch)
        marks = "".join(f'<div class="flag">{h(f)}</div>' for f in flags(ch))
        links = [f'<a class="grafana" href="{h(link)}">Grafana</a>'] if link else []
        if ch.charted:
            links.append(f'<a href="#{pre}p{ch.line}">picture</a>')
        rows.append(
            f'<tr id="{pre}c{ch.line}" data-change><td class="num">{h(ch.ts)}'
            f'<div class="links">{" · ".join(links)}</div></td>'
            f'<td>{h(ch.actor)}</td><td class="num">{h(ch.old)} → {h(ch.new)}</td>'
            + "".join(_delta_cell(d) for d in ch.deltas)
            + f"<td>{_verdict(ch.verdict)}{marks}</td><td>{h(ch.note)}</td></tr>")
    out.append('<div class="scroll"><table><thead><tr><th>when</th><th>who</th>'
               f"<th>old → new</th>{head}<th>verdict</th><th>note</th>"
               "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")
    charted = [ch for ch in r.changes if ch.charted]
    if charted:
        out.append(f"<{h3}>Pictures of the newest {len(charted)} changes</{h3}>"
                   '<p class="small">Each signal 5 s beyond the windows: pre window shaded '
                   "blue, post window orange, their means as thick lines; the red bar at the "
                   "right is the pre mean plus Δ's 95% interval, the dot the post mean.</p>"
                   '<div class="charts">')
        for ch in charted:
            out.append(f'<figure id="{pre}p{ch.line}">{change_chart(ch)}<figcaption>'
                       f"{h(ch.ts)} · {h(ch.actor)} · {h(ch.old)} → {h(ch.new)} · "
                       f"{_verdict(ch.verdict)} <a href=\"#{pre}c{ch.line}\">row</a>"
                       "</figcaption></figure>")
        out.append("</div>")
    out.append("</section>")
    return out
