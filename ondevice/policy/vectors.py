"""``policy_vectors.json``: state sequences and the choices the Python policy makes, for the apps' tests.

The file is self-contained: it holds the policy.json parameters, the parts of the manifest the policy reads
(gates, sub-networks, latency tables), the table and front they give, platform readings with their
normalized state, and cases (state sequences with times) with the expected choice, flags and intermediate
numbers after every step. JSON has no NaN: a null headroom is NaN, a null battery/thermal is unknown, a
null budget or floor means "use policy.json's default". Every float is printed so that it parses back to
the same double; the apps compare choices and flags exactly and the numbers bit for bit (docs/policy.md).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from .config import LATENCY_STATISTICS, PolicyConfig
from .engine import Policy, PolicyMemory, build_table
from .state import DeviceState, Thermal

__all__ = ["VECTORS_VERSION", "check_vectors", "generate_vectors", "write_vectors"]

VECTORS_VERSION = 1
_EXPECT = (
    "gates",
    "target",
    "below_floor",
    "over_budget",
    "switched",
    "held",
    "level",
    "battery",
    "energy",
    "latency_budget_ms",
    "latency_cap_ms",
    "energy_cap_ms",
    "cap_ms",
    "floor",
    "table_level",
)


def _manifest_part(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the policy reads from a manifest (no class names, files or input spec)."""
    return {
        "gates": copy.deepcopy(manifest["gates"]),
        "precision": copy.deepcopy(manifest["precision"]),
        "subnets": copy.deepcopy(manifest["subnets"]),
        "latency": copy.deepcopy(manifest["latency"]),
    }


def _rows(subnets: Any) -> list[dict[str, Any]]:
    return [{"gates": s.gates, "latency_ms": s.latency_ms, "accuracy": s.accuracy} for s in subnets]


def _table_json(manifest: Mapping[str, Any], config: PolicyConfig, device: str | None) -> dict[str, Any]:
    table = build_table(manifest, config, device)
    return {
        "device": device,
        "source": {"kind": table.source.kind, "device": table.source.device},
        "accuracy_key": table.accuracy_key,
        "candidates": _rows(table.candidates),
        "front": [s.gates for s in table.front],
        "thermal": [
            {"level": hot.level, "candidates": _rows(hot.candidates), "front": [s.gates for s in hot.front]}
            for hot in table.thermal
        ],
    }


def _table_selection(manifest: Mapping[str, Any], config: PolicyConfig, device: str | None) -> list[dict[str, Any]]:
    """Rule 1-4 cases: own table, most recent other table, name tie-break, no table (FLOPs), missing p90, and a
    noisy cheap sub-network capped by the costlier ones (2b, monotone latency)."""
    part = _manifest_part(manifest)
    name = device or next(iter(part["latency"]), "device")
    own = part["latency"].get(name) or {
        "backend": "xnnpack",
        "subnets": {s["gates"]: {"median_ms": s["flops"] / 1e8} for s in part["subnets"]},
    }
    slower = copy.deepcopy(own)
    for entry in slower["subnets"].values():
        for key in LATENCY_STATISTICS:
            if key in entry:
                entry[key] = round(entry[key] * 1.5, 3)
    older, newer = copy.deepcopy(own), copy.deepcopy(slower)
    older["measured_at"], newer["measured_at"] = "2025-01-01T00:00:00Z", "2025-06-01T00:00:00Z"
    no_p90 = copy.deepcopy(own)
    first = sorted(no_p90["subnets"])[0]
    no_p90["subnets"][first].pop("p90_ms", None)
    noisy = copy.deepcopy(own)  # one burst on the cheapest sub-network: slower than the super-net
    slowest = max(entry[key] for entry in own["subnets"].values() for key in LATENCY_STATISTICS if key in entry)
    cheapest = max(noisy["subnets"], key=lambda gates: gates.count("T"))
    noisy["subnets"][cheapest] = {key: round(3 * slowest, 3) for key in LATENCY_STATISTICS}
    variants = [
        ("own table", name, {name: own, "other-phone": slower}),
        ("no own table: most recent measured_at wins", "unlisted-phone", {"a-phone": newer, "z-phone": older}),
        ("no own table, no dates: larger device name wins", "unlisted-phone", {"a-phone": own, "b-phone": slower}),
        ("dated table beats undated", "unlisted-phone", {"a-phone": older, "z-phone": own}),
        ("no latency table: FLOPs estimate", name, {}),
        (f"entry without {config.latency.statistic}: its median", name, {name: no_p90}),
        ("a noisy cheap sub-network is capped by those that run more stages", name, {name: noisy}),
        (
            "table listing only some sub-networks",
            name,
            {name: {**own, "subnets": dict(sorted(own["subnets"].items())[:2])}},
        ),
    ]
    cases = []
    for doc, dev, latency in variants:
        variant = {**part, "latency": latency}
        cases.append({"name": doc, "device": dev, "latency": latency, "expect": _table_json(variant, config, dev)})
    return cases


