"""The demo's side of the data root: SPEC formats, whole-line appends, atomic status writes.

Readers (tracker, exporter) read these files while they grow, so every append is one
os.write of complete lines and the status file is replaced, never rewritten in place.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from demo.sim import KST, METRICS, RULES, RuleChange, Tick

METRICS_FILE = Path("logs/metrics.csv")
HISTORY_FILE = Path("controls/rules_history.jsonl")
STATUS_FILE = Path("gateway_activation.yaml")
MARKER_FILE = Path(".lumen-demo")
# Any of these without the marker means the root holds someone's real data. They are the
# gateway's own files: rules_effects.csv is left out because the tracker creates it even in
# an empty root, and it may start before the demo does.
DATA_FILES = (METRICS_FILE, HISTORY_FILE, STATUS_FILE)

METRICS_HEADER = "ts," + ",".join(METRICS)
MARKER_TEXT = (
    "This data root is written by lumen-demo (simulated gateway data).\n"
    "While this file exists the demo keeps appending here; to use the root for real data,\n"
    "delete it together with logs/, controls/ and gateway_activation.yaml.\n"
)
_TAIL_CHUNK = 64 * 1024


def format_ts(ts: datetime) -> str:
    """Fixed-width KST timestamp, e.g. 2025-10-23T13:10:00.200+09:00."""
    return ts.astimezone(KST).isoformat(timespec="milliseconds")


def metrics_line(tick: Tick) -> str:
    return format_ts(tick.ts) + "".join(f",{v:.4f}" for v in tick.values) + "\n"


def history_line(change: RuleChange) -> str:
    return json.dumps(change.record(), ensure_ascii=False, separators=(",", ":")) + "\n"


def append_lines(path: Path, lines: list[str]) -> None:
    """Append complete lines with a single write so a reader never sees a torn batch."""
    if not lines:
        return
    data = "".join(lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_status(path: Path, status: str) -> None:
    """Replace gateway_activation.yaml atomically: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump({"gateway": {"status": status}}, f, default_flow_style=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_status(path: Path) -> str | None:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    gateway = doc.get("gateway") if isinstance(doc, dict) else None
    status = gateway.get("status") if isinstance(gateway, dict) else None
    return status if isinstance(status, str) else None


def drop_torn_tail(path: Path) -> None:
    """Cut an unterminated last line (a crash mid-write elsewhere) off the demo's own file.

    Appending after it would glue the next line onto it and corrupt both.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        end = size
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            f.seek(start)
            chunk = f.read(end - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                f.truncate(start + nl + 1)
                return
            end = start
        f.truncate(0)


def ensure_metrics_header(path: Path) -> None:
    """Start a new metrics file with its header; an existing one is continued as is."""
    drop_torn_tail(path)
    if not path.exists() or path.stat().st_size == 0:
        append_lines(path, [METRICS_HEADER + "\n"])


def last_metrics_ts(path: Path) -> datetime | None:
    """Timestamp of the newest complete sample, so a restart never goes back in time."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL_CHUNK))
            tail = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    # The last element is "" or a line still being written; skip it either way.
    for line in reversed(tail.split("\n")[:-1]):
        try:
            return datetime.fromisoformat(line.split(",", 1)[0])
        except ValueError:
            continue
    return None


@dataclass
class HistoryState:
    rules: dict[str, float] = field(default_factory=dict)
    last_actor: str | None = None
    last_ts: datetime | None = None


def read_history_state(path: Path) -> HistoryState:
    """Current rule values, last actor and newest change time from the demo's own history."""
    state = HistoryState()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return state
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            ts = datetime.fromisoformat(rec["ts"])
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(rec, dict) or ts.tzinfo is None:
            continue
        new = rec.get("new")
        if rec.get("rule") in RULES and isinstance(new, int | float) and not isinstance(new, bool):
            state.rules[rec["rule"]] = float(new)
        if isinstance(rec.get("actor"), str):
            state.last_actor = rec["actor"]
        if state.last_ts is None or ts > state.last_ts:
            state.last_ts = ts
    return state
