import json
import math
from dataclasses import replace

import pytest
from policy_helpers import TOY_ROWS, make_manifest

from ondevice.cli import main
from ondevice.contract.manifest import save_manifest
from ondevice.policy import PolicyConfig, write_policy_json
from ondevice.policy.example import EXAMPLE_DEVICE, example_manifest, write_example_bundle
from ondevice.policy.simulate import (
    COOL_TABLE_ONLY,
    STRATEGIES,
    SimConfig,
    format_report,
    run_strategies,
    simulate_bundle,
)

SHORT = SimConfig(minutes=2.0, trace_period_s=10.0)


@pytest.fixture(scope="module")
def default_hour() -> dict:
    """The default simulated hour on the example bundle (~0.5 s)."""
    return run_strategies(example_manifest(), SimConfig())


def test_default_hour_meets_the_goals(default_hour):
    goals = default_hour["goals"]
    assert goals["met"] == {key: True for key in goals["met"]}, format_report(default_hour)
    assert goals["inference_energy_saving"] >= 0.30
    assert goals["accuracy_drop_points"] <= 1.0
    super_net, policy = default_hour["strategies"]["super-net"], default_hour["strategies"]["policy"]
    assert super_net["time_in_state_s"]["CRITICAL"] > 0 and policy["time_in_state_s"]["CRITICAL"] == 0
    greedy = default_hour["strategies"]["greedy"]
    assert policy["switches"] < greedy["switches"]


def test_report_shape_and_fixed_strategies(default_hour):
    assert set(default_hour["strategies"]) == set(STRATEGIES)
    for name in ("super-net", "base-net"):
        r = default_hour["strategies"][name]
        assert r["switches"] == 0 and len(r["share"]) == 1
    base = default_hour["strategies"]["base-net"]
    assert all(base["inference_energy_j"] <= r["inference_energy_j"] for r in default_hour["strategies"].values())
    assert default_hour["super_net"] == "FFFF" and default_hour["base_net"] == "TTTT"
    json.dumps(default_hour, allow_nan=False)  # strict JSON


def test_same_trace_for_every_strategy_and_deterministic():
    a = run_strategies(example_manifest(), SHORT)
    b = run_strategies(example_manifest(), SHORT)
    assert a == b
    assert len({r["requests"] for r in a["strategies"].values()}) == 1
    c = run_strategies(example_manifest(), replace(SHORT, seed=1))
    assert c["strategies"]["policy"]["inference_energy_j"] != a["strategies"]["policy"]["inference_energy_j"]


def test_energy_is_conserved_and_an_idle_phone_settles():
    sim = replace(SHORT, request_hz=1e-5, minutes=120.0, start_c=25.0, trace_period_s=60.0)  # no request at all
    r = run_strategies(example_manifest(), sim)["strategies"]["policy"]
    assert r["served"] == 0 and r["inference_energy_j"] == 0.0
    assert r["total_energy_j"] == pytest.approx(sim.idle_w * sim.minutes * 60.0)
    settle = sim.ambient_c + sim.idle_w * sim.resistance_k_per_w
    assert r["trace"]["temp_c"][-1] == pytest.approx(settle, abs=0.05)
    hours = sim.minutes / 60.0
    assert r["battery_left"] == pytest.approx(sim.start_battery - sim.idle_w * hours / sim.battery_wh)


def _with_power(manifest: dict, idle_w: float, active_w: float) -> dict:
    """The example manifest with its latency table carrying battery power measured by an app."""
    manifest = json.loads(json.dumps(manifest))
    table = next(iter(manifest["latency"].values()))
    table["power"] = {
        "method": "current-voltage",
        "idle_w": idle_w,
        "busy_w": idle_w + active_w,
        "active_w": active_w,
        "idle_s": 10.0,
        "busy_s": 20.0,
        "samples": 300,
    }
    return manifest


