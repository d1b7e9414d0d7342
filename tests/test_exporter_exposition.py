"""The whole exposition of a fixed data root against a committed copy.

Prometheus stores each family's HELP and TYPE as metadata and Grafana's metric browser shows
them, dashboards and alerts read the names, labels and values: a change to any of them should
be a change someone reviews, not one that slips through. After an intended change:

    LUMEN_UPDATE_GOLDEN=1 python3 -m pytest tests/test_exporter_exposition.py

and read the diff of tests/golden/exposition.prom.
"""

from __future__ import annotations

import re
from pathlib import Path

from exporter.cli import build
from tests.golden import matches
from tests.rootdata import sample_rows
from tests.test_exporter_edges import effect, write_root
from tracker.contract import SHORT


def fixed_root(root: Path) -> None:
    """Two written effects (one with intervals and a verdict, one from before them) and a
    pending change, written by hand: the tracker's floating-point output is not the subject."""
    with_intervals = effect("2025-10-23T13:10:00+09:00", "creative_min", d=0.5)
    for k, short in enumerate(SHORT):
        with_intervals.update({f"d_{short}_lo": str(0.25 - k), f"d_{short}_hi": str(0.75 + k)})
    with_intervals["verdict"] = "good"
    older = effect("2025-10-23T13:09:00+09:00", 'risk "max"', d=-1.0, actor="Sena")
    older["confounded"] = "1"
    pending = effect("2025-10-23T13:11:00+09:00", "loop_rate_hz", d=0.0, actor="Lumen")
    write_root(root, [older, with_intervals], pending=[pending],
               metrics=sample_rows(-30, 30, value=lambda t: (1.5, 0.5, 2, 0.25)))
    (root / "gateway_activation.yaml").write_text("gateway:\n  status: binding\n")


def exposition(root: Path) -> str:
    text = build(str(root)).exposition().decode("utf-8")
    # The scrape's own duration is the one value that differs from run to run.
    return re.sub(r"^(lumen_exporter_collect_duration_seconds\{[^}]*\}) \S+$", r"\1 <duration>",
                  text, flags=re.MULTILINE)


def test_the_exposition_of_a_fixed_root_is_the_committed_one(tmp_path):
    root = tmp_path / "north"  # the gateway label is the directory's name
    root.mkdir()
    fixed_root(root)
    text = exposition(root)
    assert text.count("<duration>") == 1
    matches("exposition.prom", text)
