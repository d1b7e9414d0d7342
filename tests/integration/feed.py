"""A fixture data root fed like the real gateway: 5 Hz samples with real current timestamps.

The signals are flat levels that step at chosen instants, so the effect of a rule change at
such an instant is known exactly: Δ = new level - old level, and the sample counts follow
from the 200 ms grid.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

KST = timezone(timedelta(hours=9))
SIGNALS = ("phase_diff", "entropy_rate", "creative_band", "risk_band")
TICK_MS = 200  # 5 Hz
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def kst(unix_ms: int) -> str:
    """ISO 8601 in KST (the teams' habit), milliseconds when not on a whole second."""
    dt = (_EPOCH + timedelta(milliseconds=unix_ms)).astimezone(KST)
    return dt.isoformat(timespec="seconds" if unix_ms % 1000 == 0 else "milliseconds")


@dataclass(frozen=True)
class Change:
    """A rule change at a whole second and the signal levels from that instant on."""

    unix_s: int
    actor: str
    rule: str
    old: float
    new: float
    levels: tuple[float, float, float, float]

    @property
    def ts(self) -> str:
        return kst(self.unix_s * 1000)

    def line(self) -> str:
        return json.dumps(
            {
                "ts": self.ts,
                "actor": self.actor,
                "rule": self.rule,
                "old": self.old,
                "new": self.new,
                "note": "integration test",
            }
        )


class Gateway:
    """Writes logs/metrics.csv, controls/rules_history.jsonl and gateway_activation.yaml."""

    def __init__(self, root: Path, start_ms: int, levels: tuple[float, ...]) -> None:
        self.root = root
        self.metrics = root / "logs" / "metrics.csv"
        self.history = root / "controls" / "rules_history.jsonl"
        # (from unix ms, levels), in time order; samples take the last level at or before them.
        self._steps: list[tuple[int, tuple[float, ...]]] = [(start_ms, levels)]
        self._next_ms = start_ms - start_ms % TICK_MS
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.metrics.parent.mkdir(parents=True, exist_ok=True)
        self.history.parent.mkdir(parents=True, exist_ok=True)
        self.metrics.write_text("ts," + ",".join(SIGNALS) + "\n", encoding="utf-8")
        self.history.write_text("", encoding="utf-8")
        (root / "gateway_activation.yaml").write_text(
            "gateway:\n  status: resonating\n", encoding="utf-8"
        )

    def step_at(self, unix_ms: int, levels: tuple[float, ...]) -> None:
        """From unix_ms on, samples take these levels (unix_ms must not be written yet)."""
        with self._lock:
            if unix_ms < self._next_ms:
                raise ValueError("that instant is already written")
            self._steps.append((unix_ms, levels))
            self._steps.sort()

    def record(self, change: Change) -> None:
        """Set the levels at the change's instant, then append it to the history."""
        self.step_at(change.unix_s * 1000, change.levels)
        with open(self.history, "a", encoding="utf-8") as f:
            f.write(change.line() + "\n")

    def write_until(self, unix_ms: int) -> None:
        """Append every 200 ms sample up to unix_ms, as whole lines."""
        with self._lock:
            lines = []
            while self._next_ms <= unix_ms:
                levels = next(v for t, v in reversed(self._steps) if t <= self._next_ms)
                lines.append(kst(self._next_ms) + "," + ",".join(f"{v:g}" for v in levels))
                self._next_ms += TICK_MS
            if lines:
                with open(self.metrics, "a", encoding="utf-8") as f:
                    f.write("".join(line + "\n" for line in lines))

    def start(self, clock) -> None:
        """Keep writing in the background until stop(), like a live gateway."""

        def loop() -> None:
            while not self._stop.wait(TICK_MS / 1000):
                self.write_until(int(clock() * 1000))

        self._thread = threading.Thread(target=loop, name="fixture-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def resume(self, clock) -> None:
        """Write again after stop(), from now on: the samples of the pause never existed,
        as when a real gateway was down."""
        with self._lock:
            now_ms = int(clock() * 1000)
            self._next_ms = max(self._next_ms, now_ms - now_ms % TICK_MS)
        self._stop = threading.Event()
        self.start(clock)
