"""A phone session, simulated: battery, heat, throttling and a request stream with a deadline.

Four strategies run on the same trace (same arrivals, same latency noise, same sensor noise): always the
super-net, always the base-net, the policy without hysteresis ("greedy"), and the policy. The models are
deliberately small; every constant is a ``SimConfig`` field with its reason beside it.

* Requests arrive periodically (with jitter) and are served in order, one at a time. A request whose
  deadline has passed before it could start is skipped (a camera pipeline drops stale frames); skipped and
  late requests are deadline misses.
* Latency: the table's median, log-normal noise fitted to its p90, times the throttling slowdown of the OS
  thermal status at the start of the inference.
* Power: ``idle_w`` always (screen, camera preview, the rest of the SoC), plus ``active_w`` of the backend
  times the throttling power factor while an inference runs. Energy per inference = latency x power. When the
  latency table the policy plans with was measured by a demo app that also measured the phone's battery power
  (its ``power``: idle and busy watts), those two numbers replace ``idle_w`` and ``active_w``.
* Heat: one lumped node, C dT/dt = P - (T - T_ambient) / R (Newtonian cooling), integrated exactly between
  events. The OS thermal status follows T through the Pixel-like skin thresholds, with 1 C of hysteresis on
  the way down, and the Android headroom is AOSP's linear normalization of a 10 s forecast, with noise and
  NaN readings.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json_atomic
from .config import PolicyConfig
from .engine import Policy, PolicyMemory, select_latency
from .engine.table import select_thermal_latency
from .state import DeviceState, Thermal

__all__ = [
    "COOL_TABLE_ONLY",
    "STRATEGIES",
    "SimConfig",
    "check_goals",
    "plot_simulation",
    "run_strategies",
    "simulate_bundle",
]

STRATEGIES = ("super-net", "base-net", "greedy", "policy")
COOL_TABLE_ONLY = "policy, cool table only"  # run beside them when the latency table holds thermal tables


@dataclass(frozen=True)
class SimConfig:
    """The simulated session. Defaults: an hour of live classification on a phone held at room temperature."""

    minutes: float = 60.0
    seed: int = 0
    # Request stream: a live-camera feature classifying ~3 frames per second, each answer due within 250 ms
    # (a quarter second feels immediate in a viewfinder overlay). Jitter: +-10% of the period, uniform.
    request_hz: float = 3.0
    jitter: float = 0.1
    latency_budget_ms: float = 250.0
    accuracy_floor: float | None = None
    # What-if: multiply the latency table (the policy plans with the scaled table too), e.g. 2.0 for a phone twice
    # as slow as the profiled device; or give ``super_net_ms`` to scale so that the super-net's median takes that.
    latency_scale: float = 1.0
    super_net_ms: float | None = None
    # Battery: 4,500 mAh at 3.85 V nominal = 17.3 Wh, typical of 2022-24 Android flagships and large iPhones.
    battery_wh: float = 17.3
    start_battery: float = 0.4
    power_save_below: float | None = 0.2  # iOS offers Low Power Mode at 20%; Android's saver schedule is similar
    # Power: screen at mid brightness plus camera preview and ISP draw ~1 W on phones; an fp32 XNNPACK
    # inference on 4 big cores draws ~3 W (CPU cluster + DRAM); NPU-class backends are several times more
    # efficient (Core ML / NNAPI figures of ~1 W for the same work).
    idle_w: float = 1.0
    active_w: dict[str, float] = field(default_factory=lambda: {"xnnpack": 3.0, "portable": 3.0, "coreml": 1.0})
    default_active_w: float = 3.0  # for a backend not listed above
    # Heat: a phone in a hand in still air sheds ~2.5 W at 45 C skin over 25 C ambient -> R ~ 8-10 K/W; 170-200 g
    # of glass, aluminium and battery at ~0.4-0.5 J/(g K) effective for the skin node -> C ~ 70 J/K, so the
    # time constant R C is ~10 minutes, as sustained-load tests of phones show.
    ambient_c: float = 25.0
    start_c: float = 30.0  # skin of a phone already in use, screen on
    resistance_k_per_w: float = 9.0
    capacity_j_per_k: float = 70.0
    # OS thermal status: hot thresholds (C) for LIGHT, MODERATE, SEVERE, CRITICAL, EMERGENCY, SHUTDOWN, like a
    # Pixel's skin sensor (thermal_info_config.json, VIRTUAL-SKIN); the status drops 1 C below a threshold.
    status_c: tuple[float, ...] = (39.0, 43.0, 45.0, 46.5, 52.0, 55.0)
    status_hysteresis_c: float = 1.0
    # Throttling per OS status: latency multiplier and active-power factor (frequency caps cut power
    # super-linearly, but leakage at high temperature and the rails that do not scale (DRAM, uncore) make a
    # throttled inference cost about as much energy as a cool one, slightly more at CRITICAL and above).
    throttle_slowdown: tuple[float, ...] = (1.0, 1.0, 1.1, 1.3, 1.7, 2.5, 3.0)
    throttle_power: tuple[float, ...] = (1.0, 1.0, 0.9, 0.8, 0.65, 0.45, 0.35)
    # Sensors, read once per second (Android returns NaN headroom when polled faster).
    sensor_period_s: float = 1.0
    headroom: bool = True  # Android; False: iOS-like, status only
    headroom_forecast_s: float = 10.0
    headroom_noise: float = 0.01  # ~0.3 C of sensor noise on the 30 C-per-unit scale
    headroom_nan_prob: float = 0.05  # AOSP answers NaN while its temperature history is too short or too old
    trace_period_s: float = 5.0

    def __post_init__(self) -> None:
        checks = {
            "minutes": self.minutes > 0,
            "request_hz": self.request_hz > 0,
            "jitter": 0 <= self.jitter < 1,
            "latency_budget_ms": self.latency_budget_ms > 0,
            "latency_scale": self.latency_scale > 0 and (self.super_net_ms is None or self.latency_scale == 1.0),
            "super_net_ms": self.super_net_ms is None or self.super_net_ms > 0,
            "battery_wh": self.battery_wh > 0,
            "start_battery": 0 < self.start_battery <= 1,
            "resistance_k_per_w": self.resistance_k_per_w > 0,
            "capacity_j_per_k": self.capacity_j_per_k > 0,
            "sensor_period_s": self.sensor_period_s > 0,
            "trace_period_s": self.trace_period_s > 0,
            "status_c": len(self.status_c) == 6 and list(self.status_c) == sorted(self.status_c),
            "throttle_slowdown": len(self.throttle_slowdown) == 7 and min(self.throttle_slowdown) > 0,
            "throttle_power": len(self.throttle_power) == 7 and min(self.throttle_power) > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"simulation setting {bad[0]} = {getattr(self, bad[0])!r} is out of range")


@dataclass
class _Net:
    """A candidate's accuracy and its latency (median, log-normal spread) per measured thermal level (0: cool)."""

    gates: str
    accuracy: float
    latency: dict[int, tuple[float, float]]

    @property
    def median_ms(self) -> float:
        return self.latency[0][0]

    def latency_s(self, status: int, z: float, throttle: tuple[float, ...]) -> float:
        """One run at OS status ``status``: the hottest table measured at or below it, throttled the rest of the way."""
        level = max(m for m in self.latency if m <= status)
        median, sigma = self.latency[level]
        return median / 1000.0 * math.exp(sigma * z) * (throttle[status] / throttle[level])


