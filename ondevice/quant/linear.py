"""torchao ``quantize_`` recipes for Linear layers (8da4w, 8da8w) of a gated program's segments.

The weights become torchao tensor subclasses that torch.export lowers to XNNPACK's dynamically
quantized linear. Segments share modules (the mandatory blocks of a stage sit in both its skip and
run segment), so all segments are copied together and each Linear is quantized once. Only ``nn.Linear`` modules
are taken: ViT-ADN's fused q/k/v projection is a raw parameter (``in_proj_weight``, the official
checkpoint's key) and stays fp32; its output projection, MLP and head are quantized.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models import Segments

__all__ = ["linear_config", "quantize_segments_linear"]


def linear_config(name: str) -> object:
    """The torchao config of a Linear recipe."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig
    from torchao.quantization.granularity import PerAxis, PerGroup

    if name == "8da4w":
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(32))
    if name == "8da8w":
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))
    raise ValueError(f"{name!r} is not a torchao Linear recipe; choose 8da4w or 8da8w")


def _plain_float_linear(module: nn.Module) -> bool:
    from torchao.utils import TorchAOBaseTensor

    return type(module) is nn.Linear and not isinstance(module.weight, TorchAOBaseTensor)


def quantize_segments_linear(segments: Segments, name: str) -> Segments:
    """Copies of the segments with every plain ``nn.Linear`` quantized by the torchao recipe ``name``.

    int4 groups of 32 need in_features divisible by 32; a Linear that is not keeps fp32 weights.
    """
    from torchao.quantization import quantize_

    config = linear_config(name)
    keys = [(i, key) for i, key, _ in segments.items()]
    every = copy.deepcopy(nn.ModuleList(m for _, _, m in segments.items()))  # one copy: sharing kept

    def eligible(module: nn.Module, _: str) -> bool:
        return _plain_float_linear(module) and (name != "8da4w" or module.in_features % 32 == 0)

    quantize_(every, config, filter_fn=eligible)
    branches: list[dict] = [{} for _ in range(segments.num_stages)]
    for (i, key), module in zip(keys, every, strict=True):
        branches[i][key] = module
    return Segments(branches, segments.examples, segments.contextual)
