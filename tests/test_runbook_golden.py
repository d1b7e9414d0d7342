"""The whole runbook of a fixed fleet and of a fixed single gateway against committed
copies (Markdown and HTML).

The runbook is what people read before they change a rule: every sentence, number, link and
picture in it is output, and a change to any of them should be seen in review. After an
intended change:

    LUMEN_UPDATE_GOLDEN=1 python3 -m pytest tests/test_runbook_golden.py

and read the diff of tests/golden/runbook*.md and runbook*.html.
"""

from __future__ import annotations

import html
import random
import re
from pathlib import Path

import pytest

from tests.golden import matches
from tests.rootdata import sample_rows, write_metrics
from tests.test_runbook import V1, row, run, simulate, write_effects, write_notes
from tracker.runbook_render import md as md_escape


def fixed_fleet(root: Path) -> None:
    """Three gateways holding what the runbook has words for: pooled responses (raising and
    lowering apart on one), patterns both ways, changes left out of the pooling for each
    reason, a text-valued rule, notes, awkward names, and one change with samples to draw."""
    rnd = random.Random(20251023)
    simulate(root / "gw-a", rnd, 6, 0.8)
    rows = []
    for i in range(8):  # raising moves creative_band, lowering does not
        size = 0.02 if i % 2 else -0.02
        delta = (0.04 if size > 0 else 0.0) + rnd.gauss(0, 0.002)
        rows.append(row(600 * i, rule="risk_max", old="0.3", new=repr(0.3 + size),
                        verdict="good" if size > 0 else "no_change",
                        d={"creative": (delta, delta - 0.004, delta + 0.004)}))
    up = ("0.2", "0.3")
    rows += [row(10000 + 600 * i, rule="loop_rate_hz", old=o, new=n, verdict=v, n=n_,
                 confounded=c, d={"risk": (0.05, 0.01, 0.09)})
             for i, (o, n, v, n_, c) in enumerate([
                 (*up, "warning", 150, False), (*up, "warning", 150, False),
                 (*up, "warning", 150, False), (*up, "good", 20, False),
                 (*up, "mixed", 150, True)])]
    rows += [row(20000 + 600 * i, rule="mode", old="slow", new="fast", verdict="good",
                 actor="Sena | ops")
             for i in range(2)]
    write_effects(root / "gw-b", rows)
    write_notes(root / "gw-b", rows[:8], [f"note {i}: *why* <b>" for i in range(8)])
    # Samples around risk_max's two newest changes (+3600 s and +4200 s), the pictures
    # drawn: a step, a drift, a signal with a gap (blank fields), a constant one.
    write_metrics(root / "gw-b", sample_rows(3550, 4240, value=lambda t: (
        1 if t < 4200 else 2, 0.5 + t / 1000, "" if 4180 < t < 4190 else (t % 7) / 7, 0.25)))
    simulate(root / "<gw>", rnd, 4, -0.5)
    # A gateway whose effects file predates intervals and verdicts.
    write_effects(root / "gw-old", [row(600 * i, rule="creative_min", old="0.2", new="0.25")
                                    for i in range(3)], header=V1)


def fixed_single(root: Path) -> None:
    """One gateway: a rule set again to the value it had (twice good: a pattern), and a
    rule changed once."""
    rows = [row(600 * i, rule="mode_hz", old="5", new="5", verdict="good") for i in range(3)]
    rows.append(row(3000, rule="risk_max", old="0.5", new="0.4", verdict="warning",
                    d={"risk": (-0.05, -0.09, -0.01)}))
    write_effects(root, rows)


def masked(text: str, root: Path) -> str:
    for written in {str(root), md_escape(str(root)), html.escape(str(root))}:
        text = text.replace(written, "<root>")
    return re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "Generated <now>", text)


@pytest.mark.parametrize("layout, gateways", [("fleet", 4), ("single", 1)])
@pytest.mark.parametrize("name", ["runbook.md", "runbook.html"])
def test_the_runbook_of_a_fixed_root_is_the_committed_one(tmp_path, name, layout, gateways):
    root = tmp_path / layout
    (fixed_fleet if layout == "fleet" else fixed_single)(root)
    md, html = run(root, tmp_path / "out", "--charts-per-rule", "2",
                   "--grafana-url", "https://grafana.example/g")
    text = masked(md if name == "runbook.md" else html, root)
    assert text.count("Generated <now>") == gateways and "<root>" in text
    matches(name if layout == "fleet" else name.replace(".", "-single."), text)