def _sigma(median: float, p90: float) -> float:
    return math.log(p90 / median) / 1.2816 if p90 > median > 0 else 0.0  # z of the 90th percentile


def _nets(policy: Policy, manifest: dict[str, Any]) -> tuple[dict[str, _Net], str | None]:
    """Latency (median and log-normal spread, per thermal table) and accuracy of every candidate."""
    device = policy.table.device
    cfg = policy.config
    medians, source = select_latency(manifest, device, _with_statistic(cfg, "median_ms"))
    p90s, _ = select_latency(manifest, device, _with_statistic(cfg, "p90_ms"))
    hot_medians = select_thermal_latency(manifest, device, _with_statistic(cfg, "median_ms"))
    hot_p90s = select_thermal_latency(manifest, device, _with_statistic(cfg, "p90_ms"))
    nets = {}
    for s in policy.table.candidates:
        median = medians[s.gates]
        p90 = p90s[s.gates] if source.kind != "flops-estimate" else median * 1.1
        latency = {0: (median, _sigma(median, p90))}
        for level, table in hot_medians.items():
            latency[level] = (table[s.gates], _sigma(table[s.gates], hot_p90s[level][s.gates]))
        nets[s.gates] = _Net(s.gates, s.accuracy, latency)
    return nets, source.backend


