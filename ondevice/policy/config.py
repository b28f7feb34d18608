"""``policy.json``: every threshold and constant the policy uses, versioned, shipped in the bundle.

The apps read these numbers instead of re-typing them. ``PolicyConfig.from_dict`` is strict: every key
is required, unknown keys are rejected (a typo must not silently fall back to a default), and each value
is checked, against the shipped ``policy.schema.json`` (types, ranges, lengths) and the rules between
values (monotone in heat and battery), with an error that names the key, the value and the rule. Another
``policy_version`` is refused with a message saying which version this ondevice reads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import write_json_atomic
from ..contract.schemas import check_version, first_violation, read_bundle_json
from .state import Thermal

__all__ = [
    "LATENCY_STATISTICS",
    "POLICY_NAME",
    "POLICY_VERSION",
    "AccuracyParams",
    "BatteryParams",
    "BatteryTier",
    "HysteresisParams",
    "LatencyParams",
    "PolicyConfig",
    "PolicyConfigError",
    "ThermalParams",
    "load_policy_config",
    "save_policy_config",
    "write_policy_json",
]

POLICY_NAME = "policy.json"
POLICY_VERSION = 1
LATENCY_STATISTICS = ("median_ms", "p90_ms", "min_ms")
_LEVELS = len(Thermal)


class PolicyConfigError(ValueError):
    """A policy.json of another version, with a missing or unknown key, or with a value the policy cannot use."""


@dataclass(frozen=True)
class LatencyParams:
    """Which latency the policy plans with, the app's default budget, and the estimate used without a table."""

    statistic: str = "p90_ms"  # plan with the tail: a deadline is missed by the slow runs, not the median ones
    default_budget_ms: float = 100.0  # ~10 fps of interactive classification when the app gives no budget
    # No latency table at all: latency_ms = flops / 1e9 * ms_per_gflop. 10 ms per GFLOP is ~100 GFLOP/s
    # effective, fp32 XNNPACK on the big cores of a 2022-23 phone (ResNet-50 at 4.1 GFLOPs -> ~41 ms).
    fallback_ms_per_gflop: float = 10.0


@dataclass(frozen=True)
class AccuracyParams:
    """Which accuracy column ranks sub-networks, the floor when the app gives none, and the slack: of the
    sub-networks the caps allow, the cheapest within ``slack`` (top-1, absolute) of the most accurate one is
    chosen, so that energy is not spent on accuracy differences smaller than the slack (0: always the most
    accurate)."""

    precision: str | None = None  # None: the bundle's precision (manifest precision.name), else "fp32"
    default_floor: float = 0.0
    slack: float = 0.0


@dataclass(frozen=True)
class ThermalParams:
    """Per thermal level (Android's 0 NONE .. 6 SHUTDOWN): expected slowdown and allowed energy.

    ``slowdown[l]``: latency multiplier expected at level l (throttling lowers clocks). Android describes
    LIGHT as "UX not impacted", MODERATE "not largely impacted", SEVERE "largely impacted"; the factors grow
    with that and are the planning side of the simulator's throttling model.
    ``energy[l]``: fraction of the most accurate sub-network's energy per inference that may be spent at level
    l, so that a warm phone sheds load before the OS has to throttle hard; 0 means "the cheapest one".
    ``headroom_thresholds[i]``: an Android headroom >= this value forecasts level i + 1 (LIGHT, MODERATE, ...).
    AOSP normalizes headroom linearly with 1.0 at the SEVERE threshold and 0.0 thirty degrees below it; with a
    Pixel's skin thresholds (LIGHT 39, MODERATE 43, SEVERE 45, CRITICAL 46.5 C) that is 0.8, 0.93, 1.0, 1.05.
    ``unknown_level``: the level assumed when neither status nor headroom is known. LIGHT: we cannot see the
    heat, so plan as if slightly warm (a little latency slack, a little less energy) rather than as cold.
    ``ios_levels``: iOS thermalState nominal, fair, serious, critical on this scale (the usual mapping:
    serious throttles like SEVERE, critical like CRITICAL).
    """

    slowdown: tuple[float, ...] = (1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 3.0)
    energy: tuple[float, ...] = (1.0, 0.9, 0.7, 0.5, 0.0, 0.0, 0.0)
    headroom_thresholds: tuple[float, ...] = (0.8, 0.93, 1.0, 1.05)
    unknown_level: int = int(Thermal.LIGHT)
    ios_levels: tuple[int, ...] = (0, 1, 3, 4)