def _normalization(config: PolicyConfig) -> list[dict[str, Any]]:
    android = [  # plugged: BatteryManager.EXTRA_PLUGGED, 0 on battery, AC 1, USB 2, wireless 4, dock 8
        {"capacity_percent": 15, "plugged": 0, "power_save": False, "thermal_status": 2, "headroom": 0.87},
        {
            "capacity_percent": -2147483648,
            "plugged": None,
            "power_save": None,
            "thermal_status": None,
            "headroom": None,
        },
        {"capacity_percent": 100, "plugged": 1, "power_save": True, "thermal_status": 6, "headroom": 1.2},
        {"capacity_percent": 57, "plugged": 2, "power_save": False, "thermal_status": -1, "headroom": 0.5},
        {"capacity_percent": 0, "plugged": 0, "power_save": False, "thermal_status": 0, "headroom": -0.1},
        {"capacity_percent": 80, "plugged": 4, "power_save": False, "thermal_status": 1, "headroom": 0.3},
        {"capacity_percent": 100, "plugged": 8, "power_save": None, "thermal_status": 0, "headroom": None},
    ]
    ios = [
        {"battery_level": 0.15, "battery_state": 1, "low_power_mode": True, "thermal_state": 2},
        {"battery_level": -1.0, "battery_state": 0, "low_power_mode": False, "thermal_state": 0},
        {"battery_level": 1.0, "battery_state": 3, "low_power_mode": False, "thermal_state": 3},
        {"battery_level": 0.5, "battery_state": 2, "low_power_mode": None, "thermal_state": 1},
        {"battery_level": None, "battery_state": None, "low_power_mode": None, "thermal_state": None},
    ]
    rows = [{"platform": "android", "reading": r, "state": DeviceState.from_android(**r).to_json()} for r in android]
    rows += [
        {
            "platform": "ios",
            "reading": r,
            "state": DeviceState.from_ios(**r, ios_levels=config.thermal.ios_levels).to_json(),
        }
        for r in ios
    ]
    return rows


_Case = tuple[str, str, list[tuple[float, DeviceState]]]


