"""Phone scale (224x224): gated vs static ExecuTorch programs, LiteRT, fp32 and int8, one run; prints JSON.

    python benchmarks/bench_scale.py --cache runs/bench_scale --out runs/bench_scale.json
    python benchmarks/bench_scale.py --models mobilenet_v2_adn resnet50_adn --layouts none skip --operators
    python benchmarks/bench_scale.py --models mobilenet_v2_adn --size-budgets 1.2 1.5 --pair-rounds 100

Per model (random weights, random BatchNorm statistics and affines, entry norms with statistics per previous
gate as a trained checkpoint has them unless --no-entry-contexts, 3x224x224, 1000 classes), four
sub-networks are timed: the super-net (all F), the base-net (all T) and two mixed (T then F, F then T).
Programs, timed in one interleaved loop per model (every call once per round, shuffled order), 1 thread:
  gated              forward(image, gates), the default layout: share_weights="auto" (ondevice.export.executorch)
  gated_<mode>       the same with share_weights=<mode> (--layouts none skip run)
  gated_budget<B>    the "auto" plan with another size budget B (--size-budgets 1.2 1.5): the size/speed frontier
  static             one program per timed sub-network (no cond, one delegate)
  int8               the gated program with the int8-static recipe (PT2E, XNNPACK quantizer; random calibration)
  litert             one .tflite, one signature per timed sub-network (when the litert extra is installed)
  matmul             a single-thread fp32 torch matmul (1024^3) in each model's loop, the compute peak of this core
Every program's inputs are bound once (``bound_calls``, ``litert_in_place``): a timed call executes and reads the
logits (a gated call first writes its gates). Every call follows whichever call the shuffle put before it (its
weights cold in cache, as an app that classifies now and then finds them); --warm-rounds N adds a second loop in
which every timed call runs right after an untimed call of itself (back-to-back inference), reported under "warm";
--pair-rounds N then times each float gated program against each static one with no other program run ("pairs", per
layout, in --pair-loads fresh loads; "static_again", a second load of the static program against the first, measures
the method's own spread in the same run). With --out, the size/speed frontier of the float gated programs (size
against gated/static per sub-network) is plotted beside the JSON as <out>_frontier.png. Ratios: of the medians
("gated_over_static") and the median over rounds of the two calls' ratio within a round, with its 95% CI
("gated_over_static_paired": both calls meet the same machine state, so it is the tighter one).
Exports are cached in --cache (program + export time + peak RSS rise), so a rerun only times;
--export-only fills the cache, --cached-only times what it holds, --also MODEL/LABEL=PTE times another
gated program alongside (e.g. one exported by an earlier version). --operators adds an ETDump profile
(per XNNPACK operator and per delegate call) of the super-net in the static and every gated program.
docs/export.md and docs/quantization.md ("At phone scale") quote its output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bench_export import bench_model, print_json

from ondevice.export.common import OUTPUT_NAME, subnet_name
from ondevice.export.executorch import export_executorch, export_static_executorch
from ondevice.models import AdnModel, Gates, gates_tensor
from ondevice.models.cost import count_flops
from ondevice.profile import interleaved_latency, median_ci95
from ondevice.quant.recipes import get_recipe, segment_quantizer
from ondevice.runtime import set_threads

MATMUL_N = 1024
# What the warm loop reports (the sizes, FLOPs and export costs are the cold loop's).
WARM_KEYS = (
    "latency_ms_median",
    "gated_over_static",
    "gated_over_static_paired",
    "gated_over_litert",
    "int8_speedup_over_fp32",
)


def log(message: str) -> None:
    """A progress line on stderr with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed_gates(num_stages: int) -> list[Gates]:
    """The timed sub-networks: super (all F), base (all T), T then F, F then T."""
    n = num_stages
    return [Gates.parse(s, n) for s in ("F" * n, "T" * n, "T" + "F" * (n - 1), "F" + "T" * (n - 1))]


