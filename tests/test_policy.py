import json
import math
import timeit
from dataclasses import replace

import pytest
from policy_helpers import TOY_ROWS, make_manifest

from ondevice.contract.manifest import validate_manifest
from ondevice.policy import (
    POLICY_VERSION,
    DeviceState,
    Policy,
    PolicyConfig,
    PolicyConfigError,
    PolicyMemory,
    PolicySession,
    Thermal,
    build_table,
    load_policy_config,
    parse_thermal,
    write_policy_json,
)
from ondevice.policy.config import BatteryTier
from ondevice.policy.engine.table import monotone_latency
from ondevice.policy.example import EXAMPLE_DEVICE, example_manifest

# Generous budget: only heat, battery and power-save limit.
COOL = DeviceState(battery=1.0, charging=False, power_save=False, thermal=0, latency_budget_ms=1000.0)


@pytest.fixture(scope="module")
def toy() -> Policy:
    return Policy.from_manifest(make_manifest(TOY_ROWS), device="phone")


# --- state ----------------------------------------------------------------------------------------------------


def test_android_readings_normalize():
    s = DeviceState.from_android(
        capacity_percent=15,
        plugged=2,
        power_save=True,
        thermal_status=3,
        headroom=float("nan"),
        latency_budget_ms=50.0,
    )
    assert (s.battery, s.charging, s.power_save, s.thermal, s.latency_budget_ms) == (0.15, True, True, 3, 50.0)
    assert math.isnan(s.headroom)
    unknown = DeviceState.from_android(capacity_percent=-(2**31), plugged=None, thermal_status=-1)
    assert (unknown.battery, unknown.charging, unknown.thermal) == (None, None, None)
    # EXTRA_PLUGGED: AC, USB, wireless, dock are external power whatever the battery status (full, charge limit)
    assert [DeviceState.from_android(plugged=p).charging for p in (1, 2, 4, 8)] == [True] * 4
    assert DeviceState.from_android(plugged=0).charging is False


def test_ios_readings_normalize():
    s = DeviceState.from_ios(battery_level=-1.0, battery_state=0, low_power_mode=True, thermal_state=2)
    assert (s.battery, s.charging, s.power_save, s.thermal, s.headroom) == (None, None, True, Thermal.SEVERE, None)
    assert [DeviceState.from_ios(thermal_state=i).thermal for i in range(5)] == [0, 1, 3, 4, 4]
    assert DeviceState.from_ios(battery_level=float("nan")).battery is None
    assert DeviceState.from_ios(battery_state=3).charging is True


def test_state_json_round_trip_turns_nan_into_null():
    s = DeviceState(battery=0.5, thermal=2, headroom=float("nan"), latency_budget_ms=float("inf"))
    data = s.to_json()
    assert data["headroom"] is None and data["latency_budget_ms"] is None
    assert json.loads(json.dumps(data)) == data
    assert DeviceState.from_json(data) == replace(s, headroom=None, latency_budget_ms=None)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("none", 0),
        ("SEVERE", 3),
        ("4", 4),
        ("nominal", 0),
        ("fair", 1),
        ("serious", 3),
        ("critical", 4),
        ("unknown", None),
    ],
)
def test_parse_thermal(text, level):
    assert parse_thermal(text) == level


@pytest.mark.parametrize("text", ["hot", "7", "-1"])
def test_parse_thermal_rejects(text):
    with pytest.raises(ValueError, match="thermal"):
        parse_thermal(text)


# --- config ---------------------------------------------------------------------------------------------------


def test_policy_json_round_trip(tmp_path):
    path = write_policy_json(tmp_path)
    assert path == tmp_path / "policy.json"
    data = json.loads(path.read_text())
    assert data["policy_version"] == POLICY_VERSION
    assert load_policy_config(tmp_path) == PolicyConfig()
    assert PolicyConfig.from_dict(PolicyConfig().to_dict()) == PolicyConfig()


