"""Which gateways a data root holds (SPEC "A fleet of gateways").

A root holding a gateway's files (logs/metrics.csv, controls/rules_history.jsonl or
gateway_activation.yaml) is one gateway, named by LUMEN_GATEWAY or else the directory's
name. Otherwise every subdirectory laid out like a gateway (logs/, controls/ or the yaml)
is a gateway named by its directory. A root with neither (nothing written yet, or only
empty logs/ and controls/, as a fresh volume of the project image has) is taken as one
gateway still to come, as before fleets existed. Looked up again at every poll, so a
gateway directory that appears is picked up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tracker.settings import ACTIVATION, HISTORY, METRICS_CSV

# What makes a directory a gateway: any of the layout's entries (logs/, controls/, the yaml).
_MARKERS = (HISTORY.parts[0], METRICS_CSV.parts[0], ACTIVATION.name)

# A gateway name is a label value and part of URLs: keep what a directory name allows,
# less what would be confusing (hidden directories, whitespace-only names).
_HIDDEN = re.compile(r"^\.|^\s*$")


@dataclass(frozen=True)
class Gateway:
    name: str
    root: Path


def _is_gateway(path: Path) -> bool:
    return any(os.path.exists(path / marker) for marker in _MARKERS)


def _has_gateway_files(path: Path) -> bool:
    # Files, not directories: the image's /data comes with empty logs/ and controls/ (for
    # their ownership), which must not make a fleet root look like one gateway.
    return any(os.path.exists(path / rel) for rel in (METRICS_CSV, HISTORY, ACTIVATION))


def single_name(root: Path, env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get("LUMEN_GATEWAY") or "").strip() or root.resolve().name or "gateway"


def gateways(root: Path, env: dict[str, str] | None = None) -> list[Gateway]:
    """The gateways under `root`, sorted by name (see the module doc)."""
    if _has_gateway_files(root):
        return [Gateway(single_name(root, env), root)]
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:  # missing or unreadable: the caller says so when it reads the files
        return [Gateway(single_name(root, env), root)]
    fleet = [Gateway(e.name, Path(e.path)) for e in entries
             if not _HIDDEN.match(e.name) and _is_dir(e) and _is_gateway(Path(e.path))]
    return fleet or [Gateway(single_name(root, env), root)]


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link that loops or goes nowhere is not a gateway
        return False