class _Phone:
    """Battery, heat and sensors of one run."""

    def __init__(self, sim: SimConfig, noise: list[float], nan: list[bool]) -> None:
        self.sim = sim
        self.t = 0.0
        self.temp = sim.start_c
        self.tau = sim.resistance_k_per_w * sim.capacity_j_per_k
        self.status = self._status_for(sim.start_c, 0)
        self.energy_j = 0.0  # everything drawn from the battery
        self.inference_j = 0.0
        self.capacity_j = sim.battery_wh * 3600.0
        self.time_in = [0.0] * len(Thermal)
        self.max_temp = self.temp
        self.noise, self.nan = noise, nan
        self.tick = 0
        self.next_tick = 0.0
        self.history: list[float] = []
        self.state = DeviceState()
        self.cost: float | None = None  # chosen latency / super-net's, set by the runner (None before the first)
        self.misses = 0  # set by the runner
        self.trace: dict[str, list[Any]] = {k: [] for k in ("t_min", "temp_c", "status", "battery", "cost", "misses")}
        self.next_trace = 0.0
        self.on_tick()

    def battery(self) -> float:
        return self.sim.start_battery - self.energy_j / self.capacity_j

    def _status_for(self, temp: float, previous: int) -> int:
        hot = sum(temp >= c for c in self.sim.status_c)
        if hot >= previous:
            return hot
        level = previous
        while level > hot and temp < self.sim.status_c[level - 1] - self.sim.status_hysteresis_c:
            level -= 1
        return level

    def on_tick(self) -> None:
        """Sensor readings, once per period: OS status, headroom (forecast, noisy, sometimes NaN), battery."""
        sim = self.sim
        self.status = self._status_for(self.temp, self.status)
        self.history.append(self.temp)
        window = round(sim.headroom_forecast_s / sim.sensor_period_s)
        headroom = None
        draw = self.tick % len(self.noise)  # a backlog can run a few ticks past the session: reuse the draws
        if sim.headroom and len(self.history) > window and not self.nan[draw]:
            slope = (self.temp - self.history[-1 - window]) / (window * sim.sensor_period_s)
            forecast = self.temp + sim.headroom_forecast_s * slope
            severe = sim.status_c[2]
            headroom = (forecast - (severe - 30.0)) / 30.0 + sim.headroom_noise * self.noise[draw]
        if len(self.history) > window + 1:
            del self.history[0]
        battery = max(0.0, self.battery())
        self.state = DeviceState(
            battery=math.floor(battery * 100.0) / 100.0,  # Android reports whole percent
            charging=False,
            power_save=sim.power_save_below is not None and battery < sim.power_save_below,
            thermal=self.status,
            headroom=headroom,
            latency_budget_ms=sim.latency_budget_ms,
            accuracy_floor=sim.accuracy_floor,
        )
        if self.t >= self.next_trace:
            for key, value in (
                ("t_min", self.t / 60.0),
                ("temp_c", self.temp),
                ("status", self.status),
                ("battery", battery),
                ("cost", self.cost),
                ("misses", self.misses),
            ):
                self.trace[key].append(value)
            self.next_trace += sim.trace_period_s
        self.tick += 1
        self.next_tick += sim.sensor_period_s

    def _integrate(self, dt: float, active_w: float) -> None:
        if dt <= 0:
            return
        power = self.sim.idle_w + active_w
        self.time_in[self.status] += dt
        self.energy_j += power * dt
        self.inference_j += active_w * dt
        settle = self.sim.ambient_c + power * self.sim.resistance_k_per_w
        self.temp = settle + (self.temp - settle) * math.exp(-dt / self.tau)
        self.max_temp = max(self.max_temp, self.temp)

    def advance(self, until: float, active_w: float = 0.0) -> None:
        """Run to ``until`` drawing ``active_w`` on top of idle, reading the sensors at each tick on the way."""
        while self.next_tick <= until:
            self._integrate(self.next_tick - self.t, active_w)
            self.t = self.next_tick
            self.on_tick()
        self._integrate(until - self.t, active_w)
        self.t = until