def test_policy_json_other_version_is_refused():
    data = {**PolicyConfig().to_dict(), "policy_version": 2}
    with pytest.raises(PolicyConfigError, match="policy_version 2; .* reads version 1"):
        PolicyConfig.from_dict(data, "bundle/policy.json")


def test_policy_json_missing_and_unknown_keys():
    data = PolicyConfig().to_dict()
    del data["thermal"]["energy"]
    with pytest.raises(PolicyConfigError, match="missing key thermal.energy"):
        PolicyConfig.from_dict(data)
    data = PolicyConfig().to_dict()
    data["hysteresis"]["min_dwell_s"] = 3
    with pytest.raises(PolicyConfigError, match="unknown key hysteresis.min_dwell_s"):
        PolicyConfig.from_dict(data)


@pytest.mark.parametrize(
    ("section", "key", "value", "match"),
    [
        ("thermal", "slowdown", [1.0, 1.2, 1.1, 1.5, 2.0, 3.0, 3.0], r"slowdown\[2\] = 1.1: must be >="),
        ("thermal", "slowdown", [1.0, 1.1], "must list 7 numbers"),
        ("thermal", "slowdown", [0.5, 1.1, 1.2, 1.5, 2.0, 3.0, 3.0], "must be >= 1"),
        ("thermal", "energy", [1.0, 0.9, 0.95, 0.5, 0.0, 0.0, 0.0], r"energy\[2\] = 0.95: must be <="),
        ("thermal", "energy", [1.0, 0.9, 0.8, 0.5, 0.0, 0.0, "x"], "finite number"),
        ("thermal", "headroom_thresholds", [0.8, 0.8], "must be >"),
        ("thermal", "unknown_level", 7, "thermal level 0..6"),
        ("thermal", "ios_levels", [0, 1, 3], "4 levels"),
        ("battery", "tiers", [{"below": 0.3, "energy": 0.8}, {"below": 0.15, "energy": 0.6}], "sorted"),
        ("battery", "tiers", [{"below": 0.15, "energy": 0.9}, {"below": 0.3, "energy": 0.8}], "emptier"),
        ("battery", "tiers", [{"below": 0.15}], "missing key"),
        ("battery", "tiers", [0.15], "must be an object"),
        ("battery", "unknown_fraction", 1.5, r"must be in \[0.0, 1.0\]"),
        ("battery", "charging_ignores_battery", "yes", "true or false"),
        ("hysteresis", "upgrade_margin", 1.0, r"1.0\)"),
        ("hysteresis", "min_dwell_up_s", -1, ">= 0"),
        ("latency", "statistic", "p99_ms", "one of median_ms"),
        ("latency", "default_budget_ms", 0, "> 0"),
        ("latency", "default_budget_ms", True, "finite number"),
        ("accuracy", "default_floor", float("nan"), "finite number"),
    ],
)
def test_policy_json_bad_values_name_key_and_rule(section, key, value, match):
    data = PolicyConfig().to_dict()
    data[section][key] = value
    with pytest.raises(PolicyConfigError, match=match):
        PolicyConfig.from_dict(data)


def test_load_policy_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ondevice policy init"):
        load_policy_config(tmp_path)
    (tmp_path / "policy.json").write_text("{not json")
    with pytest.raises(PolicyConfigError, match="not valid JSON"):
        load_policy_config(tmp_path)


# --- the sub-network table ------------------------------------------------------------------------------------


def test_front_drops_dominated_and_sorts_by_latency(toy):
    assert toy.front == ("TTT", "TFF", "FTT", "FFT", "FFF")
    assert [s.latency_ms for s in toy.table.front] == [6.6, 8.25, 8.8, 9.9, 11.0]  # p90 by default
    assert toy.table.source.kind == "device"
    assert len(toy.table.candidates) == 6