def _status_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def measure_export(fn: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], float, int | None]:
    """Run an export: (its entry, seconds, peak RSS rise in bytes; Linux VmHWM reset before, else None)."""
    before = _status_bytes("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    except OSError:
        before = None
    start = time.perf_counter()
    entry = fn()
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    return entry, round(seconds, 1), None if before is None or peak is None else max(0, peak - before)


def cached_export(
    cache: Path, name: str, suffix: str, export: Callable[[Path], dict[str, Any]], *, cached_only: bool = False
) -> dict[str, Any] | None:
    """``export(path)`` into ``cache/name.suffix`` with its record in ``cache/name.json``; reused when both exist.

    ``cached_only``: None instead of exporting what the cache lacks.
    """
    path, record = cache / f"{name}{suffix}", cache / f"{name}.json"
    if path.exists() and record.exists():
        log(f"cached {name}")
        return {**json.loads(record.read_text()), "path": str(path)}
    if cached_only:
        log(f"not in the cache, left out: {name}")
        return None
    log(f"exporting {name} ...")
    entry, seconds, peak = measure_export(lambda: export(path))
    result = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "export_seconds": seconds,
        "export_peak_rss_rise_bytes": peak,
        "parity_max_abs_diff": entry.get("parity_max_abs_diff", entry.get("parity")),
        **({"stage_groups": entry["stage_groups"]} if "stage_groups" in entry else {}),
    }
    record.write_text(json.dumps(result, indent=2) + "\n")
    log(f"exported {name} in {seconds} s, peak RSS +{(peak or 0) / 1e6:.0f} MB, {result['size_bytes'] / 1e6:.2f} MB")
    return result


def litert_available() -> bool:
    """Whether the optional litert extra (litert-torch and ai-edge-litert) is installed."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


def export_all(model: AdnModel, name: str, cache: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every program of one model (cached): layout or ``static_<gates>`` -> record."""
    gates = timed_gates(model.num_stages)
    tag = f"{name}_{args.image_size}" + ("_contexts" if args.entry_contexts else "")
    atol = args.atol

    def cached(label: str, suffix: str, export: Callable[[Path], dict[str, Any]]) -> dict[str, Any] | None:
        return cached_export(cache, f"{tag}_{label}", suffix, export, cached_only=args.cached_only)

    records = {"gated": cached("gated", ".pte", lambda p: export_executorch(model, p, atol=atol))}
    for mode in args.layouts:
        records[f"gated_{mode}"] = cached(
            f"gated_{mode}", ".pte", lambda p, mode=mode: export_executorch(model, p, share_weights=mode, atol=atol)
        )
    for budget in args.size_budgets:
        records[f"gated_budget{budget:.2f}"] = cached(
            f"gated_budget{budget:.2f}",
            ".pte",
            lambda p, budget=budget: export_executorch(model, p, size_budget=budget, atol=atol),
        )
    for g in gates:
        records[f"static_{g}"] = cached(
            f"static_{g}", ".pte", lambda p, g=g: export_static_executorch(model, g, p, atol=atol)
        )
    if args.litert:
        from ondevice.export.litert import export_litert

        records["litert"] = cached("litert", ".tflite", lambda p: export_litert(model, p, gates, atol=atol))
    if args.int8:
        recipe = get_recipe("int8-static", "executorch")
        shape = (args.calibration, *model.input_spec.shape(1)[1:])
        calibration = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        quantize = segment_quantizer(recipe, calibration, progress=False)
        rtol = recipe.parity_rtol if args.int8_rtol is None else args.int8_rtol
        records["int8"] = cached(
            "int8_static_gated",
            ".pte",
            lambda p: export_executorch(model, p, quantize=quantize, atol=atol, rtol=rtol),
        )
    return {k: v for k, v in records.items() if v is not None}