def _cases(policy: Policy) -> list[_Case]:
    """Cases built from the table and the parameters, so that each one tests what its name says."""
    cfg = policy.config
    lat = [s.latency_ms for s in policy.table.front]
    acc = [s.accuracy for s in policy.table.front]
    n = len(lat)
    big = 10.0 * lat[-1] * max(cfg.thermal.slowdown)  # a budget that never binds
    cool = DeviceState(
        battery=1.0,
        charging=False,
        power_save=False,
        thermal=0,
        headroom=None,
        latency_budget_ms=big,
        accuracy_floor=0.0,
    )
    cases: list[_Case] = []

    def single(name: str, doc: str, **changes: Any) -> None:
        cases.append((name, doc, [(0.0, replace(cool, **changes))]))

    single("cool", "cool phone, full battery, generous budget: the most accurate sub-network")
    for level in Thermal:
        single(f"thermal {level.name}", f"status {int(level)}, no headroom", thermal=int(level))
    single("thermal unknown", "status and headroom unknown: thermal.unknown_level", thermal=None)
    single("thermal out of range", "a status above 6 counts as SHUTDOWN", thermal=9)
    single("thermal negative", "a negative status is unknown", thermal=-1)
    for i, threshold in enumerate(cfg.thermal.headroom_thresholds):
        single(
            f"headroom at threshold {i}",
            "headroom >= threshold forecasts the next level",
            thermal=None,
            headroom=threshold,
        )
        single(
            f"headroom just below threshold {i}",
            "one ulp below: the level before",
            thermal=None,
            headroom=math.nextafter(threshold, -math.inf),
        )
    single("headroom high", "headroom above every threshold", thermal=None, headroom=5.0)
    single("headroom negative", "a negative headroom forecasts NONE", thermal=None, headroom=-0.5)
    single("headroom beats status", "status NONE, headroom forecasts more: the max", thermal=0, headroom=0.95)
    single("status beats headroom", "status SEVERE, low headroom: the max", thermal=3, headroom=0.1)
    single("battery unknown", "battery.unknown_fraction", battery=None)
    single("battery negative", "iOS -1 passed through: unknown", battery=-1.0)
    single("battery above 1", "clamped to 1", battery=1.5)
    single("battery empty", "0: the lowest tier", battery=0.0)
    for i, tier in enumerate(cfg.battery.tiers):
        single(f"battery at tier {i} boundary", "battery == below is not below: the tier above", battery=tier.below)
        single(f"battery just below tier {i}", "one ulp below: this tier", battery=math.nextafter(tier.below, 0.0))
        single(
            f"battery tier {i} while charging", "charging ignores the battery", battery=tier.below / 2, charging=True
        )
        single(
            f"battery tier {i}, charging unknown",
            "unknown charging counts as not charging",
            battery=tier.below / 2,
            charging=None,
        )
    single("power save", "power_save_energy applies", power_save=True)
    single("power save while charging", "power save still applies on a charger", power_save=True, charging=True)
    single("power save unknown", "unknown power save counts as off", power_save=None)
    single("low battery, power save, warm", "energy factors multiply", battery=0.05, power_save=True, thermal=2)
    for k in range(n):
        single(f"budget equals latency {k}", "latency <= cap fits (cool: slowdown 1)", latency_budget_ms=lat[k])
        single(
            f"budget just below latency {k}",
            "one ulp below: the one before, or the cheapest flagged",
            latency_budget_ms=math.nextafter(lat[k], 0.0),
        )
        single(
            f"budget latency {k} x slowdown, warm",
            "budget / slowdown, IEEE division",
            thermal=2,
            latency_budget_ms=lat[k] * cfg.thermal.slowdown[2],
        )
    single("budget unknown", "latency.default_budget_ms", latency_budget_ms=None)
    single("budget zero", "not > 0: the default", latency_budget_ms=0.0)
    single("budget negative", "not > 0: the default", latency_budget_ms=-5.0)
    single("nothing fits", "budget below every latency: the cheapest, over budget", latency_budget_ms=lat[0] / 2)
    single("floor unknown", "accuracy.default_floor", accuracy_floor=None)
    single("floor met exactly", "accuracy >= floor", accuracy_floor=acc[-1])
    single("floor above everything", "nothing meets it: the cheapest, below floor", accuracy_floor=1.0)
    if n > 1:
        single(
            "floor above what fits",
            "fitting ones are all below the floor: the cheapest, flagged",
            latency_budget_ms=lat[-2],
            accuracy_floor=acc[-1],
        )
        single("floor below what fits", "the most accurate that fits", latency_budget_ms=lat[-2], accuracy_floor=acc[0])
    single("nothing fits, floor unmet", "both flags", latency_budget_ms=lat[0] / 2, accuracy_floor=1.0)

    hy = cfg.hysteresis
    down, up = hy.min_dwell_down_s, hy.min_dwell_up_s
    warm = replace(cool, thermal=2)
    hot = replace(cool, thermal=3)
    cases.append(("first decision", "the first decision is not a switch", [(5.0, hot)]))
    cases.append(
        (
            "heat then cool",
            "downgrades at once (after min_dwell_down_s); an upgrade waits min_dwell_up_s of continuous chance",
            [
                (0.0, cool),
                (1.0, warm),
                (1.0 + down / 2, hot),
                (1.0 + down, hot),
                (2.0 + down, cool),
                (2.0 + down + up / 2, cool),
                (2.0 + down + up - 0.001, cool),
                (2.0 + down + up, cool),
                (3.0 + down + up, cool),
            ],
        )
    )
    steps: list[tuple[float, DeviceState]] = [(0.0, cool), (1.0, hot)]
    t = 2.0 + down
    for i in range(int(up)):  # the chance to upgrade comes and goes: the dwell restarts
        steps.append((t + i, cool if i % 7 else warm))
    steps += [(t + int(up) + j * up / 2, cool) for j in range(4)]
    cases.append(("interrupted upgrade", "an upgrade chance that is interrupted restarts the dwell", steps))
    # Upgrade margin: from the cheapest, raise the budget so that the next one fits, but not by the margin.
    if n > 1:
        scale = 1.0 - hy.upgrade_margin
        inside = lat[1] / scale * 0.999 if scale > 0 else lat[1]
        outside = lat[1] / scale * 1.001 if scale > 0 else lat[1]
        tight = replace(cool, latency_budget_ms=lat[0])
        cases.append(
            (
                "upgrade margin",
                "the greedy target fits but not with the margin: held; with the margin: upgraded after the dwell",
                [
                    (0.0, tight),
                    (1.0, replace(cool, latency_budget_ms=max(lat[1], min(inside, lat[-1])))),
                    (1.0 + up, replace(cool, latency_budget_ms=max(lat[1], min(inside, lat[-1])))),
                    (2.0 + up, replace(cool, latency_budget_ms=outside)),
                    (2.0 + 2 * up, replace(cool, latency_budget_ms=outside)),
                ],
            )
        )
    # A noisy headroom around the MODERATE threshold, sometimes NaN: one downgrade, no flapping.
    thresholds = cfg.thermal.headroom_thresholds
    if len(thresholds) >= 2:
        mid = thresholds[1]
        noisy = [(0.0, replace(cool, thermal=1))]
        for i in range(1, 61):
            wiggle = (-1.0) ** i * 0.01 * (1 + i % 3)
            headroom = None if i % 11 == 5 else mid + wiggle
            noisy.append((float(i), replace(cool, thermal=1, headroom=headroom)))
        cases.append(
            (
                "noisy headroom",
                "headroom flips around a threshold every second, sometimes NaN: one downgrade, then no flapping",
                noisy,
            )
        )
    cases.append(
        (
            "clock goes backwards",
            "now < the last switch: the dwell restarts at the new time",
            [(100.0, cool), (101.0, hot), (50.0, cool), (50.0 + up, cool), (50.0 + up + 1.0, cool)],
        )
    )
    cases.append(
        (
            "battery drains",
            "a session whose battery falls through the tiers, then power save turns on, then a charger is plugged in",
            [
                (float(i), replace(cool, battery=b, power_save=ps, charging=ch))
                for i, (b, ps, ch) in enumerate(
                    [
                        (0.5, False, False),
                        (0.31, False, False),
                        (0.29, False, False),
                        (0.2, False, False),
                        (0.14, False, False),
                        (0.12, True, False),
                        (0.12, True, True),
                        (0.13, False, True),
                    ],
                    start=0,
                )
            ]
            + [(8.0 + up, replace(cool, battery=0.13, charging=True))],
        )
    )
    return cases


