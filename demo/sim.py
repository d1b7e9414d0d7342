"""The simulated gateway: 5 Hz signals, rule changes and status, one tick at a time.

Pure and deterministic for a given seed and start time, so tests can run hours of it
without a clock; demo.live paces it against the wall clock.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tracker.contract import SIGNALS as METRICS
from tracker.contract import STATES

KST = timezone(timedelta(hours=9))
TICK = timedelta(milliseconds=200)
TICK_S = 0.2
TICKS_PER_S = 5

ACTORS = ("Lubit", "Sena", "Lumen", "Orin", "Mira")


@dataclass(frozen=True)
class SignalSpec:
    base: float  # level with every rule at its default
    noise_sd: float  # stationary sd of the fast jitter
    drift_sd: float  # stationary sd of the slow baseline wander
    high: float  # physical ceiling (all signals are >= 0)
    shake: float  # how much a backfiring change pushes this signal up
    boot: float  # extra level right after the gateway starts, fading out


SIGNALS: dict[str, SignalSpec] = {
    "phase_diff": SignalSpec(0.18, 0.015, 0.02, math.pi, shake=0.09, boot=0.40),
    "entropy_rate": SignalSpec(0.42, 0.012, 0.02, 1.0, shake=0.07, boot=0.20),
    "creative_band": SignalSpec(0.55, 0.012, 0.02, 1.0, shake=0.0, boot=-0.15),
    "risk_band": SignalSpec(0.22, 0.010, 0.015, 1.0, shake=0.05, boot=0.05),
}


@dataclass(frozen=True)
class RuleSpec:
    default: float
    low: float
    high: float
    steps: tuple[float, ...]
    decimals: int
    # Shift of each signal's settled level per unit of rule change.
    effects: Mapping[str, float] = field(default_factory=dict)
    raise_note: str = ""
    lower_note: str = ""

    def clean(self, value: float) -> float:
        """Round to the rule's precision; whole-number rules stay ints in the JSON."""
        if self.decimals == 0:
            return int(round(value))
        return round(value, self.decimals)


RULES: dict[str, RuleSpec] = {
    "creative_min": RuleSpec(
        default=0.22,
        low=0.10,
        high=0.40,
        steps=(0.01, 0.02, 0.03),
        decimals=2,
        effects={"creative_band": 1.2, "entropy_rate": 0.25, "risk_band": 0.15},
        raise_note="stabilize creative band",
        lower_note="give creative band more room",
    ),
    "risk_max": RuleSpec(
        default=0.45,
        low=0.25,
        high=0.70,
        steps=(0.02, 0.03, 0.05),
        decimals=2,
        effects={"risk_band": 0.6, "creative_band": 0.15},
        raise_note="relax risk ceiling",
        lower_note="tighten risk ceiling",
    ),
    "loop_rate_hz": RuleSpec(
        default=20,
        low=10,
        high=40,
        steps=(2, 4, 5),
        decimals=0,
        effects={"phase_diff": -0.004, "entropy_rate": 0.0015},
        raise_note="faster loop to cut phase lag",
        lower_note="ease loop load",
    ),
    "entropy_cap": RuleSpec(
        default=0.70,
        low=0.45,
        high=0.95,
        steps=(0.05,),
        decimals=2,
        effects={"entropy_rate": 0.4, "creative_band": 0.15},
        raise_note="allow more exploration",
        lower_note="cap entropy spikes",
    ),
    "phase_tolerance": RuleSpec(
        default=0.15,
        low=0.05,
        high=0.35,
        steps=(0.01, 0.02, 0.03),
        decimals=2,
        effects={"phase_diff": 0.8, "entropy_rate": -0.1},
        raise_note="loosen phase tolerance",
        lower_note="tighter phase lock",
    ),
}

# Each actor has habits; round-robin over actors, then a rule from their habits.
ACTOR_FOCUS: dict[str, tuple[str, ...]] = {
    "Lubit": ("creative_min", "entropy_cap"),
    "Sena": ("risk_max", "phase_tolerance"),
    "Lumen": ("loop_rate_hz", "phase_tolerance", "creative_min"),
    "Orin": ("entropy_cap", "risk_max", "loop_rate_hz"),
    "Mira": tuple(RULES),
}

CHANGE_GAP_S = (60, 180)
EFFECT_LAG_S = (2.0, 5.0)  # the gateway reacts "a little later"
RESPONSE_TAU_S = 5.0  # then settles to the new level with this time constant
BACKFIRE_P = 0.15
BACKFIRE_P_EXTREME = 0.5  # pushing a rule into the outer fifth of its range shakes the loop
SHAKE_DECAY_TAU_S = 30.0
SHAKE_RISE_TAU_S = 3.0
SHAKE_JITTER = 1.5  # a shaken loop is also noisier
NOISE_PHI = 0.85  # lag-1 autocorrelation of the jitter at 5 Hz
DRIFT_TAU_S = 240.0
BOOT_TAU_S = 6.0

