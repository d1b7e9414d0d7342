"""The runbook's response chart read back as geometry: every point, interval, axis label and
pooled line must sit where its numbers put it, on one linear scale per axis."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tracker.charts import INTERVAL, MAX_POINTS, MEAN, response_chart
from tracker.contract import SIGNALS
from tracker.pooling import DIRECTION_P, Pooled
from tracker.runbook_data import MIN_CHANGES, Change, Delta, Response

LEFT, RIGHT, TOP, BOTTOM = 46, 252, 16, 146  # the plot area
PX = 0.11  # coordinates are written to 0.1 px


def change(old, new, d, lo=None, hi=None, *, k=1, n=150, confounded=False) -> Change:
    deltas = [Delta(s, None, None, None, None, None, None, None) for s in SIGNALS]
    if d is not None:
        deltas[k] = Delta(SIGNALS[k], d, lo, hi, 0.5, 0.5 + d, n, n)
    return Change(ts="2025-10-23T13:10:00+09:00", t_us=1, actor="a", rule="r", old=str(old),
                  new=str(new), note="", pre_s=30, post_s=30, guard_s=1, deltas=deltas,
                  verdict=None, confounded=confounded, line=1)


def pooled(value: float, se: float) -> Pooled:
    return Pooled(value=value, se=se, k=5, method="fixed effect", q=1.0, i2=0.0, tau2=0.0,
                  p_heterogeneity=0.5)


def response(both=None, up=None, down=None, p=None, used=MIN_CHANGES, step=0.5) -> Response:
    return Response(signal=SIGNALS[1], step=step, used=used, excluded={}, both=both, up=up,
                    down=down, p_direction=p)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    for el in root.iter():
        el.tag = el.tag.split("}")[-1]
    return root


def num(el: ET.Element, attr: str) -> float:
    return float(el.get(attr))


class Plot:
    """The chart's scale, found from its zero lines and its points, in pixels per unit."""

    def __init__(self, svg: str, points: list[tuple[float, float]]) -> None:
        self.root = parse(svg)
        lines = [el for el in self.root if el.tag == "line"]
        horizontal, vertical = lines[0], lines[1]
        assert (num(horizontal, "x1"), num(horizontal, "x2")) == (LEFT, RIGHT)
        assert num(horizontal, "y1") == num(horizontal, "y2")
        assert (num(vertical, "y1"), num(vertical, "y2")) == (TOP, BOTTOM)
        assert num(vertical, "x1") == num(vertical, "x2")
        self.x0, self.y0 = num(vertical, "x1"), num(horizontal, "y1")
        self.circles = [el for el in self.root if el.tag == "circle"]
        assert len(self.circles) == len(points)
        # The point farthest from zero on each axis sets the scale; every other must agree.
        (cx, _), size = max(((c, p[0]) for c, p in zip(self.xy(), points)),
                            key=lambda cp: abs(cp[1]))
        (_, cy), d = max(((c, p[1]) for c, p in zip(self.xy(), points)),
                         key=lambda cp: abs(cp[1]))
        self.kx, self.ky = (cx - self.x0) / size, (cy - self.y0) / d
        assert self.kx > 0 > self.ky  # right is larger, up is larger

    def xy(self) -> list[tuple[float, float]]:
        return [(num(c, "cx"), num(c, "cy")) for c in self.circles]

    def px(self, x: float, y: float) -> tuple[float, float]:
        return self.x0 + self.kx * x, self.y0 + self.ky * y

    def label(self, x: float, y: float) -> float:
        """The axis label written at the pixel (x, y), as a number."""
        text = next(el.text for el in self.root if el.tag == "text"
                    and (num(el, "x"), num(el, "y")) == (x, y))
        return float(text.split()[0])