def _expect(decision: Any) -> dict[str, Any]:
    return {key: getattr(decision, key) for key in _EXPECT}


def _thermal_cases(policy: Policy) -> list[_Case]:
    """Cases for a table with thermal tables: at every level, budgets equal to each entry of that level's front
    (the hottest table measured at or below it) times the slowdown beyond it, and one ulp below; and a current
    choice that a hotter table ranks behind a better one."""
    cfg = policy.config
    cool = DeviceState(battery=1.0, charging=True, power_save=False, thermal=0, latency_budget_ms=None)
    tables = [policy.table.candidates, *(hot.candidates for hot in policy.table.thermal)]
    big = 10.0 * max(s.latency_ms for rows in tables for s in rows) * max(cfg.thermal.slowdown)
    cases: list[_Case] = []
    for level in Thermal:
        warm = replace(cool, thermal=int(level))
        steps = [(0.0, replace(warm, latency_budget_ms=big))]
        decision, _ = policy.decide(steps[0][1], 0.0)
        slowdown = decision.latency_budget_ms / decision.latency_cap_ms
        for gates in policy.front_at(level):
            lat = policy.latency_at(level, gates)
            steps.append((0.0, replace(warm, latency_budget_ms=lat * slowdown)))
            steps.append((0.0, replace(warm, latency_budget_ms=math.nextafter(lat * slowdown, 0.0))))
        cases += [
            (f"thermal table at {level.name}, step {i}", "budget at a front entry x the slowdown beyond the table", [s])
            for i, s in enumerate(steps)
        ]
    fronts = {level: policy.front_at(level) for level in range(len(Thermal))}
    dropped = [(g, lv) for lv in fronts for g in fronts[0] if g not in fronts[lv]]
    if dropped:
        gates, level = dropped[0]
        down = cfg.hysteresis.min_dwell_down_s
        fit = replace(cool, latency_budget_ms=policy.latency_at(0, gates))
        hot = replace(cool, thermal=level, latency_budget_ms=big)
        cheap = replace(hot, latency_budget_ms=policy.latency_at(level, fronts[level][0]))  # only the cheapest fits
        cases.append(
            (
                "current choice ranked behind a better one by a hotter table",
                f"{gates} is chosen cool; at {Thermal(level).name} a sub-network at least as accurate and no slower "
                "replaces it at once (a switch), then the dwell applies to the next downgrade",
                [(0.0, fit), (down / 2, hot), (down / 2 + down / 4, cheap), (2.0 * down, cheap)],
            )
        )
    return cases