def _run(
    name: str,
    choose: Any,
    nets: dict[str, _Net],
    sim: SimConfig,
    active_w: float,
    draws: dict[str, list[Any]],
    super_ms: float,
) -> dict[str, Any]:
    phone = _Phone(sim, draws["headroom_noise"], draws["headroom_nan"])
    deadline = sim.latency_budget_ms / 1000.0
    busy_until = 0.0
    served = late = skipped = switches = 0
    accuracy_sum = 0.0
    previous = None
    share: dict[str, int] = {}
    for i, arrival in enumerate(draws["arrivals"]):
        start = max(arrival, busy_until)
        phone.advance(start)
        if start - arrival > deadline:
            skipped += 1
            phone.misses += 1
            continue
        gates = choose(phone.state, start)
        if previous is not None and gates != previous:
            switches += 1
        previous = gates
        net = nets[gates]
        status = phone.status
        latency = net.latency_s(status, draws["z"][i], sim.throttle_slowdown)
        phone.advance(start + latency, active_w * sim.throttle_power[status])
        busy_until = start + latency
        served += 1
        share[gates] = share.get(gates, 0) + 1
        accuracy_sum += net.accuracy
        phone.cost = net.median_ms / super_ms
        if busy_until - arrival > deadline:
            late += 1
            phone.misses += 1
    phone.advance(max(sim.minutes * 60.0, phone.t))
    requests = len(draws["arrivals"])
    return {
        "strategy": name,
        "requests": requests,
        "served": served,
        "deadline_misses": late + skipped,
        "late": late,
        "skipped": skipped,
        "miss_rate": (late + skipped) / requests if requests else 0.0,
        "inference_energy_j": phone.inference_j,
        "total_energy_j": phone.energy_j,
        "battery_start": sim.start_battery,
        "battery_left": max(0.0, phone.battery()),
        "mean_accuracy": accuracy_sum / served if served else None,
        "time_in_state_s": {Thermal(i).name: round(s, 3) for i, s in enumerate(phone.time_in)},
        "max_temp_c": phone.max_temp,
        "switches": switches,
        "switches_per_min": switches / sim.minutes,
        "share": {g: n / served for g, n in sorted(share.items())} if served else {},
        "trace": phone.trace,
    }


def _draws(sim: SimConfig) -> dict[str, list[Any]]:
    """The trace every strategy sees: arrivals, latency noise, sensor noise and NaN readings."""
    rng = np.random.default_rng(sim.seed)
    period = 1.0 / sim.request_hz
    n = int(sim.minutes * 60.0 * sim.request_hz)
    arrivals = (np.arange(n) + 0.5) * period + rng.uniform(-sim.jitter, sim.jitter, n) * period
    ticks = int(sim.minutes * 60.0 / sim.sensor_period_s) + 2
    return {  # plain Python numbers: the loop is faster and the report is plain JSON
        "arrivals": np.sort(arrivals).tolist(),
        "z": rng.standard_normal(n).tolist(),
        "headroom_noise": rng.standard_normal(ticks).tolist(),
        "headroom_nan": (rng.random(ticks) < sim.headroom_nan_prob).tolist(),
    }


def _with_statistic(config: PolicyConfig, statistic: str) -> PolicyConfig:
    return replace(config, latency=replace(config.latency, statistic=statistic))


def _scaled(manifest: dict[str, Any], config: PolicyConfig, scale: float) -> tuple[dict[str, Any], PolicyConfig]:
    """The manifest with every latency multiplied by ``scale`` (and the FLOPs estimate, for bundles without tables).

    Entries hold numbers (median, p90, min) and intervals (``[low, high]``); both are scaled.
    """
    manifest = copy.deepcopy(manifest)
    for table in manifest["latency"].values():
        for entries in [table["subnets"], *(hot["subnets"] for hot in (table.get("thermal") or {}).values())]:
            for entry in entries.values():
                for key, value in entry.items():
                    entry[key] = [v * scale for v in value] if isinstance(value, list) else value * scale
    per_gflop = config.latency.fallback_ms_per_gflop * scale
    return manifest, replace(config, latency=replace(config.latency, fallback_ms_per_gflop=per_gflop))


def _policy_chooser(policy: Policy) -> Any:
    memory = PolicyMemory()

    def choose(state: DeviceState, now_s: float) -> str:
        nonlocal memory
        decision, memory = policy.decide(state, now_s, memory)
        return decision.gates

    return choose


