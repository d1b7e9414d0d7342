"""Small inline SVG pictures for the runbook: one change's signals, one rule's responses.

Plain SVG text, no script or font: the HTML page stays one self-contained file that a phone
shows and a printer prints.
"""

from __future__ import annotations

import math
from html import escape

from tracker.contract import SIGNALS
from tracker.runbook_data import CHART_PAD_S, Change, Response

PRE_FILL, POST_FILL = "#dbe9f6", "#fbe3cf"
LINE, MEAN, INTERVAL, GRID = "#59636e", "#1f4e8c", "#b3261e", "#c9ced6"
# Newest changes drawn in a rule's response chart; more would only blot the picture.
MAX_POINTS = 400


def _f(x: float) -> str:
    return f"{x:.1f}"


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        if not hi > lo:
            lo, hi = lo - 1, hi + 1
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, x: float) -> float:
        return self.a + (x - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def _padded(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


def change_chart(ch: Change) -> str:
    """The four signals around one change: pre and post shaded, both means, Δ's interval."""
    w, left, right, panel, gap, top = 340, 74, 332, 58, 8, 4
    height = top + len(SIGNALS) * (panel + gap)
    x = _Scale(-(ch.pre_s + CHART_PAD_S), ch.post_s + CHART_PAD_S, left, right)
    parts = [f'<svg class="change" viewBox="0 0 {w} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(ch.rule)} at '
             f'{escape(ch.ts)}: the four signals {ch.pre_s:g} s before and {ch.post_s:g} s '
             'after</title>']
    win = ch.window
    for k, (m, d) in enumerate(zip(SIGNALS, ch.deltas)):
        y0 = top + k * (panel + gap)
        y1 = y0 + panel
        times = [(t - ch.t_us) / 1e6 for t in win.times_us] if win and ch.t_us else []
        values = win.columns[k] if win else []
        finite = [v for v in values if not math.isnan(v)]
        extra = [v for v in (d.pre, d.post) if v is not None]
        if d.pre is not None and d.lo is not None and d.hi is not None:
            extra += [d.pre + d.lo, d.pre + d.hi]
        parts.append(f'<text x="2" y="{y0 + 14}" class="sig">{m}</text>')
        if d.d is not None:
            parts.append(f'<text x="2" y="{y0 + 28}" class="num">Δ {d.d:+.3g}</text>')
        if not finite and not extra:
            parts.append(f'<text x="{left + 4}" y="{y0 + 30}" class="num">no samples</text>')
            continue
        y = _Scale(*_padded(finite + extra), y1, y0)
        for lo, hi, fill in ((-ch.pre_s, -ch.guard_s, PRE_FILL), (ch.guard_s, ch.post_s,
                                                                  POST_FILL)):
            parts.append(f'<rect x="{_f(x(lo))}" y="{y0}" width="{_f(x(hi) - x(lo))}" '
                         f'height="{panel}" fill="{fill}"/>')
        parts.append(f'<line x1="{_f(x(0))}" x2="{_f(x(0))}" y1="{y0}" y2="{y1}" '
                     f'stroke="{GRID}" stroke-dasharray="3 2"/>')
        path, pen = [], "M"
        for t, v in zip(times, values):
            if math.isnan(v):
                pen = "M"
                continue
            path.append(f"{pen}{_f(x(t))} {_f(y(v))}")
            pen = "L"
        if path:
            parts.append(f'<path d="{"".join(path)}" fill="none" stroke="{LINE}" '
                         'stroke-width="0.8"/>')
        for mean, lo, hi in ((d.pre, -ch.pre_s, -ch.guard_s), (d.post, ch.guard_s, ch.post_s)):
            if mean is not None:
                parts.append(f'<line x1="{_f(x(lo))}" x2="{_f(x(hi))}" y1="{_f(y(mean))}" '
                             f'y2="{_f(y(mean))}" stroke="{MEAN}" stroke-width="2"/>')
        if d.pre is not None and d.lo is not None and d.hi is not None:
            # Where the post mean may lie, given the pre mean: the pre mean plus Δ's interval.
            bx = _f(x(ch.post_s) + 4)
            a, b = _f(y(d.pre + d.lo)), _f(y(d.pre + d.hi))
            parts.append(f'<path d="M{bx} {a}V{b}M{float(bx) - 3:.1f} {a}h6M{float(bx) - 3:.1f} '
                         f'{b}h6" stroke="{INTERVAL}" stroke-width="1.5" fill="none"/>')
            if d.post is not None:
                parts.append(f'<circle cx="{bx}" cy="{_f(y(d.post))}" r="2.2" '
                             f'fill="{INTERVAL}"/>')
    parts.append("</svg>")
    return "".join(parts)


def response_chart(changes: list[Change], k: int, resp: Response | None) -> str:
    """Signal k's Δ against each change's size, with its interval and the pooled line."""
    w, h, left, right, top, bottom = 260, 170, 46, 252, 16, 146
    pts = []
    for ch in changes[:MAX_POINTS]:
        size, d = ch.size, ch.deltas[k]
        if size is None or d.d is None:
            continue
        used = not (ch.confounded or d.unreliable) and d.lo is not None and d.hi is not None
        pts.append((size, d.d, d.lo, d.hi, used))
    m = SIGNALS[k]
    head = (f'<svg class="response" viewBox="0 0 {w} {h}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{m}: Δ against the size of each '
            'change</title>'
            f'<text x="{left}" y="11" class="sig">{m}</text>')
    if not pts:
        return head + f'<text x="{left}" y="80" class="num">no numeric changes</text></svg>'
    xs = [p[0] for p in pts] + [0.0]
    ys = [p[1] for p in pts] + [p[i] for p in pts for i in (2, 3) if p[i] is not None] + [0.0]
    x = _Scale(*_padded(xs), left, right)
    y = _Scale(*_padded(ys), bottom, top)
    parts = [head,
             f'<line x1="{left}" x2="{right}" y1="{_f(y(0))}" y2="{_f(y(0))}" stroke="{GRID}"/>',
             f'<line x1="{_f(x(0))}" x2="{_f(x(0))}" y1="{top}" y2="{bottom}" stroke="{GRID}"/>',
             f'<text x="{left - 3}" y="{top + 8}" class="ax" text-anchor="end">'
             f'{y.hi:+.2g}</text>',
             f'<text x="{left - 3}" y="{bottom}" class="ax" text-anchor="end">{y.lo:+.2g}</text>',
             f'<text x="{left}" y="{h - 4}" class="ax">{x.lo:+.3g}</text>',
             f'<text x="{right}" y="{h - 4}" class="ax" text-anchor="end">{x.hi:+.3g} '
             '(new − old)</text>']
    if resp is not None and resp.enough:
        # A nested viewport in the same coordinates clips the band to the plot area.
        parts.append(f'<svg x="{left}" y="{top}" width="{right - left}" '
                     f'height="{bottom - top}" viewBox="{left} {top} {right - left} '
                     f'{bottom - top}">')
        lines = ([(resp.up, 0.0, x.hi), (resp.down, x.lo, 0.0)] if resp.split
                 else [(resp.both, x.lo, x.hi)])
        for pooled, a, b in lines:
            if pooled is None:
                continue
            slope, half = pooled.value / resp.step, pooled.crit * pooled.se / resp.step
            band = "".join(
                f"M{_f(x(0))} {_f(y(0))}L{_f(x(e))} {_f(y(e * slope + abs(e) * half))}"
                f"L{_f(x(e))} {_f(y(e * slope - abs(e) * half))}Z" for e in (a, b) if e)
            parts.append(f'<path d="{band}" fill="{MEAN}" fill-opacity="0.15"/>')
            parts.append(f'<line x1="{_f(x(a))}" x2="{_f(x(b))}" y1="{_f(y(a * slope))}" '
                         f'y2="{_f(y(b * slope))}" stroke="{MEAN}" stroke-width="1.5"/>')
        parts.append("</svg>")
    for size, d, lo, hi, used in pts:
        cx = _f(x(size))
        colour = INTERVAL if used else "#9aa0a6"
        if lo is not None and hi is not None:
            parts.append(f'<line x1="{cx}" x2="{cx}" y1="{_f(y(lo))}" y2="{_f(y(hi))}" '
                         f'stroke="{colour}" stroke-opacity="0.5"/>')
        fill = colour if used else "none"
        parts.append(f'<circle cx="{cx}" cy="{_f(y(d))}" r="2.4" fill="{fill}" '
                     f'stroke="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)