# Status: boot sequence by time since start, then lock/unlock on smoothed phase_diff.
BOOT_INITIALIZING_S = 2.0
BOOT_BINDING_S = 8.0
BOOT_RESONATING_S = 20.0
PHASE_EMA_TAU_S = 5.0
LOCK_BELOW = 0.22
LOCK_HOLD_S = 10.0
UNLOCK_ABOVE = 0.25
LOST_ABOVE = 0.32
REBIND_S = 10.0


def _alpha(tau_s: float) -> float:
    return 1.0 - math.exp(-TICK_S / tau_s)


@dataclass(frozen=True)
class RuleChange:
    ts: datetime
    actor: str
    rule: str
    old: float
    new: float
    note: str
    backfire: bool  # ground truth for tests; never written to the history

    def record(self) -> dict[str, object]:
        """The rules_history.jsonl object (SPEC field order)."""
        return {
            "ts": self.ts.isoformat(timespec="seconds"),
            "actor": self.actor,
            "rule": self.rule,
            "old": self.old,
            "new": self.new,
            "note": self.note,
        }


@dataclass(frozen=True)
class Tick:
    ts: datetime
    values: tuple[float, float, float, float]  # in METRICS order
    status: str
    change: RuleChange | None


@dataclass(frozen=True)
class Personality:
    """How one simulated gateway of a fleet differs from the others."""

    name: str
    noise: float = 1.0  # times each signal's jitter
    drift: float = 1.0  # times each signal's slow wander
    pace: float = 1.0  # times the gap between rule changes


# A fleet demo cycles through these, so the fleet view has gateways worth comparing.
PERSONALITIES = (
    Personality("steady"),
    Personality("jittery", noise=2.5),
    Personality("drifting", drift=3.0),
    Personality("busy", pace=0.5),
)


@dataclass
class _Pending:
    tick: int
    deltas: list[float]
    shake: float


