"""Export a multi-exit ADN model as one ExecuTorch program whose pieces the app chains, stopping at any exit.

The program has one method per piece and skip flag (host-chained: the app calls the pieces in
turn and keeps the activations; XNNPACK stores weights shared between methods once):

    stage<k>_run / stage<k>_skip   activation of exit k-1 (stage 0: the image) -> activation of exit k
    exit<k>_run  / exit<k>_skip    activation of exit k [, logits of exit k-1 with ISC] -> (logits, features)

``_skip`` runs stage k with its skippable sub-path skipped (its mandatory blocks on their ``*_skip``
norms), ``_run`` runs all of it, so the gate of stage k picks the method name. The app runs
``stage0``, ``exit0``, asks the per-input policy whether to stop, and only then runs ``stage1``.
``features`` is the exit's pooled representation, the learned policy's second input.

The manifest gets an ``exits`` section: the methods, the cumulative FLOPs of each exit per gate
setting, and, per gate setting, the learned exit policy (Bolukbasi) for one ``lambda`` and the
confidence thresholds fitted to the same held-out average cost, so the app can use either.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from ..export.common import PARITY_ATOL
from ..models import Gates, all_gates
from ..models.modes import eval_mode
from .costs import chain_costs, piece_costs
from .evaluate import collect_predictions
from .heads import MultiExitModel
from .policies import ChainPredictions, evaluate_policy, fit_exit_policy, fit_thresholds

__all__ = [
    "EXITS_PTE",
    "exit_method",
    "export_exits_bundle",
    "export_exits_executorch",
    "fit_manifest_policies",
    "stage_method",
]

EXITS_PTE = "exits.pte"


def stage_method(k: int, skip: bool) -> str:
    """Method running segment k, e.g. ``stage0_run`` or ``stage2_skip``."""
    return f"stage{k}_{'skip' if skip else 'run'}"


def exit_method(k: int, skip: bool) -> str:
    """Method running exit k's classifier, e.g. ``exit1_run``."""
    return f"exit{k}_{'skip' if skip else 'run'}"


class _Stage(nn.Module):
    def __init__(self, model: MultiExitModel, k: int, skip: bool) -> None:
        super().__init__()
        self.model, self.k, self.skip = model, k, skip

    def forward(self, x: Tensor) -> Tensor:
        return self.model.segment(self.k, x, self.skip)


