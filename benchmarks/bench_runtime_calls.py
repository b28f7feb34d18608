"""Where an ExecuTorch program's call goes at 224x224: the XNNPACK runtime calls its delegates make, timed; prints JSON.

    python benchmarks/bench_runtime_calls.py --cache runs/bench_scale --out runs/runtime_calls.json

On every execute, ExecuTorch 1.5's XNNPACK delegate reshapes its XNNPACK runtime (``xnn_reshape_runtime``, all
operators), sets it up (``xnn_setup_runtime_v2``) and invokes it (``xnn_invoke_runtime``); LiteRT's XNNPACK delegate
reshapes only when an input shape changed. This benchmark builds ``xnn_call_costs.c`` (a C compiler is needed),
restarts itself with it preloaded (it takes the place of those functions and of xnn_reshape_external_value, which
the ExecuTorch backend library calls through its PLT, and times them), and for each model:

  per_call   each program and timed sub-network alone (the static, gated and int8 programs): microseconds per
             call in reshape (with xnn_reshape_external_value), setup and invoke, the call's median, and what is
             left (the method's own instructions, the delegate's argument handling, and the Python binding's
             execute and output copy: inputs are bound once, bench_scale.bound_calls)
  blocks     --blocks interleaved loops (shuffled, 1 thread), each over fresh loads: the static and gated programs
             as the runtime runs them, other loads of the same with the reshape skipped when no input shape changed
             (an experiment: what a LiteRT-like call path would give; the logits are checked equal both ways
             first), and LiteRT in place (bench_scale.litert_calls). Paired ratios over all rounds, with the
             range of the blocks' own: skipped over not, gated over static, every ExecuTorch variant over LiteRT.
             The blocks show how far this machine's state moves a ratio between loads minutes apart.

The programs come from bench_scale.py's cache (--cache; what it lacks is exported first unless --cached-only).
A PNG of the ratios over LiteRT goes beside --out. docs/export.md ("Inside an ExecuTorch call") quotes its output.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bench_export import bench_model, print_json
from bench_scale import (
    bound_calls,
    export_all,
    litert_available,
    litert_calls,
    log,
    paired_ratio,
    timed_gates,
)

from ondevice.models import gates_tensor
from ondevice.profile import interleaved_latency
from ondevice.runtime import set_threads

SHIM_SOURCE = Path(__file__).with_name("xnn_call_costs.c")
SHIM_ENV = "ONDEVICE_XNN_CALL_COSTS"
COUNTERS = ("reshape", "setup", "invoke", "skipped", "refused")


def preload_shim(folder: Path) -> None:
    """Build the interposer into ``folder`` (when its source is newer) and restart this process with it preloaded;
    returns only in the restarted process."""
    library = folder / "xnn_call_costs.so"
    if os.environ.get(SHIM_ENV) == str(library) and str(library) in os.environ.get("LD_PRELOAD", ""):
        return
    if not library.exists() or library.stat().st_mtime < SHIM_SOURCE.stat().st_mtime:
        partial = library.with_suffix(".so.partial")
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(partial), str(SHIM_SOURCE), "-ldl"], check=True)
        partial.replace(library)
    preload = " ".join(p for p in (str(library), os.environ.get("LD_PRELOAD", "")) if p)
    environment = {**os.environ, SHIM_ENV: str(library), "LD_PRELOAD": preload}
    os.execve(sys.executable, [sys.executable, *sys.argv], environment)


class CallCosts:
    """The preloaded interposer's counters, and its switch that skips a reshape when no input shape changed."""

    def __init__(self, library: str) -> None:
        self._lib = ctypes.CDLL(library)
        self._ns = (ctypes.c_double * len(COUNTERS))()
        self._calls = (ctypes.c_uint64 * len(COUNTERS))()

    def skip_unchanged_reshape(self, on: bool) -> None:
        self._lib.xnn_call_costs_skip_unchanged_reshape(int(on))

    def reset(self) -> None:
        self._lib.xnn_call_costs_reset()

    def read(self) -> dict[str, tuple[float, int]]:
        """{counter: (total microseconds, calls)} since the last reset."""
        self._lib.xnn_call_costs_read(self._ns, self._calls)
        return {k: (self._ns[i] / 1e3, int(self._calls[i])) for i, k in enumerate(COUNTERS)}

    def shaped_runtimes(self) -> int:
        """How many live XNNPACK runtimes the interposer holds a reshape for (it forgets a deleted runtime)."""
        return self._lib.xnn_call_costs_shaped_runtimes()