def test_power_measured_on_the_phone_replaces_the_assumed_constants():
    """Two cool minutes (no throttling): inference energy = busy time x active_w, idle draw = idle_w x duration."""
    sim = replace(SHORT, start_c=25.0)
    assumed = run_strategies(example_manifest(), sim)
    one = run_strategies(_with_power(example_manifest(), 0.5, 1.5), sim)
    two = run_strategies(_with_power(example_manifest(), 0.5, 3.0), sim)
    assert assumed["power_source"] == "SimConfig" and one["power_source"].startswith("measured on")
    assert one["active_w"] == 1.5 and one["sim"]["idle_w"] == 0.5
    for name in STRATEGIES:
        a, b = one["strategies"][name], two["strategies"][name]
        assert a["time_in_state_s"] == b["time_in_state_s"] and a["served"] == b["served"]
        assert b["inference_energy_j"] == pytest.approx(2 * a["inference_energy_j"], rel=1e-9)
        idle_j = a["total_energy_j"] - a["inference_energy_j"]
        assert idle_j == pytest.approx(0.5 * sim.minutes * 60.0, rel=1e-9)
        ratio = assumed["strategies"][name]["inference_energy_j"] / a["inference_energy_j"]
        assert ratio == pytest.approx(assumed["active_w"] / 1.5, rel=1e-9)


def test_hot_start_throttles_the_super_net():
    sim = replace(SHORT, start_c=47.0, minutes=3.0)
    report = run_strategies(example_manifest(), sim)
    super_net, policy = report["strategies"]["super-net"], report["strategies"]["policy"]
    assert super_net["deadline_misses"] > 0
    assert policy["deadline_misses"] <= super_net["deadline_misses"]
    assert policy["mean_accuracy"] < super_net["mean_accuracy"]


def test_what_if_scaling_reaches_the_policy_too():
    report = run_strategies(example_manifest(), replace(SHORT, super_net_ms=175.8 * 2))
    assert report["latency_scale"] == pytest.approx(2.0)
    assert report["front"][-1]["latency_ms"] == pytest.approx(2 * 193.38)  # the policy plans with the scaled table
    with pytest.raises(ValueError, match="latency_scale"):
        SimConfig(latency_scale=2.0, super_net_ms=100.0)


def test_manifest_without_latency_table_uses_flops(tmp_path):
    manifest = make_manifest(TOY_ROWS, {})
    report = run_strategies(manifest, SHORT)
    assert "FLOPs" in report["latency_source"] and report["device"] is None
    assert report["strategies"]["policy"]["served"] > 0


