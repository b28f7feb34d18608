"""ExecuTorch program layouts side by side, one run, one machine; prints JSON (docs/export.md quotes it).

    python benchmarks/bench_export.py                      # resnet20_adn, 28x28x1, 10 classes, random weights
    python benchmarks/bench_export.py --model vit_tiny_adn  # the transformer (no BatchNorm: no share layouts)
    python benchmarks/bench_export.py --checkpoint runs/demo/train/checkpoint.pt --threads 1 --rounds 400

Layouts, all one .pte each:
  gated            forward(image, gates): cond per stage over pre-lowered XNNPACK branches, the default
                   share_weights="auto" (the convs that cost least to share stored once, to 1.10x the static
                   super-net; a model with under 1 MB of copies, as this one, keeps them: then = none)
  gated_share_none the same, every mandatory conv folded with each norm, stored twice (share_weights="none")
  gated_share_skip the same, convs stored once, a per-channel affine in the skip branches (share_weights="skip")
  gated_share_run  the same, convs stored once, the affine in the run branches (share_weights="run")
  gated_context_copies  (models with entry norms per previous gate) each entry conv folded with each context's
                   statistics, stored once per context (share_contexts=False; the default shares them)
  static         one program per sub-network, no cond (the baseline of "gate overhead"; 2^S files)
  multimethod    one method per sub-network in one file
  chained        per-stage methods (stage<i>_skip / stage<i>_run) that the host calls one after another
Measured: latency per sub-network (median of interleaved rounds, every layout and setting once per round,
shuffled), gate overhead = gated / static, latency(base)/latency(super) vs FLOPs(base)/FLOPs(super), sizes,
and the cost of switching gates between calls of the one loaded gated program.

Random weights get random norm parameters and BatchNorm statistics (separately for main and *_skip norms)
so that skip norms differ from main norms as after training; otherwise their folded convs would be
identical by accident. The share layouts rewrite BatchNorms only and are left out for models without them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from layouts import export_chained_executorch, export_multimethod_executorch
from torch import nn

from ondevice.export.common import subnet_name
from ondevice.export.executorch import export_executorch, export_static_executorch
from ondevice.models import AdnModel, Gates, all_gates, build_model, gates_tensor
from ondevice.models.context_norm import CONTEXTS, ContextBatchNorm2d
from ondevice.models.cost import count_flops
from ondevice.models.norm_stats import enable_entry_contexts, has_entry_contexts
from ondevice.models.segments import branch_key, segment_name
from ondevice.profile import interleaved_latency
from ondevice.runtime import set_threads


def bench_model(
    checkpoint: str | None,
    name: str,
    image_size: int,
    entry_contexts: bool = False,
    *,
    num_classes: int = 10,
    in_chans: int = 1,
) -> AdnModel:
    """The checkpoint's model, or ``name`` with seeded random weights and random norm parameters and statistics."""
    if checkpoint:
        from ondevice.checkpoint import load_model

        return load_model(checkpoint)[0]
    torch.manual_seed(0)
    model = build_model(name, num_classes=num_classes, in_chans=in_chans, image_size=image_size).eval()
    if entry_contexts:
        enable_entry_contexts(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, ContextBatchNorm2d):
                for context in CONTEXTS:
                    getattr(m, f"running_mean_{context}").normal_(0, 0.1)
                    getattr(m, f"running_var_{context}").uniform_(0.5, 2.0)
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, nn.Linear) and not m.weight.any():  # ViT's zero-initialised head
                m.weight.normal_(0, 0.02)
    return model


