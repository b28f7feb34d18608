"""Evaluation of a multi-exit model: anytime accuracy per exit and accuracy vs average FLOPs per policy.

``evaluate_exits`` fits every policy on a held-out split and reports it on the test split:

* anytime prediction: each exit's top-1 and cumulative FLOPs, for every gate setting;
* budgeted classification, one curve per policy and chain (see ``policies.py``):
  ``exits``: the early exits of one gate setting (default the super-net), confidence thresholds
  vs Bolukbasi's learned exit policy; ``subnets``: Bolukbasi's network selection over the ADN
  sub-networks on the held-out accuracy-vs-FLOPs Pareto front, cheapest first (with thresholds as
  its baseline); ``combined``: the cheapest sub-network's exits, then escalation along that front;
* the learned policy vs thresholds at equal held-out average cost, and each curve's lowest cost at
  the super-net's accuracy minus one point.

FLOPs are ``torch.utils.flop_counter`` FLOPs (2 x MACs) at batch 1, counted per piece (segment,
exit head, ISC classifier) and summed along a chain. A chain never computes a piece twice: a
sub-network run after another reuses the stages whose gates (and all earlier gates) agree. The
policies' own arithmetic (a few dot products) is not counted. Given the measured latency of every
piece (the methods of a bundle's exits.pte, ``latency.measure_piece_latency``), every curve also gets
its average latency, summed along the chain the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from ..atomic import write_json_atomic
from ..models import Gates, all_gates
from ..models.modes import eval_mode
from ..pareto import pareto_front
from .costs import Node, PieceCosts, chain_costs, piece_costs
from .heads import MultiExitNet
from .policies import (
    ChainPredictions,
    LearnedExitPolicy,
    PolicyResult,
    ThresholdPolicy,
    evaluate_policy,
    fit_exit_policy,
    fit_thresholds,
)

__all__ = [
    "DEFAULT_LAMBDAS",
    "EXITS_JSON",
    "EXITS_PNG",
    "collect_predictions",
    "evaluate_exits",
    "evaluate_exits_checkpoint",
    "format_report",
    "split_holdout",
]

EXITS_JSON = "exits.json"
EXITS_PNG = "exits.png"
DEFAULT_LAMBDAS: tuple[float, ...] = (0.0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5, 1.0, 2.0)


@dataclass
class _Predictions:
    logits: Tensor  # [K, N, C]
    features: list[Tensor]  # K x [N, F_k]
    labels: Tensor


@torch.no_grad()
def collect_predictions(
    model: MultiExitNet, data: TensorDataset, gates: Gates | None, batch_size: int = 256
) -> _Predictions:
    """Every exit's logits and pooled features on a data set, for one gate setting (None: a model without gates)."""
    logits: list[list[Tensor]] = [[] for _ in range(model.num_exits)]
    feats: list[list[Tensor]] = [[] for _ in range(model.num_exits)]
    labels = []
    with eval_mode(model):
        for x, y in DataLoader(data, batch_size=batch_size):
            out = model.forward_exits(x, gates, features=True)
            for k in range(model.num_exits):
                logits[k].append(out.logits[k].double())
                feats[k].append(out.features[k].double())  # type: ignore[union-attr]
            labels.append(y)
    return _Predictions(torch.stack([torch.cat(z) for z in logits]), [torch.cat(f) for f in feats], torch.cat(labels))


