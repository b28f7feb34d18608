"""Evaluation of every sub-network: top-1, FLOPs and parameters, as ``eval.json`` and a Pareto plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from torch.utils.data import TensorDataset
from tqdm import tqdm

from .atomic import write_json_atomic
from .checkpoint import checkpoint_data, load_model
from .models import AdnModel, Gates, all_gates
from .models.cost import count_flops, count_params_used
from .pareto import pareto_front
from .plots import plot_pareto
from .train import accuracy

__all__ = ["SubnetResult", "evaluate", "evaluate_checkpoint", "format_table"]

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


def evaluate(
    model: AdnModel, test: TensorDataset, gates: list[Gates] | None = None, progress: bool = True
) -> list[SubnetResult]:
    """Accuracy and cost of each gate setting (default: all 2^S), with the accuracy-vs-FLOPs front marked."""
    gates = gates or all_gates(model.num_stages)
    rows = []
    for g in tqdm(gates, desc="evaluating sub-networks", disable=not progress, leave=False):
        rows.append((g, accuracy(model, test, g), count_flops(model, g), count_params_used(model, g)))
    front = set(pareto_front([r[2] for r in rows], [r[1] for r in rows]))
    return [
        SubnetResult(str(g), g.name, top1, flops, params, i in front) for i, (g, top1, flops, params) in enumerate(rows)
    ]


def evaluate_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, *, data_root: str | None = None, progress: bool = True
) -> list[SubnetResult]:
    """Evaluate a checkpoint on its data set's test split; writes eval.json and pareto.png into ``out_dir``."""
    model, state = load_model(checkpoint)
    if model.num_stages == 0:
        raise ValueError(f"{state['model_name']} has no depth gates; evaluate it with `ondevice exits eval`")
    cfg = state["train_config"]
    data = checkpoint_data(state, data_root)
    rows = evaluate(model, data.test, progress=progress)
    out_dir = Path(out_dir)
    write_json_atomic(
        out_dir / EVAL_JSON,
        {
            "checkpoint": str(checkpoint),
            "model": state["model_name"],
            "method": cfg["method"],
            "data": data.spec.to_dict(),
            "test_images": len(data.test),
            "flops_note": "torch.utils.flop_counter FLOPs (2 x MACs) at batch 1",
            "subnets": [asdict(r) for r in rows],
        },
    )
    plot_pareto(rows, out_dir / PARETO_PNG, title=f"{state['model_name']} on {data.spec.name} ({cfg['method']})")
    return rows


def format_table(rows: list[SubnetResult]) -> str:
    """The rows as a fixed-width text table, super-net first."""
    lines = [f"{'gates':<8} {'name':<10} {'top-1':>7} {'MFLOPs':>9} {'params':>10} pareto"]
    for r in rows:
        lines.append(
            f"{r.gates:<8} {r.name:<10} {100 * r.top1:6.2f}% {r.flops / 1e6:9.2f} {r.params:>10,d} "
            f"{'*' if r.pareto else ''}"
        )
    return "\n".join(lines)
