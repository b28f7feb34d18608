"""``ondevice profile``: latency of every sub-network of a bundle on the ExecuTorch runtime, into its manifest.

Latency is measured at batch 1 with the Python bindings of the ExecuTorch runtime (the same C++
runtime and XNNPACK kernels the apps link), interleaved: every round runs each sub-network once, in
a seeded shuffled order, so load from other processes spreads evenly over them. Reported per sub-network:
median, p90 and min of ``Method.execute`` wall time in ms.

Peak memory is measured in a fresh Python process: the rise of peak RSS (Linux ``VmHWM``, reset with
``/proc/self/clear_refs`` after the imports) while loading the program and running every sub-network
once. It counts the runtime's allocations (program, XNNPACK packed weights and workspace), not the
Python interpreter or torch.

Latency tables measured by the demo apps on phones are merged with ``--merge FILE``; their format
(``latency.schema.json``) is documented in docs/export.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .contract.manifest import MANIFEST_NAME, THERMAL_TABLE_KEYS, ManifestError, load_manifest, save_manifest
from .contract.schemas import first_violation
from .models import Gates, gates_tensor
from .runtime import GatedProgram, load_bundle, thread_count

__all__ = [
    "LATENCY_FORMAT",
    "device_name",
    "format_latency_table",
    "interleaved_latency",
    "merge_latency",
    "operator_breakdown",
    "peak_memory",
    "plot_latency",
    "profile_bundle",
]

LATENCY_FORMAT = "ondevice-latency"
LATENCY_PNG = "latency.png"
OPERATORS_JSON = "operators.json"


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name() -> str:
    """This machine as a latency-table key: ``host (CPU model, N cores)``."""
    return f"{platform.node() or 'host'} ({cpu_model()}, {os.cpu_count()} cores)"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


MIN_RUNS = 20  # below this, a p90 is decided by the one or two slowest runs


def median_ci95(values: list[float]) -> tuple[float, float]:
    """A distribution-free 95% confidence interval of the median: the order statistics at ranks
    n/2 -+ 1.96 sqrt(n)/2 (normal approximation of the binomial; the whole range for very few runs)."""
    ordered = sorted(values)
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    lo, hi = max(0, math.floor(n / 2 - half) - 1), min(n - 1, math.ceil(n / 2 + half) - 1)
    return ordered[lo], ordered[hi]


def interleaved_latency(
    calls: dict[str, Callable[[], Any]], *, runs: int, warmup: int, primed: int = 0, keep_samples: bool = False
) -> dict[str, dict[str, Any]]:
    """Time every call once per round, in a shuffled order, over ``runs`` rounds after ``warmup`` untimed ones:
    {name: {median_ms, p90_ms, min_ms, median_ci95_ms}}. Interleaving spreads a shared machine's noise over all
    calls alike; shuffling (seeded) gives every call every predecessor, so none always runs after the same one
    (at 224x224 a call right after a cache-flushing one measured up to 12% slower).

    ``primed``: each timed call runs right after that many untimed calls of itself, so it finds its weights and
    buffers warm in cache (back-to-back inference) instead of after whatever call the shuffle put before it.
    ``keep_samples``: each row also holds ``samples_ms``, one per round in round order (for paired ratios)."""
    if runs < 1 or warmup < 0 or primed < 0:
        raise ValueError(f"need runs >= 1, warmup >= 0 and primed >= 0, got {runs}, {warmup}, {primed}")
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {key: [] for key in calls}
    order = list(calls)
    shuffle = random.Random(0).shuffle
    for _ in range(runs):
        shuffle(order)
        for key in order:
            for _ in range(primed):
                calls[key]()
            start = time.perf_counter()
            calls[key]()
            samples[key].append((time.perf_counter() - start) * 1e3)
    return {
        key: {
            "median_ms": round(statistics.median(v), 4),
            "p90_ms": round(_percentile(v, 0.9), 4),
            "min_ms": round(min(v), 4),
            "median_ci95_ms": [round(x, 4) for x in median_ci95(v)],
            **({"samples_ms": v} if keep_samples else {}),
        }
        for key, v in samples.items()
    }


def measure_latency(program: GatedProgram, settings: list[Gates], *, runs: int, warmup: int) -> dict[str, Any]:
    """Interleaved timing of ``Method.execute`` per setting: {gates: {median_ms, p90_ms, min_ms}}."""
    image = torch.randn(program.input_shape, generator=torch.Generator().manual_seed(0))
    execute = program.method.execute
    calls = {str(g): partial(execute, [image, gates_tensor(g, program.num_stages)]) for g in settings}
    return interleaved_latency(calls, runs=runs, warmup=warmup)


_MEMORY_SCRIPT = r"""
import json, sys
from pathlib import Path
import torch
from executorch.runtime import Runtime
from ondevice.models import all_gates, gates_tensor
def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)
path, shape, n, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
from executorch.extension.pybindings import portable_lib
portable_lib._unsafe_reset_threadpool(threads)
image = torch.randn(shape)
gates = [gates_tensor(g, n) for g in all_gates(n)[:64]]
before = status("VmRSS")
try:
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    reset = True
except OSError:
    reset = False
