"""Where the data root is and which windows are in force, from flags then environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from tracker.timeparse import parse_zone

HISTORY = Path("controls/rules_history.jsonl")
METRICS_CSV = Path("logs/metrics.csv")
EFFECTS_CSV = Path("logs/rules_effects.csv")
ACTIVATION = Path("gateway_activation.yaml")

# KST is the teams' habit (SPEC); reading offset-less timestamps in the host's zone instead
# would make a container (UTC) and a laptop (KST) disagree about the same file.
DEFAULT_NAIVE_ZONE = "+09:00"


@dataclass(frozen=True)
class Settings:
    root: Path
    pre_s: float = 30.0
    post_s: float = 30.0
    guard_s: float = 1.0
    naive_zone_name: str = DEFAULT_NAIVE_ZONE

    @property
    def naive_zone(self) -> tzinfo:
        return parse_zone(self.naive_zone_name)

    @property
    def history_path(self) -> Path:
        return self.root / HISTORY

    @property
    def metrics_path(self) -> Path:
        return self.root / METRICS_CSV

    @property
    def effects_path(self) -> Path:
        return self.root / EFFECTS_CSV

    @property
    def activation_path(self) -> Path:
        return self.root / ACTIVATION

    def validate(self) -> None:
        if not (self.pre_s > 0 and self.post_s > 0):
            raise ValueError("pre and post windows must be positive seconds")
        if not 0 <= self.guard_s < min(self.pre_s, self.post_s):
            raise ValueError("guard must be >= 0 and shorter than both windows")
        self.naive_zone  # noqa: B018 - raises on an unknown zone name


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as e:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from e


def resolve(
    root: str | None = None,
    pre: float | None = None,
    post: float | None = None,
    guard: float | None = None,
    naive_zone: str | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Flags win over LUMEN_* environment variables, which win over defaults."""
    env = dict(os.environ) if env is None else env
    s = Settings(
        root=Path(root or env.get("LUMEN_ROOT") or "."),
        pre_s=pre if pre is not None else _env_float(env, "LUMEN_EFFECT_PRE_S", 30.0),
        post_s=post if post is not None else _env_float(env, "LUMEN_EFFECT_POST_S", 30.0),
        guard_s=guard if guard is not None else _env_float(env, "LUMEN_EFFECT_GUARD_S", 1.0),
        naive_zone_name=naive_zone or env.get("LUMEN_NAIVE_TZ") or DEFAULT_NAIVE_ZONE,
    )
    s.validate()
    return s
