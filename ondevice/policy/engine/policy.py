"""The decision: device state -> effective budget -> the most accurate sub-network that fits, with hysteresis.

Written as a thin function of ``policy.json`` and the sub-network table so that Kotlin and Swift can
re-implement it line for line (docs/policy.md is the spec; tests/policy_vectors.json checks it):

* only IEEE-754 double arithmetic (+, -, *, /, <, <=, >=), in the order written below; no rounding, no
  ``pow``/``exp``/``log`` (their results differ between math libraries), so every language gets the same bits;
* ties are impossible after ``build_table`` (the front is strictly increasing) and the scan order is fixed;
* the only state carried between calls is ``PolicyMemory(gates, since_s, up_since_s)``.

Per call, with the state normalized first (unknown -> documented defaults, out-of-range -> clamped):

    level       = max(thermal status, level forecast by the headroom)      (unknown: thermal.unknown_level)
    m           = the hottest level <= level with a measured thermal table, else 0 (the cool table)
    front       = the front of table m
    latency_cap = budget_ms / thermal.slowdown[level]                      (m = 0)
                = budget_ms / (thermal.slowdown[level] / thermal.slowdown[m])   (m > 0: only the heat beyond m)
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
backwards restarts the dwell at the new time. When the current choice is not on the front of this level's
table (another table ranks it behind a sub-network that is at least as accurate and no slower), that
sub-network replaces it at once: the first front entry at least as accurate.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..config import POLICY_NAME, PolicyConfig, load_policy_config
from ..state import DeviceState, Thermal
from .table import SubnetTable, SubNetwork, build_table

__all__ = ["Decision", "Policy", "PolicyMemory", "PolicySession"]

_MAX_LEVEL = len(Thermal) - 1


class _Front(NamedTuple):
    """One front as the decision reads it: gates, latency and accuracy by index (cheapest first)."""

    table_level: int  # the level whose measured table it comes from (0: the cool table)
    gates: tuple[str, ...]
    latency_ms: tuple[float, ...]
    accuracy: tuple[float, ...]
    index: dict[str, int]
    slowdown: float  # the throttling the table does not already hold

    @classmethod
    def of(cls, table_level: int, front: tuple[SubNetwork, ...], slowdown: float) -> _Front:
        gates = tuple(s.gates for s in front)
        lat, acc = tuple(s.latency_ms for s in front), tuple(s.accuracy for s in front)
        return cls(table_level, gates, lat, acc, {g: i for i, g in enumerate(gates)}, slowdown)


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
        "table_level",
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
        table_level: int = 0,
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
        self.table_level = table_level
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
        th = config.thermal
        self._fronts = []  # by level 0..6: the front of the hottest measured table at or below it
        measured = {0: table.front} | {hot.level: hot.front for hot in table.thermal}
        for level in range(_MAX_LEVEL + 1):
            m = max(lv for lv in measured if lv <= level)
            slowdown = th.slowdown[level] if m == 0 else th.slowdown[level] / th.slowdown[m]
            self._fronts.append(_Front.of(m, measured[m], slowdown))
        self._accuracy_of = {s.gates: s.accuracy for s in table.candidates}
        self._gates = self._fronts[0].gates
        bat, hy = config.battery, config.hysteresis
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
        """Gates of the front of the cool table, cheapest first."""
        return self._gates

    def front_at(self, level: int) -> tuple[str, ...]:
        """Gates of the front the policy uses at thermal ``level`` (0..6), cheapest first."""
        return self._fronts[level].gates

    def latency_at(self, level: int, gates: str) -> float:
        """The table latency (ms) of front entry ``gates`` at thermal ``level``."""
        front = self._fronts[level]
        return front.latency_ms[front.index[gates]]

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

        front = self._fronts[level]
        lat, acc, gates = front.latency_ms, front.accuracy, front.gates
        energy = self._thermal_energy[level] * battery_energy * (self._power_save if state.power_save else 1.0)
        latency_cap = budget / front.slowdown
        energy_cap = energy * lat[-1]
        cap = latency_cap if latency_cap <= energy_cap else energy_cap

        k = bisect_right(lat, cap)
        target = self._settle(acc, k - 1, floor) if k > 0 and acc[k - 1] >= floor else 0

        previous = None if memory is None else memory.gates
        current = None
        if previous in front.index:
            current = front.index[previous]
        elif previous in self._accuracy_of:  # ranked behind one at least as accurate and no slower: take that one
            current = 0
            while acc[current] < self._accuracy_of[previous]:
                current += 1
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
                up = self._settle(acc, k_up - 1, floor) if k_up > 0 and acc[k_up - 1] >= floor else 0
                if up > current:
                    up_since = memory.up_since_s
                    if up_since is None or up_since > now_s:
                        up_since = now_s
                    if now_s - up_since >= self._dwell_up:
                        choice = up
        switched = current is not None and gates[choice] != previous
        if switched:
            since = now_s
            up_since = None
        memory = PolicyMemory(gates[choice], since, up_since)
        decision = Decision(
            gates[choice],
            choice,
            lat[choice],
            acc[choice],
            gates[target],
            switched,
            level,
            battery,
            energy,
            budget,
            latency_cap,
            energy_cap,
            cap,
            floor,
            front.table_level,
        )
        return decision, memory

    def _settle(self, acc: tuple[float, ...], best: int, floor: float) -> int:
        """The cheapest front index up to ``best`` whose accuracy is within the slack of ``best``'s and meets the
        floor (``best`` meets it)."""
        need = acc[best] - self._slack
        if need < floor:
            need = floor
        i = 0
        while acc[i] < need:
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
        front = self._fronts[decision.level]
        if front.table_level == 0:
            table = "the cool latency table"
        else:
            table = f"the latency table measured at {Thermal(front.table_level).name}"
        lines.append(
            f"latency: budget {decision.latency_budget_ms:g} ms / expected slowdown {front.slowdown:g} "
            f"= {decision.latency_cap_ms:.2f} ms of {table}"
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
            f"{decision.energy:.3g} of {front.latency_ms[-1]:g} ms = {decision.energy_cap_ms:.2f} ms"
        )
        lines.append(f"effective budget: {decision.cap_ms:.2f} ms ({decision.limit} limits)")
        fits = [g for g, ms in zip(front.gates, front.latency_ms) if ms <= decision.cap_ms]
        lines.append(
            f"fits: {', '.join(fits) if fits else 'nothing'} (front, cheapest first: {', '.join(front.gates)})"
        )
        name = next(s.name for s in self.table.candidates if s.gates == decision.gates)
        chosen = f"choice: {decision.gates} ({name}, accuracy {decision.accuracy:.4g}, "
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