def test_points_and_intervals_sit_on_one_linear_scale(tmp_path):
    changes = [change(0.2, 0.3, 0.4, 0.1, 0.7),  # used: filled
               change(0.3, 0.1, -0.6, -1.0, -0.2),
               change(1, 1.5, 1.2, 0.9, 1.5, confounded=True),  # left out of the pooling
               change(0, -0.5, -0.1, -0.5, 0.3, n=12),  # unreliable: left out
               change(2, 2.4, 0.2),  # no interval: left out, no interval line
               change("a", "b", 0.3, 0.0, 0.6),  # not numeric: not drawn
               change(1, 2, None)]  # no Δ for this signal: not drawn
    drawn = [(0.1, 0.4, 0.1, 0.7, True), (-0.2, -0.6, -1.0, -0.2, True),
             (0.5, 1.2, 0.9, 1.5, False), (-0.5, -0.1, -0.5, 0.3, False),
             (0.4, 0.2, None, None, False)]
    svg = response_chart(changes, 1, None)
    plot = Plot(svg, [(size, d) for size, d, *_ in drawn])
    assert f"<title>{SIGNALS[1]}: Δ against the size of each change</title>" in svg
    assert f'class="sig">{SIGNALS[1]}</text>' in svg
    assert "<svg x=" not in svg  # no pooled line without a Response
    bars = iter(el for el in plot.root if el.tag == "line" and el.get("stroke-opacity"))
    for circle, (size, d, lo, hi, used) in zip(plot.circles, drawn):
        cx, cy = plot.px(size, d)
        assert num(circle, "cx") == pytest.approx(cx, abs=PX)
        assert num(circle, "cy") == pytest.approx(cy, abs=PX)
        colour = INTERVAL if used else "#9aa0a6"
        assert (circle.get("fill"), circle.get("stroke")) == (colour if used else "none", colour)
        if lo is None:
            continue
        bar = next(bars)
        assert num(bar, "x1") == num(bar, "x2") == num(circle, "cx")
        assert num(bar, "y1") == pytest.approx(plot.px(0, lo)[1], abs=PX)
        assert num(bar, "y2") == pytest.approx(plot.px(0, hi)[1], abs=PX)
        assert bar.get("stroke") == colour
    assert next(bars, None) is None
    # Every mark inside the plot, the extremes with a margin; zero inside too.
    for cx, cy in plot.xy():
        assert LEFT < cx < RIGHT and TOP < cy < BOTTOM
    # The axis labels are the values at the plot's edges (2 and 3 significant digits).
    top, bottom = (plot.label(LEFT - 3, TOP + 8), plot.label(LEFT - 3, BOTTOM))
    assert top == pytest.approx((TOP - plot.y0) / plot.ky, rel=0.05) and top > 1.5
    assert bottom == pytest.approx((BOTTOM - plot.y0) / plot.ky, rel=0.05) and bottom < -1.0
    xlo, xhi = plot.label(LEFT, 166), plot.label(RIGHT, 166)
    assert xlo == pytest.approx((LEFT - plot.x0) / plot.kx, rel=0.01) and xlo < -0.5
    assert xhi == pytest.approx((RIGHT - plot.x0) / plot.kx, rel=0.01) and xhi > 0.5
    assert re.search(r'text-anchor="end">\+[0-9.]+ \(new − old\)</text>', svg)


def band_and_line(root: ET.Element) -> list[tuple[ET.Element, ET.Element]]:
    (inner,) = [el for el in root if el.tag == "svg"]
    assert (num(inner, "x"), num(inner, "y")) == (LEFT, TOP)  # clipped to the plot area
    assert (num(inner, "width"), num(inner, "height")) == (RIGHT - LEFT, BOTTOM - TOP)
    assert inner.get("viewBox") == f"{LEFT} {TOP} {RIGHT - LEFT} {BOTTOM - TOP}"
    kids = list(inner)
    return list(zip(kids[::2], kids[1::2]))