def split_holdout(data: TensorDataset, fraction: float = 0.5, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """(held-out, test): a stratified ``fraction`` of each class for fitting the policies, the rest for reporting."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be between 0 and 1 (exclusive), got {fraction}")
    x, y = data.tensors
    g = torch.Generator().manual_seed(seed)
    hold, rest = [], []
    for c in y.unique():
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = round(len(idx) * fraction)
        hold.append(idx[:n])
        rest.append(idx[n:])
    h, r = torch.cat(hold).sort().values, torch.cat(rest).sort().values
    if len(h) == 0 or len(r) == 0:
        raise ValueError(f"{len(y)} test images are too few to split into held-out and test halves")
    return TensorDataset(x[h], y[h]), TensorDataset(x[r], y[r])


def _gate_key(skips: tuple[bool, ...], num_stages: int) -> str:
    return str(Gates(skips)) if num_stages else "-"


def _chain(
    name_nodes: Sequence[Node], preds: dict[tuple[bool, ...], _Predictions], pieces: PieceCosts, num_stages: int
) -> ChainPredictions:
    nodes = list(name_nodes)
    p0 = preds[nodes[0][0]]
    return ChainPredictions(
        names=tuple(f"{_gate_key(s, num_stages)}/exit{k}" for s, k in nodes),
        logits=torch.stack([preds[s].logits[k] for s, k in nodes]),
        labels=p0.labels,
        costs=tuple(chain_costs(pieces, nodes)),
        features=tuple(preds[s].features[k] for s, k in nodes),
    )


def _point(
    policy: ThresholdPolicy | LearnedExitPolicy,
    param: float,
    holdout: ChainPredictions,
    test: ChainPredictions,
    test_ms: ChainPredictions | None,
) -> dict[str, Any]:
    """One point of a curve; ``test_ms`` is the test chain with measured milliseconds as its costs."""
    h, t = evaluate_policy(policy, holdout), evaluate_policy(policy, test)
    latency = {} if test_ms is None else {"latency_ms": evaluate_policy(policy, test_ms).avg_cost}
    return {
        "param": param,
        "holdout_mflops": h.avg_cost / 1e6,
        "holdout_top1": h.accuracy,
        "mflops": t.avg_cost / 1e6,
        **latency,
        "top1": t.accuracy,
        "exit_fractions": list(t.exit_fractions),
        "policy": policy.to_dict(),
    }


def _policy_curves(
    holdout: ChainPredictions,
    test: ChainPredictions,
    test_ms: ChainPredictions | None,
    lambdas: Sequence[float],
    representation: bool,
    n_budgets: int,
) -> dict[str, list[dict[str, Any]]]:
    costs = holdout.costs
    budgets = [costs[0] + (costs[-1] - costs[0]) * i / (n_budgets - 1) for i in range(n_budgets)]
    curves = {
        "thresholds": [_point(fit_thresholds(holdout, b), b / 1e6, holdout, test, test_ms) for b in budgets],
        "learned": [_point(fit_exit_policy(holdout, lam), lam, holdout, test, test_ms) for lam in lambdas],
    }
    if representation:
        curves["learned_representation"] = [
            _point(fit_exit_policy(holdout, lam, representation=True), lam, holdout, test, test_ms) for lam in lambdas
        ]
    return curves


def _matched(holdout: ChainPredictions, test: ChainPredictions, learned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Thresholds fitted to each learned point's held-out cost, both reported on test."""
    rows = []
    for p in learned:
        budget = max(p["holdout_mflops"] * 1e6, holdout.costs[0])
        t: PolicyResult = evaluate_policy(fit_thresholds(holdout, budget), test)
        rows.append(
            {
                "lambda": p["param"],
                "holdout_mflops": p["holdout_mflops"],
                "learned_mflops": p["mflops"],
                "learned_top1": p["top1"],
                "thresholds_mflops": t.avg_cost / 1e6,
                "thresholds_top1": t.accuracy,
            }
        )
    return rows


def _cost_at(points: list[dict[str, Any]], target: float, cost: str = "mflops") -> float | None:
    ok = [p[cost] for p in points if p["top1"] >= target - 1e-12]
    return min(ok) if ok else None


def evaluate_exits(
    model: MultiExitNet,
    holdout: TensorDataset,
    test: TensorDataset,
    *,
    gates: str | None = None,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    representation: bool = True,
    n_budgets: int = 15,
    piece_latency: PieceCosts | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit every policy on ``holdout``, report on ``test``; returns the JSON-ready report (see module docstring).

    ``representation``: also fit the learned exit policy with each exit's pooled features as input
    (the ``learned_representation`` curve of the ``exits`` chain); ``learned`` uses confidence only.
    ``piece_latency``: measured milliseconds of every piece; adds ``latency_ms`` wherever MFLOPs are reported.
    """
    if n_budgets < 2:
        raise ValueError(f"n_budgets must be >= 2, got {n_budgets}")
    s = model.num_stages
    pieces = piece_costs(model)
    settings = [tuple(g) for g in all_gates(s)] if s else [(False,) * model.num_exits]
    exit_skips = tuple(Gates.coerce(gates, s)) if s else settings[0]
    bar = tqdm(settings, desc="collecting exit predictions", disable=not progress, leave=False)
    preds_h = {g: collect_predictions(model, holdout, Gates(g) if s else None) for g in bar}
    preds_t = {g: collect_predictions(model, test, Gates(g) if s else None) for g in settings}
    last = model.num_exits - 1

    def latency(nodes: list[Node]) -> dict[str, list[float]]:
        return {} if piece_latency is None else {"latency_ms": chain_costs(piece_latency, nodes)}

    anytime = []
    for g in settings:
        nodes = [(g, k) for k in range(model.num_exits)]
        top1 = (preds_t[g].logits.argmax(2) == preds_t[g].labels).double().mean(1).tolist()
        anytime.append(
            {
                "gates": _gate_key(g, s),
                "mflops": [c / 1e6 for c in chain_costs(pieces, nodes)],
                **latency(nodes),
                "top1": top1,
                "mean_top1": sum(top1) / len(top1),
            }
        )

    # Each gate setting run alone to its last exit (no early heads): the ADN sub-networks.
    subnets = []
    for g in settings:
        hold = (preds_h[g].logits[last].argmax(1) == preds_h[g].labels).double().mean().item()
        top1 = (preds_t[g].logits[last].argmax(1) == preds_t[g].labels).double().mean().item()
        row = {"gates": _gate_key(g, s), "mflops": _alone_cost(pieces, g) / 1e6}
        if piece_latency is not None:
            row["latency_ms"] = _alone_cost(piece_latency, g)
        subnets.append({**row, "holdout_top1": hold, "top1": top1})
    reference = subnets[0]  # the super-net (or the whole MSDNet)

    chains: dict[str, list[Node]] = {"exits": [(exit_skips, k) for k in range(model.num_exits)]}
    if s:
        front = pareto_front([r["mflops"] for r in subnets], [r["holdout_top1"] for r in subnets])
        front_skips = [settings[i] for i in front]
        if len(front_skips) >= 2:
            chains["subnets"] = [(g, last) for g in front_skips]
        chains["combined"] = [(front_skips[0], k) for k in range(model.num_exits)] + [
            (g, last) for g in front_skips[1:]
        ]

    results: dict[str, Any] = {}
    for name, nodes in chains.items():
        ch_h, ch_t = _chain(nodes, preds_h, pieces, s), _chain(nodes, preds_t, pieces, s)
        ch_ms = None if piece_latency is None else _chain(nodes, preds_t, piece_latency, s)
        curves = _policy_curves(ch_h, ch_t, ch_ms, lambdas, representation and name == "exits", n_budgets)
        entry: dict[str, Any] = {
            "nodes": list(ch_h.names),
            "mflops": [c / 1e6 for c in ch_h.costs],
            **latency(nodes),
            **curves,
        }
        if name == "exits":
            entry["matched"] = _matched(ch_h, ch_t, curves["learned"])
            if representation:
                entry["matched_representation"] = _matched(ch_h, ch_t, curves["learned_representation"])
        results[name] = entry

    target = reference["top1"] - 0.01
    at_target = {}
    for name, entry in results.items():
        for kind in ("thresholds", "learned", "learned_representation"):
            if kind not in entry:
                continue
            cost = _cost_at(entry[kind], target)
            at_target[f"{name}/{kind}"] = {
                "mflops": cost,
                "speedup": None if cost is None else reference["mflops"] / cost,
            }
            if piece_latency is not None:
                ms = _cost_at(entry[kind], target, "latency_ms")
                at_target[f"{name}/{kind}"]["latency_ms"] = ms
                at_target[f"{name}/{kind}"]["latency_speedup"] = None if ms is None else reference["latency_ms"] / ms
    return {
        "num_exits": model.num_exits,
        "exit_gates": _gate_key(exit_skips, s),
        "isc": model.isc is not None,
        "gradient_equilibrium": model.gradient_equilibrium,
        "holdout_images": len(holdout),
        "test_images": len(test),
        "flops_note": "torch.utils.flop_counter FLOPs (2 x MACs) at batch 1; pieces computed once per chain",
        "pieces": asdict(pieces),
        **({} if piece_latency is None else {"pieces_latency_ms": asdict(piece_latency)}),
        "anytime": anytime,
        "subnets": subnets,
        "reference": {k: reference[k] for k in ("gates", "mflops", "latency_ms", "top1") if k in reference},
        "policies": results,
        "at_reference_minus_1pt": {"target_top1": target, **at_target},
        "lambdas": list(lambdas),
    }


def _alone_cost(pieces: PieceCosts, skips: tuple[bool, ...]) -> float:
    """Cost of running to the last exit without the early heads (the plain sub-network; with ISC the last
    exit needs every earlier one)."""
    k = len(pieces.segment) - 1
    if pieces.exits_chained:
        return chain_costs(pieces, [(skips, k)])[0]
    return float(sum(pieces.segment[j][skips[j]] for j in range(k + 1)) + pieces.head[k][skips[k]])


def evaluate_exits_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    data_root: str | None = None,
    holdout_fraction: float = 0.5,
    gates: str | None = None,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    bundle: str | Path | None = None,
    threads: int = 1,
    runs: int = 50,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a multi-exit checkpoint: policies fitted on part of the test split, reported on the rest.

    The network was trained on the whole train split, so a held-out share of the test split
    (``holdout_fraction``, stratified) stands in for a validation set. ``bundle``: a bundle with this
    checkpoint's exits.pte (``ondevice exits export``), whose methods are timed (``threads``, ``runs``)
    to add average latency to every curve. Writes exits.json and exits.png.
    """
    from ..checkpoint import checkpoint_data, load_model
    from .plots import plot_exits
    from .training import is_exit_method

    model, state = load_model(checkpoint)
    cfg = state["train_config"]
    if not is_exit_method(cfg.get("method")):
        raise ValueError(f"{checkpoint} was trained with --method {cfg.get('method')}; train one with --method exits-*")
    data = checkpoint_data(state, data_root)
    holdout, test = split_holdout(data.test, holdout_fraction, seed=cfg["seed"])
    latency = None
    if bundle is not None:
        from .latency import measure_piece_latency

        latency = measure_piece_latency(bundle, threads=threads, runs=runs)
        if len(latency.segment) != model.num_exits:
            raise ValueError(f"{bundle}'s exits.pte has {len(latency.segment)} exits, {checkpoint} {model.num_exits}")
    report = evaluate_exits(
        model,  # type: ignore[arg-type]
        holdout,
        test,
        gates=gates,
        lambdas=lambdas,
        piece_latency=latency,
        progress=progress,
    )
    if bundle is not None:
        report["latency"] = {"bundle": str(bundle), "threads": threads, "runs": runs, "stat": "median"}
    report = {
        "checkpoint": str(checkpoint),
        "model": state["model_name"],
        "method": cfg["method"],
        "data": data.spec.to_dict(),
        **report,
    }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / EXITS_JSON, report)
    plot_exits(report, out_dir / EXITS_PNG, title=f"{state['model_name']} on {data.spec.name} ({cfg['method']})")
    return report


def format_report(report: dict[str, Any]) -> str:
    """Anytime accuracy, the super-net reference and each curve's cost at reference - 1 point, as text."""
    lines = ["anytime top-1 per exit (test):"]
    for row in report["anytime"]:
        cells = "  ".join(f"{100 * a:6.2f}% @ {m:7.2f}M" for a, m in zip(row["top1"], row["mflops"]))
        lines.append(f"  {row['gates']:<6} {cells}   mean {100 * row['mean_top1']:.2f}%")
    ref = report["reference"]
    lines.append(f"reference {ref['gates']}: {100 * ref['top1']:.2f}% @ {ref['mflops']:.2f} MFLOPs")
    for key, value in report["at_reference_minus_1pt"].items():
        if key == "target_top1":
            continue
        cost = "not reached" if value["mflops"] is None else f"{value['mflops']:.2f} M ({value['speedup']:.2f}x)"
        if value.get("latency_ms") is not None:
            cost += f", {value['latency_ms']:.3f} ms ({value['latency_speedup']:.2f}x)"
        lines.append(f"  cost at reference - 1 pt, {key:<22} {cost}")
    return "\n".join(lines)