def test_example_manifest_is_valid_and_its_front_is_all_five():
    manifest = validate_manifest(example_manifest())
    policy = Policy.from_manifest(manifest, device=EXAMPLE_DEVICE)
    assert policy.front == ("TTTT", "TTFT", "TTFF", "FFFT", "FFFF")
    ratio = manifest["latency"][EXAMPLE_DEVICE]["subnets"]["TTTT"]["median_ms"] / 175.8
    assert 0.6 < ratio < 0.7


def test_front_ties_break_by_gates_string():
    manifest = make_manifest([("FF", 0.9, 5.0), ("FT", 0.9, 5.0), ("TF", 0.8, 5.0), ("TT", 0.7, 4.0)])
    table = build_table(manifest, PolicyConfig(), "phone")
    assert [s.gates for s in table.front] == ["TT", "FF"]


def test_latency_table_fallbacks():
    rows = [("FF", 0.9, 10.0, 4_000_000_000), ("TT", 0.8, 6.0, 2_000_000_000)]
    entry = {"median_ms": 10.0, "p90_ms": 11.0}
    tables = {
        "old": {"backend": "xnnpack", "measured_at": "2025-01-01", "subnets": {"FF": entry, "TT": {"median_ms": 5.0}}},
        "new": {"backend": "xnnpack", "measured_at": "2025-03-01", "subnets": {"FF": entry, "TT": {"median_ms": 4.0}}},
        "zzz": {"backend": "xnnpack", "subnets": {"FF": entry, "TT": {"median_ms": 3.0}}},
    }
    config = PolicyConfig()
    own = build_table(make_manifest(rows, tables), config, "old")
    assert own.source.kind == "device" and own.front[0].latency_ms == 5.0  # no p90: its median
    other = build_table(make_manifest(rows, tables), config, "pixel")
    assert (other.source.kind, other.source.device) == ("fallback-table", "new")  # dated beats undated
    assert "no table for 'pixel'" in other.source.describe("pixel")
    flops = build_table(make_manifest(rows, {}), config, "pixel")
    assert flops.source.kind == "flops-estimate"
    assert [s.latency_ms for s in flops.front] == [20.0, 40.0]  # 10 ms per GFLOP


def test_accuracy_column_choice():
    rows = [("FF", 0.9, 10.0), ("TT", 0.8, 6.0)]
    both = make_manifest(rows, precision="int8-static", accuracy_keys=("fp32", "int8-static"))
    assert build_table(both, PolicyConfig(), "phone").accuracy_key == "int8-static"
    fp32_only = make_manifest(rows, precision="int8-static")
    assert build_table(fp32_only, PolicyConfig(), "phone").accuracy_key == "fp32"
    none = make_manifest(rows, accuracy_keys=())
    with pytest.raises(ValueError, match="ondevice eval"):
        build_table(none, PolicyConfig(), "phone")
    asked = replace(PolicyConfig(), accuracy=replace(PolicyConfig().accuracy, precision="int4"))
    with pytest.raises(ValueError, match="asks for accuracy 'int4'"):
        build_table(both, asked, "phone")


def test_subnets_without_latency_are_left_out():
    manifest = make_manifest([("FF", 0.9, 10.0), ("TT", 0.8, 6.0)])
    del manifest["latency"]["phone"]["subnets"]["FF"]
    assert Policy.from_manifest(manifest, device="phone").front == ("TT",)
    manifest["latency"]["phone"]["subnets"] = {}
    with pytest.raises(ValueError, match="lists none"):
        Policy.from_manifest(manifest, device="phone")


# --- decisions ------------------------------------------------------------------------------------------------


def decide(policy, state, t=0.0, memory=None):
    return policy.decide(state, t, memory)[0]


def test_cool_phone_gets_the_most_accurate(toy):
    d = decide(toy, COOL)
    assert (d.gates, d.below_floor, d.over_budget, d.held, d.switched) == ("FFF", False, False, False, False)


def test_heat_steps_down(toy):
    chosen = [decide(toy, replace(COOL, thermal=level)).index for level in range(7)]
    assert chosen == sorted(chosen, reverse=True)
    assert chosen[0] == 4 and chosen[-1] == 0
    assert decide(toy, replace(COOL, thermal=4)).over_budget  # CRITICAL allows no energy: the cheapest, flagged