method = Runtime.get().load_program(path).load_method("forward")
loaded = status("VmRSS")
samples = [loaded]
for g in gates:
    method.execute([image, g])
    samples.append(status("VmRSS"))
peak = status("VmHWM") if reset else max(samples)
print(json.dumps({"before": before, "loaded": loaded, "peak": peak, "hwm": reset}))
"""


def peak_memory(program_path: str | Path, input_shape: list[int], num_stages: int, threads: int) -> dict[str, Any]:
    """Peak RSS rise of loading + running every sub-network once, in a fresh process (Linux only)."""
    if not Path("/proc/self/clear_refs").exists():
        return {"peak_rss_delta_bytes": None, "memory_note": "peak RSS needs Linux /proc; not measured here"}
    cmd = [sys.executable, "-c", _MEMORY_SCRIPT, str(program_path), json.dumps(input_shape), str(num_stages)]
    done = subprocess.run([*cmd, str(threads)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"peak_rss_delta_bytes": None, "memory_note": f"memory probe failed: {tail[0][:200]}"}
    m = json.loads(done.stdout.strip().splitlines()[-1])
    how = "peak RSS (VmHWM, reset after imports)" if m["hwm"] else "largest VmRSS sample (VmHWM could not be reset)"
    return {
        "peak_rss_delta_bytes": max(0, m["peak"] - m["before"]),
        "load_rss_delta_bytes": max(0, m["loaded"] - m["before"]),
        "memory_note": f"{how} minus RSS before loading the program, fresh process",
    }


def profile_bundle(
    bundle: str | Path,
    *,
    threads: int | None = None,
    runs: int = 50,
    warmup: int = 5,
    device: str | None = None,
    memory: bool = True,
    write: bool = True,
    thermal: str | None = None,
) -> dict[str, Any]:
    """Measure every sub-network of a bundle; write the table into its manifest under ``device`` and plot it.

    ``thermal`` (an Android status name: "moderate", "severe", ...) records the run as that device's thermal table
    for the status instead, beside its cool table (measure that first): latency while the device is that hot."""
    bundle = Path(bundle)
    name = device or device_name()
    if thermal is not None and write:
        _cool_table(load_manifest(bundle), name, thermal)  # before minutes of timing
    program = load_bundle(bundle, threads=threads)
    used_threads = thread_count()
    settings = [Gates.parse(s["gates"], program.num_stages) for s in program.subnets]
    latency = measure_latency(program, settings, runs=runs, warmup=warmup)
    import executorch.version

    table: dict[str, Any] = {
        "backend": program.entry.get("backend", "xnnpack"),
        "runtime": f"executorch {executorch.version.__version__} (Python bindings), Method.execute wall time",
        "threads": used_threads,
        "runs": runs,
        "warmup": warmup,
        "source": "ondevice profile",
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "program_size_bytes": program.path.stat().st_size,
        "subnets": latency,
    }
    if runs < MIN_RUNS:
        table["warning"] = (
            f"{runs} runs: a p90 (what the policy plans with by default) of so few runs rests on one or two slow "
            f"ones; profile with --runs {MIN_RUNS} or more"
        )
    if memory:
        table.update(peak_memory(program.path, list(program.input_shape), program.num_stages, used_threads))
    if write:
        manifest = load_manifest(bundle)
        if thermal is None:
            kept = (manifest["latency"].get(name) or {}).get("thermal")
            manifest["latency"][name] = table | ({"thermal": kept} if kept else {})
        else:
            hot = {key: table[key] for key in ("runs", "warmup", "threads", "measured_at", "subnets") if key in table}
            _cool_table(manifest, name, thermal).setdefault("thermal", {})[thermal] = hot
        save_manifest(bundle / MANIFEST_NAME, manifest)
        plot_latency(manifest, bundle / LATENCY_PNG)
    return {"device": name, **table}


def _cool_table(manifest: dict[str, Any], device: str, status: str) -> dict[str, Any]:
    """``device``'s cool latency table, which a table measured at thermal ``status`` goes under."""
    if status not in THERMAL_TABLE_KEYS:
        raise ValueError(f"thermal status {status!r} is not one of {', '.join(THERMAL_TABLE_KEYS)}")
    cool = manifest["latency"].get(device)
    if cool is None:
        raise ValueError(
            f"no cool latency table for {device!r} in this bundle: profile the device cool first, then hot "
            f"with --thermal {status}"
        )
    return cool