@dataclass(frozen=True)
class BatteryTier:
    """Battery below ``below`` (fraction, strict <) allows ``energy`` of the full energy per inference."""

    below: float
    energy: float


@dataclass(frozen=True)
class BatteryParams:
    """Battery tiers, the meaning of an unknown battery, power-save, and charging."""

    tiers: tuple[BatteryTier, ...] = (BatteryTier(0.15, 0.6), BatteryTier(0.3, 0.8))
    unknown_fraction: float = 0.5  # iOS reports -1 until monitoring is on: assume half, i.e. no battery penalty
    power_save_energy: float = 0.7  # the user asked the phone to save energy: honour it on top of the tiers
    charging_ignores_battery: bool = True  # on external power the battery level does not limit energy


@dataclass(frozen=True)
class HysteresisParams:
    """Anti-flapping: an upgrade needs a margin and a dwell; a downgrade only a short dwell (safety first)."""

    upgrade_margin: float = 0.1  # upgrade only to a sub-network that fits 10% under the effective budget
    # An upgrade must have been possible at every decision for 20 s: a sensor that flips the level every few
    # seconds never triggers one, and a down-up cycle takes >= 21 s (<= 1 switch per 10 s under any noise).
    min_dwell_up_s: float = 20.0
    min_dwell_down_s: float = 1.0  # at most one downgrade per second (sensors update at 1 Hz)


@dataclass(frozen=True)
class PolicyConfig:
    """Everything ``policy.json`` holds. ``PolicyConfig()`` is the shipped default."""

    latency: LatencyParams = field(default_factory=LatencyParams)
    accuracy: AccuracyParams = field(default_factory=AccuracyParams)
    thermal: ThermalParams = field(default_factory=ThermalParams)
    battery: BatteryParams = field(default_factory=BatteryParams)
    hysteresis: HysteresisParams = field(default_factory=HysteresisParams)

    def __post_init__(self) -> None:
        _check_schema(self.to_dict(), POLICY_NAME)
        _check_order(self, POLICY_NAME)

    def with_hysteresis(self, **changes: float) -> PolicyConfig:
        """A copy with other hysteresis values, e.g. ``with_hysteresis(upgrade_margin=0, min_dwell_up_s=0, ...)``."""
        return replace(self, hysteresis=replace(self.hysteresis, **changes))

    def without_hysteresis(self) -> PolicyConfig:
        """The greedy variant: no margin, no dwell (the simulator's "greedy" baseline)."""
        return self.with_hysteresis(upgrade_margin=0.0, min_dwell_up_s=0.0, min_dwell_down_s=0.0)

    def to_dict(self) -> dict[str, Any]:
        """The policy.json form (lists, not tuples)."""
        data = json.loads(json.dumps(asdict(self)))
        return {"policy_version": POLICY_VERSION, "ondevice_version": __version__, **data}

    @classmethod
    def from_dict(cls, data: Any, source: str = POLICY_NAME) -> PolicyConfig:
        """Parse and check a policy.json object; raise ``PolicyConfigError`` naming the key and the rule."""
        fix = (
            f"Write a version-{POLICY_VERSION} file with `ondevice policy init BUNDLE`, "
            "or use the ondevice that wrote it"
        )
        check_version(data, "policy_version", POLICY_VERSION, source, fix=fix, error=PolicyConfigError)
        _check_schema(data, source)
        battery = {**data["battery"], "tiers": tuple(BatteryTier(**t) for t in data["battery"]["tiers"])}
        sections = {
            name: {k: tuple(v) if isinstance(v, list) else v for k, v in data[name].items()} for name in _SECTIONS
        }
        sections["battery"] = battery
        try:
            return cls(**{name: section_cls(**sections[name]) for name, section_cls in _SECTIONS.items()})
        except PolicyConfigError as err:
            raise PolicyConfigError(str(err).replace(POLICY_NAME, source, 1)) from None