def bound_calls(method: Any, image: torch.Tensor, gates: list[torch.Tensor] | None = None) -> list[Callable[[], Any]]:
    """Calls of a loaded ExecuTorch method with its inputs bound once, the treatment LiteRT's calls get
    (``litert_in_place``): a call only executes and reads the logits, where ``Method.execute`` would first convert
    its inputs in the Python binding again (~11 us a call). A static program (``gates`` None) gets one call; a
    gated one a call per gates tensor, each first writing its gates into the bound gates input (switching the
    sub-network). ``executorch.runtime.Method`` has no public way to bind inputs, so this uses the binding under
    it; each call is checked against ``Method.execute`` with the same inputs."""
    settings = [None] if gates is None else gates
    expected = [method.execute([image] if g is None else [image, g])[0] for g in settings]
    bound = [image] if gates is None else [image, gates[0].clone()]  # the image itself, a gates tensor of its own
    binding = method._method
    binding.set_inputs(bound)

    def call(g: torch.Tensor | None) -> Any:
        if g is not None:
            bound[1].copy_(g)
        binding.execute()
        return binding.get_outputs()

    calls = [lambda g=g: call(g) for g in settings]
    if any(not torch.equal(c()[0], e) for c, e in zip(calls, expected)):
        raise RuntimeError("an ExecuTorch call with its inputs bound once gave other logits than Method.execute")
    return calls


def litert_in_place(runner: Any, image: Any) -> Callable[[], Any]:
    """A LiteRT signature call that reads its image where it lies, the treatment the ExecuTorch programs get (their
    inputs are outside the memory plan): the image is written into the signature's input tensor once, as an app's
    preprocessing would, and each call only invokes and reads the logits. ai-edge-litert's signature runner has no
    public call without the copy, so this uses its interpreter wrapper (main checks the logits against a copying
    call)."""
    runner(image=image)  # sizes, allocates and fills the input tensor
    wrapper, subgraph = runner._interpreter_wrapper, runner._subgraph_index
    logits = dict(runner._outputs)[OUTPUT_NAME]

    def call() -> Any:
        wrapper.Invoke(subgraph)
        return wrapper.GetTensor(logits, subgraph)

    return call


def litert_calls(path: str, gates: list[Gates], image: torch.Tensor, threads: int) -> dict[str, Callable[[], Any]]:
    """A fresh LiteRT interpreter of ``path``: per timed sub-network, a call that reads the image in place, each
    checked against a copying call after the others ran (no signature's call overwrites another's input)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    runners = [interpreter.get_signature_runner(subnet_name(g)) for g in gates]
    expected = [runner(image=image.numpy())[OUTPUT_NAME] for runner in runners]
    in_place = [litert_in_place(runner, image.numpy()) for runner in runners]
    if any(not (call() == logits).all() for call, logits in zip(in_place, expected)):
        raise RuntimeError("a LiteRT call without the input copy gave other logits than with it")
    return {str(g): call for g, call in zip(gates, in_place)}


def gated_layouts(records: dict[str, dict[str, Any]]) -> list[str]:
    """The programs that take ``(image, gates)``: every record but the static ones and LiteRT."""
    return [k for k in records if not k.startswith("static_") and k != "litert"]


def pte_operators(path: str, inputs: list[torch.Tensor], runs: int) -> dict[str, Any]:
    """ETDump of ``runs`` calls of a .pte: ms per run of each XNNPACK operator and of each delegate call, and
    what the delegate calls and the method spend outside XNNPACK's operators."""
    from executorch.devtools import Inspector
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(path, enable_etdump=True, debug_buffer_size=0)
    method = program.load_method("forward")
    for _ in range(runs):
        method.execute(inputs)
    with tempfile.TemporaryDirectory() as tmp:
        etdump = Path(tmp) / "run.etdp"
        program.write_etdump_result_to_file(str(etdump), str(Path(tmp) / "debug.bin"))
        inspector = Inspector(etdump_path=str(etdump))
    operators: dict[str, float] = {}
    delegate_calls: list[float] = []
    method_ms = 0.0
    for block in inspector.event_blocks:
        for event in block.events:
            if event.perf_data is None or not event.perf_data.raw:
                continue
            ms = statistics.median(event.perf_data.raw)  # one sample per run
            if event.name == "Method::execute":
                method_ms += ms
            elif block.name == "Execute" and event.is_delegated_op:
                key = event.name.split(" #")[0]
                operators[key] = operators.get(key, 0.0) + ms
            elif block.name == "Execute" and event.name == "DELEGATE_CALL":
                delegate_calls.append(ms)
    inside = sum(operators.values())
    return {
        "method_ms": round(method_ms, 4),
        "delegate_calls_ms": [round(v, 4) for v in delegate_calls],
        "xnnpack_operators_ms": {k: round(v, 4) for k, v in sorted(operators.items(), key=lambda kv: -kv[1])},
        "xnnpack_operators_total_ms": round(inside, 4),
        "delegate_calls_minus_operators_ms": round(sum(delegate_calls) - inside, 4),
        "method_minus_delegate_calls_ms": round(method_ms - sum(delegate_calls), 4),
    }


