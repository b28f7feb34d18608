"""Property-based tests: any state gives a valid choice; hotter or emptier never costs more; hysteresis bounds
switches. Examples are kept modest so the file runs in seconds."""

import math
import os
import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_helpers import TOY_ROWS, make_manifest

from ondevice.models import all_gates
from ondevice.policy import DeviceState, Policy, PolicyConfig, PolicyMemory, build_table
from ondevice.policy.config import BatteryParams, BatteryTier, HysteresisParams, ThermalParams

# POLICY_EXAMPLES=3000 for a deeper search (minutes); the default keeps the file at a few seconds.
SETTINGS = settings(
    max_examples=int(os.environ.get("POLICY_EXAMPLES", 100)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TOY = Policy.from_manifest(make_manifest(TOY_ROWS), device="phone")

any_float = st.floats(allow_nan=True, allow_infinity=True)
maybe = st.none() | any_float
states = st.builds(
    DeviceState,
    battery=maybe,
    charging=st.none() | st.booleans(),
    power_save=st.none() | st.booleans(),
    thermal=st.none() | st.integers(-3, 10),
    headroom=maybe,
    latency_budget_ms=maybe,
    accuracy_floor=maybe,
)
known_states = st.builds(
    DeviceState,
    battery=st.floats(0, 1),
    charging=st.just(False),
    power_save=st.booleans(),
    thermal=st.integers(0, 6),
    headroom=st.none() | st.floats(-1, 2),
    latency_budget_ms=st.floats(0.1, 100),
    accuracy_floor=st.floats(0, 1),
)


@st.composite
def tables(draw):
    """Random manifests: 1-3 stages, any subset of gate settings, any accuracy and latency, ties included."""
    n = draw(st.integers(1, 3))
    gates = draw(st.lists(st.sampled_from([str(g) for g in all_gates(n)]), min_size=1, unique=True))
    rows = [(g, draw(st.sampled_from([0.5, 0.7, 0.9]) | st.floats(0, 1)), draw(st.floats(0.1, 100))) for g in gates]
    return make_manifest(rows)


@st.composite
def configs(draw):
    """Any valid policy.json: non-decreasing slowdowns, non-increasing energies, sorted tiers."""
    slow = sorted(draw(st.lists(st.floats(1, 5), min_size=7, max_size=7)))
    energy = sorted(draw(st.lists(st.floats(0, 1), min_size=7, max_size=7)), reverse=True)
    belows = sorted(set(draw(st.lists(st.floats(0.01, 1), max_size=3))))
    tier_energy = sorted(draw(st.lists(st.floats(0, 1), min_size=len(belows), max_size=len(belows))))
    return replace(
        PolicyConfig(),
        thermal=ThermalParams(slowdown=tuple(slow), energy=tuple(energy)),
        battery=BatteryParams(
            tiers=tuple(BatteryTier(b, e) for b, e in zip(belows, tier_energy)), power_save_energy=draw(st.floats(0, 1))
        ),
        hysteresis=HysteresisParams(
            upgrade_margin=draw(st.floats(0, 0.5)),
            min_dwell_up_s=draw(st.floats(0, 30)),
            min_dwell_down_s=draw(st.floats(0, 5)),
        ),
    )


@SETTINGS
@given(
    manifest=tables(), state=states, t=st.floats(-1e6, 1e6), memory_gates=st.none() | st.text(alphabet="TF", max_size=3)
)
def test_any_state_gives_a_valid_front_member(manifest, state, t, memory_gates):
    policy = Policy.from_manifest(manifest, device="phone")
    memory = PolicyMemory(memory_gates, 0.0)
    decision, new_memory = policy.decide(state, t, memory)
    assert decision.gates in policy.front and new_memory.gates == decision.gates
    assert policy.table.front[decision.index].gates == decision.gates
    assert 0 <= decision.level <= 6 and 0.0 <= decision.battery <= 1.0
    assert decision.cap_ms >= 0 and not math.isnan(decision.cap_ms)
    assert decision.below_floor == (decision.accuracy < decision.floor)


@SETTINGS
@given(manifest=tables())
def test_front_is_strictly_increasing_and_dominates_the_rest(manifest):
    table = build_table(manifest, PolicyConfig(), "phone")
    lat = [s.latency_ms for s in table.front]
    acc = [s.accuracy for s in table.front]
    assert lat == sorted(set(lat)) and acc == sorted(set(acc))
    for s in table.candidates:
        assert any(f.latency_ms <= s.latency_ms and f.accuracy >= s.accuracy for f in table.front)


@SETTINGS
@given(config=configs(), state=known_states, hotter=st.integers(0, 6), headroom_up=st.floats(0, 2))
def test_hotter_never_costs_more(config, state, hotter, headroom_up):
    policy = Policy(TOY.table, config)
    base = policy.decide(state, 0.0)[0].index
    warmer = replace(state, thermal=max(state.thermal, hotter))
    assert policy.decide(warmer, 0.0)[0].index <= base
    if state.headroom is not None:
        assert policy.decide(replace(state, headroom=state.headroom + headroom_up), 0.0)[0].index <= base


@SETTINGS
@given(config=configs(), state=known_states, emptier=st.floats(0, 1), tighter=st.floats(0.01, 1))
def test_emptier_or_saving_never_costs_more(config, state, emptier, tighter):
    policy = Policy(TOY.table, config)
    base = policy.decide(state, 0.0)[0].index
    assert policy.decide(replace(state, battery=state.battery * emptier), 0.0)[0].index <= base
    assert policy.decide(replace(state, power_save=True), 0.0)[0].index <= base
    assert policy.decide(replace(state, latency_budget_ms=state.latency_budget_ms * tighter), 0.0)[0].index <= base


@SETTINGS
@given(
    config=configs(),
    steps=st.lists(st.tuples(st.floats(0.01, 5), known_states), min_size=1, max_size=80),
)
def test_hysteresis_spaces_switches(config, steps):
    """An upgrade comes >= min_dwell_up_s after the previous switch, a downgrade >= min_dwell_down_s after it."""
    policy = Policy(TOY.table, config)
    hy = config.hysteresis
    memory, t, last_change, previous = PolicyMemory(), 0.0, None, None
    for dt, state in steps:
        t += dt
        decision, memory = policy.decide(state, t, memory)
        if previous is None:
            assert not decision.switched
            last_change = t
        elif decision.switched:
            gap = t - last_change
            dwell = hy.min_dwell_up_s if decision.index > previous else hy.min_dwell_down_s
            assert gap >= dwell - 1e-9
            last_change = t
        else:
            assert decision.index == previous
        previous = decision.index


@settings(SETTINGS, max_examples=min(SETTINGS.max_examples, 30))
@given(seed=st.integers(0, 10_000), noise=st.floats(0.001, 0.2))
def test_noise_around_a_threshold_does_not_flap(seed, noise):
    """A headroom jittering around a level boundary every second for 10 minutes: a few switches, not hundreds."""
    rng = random.Random(seed)
    policy = TOY
    threshold = policy.config.thermal.headroom_thresholds[1]
    memory = PolicyMemory()
    switches = 0
    greedy = Policy(TOY.table, TOY.config.without_hysteresis())
    greedy_memory = PolicyMemory()
    greedy_switches = 0
    minutes = 10
    for second in range(60 * minutes):
        headroom = None if rng.random() < 0.05 else threshold + rng.gauss(0, noise)
        state = DeviceState(battery=0.8, thermal=1, headroom=headroom, latency_budget_ms=100.0)
        d, memory = policy.decide(state, float(second), memory)
        g, greedy_memory = greedy.decide(state, float(second), greedy_memory)
        switches += d.switched
        greedy_switches += g.switched
    hy = policy.config.hysteresis
    assert switches <= 2 * (60 * minutes / (hy.min_dwell_up_s + hy.min_dwell_down_s)) + 1
    assert switches <= 6 * minutes  # <= 1 switch per 10 s
    assert switches <= greedy_switches


@SETTINGS
@given(steps=st.lists(st.tuples(st.floats(0, 5), states), min_size=1, max_size=30))
def test_same_history_same_choices(steps):
    def run():
        memory, t, out = PolicyMemory(), 0.0, []
        for dt, state in steps:
            t += dt
            decision, memory = TOY.decide(state, t, memory)
            out.append((decision.gates, decision.switched, decision.held))
        return out

    assert run() == run()
