"""Evaluation of every sub-network: top-1, FLOPs and parameters, as ``eval.json`` and a Pareto plot.

Beside each sub-network's accuracy with the model's own norm statistics, the diagnostics report its
accuracy with statistics re-estimated for that sub-network alone (what it could reach with the same
weights) and, per stage, the refinement gap: a user sees at once whether a run delivered a full front
or whether norm statistics, not weights, hold some sub-networks back.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import TensorDataset
from tqdm import tqdm

from .atomic import write_json_atomic
from .checkpoint import checkpoint_data, checkpoint_sha256, load_model
from .data import sample_images
from .metrics import accuracy
from .models import AdnModel, Gates, all_gates
from .models.cost import subnet_costs
from .models.norm_stats import recalibrate_norms, refinement_gaps
from .pareto import pareto_front
from .plots import plot_pareto

__all__ = ["SubnetResult", "add_eval_parser", "evaluate", "evaluate_checkpoint", "format_table", "full_front_shortfall"]

EVAL_JSON = "eval.json"
PARETO_PNG = "pareto.png"


@dataclass(frozen=True)
class SubnetResult:
    """One row of eval.json: a gate setting, its accuracy and its cost."""

    gates: str
    name: str
    top1: float
    flops: int
    params: int
    pareto: bool
    top1_own_stats: float | None = None  # diagnostics: norm statistics re-estimated for this sub-network alone


def evaluate(
    model: AdnModel,
    test: TensorDataset,
    gates: list[Gates] | None = None,
    progress: bool = True,
    *,
    calibration: Tensor | None = None,
) -> list[SubnetResult]:
    """Accuracy and cost of each gate setting (default: all 2^S), with the accuracy-vs-FLOPs front marked.

    ``calibration``: training images; each row then also gets ``top1_own_stats``, its accuracy after its
    norm statistics are re-estimated on them for that sub-network alone (the model itself is untouched).
    """
    gates = gates or all_gates(model.num_stages)
    rows = []
    for g in tqdm(gates, desc="evaluating sub-networks", disable=not progress, leave=False):
        own = None
        if calibration is not None:
            own = accuracy(recalibrate_norms(copy.deepcopy(model), calibration, [g]), test, g)
        cost = subnet_costs(model, [g])[0]
        rows.append((g, accuracy(model, test, g), cost.flops, cost.params, own))
    front = set(pareto_front([r[2] for r in rows], [r[1] for r in rows]))
    return [
        SubnetResult(str(g), g.name, top1, flops, params, i in front, own)
        for i, (g, top1, flops, params, own) in enumerate(rows)
    ]


def full_front_shortfall(rows: list[SubnetResult]) -> float:
    """How far the worst sub-network falls below min(super-net, base-net), in top-1 (0 when none does)."""
    ends = [r.top1 for r in rows if r.name in ("super-net", "base-net")]
    return max(0.0, min(ends) - min(r.top1 for r in rows)) if ends else 0.0


def evaluate_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    data_root: str | None = None,
    diagnostic_images: int = 1000,
    progress: bool = True,
) -> list[SubnetResult]:
    """Evaluate a checkpoint on its data set's test split; writes eval.json and pareto.png into ``out_dir``.

    ``diagnostic_images`` training images re-estimate each sub-network's own norm statistics (0: skip the
    diagnostics); the first 500 test images measure each stage's refinement gap.
    """
    model, state = load_model(checkpoint)
    if model.num_stages == 0:
        raise ValueError(f"{state['model_name']} has no depth gates; evaluate it with `ondevice exits eval`")
    if diagnostic_images < 0:
        raise ValueError(f"diagnostic_images must be >= 0, got {diagnostic_images}")
    cfg = state["train_config"]
    data = checkpoint_data(state, data_root)
    calibration = sample_images(data.train, diagnostic_images) if diagnostic_images else None
    rows = evaluate(model, data.test, progress=progress, calibration=calibration)
    norm_stats = state.get("norm_stats", {"kind": "momentum", "note": "running averages left by training"})
    out_dir = Path(out_dir)
    write_json_atomic(
        out_dir / EVAL_JSON,
        {
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": checkpoint_sha256(checkpoint),
            "model": state["model_name"],
            "method": cfg["method"],
            "data": data.spec.to_dict(),
            "test_images": len(data.test),
            "flops_note": "torch.utils.flop_counter FLOPs (2 x MACs) at batch 1",
            "norm_stats": norm_stats,
            "subnets": [asdict(r) for r in rows],
            "diagnostics": {
                "full_front_shortfall": full_front_shortfall(rows),
                "own_stats_images": len(calibration) if calibration is not None else 0,
                "own_stats_note": "top1_own_stats: norm statistics re-estimated for that sub-network alone",
                "refinement_gap": refinement_gaps(model, data.test.tensors[0][:500]),
                "refinement_gap_note": "per stage, ||run - skipped|| / ||run|| of its output on the super-net's input",
            },
        },
    )
    title = f"{state['model_name']} on {data.spec.name} ({cfg['method']}, {norm_stats['kind']} norm statistics)"
    plot_pareto(rows, out_dir / PARETO_PNG, title=title)
    return rows


def format_table(rows: list[SubnetResult]) -> str:
    """The rows as a fixed-width text table, super-net first."""
    own = any(r.top1_own_stats is not None for r in rows)
    header = f"{'gates':<8} {'name':<10} {'top-1':>7} {'own-stats':>9} {'MFLOPs':>9} {'params':>10} pareto"
    lines = [header if own else header.replace(f" {'own-stats':>9}", "")]
    for r in rows:
        own_column = f" {100 * r.top1_own_stats:8.2f}%" if r.top1_own_stats is not None else ""
        lines.append(
            f"{r.gates:<8} {r.name:<10} {100 * r.top1:6.2f}%{own_column} {r.flops / 1e6:9.2f} {r.params:>10,d} "
            f"{'*' if r.pareto else ''}"
        )
    return "\n".join(lines)


def add_eval_parser(verbs: Any) -> None:
    """``ondevice eval CHECKPOINT``."""
    evaluate = verbs.add_parser("eval", help="checkpoint -> eval.json + pareto.png (every sub-network)")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--out", default=None, help="output directory (default: the checkpoint's directory)")
    evaluate.add_argument("--data-root", default=None, help="override the data directory of the checkpoint")
    evaluate.add_argument(
        "--diagnostic-images",
        type=int,
        default=1000,
        help="training images to re-estimate each sub-network's own norm statistics (0: no diagnostics)",
    )
    evaluate.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    rows = evaluate_checkpoint(args.checkpoint, out, data_root=args.data_root, diagnostic_images=args.diagnostic_images)
    print(format_table(rows))
    print(f"wrote {out / EVAL_JSON} and {out / 'pareto.png'}")
    return 0