def time_pairs(
    rt: Any, name: str, records: dict[str, dict[str, Any]], inputs: dict[str, list[torch.Tensor]], args: Any
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per float gated layout and timed sub-network: that program and the sub-network's static program alone, only
    the two run, interleaved for ``args.pair_rounds`` rounds, in ``args.pair_loads`` fresh loads of both. The
    per-call cost of the gates with no other program run in between. Layout ``static_again`` is a second load of
    the static program against the first: the method's own spread (a fresh load alone moves a ratio by ~1%).
    Returns {layout: {gates: ...}}: medians and paired ratios over all rounds, and the paired median per load."""
    pairs: dict[str, dict[str, dict[str, Any]]] = {}
    for layout in [*(k for k in gated_layouts(records) if k != "int8"), "static_again"]:
        pairs[layout] = {}
        for g, (image, gates) in inputs.items():
            log(f"timing {name} {g}: {layout} and static alone, {args.pair_loads} x {args.pair_rounds} rounds ...")
            path = records[f"static_{g}" if layout == "static_again" else layout]["path"]
            samples: dict[str, list[float]] = {"gated": [], "static": []}
            per_load = []
            for _ in range(args.pair_loads):
                gated_program = rt.load_program(path)
                static_program = rt.load_program(records[f"static_{g}"]["path"])
                gated, static = gated_program.load_method("forward"), static_program.load_method("forward")
                calls = {
                    "gated": bound_calls(gated, image, None if layout == "static_again" else [gates])[0],
                    "static": bound_calls(static, image)[0],
                }
                timed = interleaved_latency(calls, runs=args.pair_rounds, warmup=args.warmup, keep_samples=True)
                for key in samples:
                    samples[key] += timed[key]["samples_ms"]
                per_load.append(paired_ratio(timed["gated"]["samples_ms"], timed["static"]["samples_ms"])["median"])
                del gated, static, gated_program, static_program
            gated_ms, static_ms = statistics.median(samples["gated"]), statistics.median(samples["static"])
            pairs[layout][g] = {
                "gated_ms": round(gated_ms, 4),
                "static_ms": round(static_ms, 4),
                "gated_over_static": _ratio(gated_ms, static_ms),
                "gated_over_static_paired": paired_ratio(samples["gated"], samples["static"]),
                "paired_median_per_load": per_load,
            }
    return pairs


def plot_frontier(result: dict[str, Any], path: Path) -> Path:
    """Per model, each float gated program's size (x the static super-net) against its gated/static latency per
    timed sub-network (pairs timing where measured, else the cold loop's paired medians): the size/speed trade-off
    of the weight-sharing plans."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = result["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False)
    for ax, (name, section) in zip(axes[0], models.items()):
        pairs = section.get("pairs")
        if pairs:
            ratios = {
                k: {g: v["gated_over_static_paired"]["median"] for g, v in per.items()} for k, per in pairs.items()
            }
        else:
            paired = section["gated_over_static_paired"]
            ratios = {k: {g: v["median"] for g, v in per.items()} for k, per in paired.items()}
        ratios = {k: v for k, v in ratios.items() if k != "int8"}
        itself = ratios.pop("static_again", None)
        if itself:
            low, high = min(itself.values()), max(itself.values())
            ax.axhspan(low, high, color="0.85", label="static vs itself (pairs)")
        sizes = section["size_ratio_over_static_super"]
        gates = list(next(iter(ratios.values())))
        for index, g in enumerate(gates):
            points = sorted((sizes[k], ratios[k][g]) for k in ratios)
            ax.plot(*zip(*points), "o-", color=f"C{index}", label=g)
        for k in ratios:
            ax.annotate(
                k.removeprefix("gated_") if k != "gated" else "default",
                (sizes[k], max(ratios[k].values())),
                textcoords="offset points",
                xytext=(3, 4),
                fontsize=7,
            )
        ax.axhline(1.0, color="0.5", lw=0.8)
        ax.set_xlabel("program size / static super-net program")
        ax.set_ylabel("latency gated / static" + (" (pairs)" if pairs else " (cold loop)"))
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="sub-network", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3)