def test_latency_budget_and_slowdown(toy):
    assert decide(toy, replace(COOL, latency_budget_ms=8.8)).gates == "FTT"  # equal fits
    assert decide(toy, replace(COOL, latency_budget_ms=math.nextafter(8.8, 0))).gates == "TFF"
    warm = decide(toy, replace(COOL, thermal=2, latency_budget_ms=11.0))
    assert warm.latency_cap_ms == 11.0 / 1.25 and warm.limit in ("latency", "energy")
    nothing = decide(toy, replace(COOL, latency_budget_ms=1.0))
    assert (nothing.gates, nothing.over_budget, nothing.limit) == ("TTT", True, "latency")


def test_accuracy_floor(toy):
    assert decide(toy, replace(COOL, accuracy_floor=0.95)).gates == "FFF"  # met exactly
    unmet = decide(toy, replace(COOL, latency_budget_ms=9.9, accuracy_floor=0.95))
    assert (unmet.gates, unmet.below_floor, unmet.over_budget) == ("TTT", True, False)  # cheapest, flagged
    both = decide(toy, replace(COOL, latency_budget_ms=1.0, accuracy_floor=0.99))
    assert both.below_floor and both.over_budget


def test_battery_tiers_power_save_and_charging(toy):
    cfg = toy.config
    full = decide(toy, COOL)
    assert full.energy == 1.0
    at = decide(toy, replace(COOL, battery=cfg.battery.tiers[0].below))
    below = decide(toy, replace(COOL, battery=math.nextafter(cfg.battery.tiers[0].below, 0)))
    assert at.energy == cfg.battery.tiers[1].energy and below.energy == cfg.battery.tiers[0].energy
    assert below.index <= at.index <= full.index
    assert decide(toy, replace(COOL, battery=0.01, charging=True)).energy == 1.0
    assert decide(toy, replace(COOL, battery=0.01, charging=None)).energy == cfg.battery.tiers[0].energy
    assert decide(toy, replace(COOL, power_save=True, charging=True)).energy == cfg.battery.power_save_energy


def test_unknown_readings_have_their_documented_meaning(toy):
    cfg = toy.config
    unknown = DeviceState()
    d = decide(toy, unknown)
    assert d.level == cfg.thermal.unknown_level
    assert d.battery == cfg.battery.unknown_fraction
    assert d.latency_budget_ms == cfg.latency.default_budget_ms
    assert d.floor == cfg.accuracy.default_floor
    nan = DeviceState(
        battery=float("nan"), headroom=float("nan"), latency_budget_ms=float("nan"), accuracy_floor=float("nan")
    )
    assert decide(toy, nan).to_json() == d.to_json()
    assert decide(toy, DeviceState(thermal=None, headroom=0.95)).level == Thermal.MODERATE  # headroom alone
    assert decide(toy, DeviceState(thermal=12)).level == Thermal.SHUTDOWN
    assert decide(toy, DeviceState(battery=3.0)).battery == 1.0


def test_headroom_forecast_raises_the_level(toy):
    thresholds = toy.config.thermal.headroom_thresholds
    assert decide(toy, replace(COOL, headroom=thresholds[1])).level == 2
    assert decide(toy, replace(COOL, headroom=math.nextafter(thresholds[1], 0))).level == 1
    assert decide(toy, replace(COOL, thermal=3, headroom=0.0)).level == 3  # the status wins when higher


def test_downgrade_waits_min_dwell_down_and_upgrade_waits_min_dwell_up(toy):
    hy = toy.config.hysteresis
    session = PolicySession(toy)
    assert session.decide(COOL, 0.0).gates == "FFF"
    hot = replace(COOL, thermal=3)
    assert session.decide(hot, 0.5 * hy.min_dwell_down_s).held  # too soon after the first choice
    down = session.decide(hot, hy.min_dwell_down_s)
    assert down.switched and down.index < 4
    t = hy.min_dwell_down_s + 1.0
    first_chance = session.decide(COOL, t)
    assert first_chance.held and not first_chance.switched
    assert session.decide(COOL, t + hy.min_dwell_up_s - 0.01).held
    up = session.decide(COOL, t + hy.min_dwell_up_s)
    assert up.switched and up.gates == "FFF"


