"""What the policy reads: one ``DeviceState`` normalized from Android and iOS readings.

The thermal scale is Android's ``PowerManager.THERMAL_STATUS_*`` (0 NONE .. 6 SHUTDOWN); iOS's
``ProcessInfo.thermalState`` (0 nominal .. 3 critical) is mapped onto it by ``policy.json``
(``thermal.ios_levels``). Unknown readings are real inputs, not errors: ``None`` (or NaN for the
headroom) means "the phone did not say", and the policy gives each a documented meaning
(docs/policy.md, "Unknown readings"). The constructors below only translate platform encodings
(percent, -1, enum codes) into this form; they never raise on a reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["IOS_THERMAL_NAMES", "DeviceState", "Thermal", "parse_thermal"]


class Thermal(IntEnum):
    """Android's thermal status levels, the policy's common scale."""

    NONE = 0
    LIGHT = 1
    MODERATE = 2
    SEVERE = 3
    CRITICAL = 4
    EMERGENCY = 5
    SHUTDOWN = 6


IOS_THERMAL_NAMES = ("nominal", "fair", "serious", "critical")  # ProcessInfo.ThermalState raw values 0..3

# iOS UIDevice.BatteryState: 0 unknown, 1 unplugged, 2 charging, 3 full (plugged in).
_IOS_CHARGING = {1: False, 2: True, 3: True}


@dataclass(frozen=True, slots=True)
class DeviceState:
    """One reading of the phone, already on the common scale.

    Fields (``None`` = unknown; the policy's meaning for each is in docs/policy.md):
        battery: charge as a fraction 0..1.
        charging: on external power (plugged in, whether the battery charges, is full or held at a charge limit).
        power_save: Android battery saver / iOS Low Power Mode.
        thermal: OS thermal status on Android's 0..6 scale (``Thermal``).
        headroom: Android ``getThermalHeadroom`` (1.0 = SEVERE threshold); NaN or None when not given.
        latency_budget_ms: the app's latency budget per inference; None = policy.json's default.
        accuracy_floor: the lowest acceptable top-1 (0..1); None = policy.json's default.
    """

    battery: float | None = None
    charging: bool | None = None
    power_save: bool | None = None
    thermal: int | None = None
    headroom: float | None = None
    latency_budget_ms: float | None = None
    accuracy_floor: float | None = None

    @classmethod
    def from_android(
        cls,
        *,
        capacity_percent: int | None = None,
        plugged: int | None = None,
        power_save: bool | None = None,
        thermal_status: int | None = None,
        headroom: float | None = None,
        latency_budget_ms: float | None = None,
        accuracy_floor: float | None = None,
    ) -> DeviceState:
        """From ``BatteryManager.BATTERY_PROPERTY_CAPACITY`` (percent; Integer.MIN_VALUE or any negative value when
        unsupported), ``BatteryManager.EXTRA_PLUGGED`` (0 = on battery, else a ``BATTERY_PLUGGED_*`` bit: AC 1,
        USB 2, wireless 4, dock 8; not ``EXTRA_STATUS``, which says NOT_CHARGING on a charger at a charge limit),
        ``isPowerSaveMode()``, ``getCurrentThermalStatus()`` (0..6) and ``getThermalHeadroom(s)`` (NaN when
        unsupported or polled faster than once per second)."""
        battery = None
        if capacity_percent is not None and capacity_percent >= 0:
            battery = capacity_percent / 100.0
        return cls(
            battery=battery,
            charging=plugged != 0 if plugged is not None and plugged >= 0 else None,
            power_save=power_save,
            thermal=thermal_status if thermal_status is not None and thermal_status >= 0 else None,
            headroom=headroom,
            latency_budget_ms=latency_budget_ms,
            accuracy_floor=accuracy_floor,
        )

    @classmethod
    def from_ios(
        cls,
        *,
        battery_level: float | None = None,
        battery_state: int | None = None,
        low_power_mode: bool | None = None,
        thermal_state: int | None = None,
        ios_levels: tuple[int, ...] = (0, 1, 3, 4),
        latency_budget_ms: float | None = None,
        accuracy_floor: float | None = None,
    ) -> DeviceState:
        """From ``UIDevice.batteryLevel`` (0..1, -1 when unknown), ``batteryState`` (0..3),
        ``isLowPowerModeEnabled`` and ``ProcessInfo.thermalState`` (0..3, mapped by ``ios_levels``, which callers
        take from ``PolicyConfig.thermal.ios_levels``). iOS has no headroom. A thermal state above 3 (a future
        one) counts as critical."""
        battery = None
        if battery_level is not None and battery_level >= 0:  # also rejects NaN
            battery = float(battery_level)
        thermal = None
        if thermal_state is not None and thermal_state >= 0:
            thermal = ios_levels[min(thermal_state, len(ios_levels) - 1)]
        return cls(
            battery=battery,
            charging=_IOS_CHARGING.get(battery_state) if battery_state is not None else None,
            power_save=low_power_mode,
            thermal=thermal,
            headroom=None,
            latency_budget_ms=latency_budget_ms,
            accuracy_floor=accuracy_floor,
        )

    def to_json(self) -> dict[str, object]:
        """Plain JSON (NaN and infinities become null: JSON has no NaN), the form the test vectors use."""
        return {
            "battery": _json_number(self.battery),
            "charging": self.charging,
            "power_save": self.power_save,
            "thermal": None if self.thermal is None else int(self.thermal),
            "headroom": _json_number(self.headroom),
            "latency_budget_ms": _json_number(self.latency_budget_ms),
            "accuracy_floor": _json_number(self.accuracy_floor),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> DeviceState:
        """Inverse of ``to_json`` (null headroom reads as unknown)."""
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})  # type: ignore[arg-type]


def _json_number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


def parse_thermal(text: str, ios_levels: tuple[int, ...] = (0, 1, 3, 4)) -> int | None:
    """A thermal level from a name or number as people type it on the command line.

    Android names (none, light, moderate, severe, critical, emergency, shutdown) and numbers 0..6 map to
    themselves; iOS names (nominal, fair, serious; "critical" is the same word on both) map through
    ``ios_levels``; "unknown" is None.
    """
    key = text.strip().lower()
    if key in ("unknown", "none?", "?", ""):
        return None
    if key.lstrip("-").isdigit():
        value = int(key)
        if not 0 <= value <= 6:
            raise ValueError(f"thermal {text!r}: Android status is 0..6 (0 NONE .. 6 SHUTDOWN)")
        return value
    names = {t.name.lower(): int(t) for t in Thermal}
    if key in names:
        return names[key]
    ios = {name: ios_levels[i] for i, name in enumerate(IOS_THERMAL_NAMES) if name != "critical"}
    if key in ios:
        return ios[key]
    choices = [*names, *(n for n in IOS_THERMAL_NAMES if n != "critical"), "unknown"]
    raise ValueError(f"thermal {text!r}: use a number 0..6 or one of {', '.join(choices)}")