class Simulator:
    """Yields one Tick per 200 ms from `start`; the same seed and inputs give the same ticks.

    `rules` and `last_actor` let a restarted demo carry on from its own history.
    """

    def __init__(
        self,
        seed: int | None,
        start: datetime,
        rules: Mapping[str, float] | None = None,
        last_actor: str | None = None,
        first_change_s: float = 60.0,
        personality: Personality = PERSONALITIES[0],
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if start.microsecond % 200_000:
            raise ValueError("start must sit on the 200 ms sample grid")
        self.start = start.astimezone(KST)
        self._rng = random.Random(seed)
        self.personality = personality
        self._i = 0
        self.rules: dict[str, float] = {name: spec.default for name, spec in RULES.items()}
        for name, value in (rules or {}).items():
            spec = RULES.get(name)
            if spec is not None:
                self.rules[name] = spec.clean(min(spec.high, max(spec.low, value)))
        # Carry the rotation on from the last actor in an existing history.
        after = ACTORS.index(last_actor) + 1 if last_actor in ACTORS else 0
        self._actor_idx = after % len(ACTORS)
        self._last_rule: str | None = None
        self._next_change = self._on_whole_second(round(first_change_s * TICKS_PER_S))

        specs = [SIGNALS[m] for m in METRICS]
        self._target = [self._settled(k) for k in range(len(METRICS))]
        self._level = list(self._target)
        drift_sd = [s.drift_sd * personality.drift for s in specs]
        noise_sd = [s.noise_sd * personality.noise for s in specs]
        self._drift = [self._rng.gauss(0.0, sd) for sd in drift_sd]
        self._jitter = [self._rng.gauss(0.0, sd) for sd in noise_sd]
        drift_phi = math.exp(-TICK_S / DRIFT_TAU_S)
        self._drift_phi = drift_phi
        self._drift_innov = [sd * math.sqrt(1 - drift_phi**2) for sd in drift_sd]
        self._noise_innov = [sd * math.sqrt(1 - NOISE_PHI**2) for sd in noise_sd]
        self._pending: list[_Pending] = []
        self._drive = 0.0
        self._shake = 0.0

        self.status = STATES[0]
        self._phase_ema: float | None = None
        self._calm_ticks = 0
        self._rebind_until = round(BOOT_RESONATING_S * TICKS_PER_S)

    def _settled(self, k: int) -> float:
        metric = METRICS[k]
        level = SIGNALS[metric].base
        for name, spec in RULES.items():
            level += spec.effects.get(metric, 0.0) * (self.rules[name] - spec.default)
        return level

    def _on_whole_second(self, tick: int) -> int:
        # Rule changes happen on whole seconds so their ts reads like a person's entry.
        ms = (self.start + tick * TICK).microsecond // 1000
        return tick + (1000 - ms) // 200 if ms else tick

    def ticks(self) -> Iterator[Tick]:
        """Endless stream of ticks."""
        while True:
            yield self.step()

    def step(self) -> Tick:
        """Advance 200 ms and return the sample (and rule change, if one happens now)."""
        i = self._i
        ts = self.start + i * TICK
        change = None
        if i == self._next_change:
            change = self._change(i, ts)
            gap_s = self._rng.randint(*CHANGE_GAP_S) * self.personality.pace
            self._next_change = self._on_whole_second(i + round(gap_s * TICKS_PER_S))

        while self._pending and self._pending[0].tick <= i:
            due = self._pending.pop(0)
            for k, d in enumerate(due.deltas):
                self._target[k] += d
            self._drive += due.shake

        self._drive *= math.exp(-TICK_S / SHAKE_DECAY_TAU_S)
        self._shake += (self._drive - self._shake) * _alpha(SHAKE_RISE_TAU_S)
        boot = math.exp(-i * TICK_S / BOOT_TAU_S)
        gauss = self._rng.gauss
        respond = _alpha(RESPONSE_TAU_S)
        jitter_scale = 1.0 + SHAKE_JITTER * self._shake
        values = []
        for k, metric in enumerate(METRICS):
            spec = SIGNALS[metric]
            self._level[k] += (self._target[k] - self._level[k]) * respond
            self._drift[k] = self._drift[k] * self._drift_phi + self._drift_innov[k] * gauss()
            self._jitter[k] = (
                self._jitter[k] * NOISE_PHI + self._noise_innov[k] * jitter_scale * gauss()
            )
            v = (
                self._level[k]
                + self._drift[k]
                + self._jitter[k]
                + spec.shake * self._shake
                + spec.boot * boot
            )
            values.append(min(spec.high, max(0.0, v)))

        self._update_status(i, values[0])
        self._i = i + 1
        return Tick(ts, (values[0], values[1], values[2], values[3]), self.status, change)

    def _change(self, i: int, ts: datetime) -> RuleChange:
        actor = ACTORS[self._actor_idx]
        self._actor_idx = (self._actor_idx + 1) % len(ACTORS)
        choices = [r for r in ACTOR_FOCUS[actor] if r != self._last_rule] or list(RULES)
        rule = self._rng.choice(choices)
        self._last_rule = rule
        spec = RULES[rule]
        old = self.rules[rule]
        half_span = (spec.high - spec.low) / 2
        # Lean back towards the default so rules wander without pinning at a bound.
        p_up = min(0.9, max(0.1, 0.5 + 0.35 * (spec.default - old) / half_span))
        direction = 1 if self._rng.random() < p_up else -1
        step = self._rng.choice(spec.steps)
        new = old + direction * step
        if not spec.low <= new <= spec.high:
            new = old - direction * step
        new = spec.clean(new)
        self.rules[rule] = new

        edge = (spec.high - spec.low) / 5
        extreme = new < spec.low + edge or new > spec.high - edge
        backfire = self._rng.random() < (BACKFIRE_P_EXTREME if extreme else BACKFIRE_P)
        lag = round(self._rng.uniform(*EFFECT_LAG_S) * TICKS_PER_S)
        deltas = [spec.effects.get(m, 0.0) * (new - old) for m in METRICS]
        shake = self._rng.uniform(0.8, 1.3) if backfire else 0.0
        pending = _Pending(i + lag, deltas, shake)
        bisect.insort(self._pending, pending, key=lambda p: p.tick)

        note = spec.raise_note if new > old else spec.lower_note
        return RuleChange(ts, actor, rule, old, new, note, backfire)

    def _update_status(self, i: int, phase: float) -> None:
        if self._phase_ema is None:
            self._phase_ema = phase
        else:
            self._phase_ema += (phase - self._phase_ema) * _alpha(PHASE_EMA_TAU_S)
        t_s = i * TICK_S
        if t_s < BOOT_INITIALIZING_S:
            self.status = "unknown"
            return
        if t_s < BOOT_BINDING_S:
            self.status = "initializing"
            return
        ema = self._phase_ema
        if self.status in ("resonating", "locked") and ema > LOST_ABOVE:
            self.status = "binding"
            self._rebind_until = i + round(REBIND_S * TICKS_PER_S)
        elif self.status in ("unknown", "initializing", "binding"):
            self.status = "binding" if i < self._rebind_until else "resonating"
            self._calm_ticks = 0
        elif self.status == "resonating":
            self._calm_ticks = self._calm_ticks + 1 if ema < LOCK_BELOW else 0
            if self._calm_ticks >= LOCK_HOLD_S * TICKS_PER_S:
                self.status = "locked"
        elif ema > UNLOCK_ABOVE:
            self.status = "resonating"
            self._calm_ticks = 0