def test_interrupted_upgrade_chance_restarts_the_dwell(toy):
    hy = toy.config.hysteresis
    memory = toy.decide(replace(COOL, thermal=3), 0.0)[1]
    memory = toy.decide(COOL, 10.0, memory)[1]
    memory = toy.decide(replace(COOL, thermal=3), 10.0 + hy.min_dwell_up_s / 2, memory)[1]  # chance gone
    assert memory.up_since_s is None
    d, memory = toy.decide(COOL, 10.0 + hy.min_dwell_up_s, memory)
    assert d.held and memory.up_since_s == 10.0 + hy.min_dwell_up_s


def test_upgrade_margin(toy):
    start = toy.decide(replace(COOL, latency_budget_ms=6.6), 0.0)[1]
    assert start.gates == "TTT"
    # TFF (8.25) fits 8.5 but not 8.5 * 0.9: held however long we wait.
    d, memory = toy.decide(replace(COOL, latency_budget_ms=8.5), 100.0, start)
    d, memory = toy.decide(replace(COOL, latency_budget_ms=8.5), 1000.0, memory)
    assert d.gates == "TTT" and d.target == "TFF" and d.held
    greedy = Policy(toy.table, toy.config.without_hysteresis())
    assert greedy.decide(replace(COOL, latency_budget_ms=8.5), 100.0, start)[0].gates == "TFF"


def test_clock_going_backwards_restarts_the_dwell(toy):
    memory = toy.decide(COOL, 100.0)[1]
    d, memory = toy.decide(replace(COOL, thermal=3), 50.0, memory)
    assert memory.since_s == 50.0 and d.held and not d.switched  # the dwell restarts at 50
    d, memory = toy.decide(replace(COOL, thermal=3), 50.0 + toy.config.hysteresis.min_dwell_down_s, memory)
    assert d.switched
    with pytest.raises(ValueError, match="finite"):
        toy.decide(COOL, float("nan"))


def test_unknown_memory_gates_start_fresh(toy):
    d, memory = toy.decide(COOL, 5.0, PolicyMemory("XYZ", 0.0))
    assert d.gates == "FFF" and not d.switched and memory == PolicyMemory("FFF", 5.0, None)


def test_same_history_same_choices(toy):
    states = [replace(COOL, thermal=i % 5, headroom=0.9 + 0.01 * (i % 7)) for i in range(50)]

    def run():
        session = PolicySession(toy)
        return [session.decide(s, float(i)).gates for i, s in enumerate(states)]

    assert run() == run()


def test_explain_says_why(toy):
    state = DeviceState(battery=0.1, thermal=3, latency_budget_ms=20.0, accuracy_floor=0.99)
    d = decide(toy, state)
    text = toy.explain(d, state)
    for needle in ("level SEVERE", "slowdown 1.5", "battery 10%", "BELOW the accuracy floor", "effective budget"):
        assert needle in text, text
    unknown = toy.explain(decide(toy, DeviceState()), DeviceState())
    assert "assume LIGHT" in unknown and "battery unknown" in unknown


def test_decision_is_cheap(toy):
    """A loose guard (the real measurement is benchmarks/bench_policy.py): well under 100 us per decision."""
    state = DeviceState(battery=0.4, thermal=2, headroom=0.95, latency_budget_ms=10.0)
    memory = toy.decide(state, 0.0)[1]
    per_call = min(timeit.repeat(lambda: toy.decide(state, 1.0, memory), number=2000, repeat=3)) / 2000
    assert per_call < 100e-6