def run_strategies(
    manifest: dict[str, Any], sim: SimConfig, config: PolicyConfig | None = None, device: str | None = None
) -> dict[str, Any]:
    """Simulate the four strategies on one trace; return the report (without plots)."""
    config = config or PolicyConfig()
    scale = sim.latency_scale
    if sim.super_net_ms is not None:
        unscaled = Policy.from_manifest(manifest, config, device)
        medians, _ = select_latency(manifest, device, _with_statistic(config, "median_ms"))
        super_net = manifest["gates"]["super_net"]
        scale = sim.super_net_ms / medians.get(super_net, medians[unscaled.front[-1]])
    if scale != 1.0:
        manifest, config = _scaled(manifest, config, scale)
    policy = Policy.from_manifest(manifest, config, device)
    greedy = Policy(policy.table, config.without_hysteresis())
    nets, backend = _nets(policy, manifest)
    gates_cfg = manifest["gates"]
    super_gates = gates_cfg["super_net"] if gates_cfg["super_net"] in nets else policy.front[-1]
    base_gates = gates_cfg["base_net"] if gates_cfg["base_net"] in nets else policy.front[0]
    active_w = sim.active_w.get(backend or "", sim.default_active_w)
    measured = manifest["latency"].get(policy.table.source.device or "", {}).get("power")
    if measured is not None:
        sim, active_w = replace(sim, idle_w=measured["idle_w"]), measured["active_w"]
    draws = _draws(sim)
    super_ms = nets[super_gates].median_ms
    choosers = {
        "super-net": lambda state, now: super_gates,
        "base-net": lambda state, now: base_gates,
        "greedy": _policy_chooser(greedy),
        "policy": _policy_chooser(policy),
    }
    if policy.table.thermal:  # what the thermal tables are worth: the same policy planning with the cool table only
        cool_only = copy.deepcopy(manifest)
        for table in cool_only["latency"].values():
            table.pop("thermal", None)
        choosers[COOL_TABLE_ONLY] = _policy_chooser(Policy.from_manifest(cool_only, config, device))
    results = {name: _run(name, choose, nets, sim, active_w, draws, super_ms) for name, choose in choosers.items()}
    return {
        "model": manifest["model"]["name"],
        "device": policy.table.source.device,
        "latency_source": policy.table.source.describe(device),
        "backend": backend,
        "latency_scale": scale,
        "active_w": active_w,
        "power_source": f"measured on {policy.table.source.device!r}" if measured is not None else "SimConfig",
        "accuracy_key": policy.table.accuracy_key,
        "front": [asdict(s) for s in policy.table.front],
        "super_net": super_gates,
        "base_net": base_gates,
        "sim": asdict(sim),
        "policy": config.to_dict(),
        "strategies": results,
        "goals": check_goals(results),
    }