def paired_ratio(a: list[float], b: list[float]) -> dict[str, Any]:
    """The median over rounds of a/b, each from the same round, with its 95% CI: the two calls of a round meet the
    same machine state, so this is tighter than the ratio of the two medians."""
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return {"median": round(statistics.median(ratios), 4), "ci95": [round(v, 4) for v in median_ci95(ratios)]}


def summarize(
    name: str, model: AdnModel, records: dict[str, dict[str, Any]], latency: dict[str, dict[str, Any]], peak: float
) -> dict[str, Any]:
    """One model's section of the JSON: medians, ratios, sizes, GFLOP/s and export costs."""
    gates = [str(g) for g in timed_gates(model.num_stages)]
    sup, base = gates[0], gates[1]
    layouts = [k for k in [*gated_layouts(records), "static", "litert"] if f"{name}/{k}/{sup}" in latency]
    ms = {k: {g: latency[f"{name}/{k}/{g}"]["median_ms"] for g in gates} for k in layouts}
    flops = {g: count_flops(model, Gates.parse(g, model.num_stages)) for g in gates}

    def samples(layout: str, g: str) -> list[float]:
        return latency[f"{name}/{layout}/{g}"]["samples_ms"]

    flops_ratio = flops[base] / flops[sup]
    static_super = records[f"static_{sup}"]["size_bytes"]
    out: dict[str, Any] = {
        "model": f"{name} (random weights and norms), 3x{model.input_spec.image_size}x{model.input_spec.image_size}, "
        "1000 classes",
        "latency_ms_median": ms,
        "latency_ms_min": {k: {g: latency[f"{name}/{k}/{g}"]["min_ms"] for g in gates} for k in layouts},
        "gated_over_static": {
            k: {g: _ratio(ms[k][g], ms["static"][g]) for g in gates} for k in layouts if k not in ("static", "litert")
        },
        "flops": flops,
        "flops_base_over_super": round(flops_ratio, 3),
        "latency_base_over_super": {k: _ratio(ms[k][base], ms[k][sup]) for k in layouts},
        "latency_ratio_over_flops_ratio": {k: round(ms[k][base] / ms[k][sup] / flops_ratio, 3) for k in layouts},
        "gflops_per_s": {k: {g: round(flops[g] / ms[k][g] / 1e6, 1) for g in gates} for k in layouts},
        "fraction_of_matmul_peak": {k: {g: round(flops[g] / ms[k][g] / 1e6 / peak, 3) for g in gates} for k in layouts},
        "size_bytes": {k: v["size_bytes"] for k, v in records.items()},
        "size_ratio_over_static_super": {
            k: _ratio(v["size_bytes"], static_super) for k, v in records.items() if not k.startswith("static_")
        },
        "export_seconds": {k: v["export_seconds"] for k, v in records.items()},
        "export_peak_rss_rise_mb": {
            k: None if v["export_peak_rss_rise_bytes"] is None else round(v["export_peak_rss_rise_bytes"] / 1e6)
            for k, v in records.items()
        },
        "parity_max_abs_diff": {k: v["parity_max_abs_diff"] for k, v in records.items()},
    }
    out["gated_over_static_paired"] = {
        k: {g: paired_ratio(samples(k, g), samples("static", g)) for g in gates}
        for k in layouts
        if k not in ("static", "litert")
    }
    if "litert" in ms:
        out["gated_over_litert"] = {
            k: {g: _ratio(ms[k][g], ms["litert"][g]) for g in gates} for k in layouts if k not in ("static", "litert")
        }
    if "int8" in ms:
        out["int8_speedup_over_fp32"] = {
            k: {g: _ratio(ms[k][g], ms["int8"][g]) for g in gates} for k in layouts if k != "int8"
        }
        out["int8_size_over_fp32_gated"] = _ratio(records["int8"]["size_bytes"], records["gated"]["size_bytes"])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Export (or reuse) every program, time them in one interleaved loop, print (and write) the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2_adn"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=60, help="timed rounds (each calls every program once)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--pair-rounds",
        type=int,
        default=0,
        help="also time the gated program against each static one with no other program run, this many rounds",
    )
    parser.add_argument(
        "--pair-loads",
        type=int,
        default=5,
        help="fresh loads of both programs per pair, each timed --pair-rounds rounds (per-load spread ~1%%)",
    )
    parser.add_argument(
        "--warm-rounds",
        type=int,
        default=0,
        help="also time every call right after an untimed call of itself (back-to-back inference), this many rounds",
    )
    parser.add_argument("--cache", default=None, help="folder of exported programs, reused by a rerun")
    parser.add_argument(
        "--layouts",
        nargs="*",
        default=[],
        choices=("none", "skip", "run"),
        help="more gated layouts (share_weights modes) of every model, beside the default (auto)",
    )
    parser.add_argument(
        "--size-budgets",
        nargs="*",
        type=float,
        default=[],
        help="more gated programs: the auto plan with these size budgets (program / static super-net), e.g. 1.2 1.5",
    )
    parser.add_argument(
        "--no-entry-contexts",
        dest="entry_contexts",
        action="store_false",
        help="entry norms without statistics per previous gate (a trained checkpoint has them)",
    )
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="skip the int8-static program")
    parser.add_argument("--no-litert", dest="litert", action="store_false", help="skip LiteRT")
    parser.add_argument("--calibration", type=int, default=8, help="random calibration images for int8")
    parser.add_argument(
        "--int8-rtol", type=float, default=None, help="int8 parity tolerance (default: the recipe's), x max |logit|"
    )
    parser.add_argument("--operators", action="store_true", help="ETDump profile of the super-net programs")
    parser.add_argument("--profile-runs", type=int, default=50, help="calls per ETDump profile (medians)")
    parser.add_argument(
        "--also",
        nargs="*",
        default=[],
        metavar="MODEL/LABEL=PTE",
        help="more gated programs of a model to time alongside, e.g. one exported by an earlier version",
    )
    parser.add_argument("--export-only", action="store_true", help="fill the cache, time nothing")
    parser.add_argument("--cached-only", action="store_true", help="time what the cache holds, export nothing")
    parser.add_argument(
        "--atol", type=float, default=1e-3, help="parity tolerance of every export (random 1000-class logits are large)"
    )
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.pair_loads < 1:
        parser.error(f"--pair-loads: {args.pair_loads} is below 1")
    for budget in args.size_budgets:
        if not budget >= 1.0:
            parser.error(f"--size-budgets: {budget} is below 1.0 (a budget is program size / static super-net size)")
    args.litert = args.litert and litert_available()
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="bench_scale_"))
    cache.mkdir(parents=True, exist_ok=True)

    models = {
        name: bench_model(None, name, args.image_size, args.entry_contexts, num_classes=1000, in_chans=3)
        for name in args.models
    }
    records = {name: export_all(model, name, cache, args) for name, model in models.items()}
    if args.export_only:
        return {"cache": str(cache), "records": records}
    for name, model in list(models.items()):
        needed = ["gated", *(f"static_{g}" for g in timed_gates(model.num_stages))]
        if any(k not in records[name] for k in needed):
            log(f"left out {name}: the cache lacks its gated or static programs")
            del models[name], records[name]
    for spec in args.also:
        key, path = spec.split("=", 1)
        name, label = key.split("/", 1)
        record = Path(path).with_suffix(".json")  # its export record, when it was exported into a cache
        records[name][label] = {
            "size_bytes": Path(path).stat().st_size,
            "export_seconds": None,
            "export_peak_rss_rise_bytes": None,
            "parity_max_abs_diff": None,
            **(json.loads(record.read_text()) if record.exists() else {}),
            "path": path,
        }

    from executorch.runtime import Runtime

    threads = set_threads(args.threads)
    torch.set_num_threads(args.threads)
    rt = Runtime.get()
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    inputs: dict[str, dict[str, list[torch.Tensor]]] = {}
    result: dict[str, Any] = {"threads": threads, "rounds": args.rounds, "models": {}}
    for name, model in models.items():
        # One interleaved loop per model: a resnet50_adn call (~70 ms, 100+ MB of weights) between mobilenet_v2_adn
        # calls flushes their caches and moves their medians by more than the differences being measured.
        calls: dict[str, Callable[[], Any]] = {"matmul": lambda: torch.mm(a, b)}
        n = model.num_stages
        image = torch.randn(model.input_spec.shape(1), generator=torch.Generator().manual_seed(0))
        gates = timed_gates(n)
        inputs[name] = {str(g): [image, gates_tensor(g, n)] for g in gates}
        for layout in gated_layouts(records[name]):
            if layout in records[name]:
                method = rt.load_program(records[name][layout]["path"]).load_method("forward")
                bound = bound_calls(method, image, [inputs[name][str(g)][1] for g in gates])
                calls |= {f"{name}/{layout}/{g}": call for g, call in zip(gates, bound)}
        for g in gates:
            method = rt.load_program(records[name][f"static_{g}"]["path"]).load_method("forward")
            calls[f"{name}/static/{g}"] = bound_calls(method, image)[0]
        if "litert" in records[name]:
            litert = litert_calls(records[name]["litert"]["path"], gates, image, args.threads)
            calls.update({f"{name}/litert/{g}": call for g, call in litert.items()})
        log(f"timing {name}: {len(calls)} calls x {args.rounds} rounds, {threads} thread(s) ...")
        latency = interleaved_latency(calls, runs=args.rounds, warmup=args.warmup, keep_samples=True)
        peak = 2 * MATMUL_N**3 / latency["matmul"]["median_ms"] / 1e6
        result["models"][name] = {
            "matmul_peak": {"n": MATMUL_N, "median_ms": latency["matmul"]["median_ms"], "gflops_per_s": round(peak, 1)},
            **summarize(name, model, records[name], latency, peak),
        }
        if args.warm_rounds:
            log(f"timing {name} warm: each call right after one untimed call of itself, {args.warm_rounds} rounds ...")
            warm = interleaved_latency(calls, runs=args.warm_rounds, warmup=0, primed=1, keep_samples=True)
            summary = summarize(name, model, records[name], warm, peak)
            result["models"][name]["warm"] = {k: summary[k] for k in WARM_KEYS if k in summary}
        del calls  # the programs of the loops above, freed before the pairs
        if args.pair_rounds:
            result["models"][name]["pairs"] = time_pairs(rt, name, records[name], inputs[name], args)
    if args.operators:
        for name, model in models.items():
            sup = str(timed_gates(model.num_stages)[0])
            log(f"ETDump of {name} super-net ...")
            static = records[name][f"static_{sup}"]["path"]
            profiles = {
                "static": pte_operators(static, inputs[name][sup][:1], runs=args.profile_runs),
                **{
                    layout: pte_operators(records[name][layout]["path"], inputs[name][sup], runs=args.profile_runs)
                    for layout in gated_layouts(records[name])
                },
            }
            result["models"][name]["operators_super"] = profiles
    print_json(result, args.out)
    if args.out:
        log(f"wrote {plot_frontier(result, Path(args.out).with_name(Path(args.out).stem + '_frontier.png'))}")
    return result


if __name__ == "__main__":
    main()