def per_call(costs: CallCosts, call: Callable[[], Any], calls: int, warmup: int) -> dict[str, Any]:
    """One program call alone, ``calls`` times: the medians over calls of its time, of the microseconds it spends in
    each XNNPACK runtime function and of the rest (the method's own instructions and the Python binding's)."""
    costs.skip_unchanged_reshape(False)
    for _ in range(warmup):
        call()
    parts: dict[str, list[float]] = {k: [] for k in ("call", "reshape", "setup", "invoke", "outside_runtimes")}
    runtimes = set()
    for _ in range(calls):
        costs.reset()
        start = time.perf_counter()
        call()
        elapsed = (time.perf_counter() - start) * 1e6
        read = costs.read()
        parts["call"].append(elapsed)
        for k in ("reshape", "setup", "invoke"):
            parts[k].append(read[k][0])
        parts["outside_runtimes"].append(elapsed - sum(read[k][0] for k in ("reshape", "setup", "invoke")))
        runtimes.add(read["invoke"][1])
    us = {k: round(statistics.median(v), 2) for k, v in parts.items()}
    return {
        "us_median": us,
        "runtimes_per_call": sorted(runtimes),
        "reshape_share_of_call": round(us["reshape"] / us["call"], 4),
        "outside_runtimes_share_of_call": round(us["outside_runtimes"] / us["call"], 4),
    }


def same_logits_when_skipped(costs: CallCosts, call: Callable[[], Any]) -> bool:
    """Whether a call with the reshape skipped gives exactly the logits of a call with it."""
    costs.skip_unchanged_reshape(False)
    expected = call()[0].clone()
    costs.skip_unchanged_reshape(True)
    got = call()[0].clone()
    costs.skip_unchanged_reshape(False)
    return torch.equal(expected, got)


def load_programs(
    rt: Any, records: dict[str, dict[str, Any]], layouts: tuple[str, ...], image: torch.Tensor, num_stages: int
) -> dict[str, dict[str, Callable[[], Any]]]:
    """One fresh load of each program in ``layouts`` ("static": one per timed sub-network): {layout: {gates: call}}."""
    gates = timed_gates(num_stages)
    programs: dict[str, dict[str, Callable[[], Any]]] = {}
    for layout in layouts:
        if layout == "static":
            methods = {g: rt.load_program(records[f"static_{g}"]["path"]).load_method("forward") for g in gates}
            programs[layout] = {str(g): bound_calls(methods[g], image)[0] for g in gates}
        else:
            method = rt.load_program(records[layout]["path"]).load_method("forward")
            bound = bound_calls(method, image, [gates_tensor(g, num_stages) for g in gates])
            programs[layout] = {str(g): call for g, call in zip(gates, bound)}
    return programs


def time_block(
    rt: Any, costs: CallCosts, records: dict[str, dict[str, Any]], image: torch.Tensor, num_stages: int, args: Any
) -> dict[str, dict[str, Any]]:
    """One interleaved loop over fresh loads: the static and gated programs as the runtime runs them, other loads
    of the same with the reshape skipped (separate, so that neither warms the other's weights), LiteRT in place."""
    as_run = load_programs(rt, records, ("static", "gated"), image, num_stages)
    no_reshape = load_programs(rt, records, ("static", "gated"), image, num_stages)

    def runs_as(call: Callable[[], Any], skip: bool) -> Callable[[], Any]:
        return lambda: (costs.skip_unchanged_reshape(skip), call())

    calls = {f"{layout}/{g}": runs_as(call, False) for layout, per in as_run.items() for g, call in per.items()}
    calls |= {
        f"{layout}_no_reshape/{g}": runs_as(call, True) for layout, per in no_reshape.items() for g, call in per.items()
    }
    if "litert" in records:
        litert = litert_calls(records["litert"]["path"], timed_gates(num_stages), image, args.threads)
        calls |= {f"litert/{g}": runs_as(call, False) for g, call in litert.items()}
    timed = interleaved_latency(calls, runs=args.rounds, warmup=args.warmup, keep_samples=True)
    costs.skip_unchanged_reshape(False)
    return timed


# The paired ratios reported, each as {name: (numerator prefix, denominator prefix)} of the timed calls.
RATIOS = {
    "no_reshape_over_as_run": {"static": ("static_no_reshape", "static"), "gated": ("gated_no_reshape", "gated")},
    "gated_over_static": {"as_run": ("gated", "static"), "no_reshape": ("gated_no_reshape", "static_no_reshape")},
    "over_litert": {k: (k, "litert") for k in ("static", "static_no_reshape", "gated", "gated_no_reshape")},
}


def summarize_blocks(blocks: list[dict[str, dict[str, Any]]], gates: list[str]) -> dict[str, Any]:
    """Medians over every block's rounds, and per ratio and sub-network the paired median over all rounds with its
    95% CI and the range of the blocks' paired medians (the machine's drift between loads)."""
    samples = {k: [x for block in blocks for x in block[k]["samples_ms"]] for k in blocks[0]}
    out: dict[str, Any] = {"latency_ms_median": {k: round(statistics.median(v), 4) for k, v in samples.items()}}
    for ratio, pairs in RATIOS.items():
        if any(f"{den}/{gates[0]}" not in samples for _, den in pairs.values()):
            continue
        out[ratio] = {}
        for label, (num, den) in pairs.items():
            out[ratio][label] = {}
            for g in gates:
                per_block = [
                    paired_ratio(b[f"{num}/{g}"]["samples_ms"], b[f"{den}/{g}"]["samples_ms"])["median"] for b in blocks
                ]
                out[ratio][label][g] = {
                    **paired_ratio(samples[f"{num}/{g}"], samples[f"{den}/{g}"]),
                    "per_block": per_block,
                }
    return out