def format_latency_table(manifest: dict[str, Any], device: str) -> str:
    """One device's latency table with FLOPs and accuracy, super-net first, as fixed-width text."""
    table = manifest["latency"][device]["subnets"]
    lines = [f"{device}  ({manifest['latency'][device].get('backend', '?')})"]
    lines.append(f"{'gates':<8} {'name':<10} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'MFLOPs':>8} {'top-1':>7}")
    for s in manifest["subnets"]:
        row = table.get(s["gates"])
        if row is None:
            continue
        top1 = next(iter(s["accuracy"].values()), None)
        lines.append(
            f"{s['gates']:<8} {s['name']:<10} {row['median_ms']:10.3f} {row.get('p90_ms', float('nan')):8.3f} "
            f"{row.get('min_ms', float('nan')):8.3f} {s['flops'] / 1e6:8.2f} "
            + (f"{100 * top1:6.2f}%" if top1 is not None else "      -")
        )
    return "\n".join(lines)


def plot_latency(manifest: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs median latency of every sub-network, one series per device and per thermal table."""
    from .plots import plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    accuracy = {s["gates"]: next(iter(s["accuracy"].values()), None) for s in manifest["subnets"]}
    markers = ("x", "+", "1", "2", "3", "4")  # one per thermal status, hotter tables beside the cool one
    for i, (device, table) in enumerate(manifest["latency"].items()):
        series = [(device[:60], table["subnets"], "o")] + [
            (f"{device[:48]} at {status.upper()}", hot["subnets"], markers[THERMAL_TABLE_KEYS.index(status)])
            for status, hot in (table.get("thermal") or {}).items()
        ]
        for label, rows, marker in series:
            points = [(row["median_ms"], accuracy[g], g) for g, row in rows.items() if accuracy.get(g)]
            if not points:
                continue
            xs, ys = [p[0] for p in points], [100 * p[1] for p in points]
            ax.scatter(xs, ys, color=f"C{i}", marker=marker, label=label)
            for x, y, g in points:
                ax.annotate(g, (x, 100 * y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("median latency per image (ms, batch 1)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{manifest['model']['name']}: latency vs accuracy per sub-network")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def merge_latency(bundle: str | Path, latency_json: str | Path) -> dict[str, Any]:
    """Merge a latency file written by a demo app into the bundle's manifest under its device name."""
    bundle, latency_json = Path(bundle), Path(latency_json)
    try:
        data = json.loads(latency_json.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no latency file {latency_json}") from None
    except json.JSONDecodeError as err:
        raise ManifestError(f"{latency_json} is not valid JSON ({err})") from None
    problem = first_violation(data, "latency")
    if problem is not None:
        raise ManifestError(f"{latency_json} is not an ondevice latency file at {problem.where}: {problem.message}")
    manifest = load_manifest(bundle)
    if data.get("model") not in (None, manifest["model"]["name"]):
        raise ManifestError(
            f"{latency_json} was measured on model {data['model']!r}, this bundle holds {manifest['model']['name']!r}"
        )
    table = {k: v for k, v in data.items() if k not in ("format", "version", "device", "model")}
    table.setdefault("source", "app")
    manifest["latency"][data["device"]] = table
    save_manifest(bundle / MANIFEST_NAME, manifest)  # validates: unknown gates are rejected here
    plot_latency(manifest, bundle / LATENCY_PNG)
    return manifest


def operator_breakdown(bundle: str | Path, gates: str | None = None, *, runs: int = 10) -> dict[str, Any]:
    """Per-operator time of one sub-network from an ETDump (ExecuTorch devtools Inspector).

    Returns {"gates", "runs", "method_ms", "operators": [{name, delegated, kind, calls_per_run, ms_per_run, share}]}.
    XNNPACK reports its own operators (e.g. "Convolution (NHWC, F32) IGEMM") inside each delegate call.
    """
    import tempfile

    from executorch.devtools import Inspector

    program = GatedProgram(Path(bundle), enable_etdump=True)
    g = Gates.coerce(gates, program.num_stages)
    image = torch.randn(program.input_shape, generator=torch.Generator().manual_seed(0))
    args = [image, gates_tensor(g, program.num_stages)]
    for _ in range(runs):
        program.method.execute(args)
    with tempfile.TemporaryDirectory() as tmp:
        etdump = Path(tmp) / "run.etdp"
        program.program.write_etdump_result_to_file(str(etdump), str(Path(tmp) / "debug.bin"))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inspector = Inspector(etdump_path=str(etdump))
    # Each event holds one sample per run; the median drops the first (cold) run's outliers.
    calls: dict[tuple[str, bool], int] = {}
    times: dict[tuple[str, bool], float] = {}
    method_ms = 0.0
    for block in inspector.event_blocks:
        for event in block.events:
            if event.perf_data is None or not event.perf_data.raw:
                continue
            per_run = statistics.median(event.perf_data.raw)
            if event.name == "Method::execute":
                method_ms += per_run
                continue
            if block.name != "Execute":
                continue
            key = (event.name.split(" #")[0], bool(event.is_delegated_op))  # XNNPACK numbers repeats: "... #3"
            calls[key] = calls.get(key, 0) + 1
            times[key] = times.get(key, 0.0) + per_run
    # Leaves: XNNPACK operators inside delegates and portable kernels ("native_call_*"); the rest
    # (DELEGATE_CALL, OPERATOR_CALL, JF_CALL, MOVE_CALL) wrap them or are control flow.
    leaf = {k for k in times if k[1] or k[0].startswith("native_call_")}
    leaf_total = sum(times[k] for k in leaf)
    rows = [
        {
            "name": name,
            "delegated": delegated,
            "kind": "operator" if (name, delegated) in leaf else "wrapper",
            "calls_per_run": calls[(name, delegated)],
            "ms_per_run": round(times[(name, delegated)], 4),
            "share": round(times[(name, delegated)] / leaf_total, 4)
            if (name, delegated) in leaf and leaf_total
            else None,
        }
        for name, delegated in times
    ]
    rows.sort(key=lambda r: (r["kind"] != "operator", -r["ms_per_run"]))
    return {
        "gates": str(g),
        "runs": runs,
        "time_unit": "ms (median over runs)",
        "method_ms": round(method_ms, 4),
        "operators": rows,
    }


# ---------------------------------------------------------------------------------------------------
# CLI


def add_profile_parser(verbs: Any) -> None:
    """``ondevice profile BUNDLE [--threads N --runs N --warmup N] [--merge FILE] [--operators]``."""
    p = verbs.add_parser("profile", help="bundle -> latency per sub-network (ExecuTorch runtime) in manifest.json")
    p.add_argument("bundle")
    p.add_argument("--threads", type=int, default=None, help="XNNPACK threads (default: the runtime's, one per core)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per sub-network (interleaved)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs per sub-network first")
    p.add_argument("--device", default=None, help="name of this device in the manifest (default: host and CPU)")
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory probe")
    p.add_argument("--merge", default=None, metavar="FILE", help="merge a latency JSON written by a demo app instead")
    p.add_argument("--operators", action="store_true", help="also a per-operator breakdown (ETDump) of the super-net")
    p.add_argument(
        "--thermal",
        choices=THERMAL_TABLE_KEYS,
        default=None,
        help="record this run as the device's latency at that thermal status (after a cool run)",
    )
    p.set_defaults(run=run_profile)


def run_profile(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    if args.merge:
        manifest = merge_latency(bundle, args.merge)
        device = json.loads(Path(args.merge).read_text())["device"]
        print(format_latency_table(manifest, device))
        print(f"merged {args.merge} into {bundle / MANIFEST_NAME} as {device!r}")
        return 0
    result = profile_bundle(
        bundle,
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        device=args.device,
        memory=args.memory,
        thermal=args.thermal,
    )
    manifest = load_manifest(bundle)
    print(format_latency_table(manifest, result["device"]))
    if "warning" in result:
        print(f"warning: {result['warning']}", file=sys.stderr)
    if result.get("peak_rss_delta_bytes") is not None:
        size, peak = result["program_size_bytes"] / 1e6, result["peak_rss_delta_bytes"] / 1e6
        print(f"program {size:.2f} MB, peak RSS +{peak:.1f} MB (load and run every sub-network once)")
    if args.operators:
        ops = operator_breakdown(bundle)
        result["operators"] = ops
        from .atomic import write_json_atomic

        write_json_atomic(bundle / OPERATORS_JSON, ops)
        print(f"\nper operator, super-net ({ops['runs']} runs, ETDump):")
        for row in ops["operators"][:12]:
            print(f"  {row['ms_per_run']:8.4f} ms  x{row['calls_per_run']:<5g} {row['name']}")
    print(json.dumps(result, indent=2))
    print(f"wrote the table into {bundle / MANIFEST_NAME} and {bundle / LATENCY_PNG}")
    return 0
