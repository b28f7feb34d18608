"""The decision: device state -> effective budget -> the most accurate sub-network that fits, with hysteresis.

Written as a thin function of ``policy.json`` and the sub-network table so that Kotlin and Swift can
re-implement it line for line (docs/policy.md is the spec; tests/policy_vectors.json checks it):

* only IEEE-754 double arithmetic (+, -, *, /, <, <=, >=), in the order written below; no rounding, no
  ``pow``/``exp``/``log`` (their results differ between math libraries), so every language gets the same bits;
* ties are impossible after ``build_table`` (the front is strictly increasing) and the scan order is fixed;
* the only state carried between calls is ``PolicyMemory(gates, since_s, up_since_s)``.

Per call, with the state normalized first (unknown -> documented defaults, out-of-range -> clamped):

    level       = max(thermal status, level forecast by the headroom)      (unknown: thermal.unknown_level)
    latency_cap = budget_ms / thermal.slowdown[level]
    energy      = thermal.energy[level] * battery_energy * (power_save_energy if power save else 1.0)
    energy_cap  = energy * latency_ms(most accurate on the front)
    cap         = min(latency_cap, energy_cap)
    k           = number of front entries with latency_ms <= cap          (they are a prefix of the front)
    target      = k - 1 if k > 0 and accuracy[k - 1] >= floor else 0       (0 = the cheapest; flagged)

then hysteresis. A downgrade (target below the current choice) happens as soon as the current choice is
``min_dwell_down_s`` old. An upgrade goes to the best entry that fits
``up_cap = min(latency_cap * (1 - upgrade_margin), energy_cap)`` and meets the floor, and only after such an
upgrade has been possible at every call for ``min_dwell_up_s``: a noisy sensor that flips the level back and
forth never holds that long. (The margin is on the latency side only: a sub-network that would just meet the
deadline is not worth switching up to, while the energy cap is a step function of discrete readings that the
dwell already steadies, and a margin there would bar the most accurate one forever.) A clock that goes
backwards restarts the dwell at the new time.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..config import POLICY_NAME, PolicyConfig, load_policy_config
from ..state import DeviceState, Thermal
from .table import SubnetTable, build_table

__all__ = ["Decision", "Policy", "PolicyMemory", "PolicySession"]

_MAX_LEVEL = len(Thermal) - 1


class PolicyMemory(NamedTuple):
    """What the policy remembers between calls.

    gates: the current choice (None before the first decision); since_s: when it was made; up_since_s: since
    when an upgrade has been possible at every call (None when it is not).
    """

    gates: str | None = None
    since_s: float = 0.0
    up_since_s: float | None = None


class Decision:
    """A choice and the numbers behind it (``explain()`` words them)."""

    __slots__ = (
        "accuracy",
        "battery",
        "below_floor",
        "cap_ms",
        "energy",
        "energy_cap_ms",
        "floor",
        "gates",
        "held",
        "index",
        "latency_budget_ms",
        "latency_cap_ms",
        "latency_ms",
        "level",
        "over_budget",
        "switched",
        "target",
    )

    def __init__(
        self,
        gates: str,
        index: int,
        latency_ms: float,
        accuracy: float,
        target: str,
        switched: bool,
        level: int,
        battery: float,
        energy: float,
        latency_budget_ms: float,
        latency_cap_ms: float,
        energy_cap_ms: float,
        cap_ms: float,
        floor: float,
    ) -> None:
        self.gates = gates
        self.index = index
        self.latency_ms = latency_ms
        self.accuracy = accuracy
        self.target = target
        self.switched = switched
        self.held = gates != target
        self.level = level
        self.battery = battery
        self.energy = energy
        self.latency_budget_ms = latency_budget_ms
        self.latency_cap_ms = latency_cap_ms
        self.energy_cap_ms = energy_cap_ms
        self.cap_ms = cap_ms
        self.floor = floor
        self.below_floor = accuracy < floor
        self.over_budget = latency_ms > cap_ms

    @property
    def limit(self) -> str:
        """Which cap binds: "latency" (the deadline at this heat) or "energy" (heat, battery, power-save)."""
        return "latency" if self.latency_cap_ms <= self.energy_cap_ms else "energy"

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__} | {"limit": self.limit}

    def __repr__(self) -> str:
        flags = [f for f in ("below_floor", "over_budget", "held", "switched") if getattr(self, f)]
        return f"Decision({self.gates}, cap {self.cap_ms:.2f} ms, level {Thermal(self.level).name}, flags {flags})"


class Policy:
    """The policy for one bundle on one device: ``decide(state, now_s, memory)`` is pure."""

    def __init__(self, table: SubnetTable, config: PolicyConfig | None = None) -> None:
        if not table.front:
            raise ValueError("the policy needs at least one sub-network; re-run `ondevice export`")
        self.table = table
        self.config = config = config or PolicyConfig()
        front = table.front
        self._gates = tuple(s.gates for s in front)
        self._lat = tuple(s.latency_ms for s in front)
        self._acc = tuple(s.accuracy for s in front)
        self._index = {g: i for i, g in enumerate(self._gates)}
        self._ref_ms = self._lat[-1]
        th, bat, hy = config.thermal, config.battery, config.hysteresis
        self._slowdown = th.slowdown
        self._thermal_energy = th.energy
        self._thresholds = th.headroom_thresholds
        self._unknown_level = th.unknown_level
        self._tiers = tuple((t.below, t.energy) for t in bat.tiers)
        self._unknown_battery = bat.unknown_fraction
        self._power_save = bat.power_save_energy
        self._charging_ignores = bat.charging_ignores_battery
        self._default_budget = config.latency.default_budget_ms
        self._default_floor = config.accuracy.default_floor
        self._slack = config.accuracy.slack
        self._up_scale = 1.0 - hy.upgrade_margin
        self._dwell_up = hy.min_dwell_up_s
        self._dwell_down = hy.min_dwell_down_s

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], config: PolicyConfig | None = None, device: str | None = None
    ) -> Policy:
        config = config or PolicyConfig()
        return cls(build_table(manifest, config, device), config)

    @classmethod
    def from_bundle(cls, bundle: str | Path, device: str | None = None, config: PolicyConfig | None = None) -> Policy:
        """Read ``manifest.json`` and, unless ``config`` is given, ``policy.json`` (the defaults if there is none)."""
        from ...contract.manifest import load_manifest

        bundle = Path(bundle)
        manifest = load_manifest(bundle)
        if config is None:
            folder = bundle if bundle.is_dir() else bundle.parent
            config = load_policy_config(folder) if (folder / POLICY_NAME).is_file() else PolicyConfig()
        return cls.from_manifest(manifest, config, device)

    @property
    def front(self) -> tuple[str, ...]:
        """Gates of the front, cheapest first."""
        return self._gates

    def thermal_level(self, thermal: int | None, headroom: float | None) -> int:
        """max(status, headroom forecast); status clamped to 0..6, negative = unknown; NaN/None headroom ignored."""
        level = -1
        if thermal is not None and thermal >= 0:
            level = thermal if thermal <= _MAX_LEVEL else _MAX_LEVEL
        if headroom is not None and headroom == headroom:  # not NaN
            forecast = 0
            for threshold in self._thresholds:
                if headroom >= threshold:
                    forecast += 1
                else:
                    break
            if forecast > level:
                level = forecast
        return self._unknown_level if level < 0 else level

    def battery_energy(self, battery: float | None, charging: bool | None) -> tuple[float, float]:
        """(battery fraction used, energy factor of its tier): unknown/NaN/negative -> unknown_fraction, > 1 -> 1."""
        if battery is None or not battery >= 0.0:
            battery = self._unknown_battery
        elif battery > 1.0:
            battery = 1.0
        if charging and self._charging_ignores:
            return battery, 1.0
        for below, energy in self._tiers:
            if battery < below:
                return battery, energy
        return battery, 1.0

    def decide(
        self, state: DeviceState, now_s: float, memory: PolicyMemory | None = None
    ) -> tuple[Decision, PolicyMemory]:
        """The choice for ``state`` at ``now_s`` (monotonic seconds) given the previous ``memory``; pure."""
        if not math.isfinite(now_s):
            raise ValueError(f"now_s must be a finite time in seconds, got {now_s!r}")
        level = self.thermal_level(state.thermal, state.headroom)
        battery, battery_energy = self.battery_energy(state.battery, state.charging)
        budget = state.latency_budget_ms
        if budget is None or not budget > 0.0:  # None, NaN, 0 or negative
            budget = self._default_budget
        floor = state.accuracy_floor
        if floor is None or floor != floor:
            floor = self._default_floor

        energy = self._thermal_energy[level] * battery_energy * (self._power_save if state.power_save else 1.0)
        latency_cap = budget / self._slowdown[level]
        energy_cap = energy * self._ref_ms
        cap = latency_cap if latency_cap <= energy_cap else energy_cap

        lat, acc = self._lat, self._acc
        k = bisect_right(lat, cap)
        target = self._settle(k - 1, floor) if k > 0 and acc[k - 1] >= floor else 0

        current = None if memory is None or memory.gates is None else self._index.get(memory.gates)
        up_since = None
        if current is None:
            choice = target
            since = now_s
        else:
            since = memory.since_s
            if now_s < since:  # the clock went backwards: the dwell restarts now
                since = now_s
            choice = current
            if target < current:
                if now_s - since >= self._dwell_down:
                    choice = target
            elif target > current:
                up_cap = latency_cap * self._up_scale
                if energy_cap < up_cap:
                    up_cap = energy_cap
                k_up = bisect_right(lat, up_cap)
                up = self._settle(k_up - 1, floor) if k_up > 0 and acc[k_up - 1] >= floor else 0
                if up > current:
                    up_since = memory.up_since_s
                    if up_since is None or up_since > now_s:
                        up_since = now_s
                    if now_s - up_since >= self._dwell_up:
                        choice = up
        switched = current is not None and choice != current
        if switched:
            since = now_s
            up_since = None
        memory = PolicyMemory(self._gates[choice], since, up_since)
        decision = Decision(
            self._gates[choice],
            choice,
            lat[choice],
            acc[choice],
            self._gates[target],
            switched,
            level,
            battery,
            energy,
            budget,
            latency_cap,
            energy_cap,
            cap,
            floor,
        )
        return decision, memory

    def _settle(self, best: int, floor: float) -> int:
        """The cheapest front index up to ``best`` whose accuracy is within the slack of ``best``'s and meets the
        floor (``best`` meets it)."""
        need = self._acc[best] - self._slack
        if need < floor:
            need = floor
        i = 0
        while self._acc[i] < need:
            i += 1
        return i

    def explain(self, decision: Decision, state: DeviceState) -> str:
        """Why ``decision`` was made, in a few lines (for ``ondevice policy decide``)."""
        th, bat = self.config.thermal, self.config.battery
        level = Thermal(decision.level).name
        lines = []
        known = state.thermal is not None and state.thermal >= 0
        status = Thermal(min(state.thermal, _MAX_LEVEL)).name if known else "unknown"
        headroom = state.headroom
        if not known and (headroom is None or headroom != headroom):
            lines.append(f"thermal: status and headroom unknown -> assume {level} (thermal.unknown_level)")
        else:
            hr = "unknown" if headroom is None or headroom != headroom else f"{headroom:g}"
            lines.append(f"thermal: status {status}, headroom {hr} -> level {level}")
        lines.append(
            f"latency: budget {decision.latency_budget_ms:g} ms / expected slowdown {th.slowdown[decision.level]:g} "
            f"= {decision.latency_cap_ms:.2f} ms of table latency"
        )
        if state.charging and bat.charging_ignores_battery:
            why_battery = "charging: battery does not limit"
        elif state.battery is None or not state.battery >= 0:
            why_battery = f"battery unknown -> assume {decision.battery:g}"
        else:
            why_battery = f"battery {decision.battery:.0%}"
        power_save = f" x power-save {bat.power_save_energy:g}" if state.power_save else ""
        lines.append(
            f"energy: thermal {th.energy[decision.level]:g} x battery ({why_battery}){power_save} = "
            f"{decision.energy:.3g} of {self._ref_ms:g} ms = {decision.energy_cap_ms:.2f} ms"
        )
        lines.append(f"effective budget: {decision.cap_ms:.2f} ms ({decision.limit} limits)")
        fits = [g for g, ms in zip(self._gates, self._lat) if ms <= decision.cap_ms]
        lines.append(
            f"fits: {', '.join(fits) if fits else 'nothing'} (front, cheapest first: {', '.join(self._gates)})"
        )
        chosen = (
            f"choice: {decision.gates} ({self.table.front[decision.index].name}, accuracy {decision.accuracy:.4g}, "
        )
        chosen += f"{decision.latency_ms:g} ms)"
        if decision.below_floor:
            chosen += f"; BELOW the accuracy floor {decision.floor:g}: nothing above it fits, so the cheapest"
        if decision.over_budget:
            chosen += "; OVER the effective budget: nothing fits, so the cheapest"
        if decision.held:
            chosen += f"; hysteresis keeps it (greedy target {decision.target})"
        lines.append(chosen)
        return "\n".join(lines)


class PolicySession:
    """A policy with its memory, for callers that decide in sequence: ``session.decide(state, now_s)``."""

    def __init__(self, policy: Policy, memory: PolicyMemory | None = None) -> None:
        self.policy = policy
        self.memory = memory or PolicyMemory()

    def decide(self, state: DeviceState, now_s: float) -> Decision:
        decision, self.memory = self.policy.decide(state, now_s, self.memory)
        return decision