_SECTIONS: dict[str, type] = {
    "latency": LatencyParams,
    "accuracy": AccuracyParams,
    "thermal": ThermalParams,
    "battery": BatteryParams,
    "hysteresis": HysteresisParams,
}


def _check_schema(data: dict[str, Any], source: str) -> None:
    """Every key present and known, every value of the right type and range (the shipped policy.schema.json)."""
    problem = first_violation(data, "policy")
    if problem is None:
        return
    if problem.kind == "missing":
        raise PolicyConfigError(
            f"{source}: missing key {problem.where}; every key is required (the apps read them all). "
            "`ondevice policy init BUNDLE` writes a complete file"
        )
    if problem.kind == "unknown":
        raise PolicyConfigError(f"{source}: unknown key {problem.where}; {problem.rule}")
    raise PolicyConfigError(f"{source}: {problem.where} = {problem.value!r}: {problem.rule}")


def _check_order(cfg: PolicyConfig, source: str) -> None:
    """The rules between values: they make the policy monotone (hotter or emptier never costs more)."""
    th, tiers = cfg.thermal, cfg.battery.tiers
    for i in range(1, _LEVELS):
        if th.slowdown[i] < th.slowdown[i - 1]:
            raise PolicyConfigError(
                f"{source}: thermal.slowdown[{i}] = {th.slowdown[i]!r}: must be >= thermal.slowdown[{i - 1}] = "
                f"{th.slowdown[i - 1]!r} (a hotter phone is never expected to be faster)"
            )
        if th.energy[i] > th.energy[i - 1]:
            raise PolicyConfigError(
                f"{source}: thermal.energy[{i}] = {th.energy[i]!r}: must be <= thermal.energy[{i - 1}] = "
                f"{th.energy[i - 1]!r} (a hotter phone never gets more energy)"
            )
    for i in range(1, len(th.headroom_thresholds)):
        x, prev = th.headroom_thresholds[i], th.headroom_thresholds[i - 1]
        if x <= prev:
            raise PolicyConfigError(
                f"{source}: thermal.headroom_thresholds[{i}] = {x!r}: must be > the one before ({prev!r})"
            )
    for i in range(1, len(th.ios_levels)):
        if th.ios_levels[i] < th.ios_levels[i - 1]:
            raise PolicyConfigError(
                f"{source}: thermal.ios_levels[{i}] = {th.ios_levels[i]!r}: must be >= the one before"
            )
    for i in range(1, len(tiers)):
        tier, prev_tier = tiers[i], tiers[i - 1]
        if tier.below <= prev_tier.below:
            raise PolicyConfigError(
                f"{source}: battery.tiers[{i}].below = {tier.below!r}: tiers must be sorted by `below`, "
                f"strictly increasing (previous {prev_tier.below!r})"
            )
        if tier.energy < prev_tier.energy:
            raise PolicyConfigError(
                f"{source}: battery.tiers[{i}].energy = {tier.energy!r}: must be >= the lower tier's "
                f"{prev_tier.energy!r} (an emptier battery never gets more energy)"
            )


def load_policy_config(path: str | Path) -> PolicyConfig:
    """Read a policy.json (``path`` is the file or the bundle directory)."""
    path, data = read_bundle_json(
        path, POLICY_NAME, missing="write one with `ondevice policy init BUNDLE`", error=PolicyConfigError
    )
    return PolicyConfig.from_dict(data, str(path))


def save_policy_config(path: str | Path, config: PolicyConfig) -> Path:
    """Write atomically as policy.json's JSON form."""
    return write_json_atomic(path, config.to_dict())


def write_policy_json(bundle_dir: str | Path, config: PolicyConfig | None = None) -> Path:
    """Put ``policy.json`` (default parameters unless ``config`` is given) into a bundle; return its path.

    This is what the exporter calls after writing ``manifest.json``.
    """
    return save_policy_config(Path(bundle_dir) / POLICY_NAME, config or PolicyConfig())
