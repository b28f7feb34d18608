"""Decision cost of the policy (goal: median <= 20 us per decision in Python).

Run: ``python -m pytest benchmarks/bench_policy.py`` (benchmarks are not part of the test run). Speed is measured,
not asserted: each benchmark records its median against the goal in ``extra_info``.
"""

import pytest

from ondevice.policy import DeviceState, Policy, PolicyConfig, PolicyMemory
from ondevice.policy.example import EXAMPLE_DEVICE, example_manifest

GOAL_S = 20e-6


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.from_manifest(example_manifest(), PolicyConfig(), EXAMPLE_DEVICE)


def _check(benchmark) -> None:
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(median_us=median * 1e6, goal_us=GOAL_S * 1e6, meets_goal=median <= GOAL_S)


def test_decide_steady_state(benchmark, policy):
    """The common call: a known state, a current choice, no switch."""
    state = DeviceState(
        battery=0.42,
        charging=False,
        power_save=False,
        thermal=2,
        headroom=0.95,
        latency_budget_ms=250.0,
        accuracy_floor=0.8,
    )
    memory = policy.decide(state, 0.0)[1]
    benchmark(policy.decide, state, 100.0, memory)
    _check(benchmark)


def test_decide_unknown_readings(benchmark, policy):
    """Everything unknown or NaN: the defaults path."""
    state = DeviceState(battery=None, thermal=None, headroom=float("nan"))
    benchmark(policy.decide, state, 100.0, PolicyMemory())
    _check(benchmark)


def test_decide_upgrade_path(benchmark, policy):
    """A cool phone after a downgrade: the upgrade (margin + dwell) branch runs every call."""
    hot = DeviceState(battery=0.9, thermal=3, latency_budget_ms=250.0)
    cool = DeviceState(battery=0.9, thermal=0, latency_budget_ms=250.0)
    memory = policy.decide(cool, 0.0)[1]
    memory = policy.decide(hot, 5.0, memory)[1]
    memory = policy.decide(cool, 6.0, memory)[1]
    benchmark(policy.decide, cool, 10.0, memory)
    _check(benchmark)


def test_android_readings_to_decision(benchmark, policy):
    """Normalization from Android readings plus the decision, as an app would call it once per frame."""

    def step() -> object:
        state = DeviceState.from_android(
            capacity_percent=42,
            plugged=0,
            power_save=False,
            thermal_status=2,
            headroom=0.95,
            latency_budget_ms=250.0,
        )
        return policy.decide(state, 100.0)

    benchmark(step)
    _check(benchmark)
