"""What each sub-network costs: FLOPs (torch's flop counter) and the parameters it actually uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .adn import AdnModel
from .gates import Gates, GatesLike, all_gates
from .modes import eval_mode

__all__ = ["SubnetCost", "count_flops", "count_params_used", "subnet_costs"]


@dataclass(frozen=True)
class SubnetCost:
    """FLOPs (2 x multiply-accumulates, batch 1) and parameters used by one gate setting."""

    gates: str
    flops: int
    params: int


def _as_gates(model: AdnModel, gates: GatesLike) -> Gates:
    return Gates.coerce(gates, model.num_stages)


def count_flops(model: AdnModel, gates: GatesLike = None, image_size: int | None = None) -> int:
    """FLOPs of one forward pass at batch 1, counted by ``torch.utils.flop_counter`` (conv, matmul, attention)."""
    spec = model.input_spec
    x = torch.zeros(1, spec.in_chans, image_size or spec.image_size, image_size or spec.image_size)
    with eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, _as_gates(model, gates))
    return int(counter.get_total_flops())


def count_params_used(model: AdnModel, gates: GatesLike = None, image_size: int | None = None) -> int:
    """Parameters that influence the output of this sub-network (those that receive a gradient)."""
    spec = model.input_spec
    x = torch.randn(1, spec.in_chans, image_size or spec.image_size, image_size or spec.image_size)
    params = [p for p in model.parameters() if p.requires_grad]
    with eval_mode(model), torch.enable_grad():
        out = model(x, _as_gates(model, gates))
        grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
    return sum(p.numel() for p, g in zip(params, grads) if g is not None)


def subnet_costs(
    model: AdnModel, settings: Sequence[Gates] | None = None, image_size: int | None = None
) -> list[SubnetCost]:
    """FLOPs and used parameters of each gate setting (default every one, super-net first): the cost columns of
    eval.json and manifest.json."""
    return [
        SubnetCost(str(g), count_flops(model, g, image_size), count_params_used(model, g, image_size))
        for g in (all_gates(model.num_stages) if settings is None else settings)
    ]