def test_config_validates_on_construction():
    with pytest.raises(PolicyConfigError, match="tiers"):
        replace(
            PolicyConfig(),
            battery=replace(PolicyConfig().battery, tiers=(BatteryTier(0.5, 0.5), BatteryTier(0.2, 0.6))),
        )


def test_latency_is_made_monotone_over_the_gate_lattice():
    """Hand-computed: a noisy base-net (9 ms) is capped by the cheapest sub-network that runs more stages."""
    noisy = {"FF": 5.0, "FT": 3.0, "TF": 4.0, "TT": 9.0}
    assert monotone_latency(noisy) == {"FF": 5.0, "FT": 3.0, "TF": 4.0, "TT": 3.0}
    assert monotone_latency({"FF": 5.0, "FT": 6.0, "TT": 1.0}) == {"FF": 5.0, "FT": 5.0, "TT": 1.0}  # FT <= FF
    with pytest.raises(ValueError, match="latency nan ms"):
        monotone_latency({"FF": 5.0, "TT": float("nan")})


# --- accuracy slack ----------------------------------------------------------------------------------------------


def _slack(slack: float, floor: float = 0.0) -> Policy:
    config = PolicyConfig()
    return Policy.from_manifest(
        make_manifest(TOY_ROWS),
        replace(config, accuracy=replace(config.accuracy, slack=slack, default_floor=floor)),
        device="phone",
    )


@pytest.mark.parametrize(
    ("slack", "floor", "chosen"),
    [
        (0.0, 0.0, "FFF"),  # the most accurate the caps allow
        (0.006, 0.0, "FFT"),  # 0.945 >= 0.950 - 0.006: the cheapest within the slack
        (0.011, 0.0, "FTT"),  # 0.940 >= 0.939
        (0.031, 0.0, "TTT"),  # the whole front is within 0.031
        (0.031, 0.944, "FFT"),  # ... but the floor still holds
    ],
)
def test_the_cheapest_sub_network_within_the_slack_is_chosen(slack, floor, chosen):
    decision, _ = _slack(slack, floor).decide(COOL, 0.0)
    assert decision.gates == decision.target == chosen


def test_an_upgrade_stops_at_the_cheapest_sub_network_within_the_slack():
    """Hot (SEVERE: the caps allow TTT only), then cool: the upgrade goes to FFT, not to FFF 0.5 points above."""
    policy = _slack(0.006)
    hot = replace(COOL, thermal=4)
    first, memory = policy.decide(hot, 0.0)
    assert first.gates == "TTT"
    waiting, memory = policy.decide(COOL, 600.0, memory)  # the upgrade waits out min_dwell_up_s
    assert waiting.gates == "TTT" and waiting.target == "FFT"
    later, _ = policy.decide(COOL, 600.0 + policy.config.hysteresis.min_dwell_up_s, memory)
    assert later.gates == "FFT" and later.switched


# --- latency tables per thermal status ---------------------------------------------------------------------------

HOT = replace(COOL, charging=True, latency_budget_ms=1e6)  # no deadline, no battery limit: heat limits by energy


def _thermal_example(energy: tuple[float, ...] | None = None) -> Policy:
    config = PolicyConfig()
    if energy is not None:
        config = replace(config, thermal=replace(config.thermal, energy=energy))
    return Policy.from_manifest(example_manifest(thermal=True), config, EXAMPLE_DEVICE)


def test_each_level_ranks_with_the_hottest_table_measured_at_or_below_it():
    """The example's SEVERE table makes FFFT (0.812) slower than FFFF (0.814): it leaves the front there."""
    policy = _thermal_example()
    cool_front = ("TTTT", "TTFT", "TTFF", "FFFT", "FFFF")
    assert [policy.front_at(level) for level in range(3)] == [cool_front] * 3
    assert [policy.front_at(level) for level in range(3, 7)] == [("TTTT", "TTFT", "TTFF", "FFFF")] * 4
    severe = example_manifest(thermal=True)["latency"][EXAMPLE_DEVICE]["thermal"]["severe"]["subnets"]
    assert policy.latency_at(3, "FFFF") == severe["FFFF"]["p90_ms"]  # the statistic of the severe table itself
    levels = [policy.decide(replace(HOT, thermal=level), 0.0)[0].table_level for level in range(7)]
    assert levels == [0, 0, 2, 3, 4, 4, 4]