def _median(v: list[float]) -> float:
    return round(statistics.median(v), 4)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="trained checkpoint (default: random weights)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--model", default="resnet20_adn", help="registered model of the random-weight run")
    parser.add_argument("--image-size", type=int, default=28, help="input size of the random-weight model")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument(
        "--entry-contexts", action="store_true", help="random-weight model with entry norms per previous gate"
    )
    args = parser.parse_args(argv)

    model = bench_model(args.checkpoint, args.model, args.image_size, args.entry_contexts)
    n = model.num_stages
    settings = all_gates(n)
    tmp = Path(tempfile.mkdtemp(prefix="bench_export_"))
    export_s: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        start = time.perf_counter()
        out = fn(*a, **kw)
        export_s[name] = round(time.perf_counter() - start, 1)
        print(f"exported {name} in {export_s[name]} s", file=sys.stderr)
        return out

    gated = timed("gated", export_executorch, model, tmp / "gated.pte")
    shares = {
        f"gated_share_{branch}": timed(
            f"gated_share_{branch}", export_executorch, model, tmp / f"gated_share_{branch}.pte", share_weights=branch
        )
        for branch in ("none", "skip", "run")
        if any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    }
    if has_entry_contexts(model):  # the layout before entry convs were shared: one folded copy per context
        shares["gated_context_copies"] = timed(
            "gated_context_copies", export_executorch, model, tmp / "gated_context_copies.pte", share_contexts=False
        )
    statics = {
        str(g): timed(f"static_{g}", export_static_executorch, model, g, tmp / f"static_{g}.pte") for g in settings
    }
    multi = timed("multimethod", export_multimethod_executorch, model, tmp / "multimethod.pte")
    chained = timed("chained", export_chained_executorch, model, tmp / "chained.pte")

    from executorch.runtime import Runtime

    threads = set_threads(args.threads)
    rt = Runtime.get()
    g_fwd = rt.load_program(tmp / "gated.pte").load_method("forward")
    share_fwd = {name: rt.load_program(tmp / f"{name}.pte").load_method("forward") for name in shares}
    s_fwd = {k: rt.load_program(tmp / f"static_{k}.pte").load_method("forward") for k in statics}
    multi_prog = rt.load_program(tmp / "multimethod.pte")
    m_fwd = {str(g): multi_prog.load_method(subnet_name(g)) for g in settings}
    chain_prog = rt.load_program(tmp / "chained.pte")
    c_fwd = {name: chain_prog.load_method(name) for name in chained["methods"]}
    contextual = has_entry_contexts(model)

    image = torch.randn(model.input_spec.shape(1), generator=torch.Generator().manual_seed(0))
    gates_t = {str(g): gates_tensor(g, n) for g in settings}

    def chain(g: Gates) -> torch.Tensor:
        x = image
        for i in range(n):
            x = c_fwd[segment_name(i, branch_key(g, i, contextual))].execute([x])[0]
        return x

    calls = {
        "gated": lambda g: g_fwd.execute([image, gates_t[str(g)]]),
        **{name: lambda g, f=f: f.execute([image, gates_t[str(g)]]) for name, f in share_fwd.items()},
        "static": lambda g: s_fwd[str(g)].execute([image]),
        "multimethod": lambda g: m_fwd[str(g)].execute([image]),
        "chained": chain,
    }
    jobs = {f"{layout}/{g}": partial(call, g) for g in settings for layout, call in calls.items()}
    timed = interleaved_latency(jobs, runs=args.rounds, warmup=10)

    # Switching: the same loaded gated program, calls alternating super <-> base vs repeating one setting.
    sup, base = str(settings[0]), str(settings[-1])
    switch: dict[str, list[float]] = {
        "super_after_super": [],
        "super_after_base": [],
        "base_after_base": [],
        "base_after_super": [],
    }
    sequence = [sup, sup, base, base] * (args.rounds * 2)
    previous = sequence[-1]
    for key in sequence:
        start = time.perf_counter()
        g_fwd.execute([image, gates_t[key]])
        elapsed = (time.perf_counter() - start) * 1e3
        switch[f"{'super' if key == sup else 'base'}_after_{'super' if previous == sup else 'base'}"].append(elapsed)
        previous = key

    latency = {layout: {str(g): timed[f"{layout}/{g}"]["median_ms"] for g in settings} for layout in calls}
    flops = {str(g): count_flops(model, g) for g in settings}
    overhead = {
        layout: {str(g): round(latency[layout][str(g)] / latency["static"][str(g)], 3) for g in settings}
        for layout in calls
        if layout != "static"
    }
    sw = {k: _median(v) for k, v in switch.items()}
    result = {
        "model": args.checkpoint
        or f"{args.model} (random weights and norms), 1x{args.image_size}x{args.image_size}, 10 classes",
        "threads": threads,
        "rounds": args.rounds,
        "latency_ms_median": latency,
        "latency_ms_min": {layout: {str(g): timed[f"{layout}/{g}"]["min_ms"] for g in settings} for layout in calls},
        "overhead_over_static": overhead,
        "overhead_max": {layout: max(v.values()) for layout, v in overhead.items()},
        "base_over_super": {layout: round(latency[layout][base] / latency[layout][sup], 3) for layout in calls},
        "flops_base_over_super": round(flops[base] / flops[sup], 3),
        "latency_ratio_over_flops_ratio": {
            layout: round(latency[layout][base] / latency[layout][sup] / (flops[base] / flops[sup]), 3)
            for layout in calls
        },
        "flops": flops,
        "size_bytes": {
            "gated": gated["size_bytes"],
            **{name: entry["size_bytes"] for name, entry in shares.items()},
            "static_super": statics[sup]["size_bytes"],
            "static_all_settings_total": sum(s["size_bytes"] for s in statics.values()),
            "multimethod": multi["size_bytes"],
            "chained": chained["size_bytes"],
        },
        "size_ratio_over_static_super": {
            name: round(entry["size_bytes"] / statics[sup]["size_bytes"], 3)
            for name, entry in (
                ("gated", gated),
                *shares.items(),
                ("multimethod", multi),
                ("chained", chained),
            )
        },
        "switching_ms_median": sw,
        "switching_cost_ms": {
            "to_super": round(sw["super_after_base"] - sw["super_after_super"], 4),
            "to_base": round(sw["base_after_super"] - sw["base_after_base"], 4),
        },
        "parity_max_abs_diff": gated["parity_max_abs_diff"],
        "export_seconds": export_s,
    }
    print_json(result, args.out)
    return result


def print_json(result: dict, out: str | None) -> None:
    """Print a benchmark's result as indented JSON and, with ``--out``, write the same text there."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    main()