class _Exit(nn.Module):
    """Exit k as a hook-free module: the last exit reads the classifier's input from a copy whose classifier
    is ``nn.Identity`` (``torch.export`` cannot trace the forward hook the eager model uses)."""

    def __init__(self, model: MultiExitModel, k: int, skip: bool) -> None:
        super().__init__()
        self.model, self.k, self.skip = model, k, skip
        self.last = k == model.num_exits - 1
        if self.last:
            self.features_head = copy.deepcopy(model.backbone)
            parent_name, _, leaf = model._classifier_name.rpartition(".")
            parent = self.features_head.get_submodule(parent_name) if parent_name else self.features_head
            self.classifier = copy.deepcopy(getattr(parent, leaf))
            setattr(parent, leaf, nn.Identity())

    def _head(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.last:
            feat, logits = self.model.exit_head(self.k, x, self.skip)
            return feat, logits  # type: ignore[return-value]
        feat = self.features_head.forward_head(x)
        return feat, self.classifier(feat)

    def forward(self, x: Tensor, previous: Tensor | None = None) -> tuple[Tensor, Tensor]:
        feat, logits = self._head(x)
        if self.model.isc is not None:
            logits = self.model.isc(self.k, feat, previous)
        return logits, feat


def _programs(model: MultiExitModel, shared: MultiExitModel) -> tuple[dict[str, Any], dict[str, nn.Module]]:
    example = model.example_input()
    programs: dict[str, Any] = {}
    modules: dict[str, nn.Module] = {}
    prev = torch.zeros(1, model.num_classes)
    x = example
    with torch.no_grad():
        for k in range(model.num_exits):
            for skip in (False, True):
                source = shared if skip else model
                stage, head = _Stage(source, k, skip).eval(), _Exit(source, k, skip).eval()
                y = stage(x)
                args = (y, prev) if model.isc is not None and k > 0 else (y,)
                modules[stage_method(k, skip)], modules[exit_method(k, skip)] = stage, head
                programs[stage_method(k, skip)] = torch.export.export(stage, (x,), strict=True)
                programs[exit_method(k, skip)] = torch.export.export(head, args, strict=True)
            x = model.segment(k, x, False)
            prev = model.forward_exits(example, None, upto=k).logits[-1]
    return programs, modules


def export_exits_executorch(
    model: MultiExitModel, path: str | Path, *, share_weights: bool = True, atol: float = PARITY_ATOL
) -> dict[str, Any]:
    """Write the chained multi-exit program to ``path`` after a parity check of every exit of every gate setting.

    Returns the method table for the manifest's ``exits`` section. Raises ``ExportError`` (from the
    ExecuTorch exporter) when a heavy op is not delegated or a chained exit differs from eager PyTorch.
    """
    from executorch.runtime import Runtime

    from ..export.common import ExportError, parity_inputs
    from ..export.executorch import _check_delegated, _lower_to_edge, _to_executorch, _write
    from ..export.norm_sharing import share_skip_norms

    if not isinstance(model, MultiExitModel):
        raise ValueError(
            f"export needs an ADN model with exits, got {type(model).__name__}; MSDNet is the reference network "
            "for training experiments and has no gates for the manifest"
        )
    with eval_mode(model):
        shared = share_skip_norms(model)[0] if share_weights else model
        programs, _ = _programs(model, shared)  # type: ignore[arg-type]
        program = _to_executorch(_lower_to_edge(programs))
        ops = _check_delegated(program, "multi-exit program")
        loaded = Runtime.get().load_program(program.buffer)
        methods = {name: loaded.load_method(name) for name in programs}
        worst = 0.0
        inputs = parity_inputs(model)
        for gates in all_gates(model.num_stages):
            for image in inputs:
                with torch.no_grad():
                    expected = model.forward_exits(image, gates, features=True)
                x, prev = image, None
                for k, skip in enumerate(gates):
                    x = methods[stage_method(k, skip)].execute([x])[0]
                    args = [x, prev] if model.isc is not None and k > 0 else [x]
                    logits, feat = methods[exit_method(k, skip)].execute(args)
                    diff = max(
                        float((logits - expected.logits[k]).abs().max()),
                        float((feat - expected.features[k]).abs().max()),  # type: ignore[operator]
                    )
                    if not diff <= atol:
                        raise ExportError(f"parity: exit {k} of {gates} differs from eager by {diff:.3g} > {atol:g}")
                    worst = max(worst, diff)
                    prev = logits
        _write(path, program.buffer)
    k_total = model.num_exits
    return {
        "file": Path(path).name,
        "backend": "xnnpack",
        "num_exits": k_total,
        "stage_methods": [{"run": stage_method(k, False), "skip": stage_method(k, True)} for k in range(k_total)],
        "exit_methods": [{"run": exit_method(k, False), "skip": exit_method(k, True)} for k in range(k_total)],
        "exit_inputs": "activation of stage k" + (", logits of exit k-1 (k > 0)" if model.isc is not None else ""),
        "exit_outputs": ["logits", "features"],
        "feature_dims": list(model.feature_dims),
        "protocol": (
            "x = image; for k in 0..num_exits-1: x = stage_methods[k][run|skip by gates[k]](x); "
            "(logits, features) = exit_methods[k][...](x[, previous logits]); stop if k is the last exit or the "
            "policy says exit; the prediction is argmax(logits)"
        ),
        "size_bytes": len(program.buffer),
        "non_delegated_ops": ops["non_delegated_ops"],
        "parity_max_abs_diff": worst,
    }


def fit_manifest_policies(
    model: MultiExitModel,
    holdout: TensorDataset,
    *,
    lam: float = 0.1,
    gates_list: Sequence[Gates] | None = None,
) -> dict[str, Any]:
    """Per gate setting: the exits' cumulative FLOPs, the learned policy for ``lam`` and thresholds at its cost."""
    pieces = piece_costs(model)
    out: dict[str, Any] = {}
    for gates in gates_list or all_gates(model.num_stages):
        skips = tuple(gates)
        preds = collect_predictions(model, holdout, gates)
        nodes = [(skips, k) for k in range(model.num_exits)]
        chain = ChainPredictions(
            tuple(f"exit{k}" for k in range(model.num_exits)),
            preds.logits,
            preds.labels,
            tuple(chain_costs(pieces, nodes)),
            tuple(preds.features),
        )
        learned = fit_exit_policy(chain, lam)
        result = evaluate_policy(learned, chain)
        thresholds = fit_thresholds(chain, max(result.avg_cost, chain.costs[0]))
        t_result = evaluate_policy(thresholds, chain)
        out[str(gates)] = {
            "exit_flops": [int(c) for c in chain.costs],
            "learned": {**learned.to_dict(), "holdout_top1": result.accuracy, "holdout_flops": result.avg_cost},
            "thresholds": {
                **thresholds.to_dict(),
                "holdout_top1": t_result.accuracy,
                "holdout_flops": t_result.avg_cost,
            },
        }
        if not all(math.isfinite(v) for v in (result.accuracy, t_result.accuracy)):
            raise ValueError(f"policy fit for {gates} produced a non-finite accuracy")
    return out


def export_exits_bundle(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    lam: float = 0.1,
    holdout_fraction: float = 0.5,
    data_root: str | None = None,
    share_weights: bool = True,
) -> dict[str, Any]:
    """Write ``exits.pte`` into a bundle and its ``exits`` section into the bundle's manifest.

    An existing ``manifest.json`` (from ``ondevice export``) is extended; otherwise a new one is written
    with the sub-networks' FLOPs, parameters and test accuracy. The policies are fitted on a held-out
    share of the test split, as ``ondevice exits eval`` does. Returns the ``exits`` section.
    """
    from ..checkpoint import checkpoint_data, load_model
    from ..contract.manifest import MANIFEST_NAME, load_manifest, new_manifest, save_manifest
    from ..evaluate import evaluate
    from .evaluate import split_holdout
    from .training import is_exit_method

    model, state = load_model(checkpoint)
    cfg = state["train_config"]
    if not is_exit_method(cfg.get("method")):
        raise ValueError(f"{checkpoint} was trained with --method {cfg.get('method')}; train one with --method exits-*")
    if not isinstance(model, MultiExitModel):
        raise ValueError(f"{state['model_name']} has no depth gates; only ADN models with exits are exported")
    data = checkpoint_data(state, data_root)
    holdout, test = split_holdout(data.test, holdout_fraction, seed=cfg["seed"])
    out_dir = Path(out_dir)
    entry = export_exits_executorch(model, out_dir / EXITS_PTE, share_weights=share_weights)
    entry["lambda"] = lam
    entry["holdout_images"] = len(holdout)
    entry["policies"] = fit_manifest_policies(model, holdout, lam=lam)
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists():
        manifest = load_manifest(manifest_path)
        if manifest["model"]["name"] != state["model_name"]:
            raise ValueError(f"{manifest_path} is for {manifest['model']['name']}, not {state['model_name']}")
    else:
        rows = evaluate(model, test, progress=False)
        spec = data.spec
        manifest = new_manifest(
            model_name=state["model_name"],
            class_names=list(spec.class_names),
            input_shape=(1, spec.in_chans, spec.image_size, spec.image_size),
            mean=spec.mean,
            std=spec.std,
            num_stages=model.num_stages,
            subnets=[
                {
                    "gates": r.gates,
                    "name": r.name,
                    "flops": r.flops,
                    "params": r.params,
                    "accuracy": {"fp32": r.top1},
                    "pareto": r.pareto,
                }
                for r in rows
            ],
            checkpoint=str(checkpoint),
            method=cfg["method"],
        )
    manifest["exits"] = entry
    save_manifest(manifest_path, manifest)
    return entry