def test_only_the_slowdown_beyond_the_measured_table_is_applied():
    """Hand-computed with the default slowdown (1, 1.1, 1.25, 1.5, 2, 3, 3): at SEVERE the SEVERE table already
    holds the throttling (budget / (1.5 / 1.5)); at EMERGENCY the CRITICAL table is throttled by 3 / 2 more; at
    LIGHT, below every thermal table, the cool table by 1.1."""
    policy = _thermal_example()
    for level, expected in ((1, 300.0 / 1.1), (3, 300.0), (4, 300.0), (5, 300.0 / (3.0 / 2.0))):
        decision, _ = policy.decide(replace(HOT, thermal=level, latency_budget_ms=300.0), 0.0)
        assert decision.latency_cap_ms == expected, level


def test_energy_at_a_hot_level_is_a_share_of_that_tables_most_accurate():
    policy = _thermal_example()
    severe = example_manifest(thermal=True)["latency"][EXAMPLE_DEVICE]["thermal"]["severe"]["subnets"]
    decision, _ = policy.decide(replace(HOT, thermal=3), 0.0)
    assert decision.energy_cap_ms == 0.5 * severe["FFFF"]["p90_ms"]


def test_a_choice_that_a_hotter_table_ranks_behind_a_better_one_is_replaced_at_once():
    policy = _thermal_example(energy=(1.0,) * 7)  # heat limits through latency only
    fit_fft = replace(HOT, latency_budget_ms=policy.latency_at(0, "FFFT"))
    first, memory = policy.decide(fit_fft, 0.0)
    assert first.gates == "FFFT"
    # 0.1 s later, SEVERE: FFFT is dominated by FFFF there; no dwell applies to a change that loses nothing.
    hot, memory = policy.decide(replace(HOT, thermal=3), 0.1, memory)
    assert (hot.gates, hot.switched, hot.table_level) == ("FFFF", True, 3)
    # ... and it counts as a switch: a downgrade right after waits min_dwell_down_s from it.
    tight = replace(HOT, thermal=3, latency_budget_ms=policy.latency_at(3, "TTTT"))
    held, memory = policy.decide(tight, 0.2, memory)
    assert held.gates == "FFFF" and held.held
    down, _ = policy.decide(tight, 0.1 + policy.config.hysteresis.min_dwell_down_s, memory)
    assert down.gates == "TTTT" and down.switched


def test_without_thermal_tables_every_level_uses_the_cool_table():
    policy = Policy.from_manifest(example_manifest(), device=EXAMPLE_DEVICE)
    assert policy.table.thermal == ()
    for level in range(7):
        decision, _ = policy.decide(replace(HOT, thermal=level, latency_budget_ms=300.0), 0.0)
        assert decision.table_level == 0 and decision.latency_cap_ms == 300.0 / policy.config.thermal.slowdown[level]


def test_a_thermal_table_must_time_the_cool_tables_sub_networks():
    manifest = example_manifest(thermal=True)
    del manifest["latency"][EXAMPLE_DEVICE]["thermal"]["severe"]["subnets"]["FFFT"]
    with pytest.raises(ValueError, match="'severe' thermal table lists"):
        validate_manifest(manifest, "manifest.json")
    with pytest.raises(ValueError, match="must time the same sub-networks"):
        build_table(manifest, PolicyConfig(), EXAMPLE_DEVICE)


def test_explain_names_the_thermal_table():
    policy = _thermal_example()
    state = replace(HOT, thermal=4, latency_budget_ms=300.0)
    text = policy.explain(policy.decide(state, 0.0)[0], state)
    assert "latency table measured at CRITICAL" in text and "TTTT, TTFT, TTFF, FFFF" in text