def check_goals(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets for the simulated session, measured (energy = inference energy: idle is the same for
    every strategy and no policy can change it)."""
    sup, base, pol = results["super-net"], results["base-net"], results["policy"]
    saving = 1.0 - pol["inference_energy_j"] / sup["inference_energy_j"] if sup["inference_energy_j"] else 0.0
    total_saving = 1.0 - pol["total_energy_j"] / sup["total_energy_j"] if sup["total_energy_j"] else 0.0
    drop = 100.0 * (sup["mean_accuracy"] - pol["mean_accuracy"]) if sup["served"] and pol["served"] else 0.0
    critical = "CRITICAL"
    max_rate = max(pol["switches_per_min"], 0.0)
    goals = {
        "inference_energy_saving": saving,
        "total_energy_saving": total_saving,
        "accuracy_drop_points": drop,
        "deadline_misses": {name: r["deadline_misses"] for name, r in results.items()},
        "critical_s": {name: r["time_in_state_s"][critical] for name, r in results.items()},
        "switches_per_10s": max_rate / 6.0,
    }
    goals["met"] = {
        "energy_30pct_less": saving >= 0.30,
        "accuracy_within_1_point": drop <= 1.0,
        # Tested only when the super-net misses deadlines: nothing misses fewer than none; None (n/a) otherwise.
        "fewer_misses_where_super_net_misses": (
            pol["deadline_misses"] < sup["deadline_misses"] if sup["deadline_misses"] > 0 else None
        ),
        # The base-net is the cheapest choice at every moment, so no policy can miss fewer deadlines than it on
        # the same trace; the reachable target is to miss no more.
        "no_more_misses_than_base_net": pol["deadline_misses"] <= base["deadline_misses"],
        # Tested only when the super-net alone drives the phone to CRITICAL; None (n/a) otherwise.
        "keeps_out_of_critical_where_super_net_reaches_it": (
            pol["time_in_state_s"][critical] == 0.0 if sup["time_in_state_s"][critical] > 0.0 else None
        ),
        "at_most_1_switch_per_10s": max_rate / 6.0 <= 1.0,
    }
    return goals


def plot_simulation(report: dict[str, Any], path: str | Path) -> Path:
    """Four panels over time: skin temperature, chosen cost, battery, cumulative deadline misses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    colors = {"super-net": "C3", "base-net": "C2", "greedy": "C1", "policy": "C0", COOL_TABLE_ONLY: "C4"}
    sim = report["sim"]
    for name, result in report["strategies"].items():
        tr = result["trace"]
        style = {"color": colors[name], "label": name, "lw": 1.6 if name == "policy" else 1.0}
        axes[0].plot(tr["t_min"], tr["temp_c"], **style)
        axes[2].plot(tr["t_min"], [100 * b for b in tr["battery"]], **style)
        axes[3].plot(tr["t_min"], tr["misses"], **style)
        if name in ("greedy", "policy", COOL_TABLE_ONLY):
            cost = [math.nan if c is None else c for c in tr["cost"]]
            axes[1].step(tr["t_min"], cost, where="post", **style)
    for level, temp in zip(("LIGHT", "MODERATE", "SEVERE", "CRITICAL"), sim["status_c"]):
        axes[0].axhline(temp, color="0.6", ls="--", lw=0.7)
        axes[0].text(0.0, temp, f" {level}", va="bottom", fontsize=7, color="0.4")
    axes[0].set_ylabel("skin temperature (C)")
    axes[1].set_ylabel("chosen latency / super-net")
    axes[2].set_ylabel("battery (%)")
    axes[3].set_ylabel("deadline misses (cumulative)")
    axes[3].set_xlabel("minutes")
    goals = report["goals"]
    axes[0].set_title(
        f"{report['model']} on {report['device'] or 'FLOPs estimate'}: policy saves "
        f"{100 * goals['inference_energy_saving']:.0f}% inference energy, "
        f"-{goals['accuracy_drop_points']:.2f} pt accuracy vs super-net",
        fontsize=10,
    )
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def simulate_bundle(
    bundle: str | Path,
    out: str | Path,
    sim: SimConfig | None = None,
    *,
    device: str | None = None,
    config: PolicyConfig | None = None,
) -> dict[str, Any]:
    """Simulate a bundle (its manifest and policy.json); write ``simulation.json`` and ``simulation.png`` to ``out``."""
    from ..contract.manifest import load_manifest
    from .config import POLICY_NAME, load_policy_config

    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    folder = bundle if bundle.is_dir() else bundle.parent
    if config is None and (folder / POLICY_NAME).is_file():
        config = load_policy_config(folder)
    report = run_strategies(manifest, sim or SimConfig(), config, device)
    out = Path(out)
    plot_simulation(report, out / "simulation.png")
    write_json_atomic(out / "simulation.json", report)
    return report


def format_report(report: dict[str, Any]) -> str:
    """A Markdown table of the four strategies and the goals."""
    rows = [
        "| strategy | inference energy (J) | battery left | mean accuracy | deadline misses | "
        "time NONE/LIGHT/MOD/SEV/CRIT (min) | switches/min |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, r in report["strategies"].items():
        t = r["time_in_state_s"]
        times = "/".join(f"{t[k] / 60:.1f}" for k in ("NONE", "LIGHT", "MODERATE", "SEVERE", "CRITICAL"))
        accuracy = "-" if r["mean_accuracy"] is None else f"{100 * r['mean_accuracy']:.2f}%"
        rows.append(
            f"| {name} | {r['inference_energy_j']:.0f} | {100 * r['battery_left']:.1f}% | {accuracy} "
            f"| {r['deadline_misses']} / {r['requests']} | {times} | {r['switches_per_min']:.2f} |"
        )
    g = report["goals"]
    rows.append("")
    rows.append(
        f"policy vs super-net: {100 * g['inference_energy_saving']:.1f}% less inference energy "
        f"({100 * g['total_energy_saving']:.1f}% less in total), "
        f"{g['accuracy_drop_points']:.2f} points lower accuracy, "
        f"{g['switches_per_10s']:.3f} switches per 10 s"
    )
    verdict = {True: "yes", False: "NO", None: "n/a"}
    rows.append("goals: " + ", ".join(f"{k} {verdict[v]}" for k, v in g["met"].items()))
    return "\n".join(rows)