def test_simulate_bundle_writes_json_and_png(tmp_path):
    bundle = tmp_path / "bundle"
    save_manifest(bundle / "manifest.json", make_manifest(TOY_ROWS))
    write_policy_json(bundle, PolicyConfig().without_hysteresis())  # the bundle's policy.json is used
    report = simulate_bundle(bundle, tmp_path / "out", replace(SHORT, latency_budget_ms=15.0, request_hz=30.0))
    assert report["policy"]["hysteresis"]["min_dwell_up_s"] == 0.0
    assert (tmp_path / "out" / "simulation.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "out" / "simulation.json").read_text())
    assert set(data["strategies"]) == set(STRATEGIES) and "goals" in data
    assert "| policy |" in format_report(report)


def test_sim_config_rejects_bad_values():
    with pytest.raises(ValueError, match="start_battery"):
        SimConfig(start_battery=0.0)
    with pytest.raises(ValueError, match="status_c"):
        SimConfig(status_c=(45.0, 40.0, 46.0, 47.0, 50.0, 55.0))


def test_cli_simulate_decide_init_example(tmp_path, capsys):
    bundle = write_example_bundle(tmp_path / "b")
    sim = ["policy", "simulate", str(bundle), "--minutes", "1", "--out", str(tmp_path / "sim"), "--super-net-ms", "90"]
    assert main(sim) == 0
    out = capsys.readouterr().out
    assert "| super-net |" in out and (tmp_path / "sim" / "simulation.png").is_file()
    assert json.loads((tmp_path / "sim" / "simulation.json").read_text())["latency_scale"] == pytest.approx(90 / 175.8)

    assert (
        main(["policy", "decide", str(bundle), "--battery", "15%", "--thermal", "serious", "--budget-ms", "250"]) == 0
    )
    out = capsys.readouterr().out
    assert "level SEVERE" in out and "choice: TTTT" in out and "battery 15%" in out

    assert (
        main(
            [
                "policy",
                "decide",
                str(bundle / "manifest.json"),
                "--thermal",
                "none",
                "--battery",
                "1",
                "--budget-ms",
                "1000",
                "--json",
            ]
        )
        == 0
    )
    decision = json.loads(capsys.readouterr().out)["decision"]
    assert decision["gates"] == "FFFF" and not math.isnan(decision["cap_ms"])

    assert main(["policy", "init", str(bundle)]) == 2  # exists
    assert "--force" in capsys.readouterr().err
    assert main(["policy", "init", str(bundle), "--force"]) == 0
    assert main(["policy", "decide", str(bundle), "--battery", "150"]) == 2
    assert "fraction" in capsys.readouterr().err


def test_cli_decide_reports_a_bad_policy_json(tmp_path, capsys):
    bundle = write_example_bundle(tmp_path / "b")
    data = json.loads((bundle / "policy.json").read_text())
    data["policy_version"] = 9
    (bundle / "policy.json").write_text(json.dumps(data))
    assert main(["policy", "decide", str(bundle)]) == 2
    assert "policy_version 9" in capsys.readouterr().err


def test_goals_that_cannot_apply_to_a_session_say_n_a():
    from ondevice.policy.simulate import check_goals

    def strategy(critical_s: float) -> dict:
        return {
            "inference_energy_j": 10.0,
            "total_energy_j": 20.0,
            "served": 10,
            "mean_accuracy": 0.9,
            "switches_per_min": 0.0,
            "deadline_misses": 0,
            "time_in_state_s": {"CRITICAL": critical_s},
        }

    key = "keeps_out_of_critical_where_super_net_reaches_it"
    cool = {name: strategy(0.0) for name in ("super-net", "base-net", "policy")}
    assert check_goals(cool)["met"][key] is None
    hot = {**cool, "super-net": strategy(30.0)}
    assert check_goals(hot)["met"][key] is True
    assert check_goals({**hot, "policy": strategy(5.0)})["met"][key] is False
    # "fewer misses than the super-net" only where the super-net misses any (the demo's cool session: none)
    fewer = "fewer_misses_where_super_net_misses"
    assert check_goals(cool)["met"][fewer] is None
    missing = {**cool, "super-net": {**strategy(0.0), "deadline_misses": 3}}
    assert check_goals(missing)["met"][fewer] is True
    assert check_goals({**missing, "policy": {**strategy(0.0), "deadline_misses": 3}})["met"][fewer] is False


def test_a_profiled_table_with_median_intervals_is_simulated_like_one_without():
    """`ondevice profile` writes median_ci95_ms intervals beside the statistics; scaling keeps them consistent."""
    plain = example_manifest()
    profiled = json.loads(json.dumps(plain))
    for table in profiled["latency"].values():
        for entry in table["subnets"].values():
            entry["median_ci95_ms"] = [0.9 * entry["median_ms"], 1.1 * entry["median_ms"]]
    sim = replace(SHORT, super_net_ms=175.0)
    assert run_strategies(profiled, sim)["goals"] == run_strategies(plain, sim)["goals"]


def test_the_simulated_phone_throttles_with_the_thermal_tables():
    """A run at OS status s takes the hottest table measured at or below s, throttled by the rest of the way:
    hand-computed from the example's tables and SimConfig's throttle_slowdown (1, 1, 1.1, 1.3, 1.7, 2.5, 3)."""
    from ondevice.policy import Policy
    from ondevice.policy.simulate import _nets

    manifest = example_manifest(thermal=True)
    nets, _ = _nets(Policy.from_manifest(manifest, device=EXAMPLE_DEVICE), manifest)
    hot = manifest["latency"][EXAMPLE_DEVICE]["thermal"]
    throttle = SimConfig().throttle_slowdown
    ffff = nets["FFFF"]
    assert ffff.latency_s(1, 0.0, throttle) == 175.8 / 1000.0 * 1.0  # below every table: the cool median
    assert ffff.latency_s(3, 0.0, throttle) == hot["severe"]["subnets"]["FFFF"]["median_ms"] / 1000.0
    expected = hot["critical"]["subnets"]["FFFF"]["median_ms"] / 1000.0 * (2.5 / 1.7)
    assert ffff.latency_s(5, 0.0, throttle) == expected  # EMERGENCY: CRITICAL's table, throttled by 2.5 / 1.7


def test_with_thermal_tables_the_policy_that_ignores_them_runs_beside():
    report = run_strategies(example_manifest(thermal=True), SHORT, device=EXAMPLE_DEVICE)
    assert set(report["strategies"]) == {*STRATEGIES, COOL_TABLE_ONLY}
    assert "super-net" in format_report(report) and COOL_TABLE_ONLY in format_report(report)