def plot_over_litert(result: dict[str, Any], path: Path) -> Path:
    """Per model and timed sub-network, each ExecuTorch variant's paired latency over LiteRT's (bars: all rounds;
    whiskers: the range of the blocks' paired medians)."""
    from ondevice.plots import plt

    models = {k: v for k, v in result["models"].items() if "over_litert" in v}
    fig, axes = plt.subplots(1, max(len(models), 1), figsize=(6 * max(len(models), 1), 4), squeeze=False)
    for ax, (name, section) in zip(axes[0], models.items()):
        over = section["over_litert"]
        variants, gates = list(over), list(next(iter(over.values())))
        width = 0.8 / len(variants)
        for i, variant in enumerate(variants):
            xs = [j + (i - (len(variants) - 1) / 2) * width for j in range(len(gates))]
            medians = [over[variant][g]["median"] for g in gates]
            spread = [
                [m - min(over[variant][g]["per_block"]) for m, g in zip(medians, gates)],
                [max(over[variant][g]["per_block"]) - m for m, g in zip(medians, gates)],
            ]
            ax.bar(xs, medians, width, yerr=spread, capsize=2, label=variant, color=f"C{i}")
        ax.axhline(1.0, color="0.3", lw=0.8)
        ax.set_xticks(range(len(gates)), gates)
        low = min(min(v["per_block"]) for per in over.values() for v in per.values())
        ax.set_ylim(min(low, 1.0) - 0.02, None)
        ax.set_ylabel("latency / LiteRT (paired median; whiskers: blocks)")
        ax.set_title(f"{name}: with and without the per-call reshape", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Build and preload the interposer, then per model: per-call costs, the timing blocks, the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2_adn", "resnet50_adn"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", required=True, help="bench_scale.py's folder of exported programs")
    parser.add_argument("--cached-only", action="store_true", help="time what the cache holds, export nothing")
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="leave out the int8 gated program")
    parser.add_argument("--calls", type=int, default=200, help="calls per program and sub-network for per_call")
    parser.add_argument("--blocks", type=int, default=5, help="timing blocks, each over fresh loads of every program")
    parser.add_argument("--rounds", type=int, default=60, help="rounds per block (each calls every program once)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", default=None, help="also write the JSON here (and the PNG beside it)")
    args = parser.parse_args(argv)
    if min(args.calls, args.rounds, args.blocks) < 1 or args.warmup < 0:
        parser.error("--calls, --blocks and --rounds must be at least 1, --warmup at least 0")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    preload_shim(cache)
    costs = CallCosts(os.environ[SHIM_ENV])

    from executorch.runtime import Runtime

    export_args = argparse.Namespace(
        image_size=args.image_size,
        entry_contexts=True,
        atol=1e-3,
        layouts=[],
        size_budgets=[],
        litert=litert_available(),
        int8=args.int8,
        calibration=8,
        int8_rtol=0.3,
        cached_only=args.cached_only,
    )
    threads = set_threads(args.threads)
    torch.set_num_threads(args.threads)
    rt = Runtime.get()
    result: dict[str, Any] = {
        "threads": threads,
        "calls": args.calls,
        "blocks": args.blocks,
        "rounds": args.rounds,
        "models": {},
    }
    for name in args.models:
        model = bench_model(None, name, args.image_size, True, num_classes=1000, in_chans=3)
        records = export_all(model, name, cache, export_args)
        gates = timed_gates(model.num_stages)
        if any(k not in records for k in ["gated", *(f"static_{g}" for g in gates)]):
            log(f"left out {name}: the cache lacks its gated or static programs")
            continue
        image = torch.randn(model.input_spec.shape(1), generator=torch.Generator().manual_seed(0))
        programs = load_programs(
            rt, records, ("static", *(k for k in ("gated", "int8") if k in records)), image, model.num_stages
        )
        log(f"{name}: per-call costs, {args.calls} calls per program and sub-network ...")
        section: dict[str, Any] = {
            "per_call": {
                layout: {g: per_call(costs, call, args.calls, args.warmup) for g, call in per.items()}
                for layout, per in programs.items()
            }
        }
        for layout, per in programs.items():
            for g, call in per.items():
                if not same_logits_when_skipped(costs, call):
                    raise RuntimeError(f"{name} {layout} {g}: skipping the reshape changed the logits")
        del programs
        blocks = []
        costs.reset()
        for block in range(args.blocks):
            log(f"{name}: timing block {block + 1}/{args.blocks}, {args.rounds} rounds, {threads} thread(s) ...")
            blocks.append(time_block(rt, costs, records, image, model.num_stages, args))
        # XNNPACK refusing to set up a runtime whose reshape was skipped (then reshaped after all): expected 0
        section["setups_refused_after_a_skip"] = costs.read()["refused"][1]
        section |= summarize_blocks(blocks, [str(g) for g in gates])
        result["models"][name] = section
    print_json(result, args.out)
    if args.out:
        log(f"wrote {plot_over_litert(result, Path(args.out).with_suffix('.png'))}")
    return result


if __name__ == "__main__":
    main()