def _run_cases(policy: Policy, cases: list[_Case]) -> list[dict[str, Any]]:
    """Each case's steps with the decision expected after each (the steps of a case share the memory)."""
    out = []
    for name, doc, steps in cases:
        memory = PolicyMemory()
        rows = []
        for t_s, state in steps:
            decision, memory = policy.decide(state, t_s, memory)
            rows.append({"t_s": t_s, "state": state.to_json(), "expect": _expect(decision)})
        out.append({"name": name, "doc": doc, "steps": rows})
    return out


def _thermal_section(manifest: Mapping[str, Any], config: PolicyConfig, device: str | None) -> dict[str, Any]:
    """The table and cases of a manifest whose latency table for ``device`` holds thermal tables, under the policy
    with no energy limit from heat (``thermal.energy`` all 1), so that the latency side of every front is reached."""
    config = replace(config, thermal=replace(config.thermal, energy=(1.0,) * len(Thermal)))
    policy = Policy.from_manifest(manifest, config, device)
    if not policy.table.thermal:
        raise ValueError(f"the latency table {policy.table.source.device!r} holds no thermal tables")
    policy_json = config.to_dict()
    policy_json.pop("ondevice_version", None)
    return {
        "policy": policy_json,
        "latency": copy.deepcopy(manifest["latency"]),
        "table": _table_json(manifest, config, device),
        "cases": _run_cases(policy, _thermal_cases(policy)),
    }