def check_pooled(plot: Plot, band: ET.Element, line: ET.Element, slope: float, half: float,
                 ends: tuple[float, float]) -> None:
    """The line from x = a to x = b has the pooled slope; the band is slope ± half at each
    end, drawn from the origin."""
    assert line.get("stroke") == MEAN and band.get("fill") == MEAN
    for end, x in zip(ends, ("x1", "x2")):
        y = x.replace("x", "y")
        assert num(line, x) == pytest.approx(plot.px(end, 0)[0], abs=PX)
        assert num(line, y) == pytest.approx(plot.px(0, end * slope)[1], abs=PX)
    triangles = re.findall(r"M(\S+) (\S+)L(\S+) (\S+)L(\S+) (\S+)Z", band.get("d"))
    assert len(triangles) == sum(1 for e in ends if e)
    for (mx, my, ax, ay, bx, by), e in zip(triangles, [e for e in ends if e]):
        assert (float(mx), float(my)) == pytest.approx(plot.px(0, 0), abs=PX)
        assert float(ax) == float(bx) == pytest.approx(plot.px(e, 0)[0], abs=PX)
        assert float(ay) == pytest.approx(plot.px(0, e * slope + abs(e) * half)[1], abs=PX)
        assert float(by) == pytest.approx(plot.px(0, e * slope - abs(e) * half)[1], abs=PX)


POINTS = [(0.2, 0.3, 0.5), (0.3, 0.1, -0.3), (0.5, 1.0, 1.1), (1.0, 0.8, -0.5)]


def test_the_pooled_line_and_its_band(tmp_path):
    changes = [change(a, b, d, d - 0.2, d + 0.2) for a, b, d in POINTS]
    both = pooled(1.0, 0.1)  # per step 0.5: slope 2 per unit
    svg = response_chart(changes, 1, response(both=both, p=0.9))
    plot = Plot(svg, [(b - a, d) for a, b, d in POINTS])
    ((band, line),) = band_and_line(plot.root)
    x_lo = (LEFT - plot.x0) / plot.kx
    x_hi = (RIGHT - plot.x0) / plot.kx
    check_pooled(plot, band, line, 2.0, both.crit * 0.1 / 0.5, (x_lo, x_hi))


def test_raising_and_lowering_drawn_apart_when_they_differ(tmp_path):
    changes = [change(a, b, d, d - 0.2, d + 0.2) for a, b, d in POINTS]
    up, down = pooled(0.5, 0.05), pooled(-0.25, 0.1)
    svg = response_chart(changes, 1, response(both=pooled(1.0, 0.1), up=up, down=down,
                                              p=DIRECTION_P / 2))
    plot = Plot(svg, [(b - a, d) for a, b, d in POINTS])
    (up_band, up_line), (down_band, down_line) = band_and_line(plot.root)
    x_lo = (LEFT - plot.x0) / plot.kx
    x_hi = (RIGHT - plot.x0) / plot.kx
    check_pooled(plot, up_band, up_line, 1.0, up.crit * 0.05 / 0.5, (0.0, x_hi))
    check_pooled(plot, down_band, down_line, -0.5, down.crit * 0.1 / 0.5, (x_lo, 0.0))
    # A side without its own estimate is left out, the other still drawn.
    svg = response_chart(changes, 1, response(both=pooled(1.0, 0.1), up=up, down=None,
                                              p=DIRECTION_P / 2))
    (pair,) = band_and_line(parse(svg))
    assert pair[1].get("x1") == up_line.get("x1")


@pytest.mark.parametrize("resp", [response(both=None), response(both=pooled(1, 0.1),
                                                                used=MIN_CHANGES - 1)])
def test_no_pooled_line_without_enough_changes(resp):
    changes = [change(a, b, d, d - 0.2, d + 0.2) for a, b, d in POINTS]
    svg = response_chart(changes, 1, resp)
    assert "<svg x=" not in svg
    Plot(svg, [(b - a, d) for a, b, d in POINTS])


def test_newest_points_only_and_nothing_to_draw():
    many = [change(0, k + 1, 0.1 * (k % 7), k=2) for k in range(MAX_POINTS + 25)]
    svg = response_chart(many, 2, None)
    cxs = sorted(num(c, "cx") for c in parse(svg) if c.tag == "circle")
    assert len(cxs) == MAX_POINTS  # the newest (the list is newest first)
    assert cxs[-1] < RIGHT and cxs[0] > LEFT
    svg = response_chart([change("a", "b", 0.3), change(1, 2, None)], 1, None)
    assert svg.endswith('<text x="46" y="80" class="num">no numeric changes</text></svg>')
    assert parse(svg).find("circle") is None
