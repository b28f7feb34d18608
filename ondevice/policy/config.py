"""``policy.json``: every threshold and constant the policy uses, versioned, shipped in the bundle.

The apps read these numbers instead of re-typing them. ``PolicyConfig.from_dict`` is strict: every key
is required, unknown keys are rejected (a typo must not silently fall back to a default), and each value
is checked with an error that names the key, the value and the rule. Another ``policy_version`` is
refused with a message saying which version this ondevice reads.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import write_json_atomic
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
    """Which accuracy column ranks sub-networks, and the floor when the app gives none."""

    precision: str | None = None  # None: the bundle's precision (manifest precision.name), else "fp32"
    default_floor: float = 0.0


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
        _validate(self, POLICY_NAME)

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
        if not isinstance(data, dict):
            raise PolicyConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("policy_version")
        if version != POLICY_VERSION:
            raise PolicyConfigError(
                f"{source} has policy_version {version!r}; this ondevice ({__version__}) reads version "
                f"{POLICY_VERSION}. Write a version-{POLICY_VERSION} file with `ondevice policy init BUNDLE`, "
                "or use the ondevice that wrote it"
            )
        _check_keys(data, {"policy_version", "ondevice_version", *_SECTIONS}, "", source)
        sections = {}
        for name, section_cls in _SECTIONS.items():
            raw = data[name]
            if not isinstance(raw, dict):
                raise PolicyConfigError(f"{source}: {name} must be an object, got {raw!r}")
            _check_keys(raw, set(section_cls.__dataclass_fields__), f"{name}.", source)
            values = {}
            for key, value in raw.items():
                if isinstance(value, list):
                    if name == "battery" and key == "tiers":
                        value = tuple(_tier(v, f"{name}.{key}[{i}]", source) for i, v in enumerate(value))
                    else:
                        value = tuple(value)
                values[key] = value
            sections[name] = _construct(section_cls, values, name, source)
        try:
            return cls(**sections)
        except PolicyConfigError as err:
            raise PolicyConfigError(str(err).replace(POLICY_NAME, source, 1)) from None


_SECTIONS: dict[str, type] = {
    "latency": LatencyParams,
    "accuracy": AccuracyParams,
    "thermal": ThermalParams,
    "battery": BatteryParams,
    "hysteresis": HysteresisParams,
}


def _check_keys(data: dict[str, Any], known: set[str], prefix: str, source: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise PolicyConfigError(
            f"{source}: unknown key {prefix}{unknown[0]}; known keys: {', '.join(prefix + k for k in sorted(known))}"
        )
    missing = sorted(known - set(data) - {"ondevice_version"})
    if missing:
        raise PolicyConfigError(
            f"{source}: missing key {prefix}{missing[0]}; every key is required (the apps read them all). "
            "`ondevice policy init BUNDLE` writes a complete file"
        )


def _tier(value: Any, where: str, source: str) -> BatteryTier:
    if not isinstance(value, dict):
        raise PolicyConfigError(f'{source}: {where} must be an object {{"below": ..., "energy": ...}}, got {value!r}')
    _check_keys(value, {"below", "energy"}, f"{where}.", source)
    return BatteryTier(value["below"], value["energy"])


def _construct(section_cls: type, values: dict[str, Any], name: str, source: str) -> Any:
    try:
        return section_cls(**values)
    except TypeError as err:
        raise PolicyConfigError(f"{source}: {name}: {err}") from None


def _number(value: Any, where: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PolicyConfigError(f"{source}: {where} = {value!r}: must be a finite number")
    return float(value)


def _in_range(value: Any, where: str, source: str, lo: float, hi: float, hi_open: bool = False) -> float:
    x = _number(value, where, source)
    if x < lo or x > hi or (hi_open and x == hi):
        bracket = ")" if hi_open else "]"
        raise PolicyConfigError(f"{source}: {where} = {value!r}: must be in [{lo}, {hi}{bracket}")
    return x


def _level(value: Any, where: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _LEVELS:
        raise PolicyConfigError(f"{source}: {where} = {value!r}: must be a thermal level 0..{_LEVELS - 1} (0 NONE)")
    return value


def _validate(cfg: PolicyConfig, source: str) -> None:
    """The rules behind every value; they also make the policy monotone (hotter or emptier never costs more)."""
    lat, acc, th, bat, hy = cfg.latency, cfg.accuracy, cfg.thermal, cfg.battery, cfg.hysteresis
    if lat.statistic not in LATENCY_STATISTICS:
        raise PolicyConfigError(
            f"{source}: latency.statistic = {lat.statistic!r}: must be one of {', '.join(LATENCY_STATISTICS)}"
        )
    if _number(lat.default_budget_ms, "latency.default_budget_ms", source) <= 0:
        raise PolicyConfigError(f"{source}: latency.default_budget_ms = {lat.default_budget_ms!r}: must be > 0")
    if _number(lat.fallback_ms_per_gflop, "latency.fallback_ms_per_gflop", source) <= 0:
        raise PolicyConfigError(f"{source}: latency.fallback_ms_per_gflop = {lat.fallback_ms_per_gflop!r}: must be > 0")
    if acc.precision is not None and (not isinstance(acc.precision, str) or not acc.precision):
        raise PolicyConfigError(f"{source}: accuracy.precision = {acc.precision!r}: must be a precision name or null")
    _in_range(acc.default_floor, "accuracy.default_floor", source, 0.0, 1.0)

    for name in ("slowdown", "energy"):
        values = getattr(th, name)
        if not isinstance(values, tuple) or len(values) != _LEVELS:
            raise PolicyConfigError(
                f"{source}: thermal.{name} = {values!r}: must list {_LEVELS} numbers, one per level NONE..SHUTDOWN"
            )
    for i, x in enumerate(th.slowdown):
        if _number(x, f"thermal.slowdown[{i}]", source) < 1.0:
            raise PolicyConfigError(f"{source}: thermal.slowdown[{i}] = {x!r}: must be >= 1 (heat never speeds up)")
        if i and x < th.slowdown[i - 1]:
            raise PolicyConfigError(
                f"{source}: thermal.slowdown[{i}] = {x!r}: must be >= thermal.slowdown[{i - 1}] = "
                f"{th.slowdown[i - 1]!r} (a hotter phone is never expected to be faster)"
            )
    for i, x in enumerate(th.energy):
        _in_range(x, f"thermal.energy[{i}]", source, 0.0, 1.0)
        if i and x > th.energy[i - 1]:
            raise PolicyConfigError(
                f"{source}: thermal.energy[{i}] = {x!r}: must be <= thermal.energy[{i - 1}] = {th.energy[i - 1]!r} "
                "(a hotter phone never gets more energy)"
            )
    thresholds = th.headroom_thresholds
    if not isinstance(thresholds, tuple) or len(thresholds) > _LEVELS - 1:
        raise PolicyConfigError(
            f"{source}: thermal.headroom_thresholds = {thresholds!r}: at most {_LEVELS - 1} numbers (LIGHT ..)"
        )
    for i, x in enumerate(thresholds):
        _number(x, f"thermal.headroom_thresholds[{i}]", source)
        if i and x <= thresholds[i - 1]:
            raise PolicyConfigError(
                f"{source}: thermal.headroom_thresholds[{i}] = {x!r}: must be > the one before ({thresholds[i - 1]!r})"
            )
    _level(th.unknown_level, "thermal.unknown_level", source)
    if not isinstance(th.ios_levels, tuple) or len(th.ios_levels) != 4:
        raise PolicyConfigError(
            f"{source}: thermal.ios_levels = {th.ios_levels!r}: must list 4 levels (nominal, fair, serious, critical)"
        )
    for i, x in enumerate(th.ios_levels):
        _level(x, f"thermal.ios_levels[{i}]", source)
        if i and x < th.ios_levels[i - 1]:
            raise PolicyConfigError(f"{source}: thermal.ios_levels[{i}] = {x!r}: must be >= the one before")

    if not isinstance(bat.tiers, tuple):
        raise PolicyConfigError(f"{source}: battery.tiers = {bat.tiers!r}: must be a list of tiers")
    for i, tier in enumerate(bat.tiers):
        if not isinstance(tier, BatteryTier):
            raise PolicyConfigError(f"{source}: battery.tiers[{i}] = {tier!r}: must be a BatteryTier")
        below = _number(tier.below, f"battery.tiers[{i}].below", source)
        if not 0.0 < below <= 1.0:
            raise PolicyConfigError(f"{source}: battery.tiers[{i}].below = {tier.below!r}: must be in (0, 1]")
        _in_range(tier.energy, f"battery.tiers[{i}].energy", source, 0.0, 1.0)
        if i:
            prev = bat.tiers[i - 1]
            if tier.below <= prev.below:
                raise PolicyConfigError(
                    f"{source}: battery.tiers[{i}].below = {tier.below!r}: tiers must be sorted by `below`, "
                    f"strictly increasing (previous {prev.below!r})"
                )
            if tier.energy < prev.energy:
                raise PolicyConfigError(
                    f"{source}: battery.tiers[{i}].energy = {tier.energy!r}: must be >= the lower tier's "
                    f"{prev.energy!r} (an emptier battery never gets more energy)"
                )
    _in_range(bat.unknown_fraction, "battery.unknown_fraction", source, 0.0, 1.0)
    _in_range(bat.power_save_energy, "battery.power_save_energy", source, 0.0, 1.0)
    if not isinstance(bat.charging_ignores_battery, bool):
        raise PolicyConfigError(
            f"{source}: battery.charging_ignores_battery = {bat.charging_ignores_battery!r}: must be true or false"
        )

    _in_range(hy.upgrade_margin, "hysteresis.upgrade_margin", source, 0.0, 1.0, hi_open=True)
    for name in ("min_dwell_up_s", "min_dwell_down_s"):
        if _number(getattr(hy, name), f"hysteresis.{name}", source) < 0:
            raise PolicyConfigError(f"{source}: hysteresis.{name} = {getattr(hy, name)!r}: must be >= 0")


def load_policy_config(path: str | Path) -> PolicyConfig:
    """Read a policy.json (``path`` is the file or the bundle directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / POLICY_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no policy at {path}; write one with `ondevice policy init BUNDLE`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PolicyConfigError(f"{path} is not valid JSON ({err})") from None
    return PolicyConfig.from_dict(data, str(path))


def save_policy_config(path: str | Path, config: PolicyConfig) -> Path:
    """Write atomically as policy.json's JSON form."""
    return write_json_atomic(path, config.to_dict())


def write_policy_json(bundle_dir: str | Path, config: PolicyConfig | None = None) -> Path:
    """Put ``policy.json`` (default parameters unless ``config`` is given) into a bundle; return its path.

    This is what the exporter calls after writing ``manifest.json``.
    """
    return save_policy_config(Path(bundle_dir) / POLICY_NAME, config or PolicyConfig())