def generate_vectors(
    manifest: Mapping[str, Any],
    config: PolicyConfig | None = None,
    device: str | None = None,
    command: str = "",
    thermal_latency: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The vectors for ``manifest`` on ``device`` with ``config``; deterministic (no dates, no versions).

    ``thermal_latency``: latency tables (the manifest's ``latency``) whose ``device`` table holds thermal tables,
    for the ``thermal`` section; without it the section is null unless the manifest's own table has them."""
    config = config or PolicyConfig()
    policy = Policy.from_manifest(manifest, config, device)
    policy_json = config.to_dict()
    policy_json.pop("ondevice_version", None)
    return {
        "vectors_version": VECTORS_VERSION,
        "generated_by": command,
        "spec": "docs/policy.md",
        "notes": (
            "null headroom = NaN; null battery or thermal = unknown; null latency_budget_ms or accuracy_floor = "
            "policy.json's default; null charging or power_save = false. Steps of a case share the policy's "
            "memory, starting empty; t_s is a monotonic clock in seconds."
        ),
        "policy": policy_json,
        "manifest": _manifest_part(manifest),
        "table": _table_json(manifest, config, device),
        "table_selection": _table_selection(manifest, config, device),
        "normalization": _normalization(config),
        "cases": _run_cases(policy, _cases(policy)),
        "thermal": _thermal_section({**manifest, "latency": thermal_latency}, config, device)
        if thermal_latency is not None
        else (_thermal_section(manifest, config, device) if policy.table.thermal else None),
    }


def write_vectors(path: str | Path, vectors: dict[str, Any]) -> Path:
    return write_json_atomic(path, vectors)


def check_vectors(vectors: Mapping[str, Any]) -> list[str]:
    """Re-run every case of a vectors file with the Python policy built from the file's own parameters and
    manifest; return the mismatches (empty when the policy still makes every recorded choice).

    A file of another shape (valid JSON, but not what ``generate_vectors`` writes) is a ``ValueError``.
    """
    try:
        return _check_vectors(vectors)
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        raise ValueError(
            f"not a policy vectors file: {type(err).__name__} {err} where a field was expected; "
            "write one with `ondevice policy vectors BUNDLE --out FILE`"
        ) from None


def _check_vectors(vectors: Mapping[str, Any]) -> list[str]:
    config = PolicyConfig.from_dict({**vectors["policy"]}, "policy_vectors.json policy")
    manifest = vectors["manifest"]
    device = vectors["table"]["device"]
    policy = Policy.from_manifest(manifest, config, device)
    problems = []
    if _table_json(manifest, config, device) != vectors["table"]:
        problems.append("table: the front or latencies differ")
    for case in vectors["table_selection"]:
        got = _table_json({**manifest, "latency": case["latency"]}, config, case["device"])
        if got != case["expect"]:
            problems.append(f"table_selection {case['name']!r}: got {got}")
    for row in vectors["normalization"]:
        reading = row["reading"]
        if row["platform"] == "android":
            state = DeviceState.from_android(**reading)
        else:
            state = DeviceState.from_ios(**reading, ios_levels=config.thermal.ios_levels)
        if state.to_json() != row["state"]:
            problems.append(f"normalization {row['platform']} {reading}: got {state.to_json()}")
    problems += _check_cases(policy, vectors["cases"], "case")
    thermal = vectors["thermal"]
    if thermal is not None:
        config = PolicyConfig.from_dict({**thermal["policy"]}, "policy_vectors.json thermal policy")
        variant = {**manifest, "latency": thermal["latency"]}
        if _table_json(variant, config, device) != thermal["table"]:
            problems.append("thermal table: the fronts or latencies differ")
        problems += _check_cases(Policy.from_manifest(variant, config, device), thermal["cases"], "thermal case")
    return problems


def _check_cases(policy: Policy, cases: list[Mapping[str, Any]], what: str) -> list[str]:
    problems = []
    for case in cases:
        memory = PolicyMemory()
        for i, step in enumerate(case["steps"]):
            decision, memory = policy.decide(DeviceState.from_json(step["state"]), step["t_s"], memory)
            got = _expect(decision)
            if got != step["expect"]:
                diff = {k: (step["expect"][k], got[k]) for k in got if got[k] != step["expect"].get(k)}
                problems.append(f"{what} {case['name']!r} step {i}: expected vs got {diff}")
    return problems
