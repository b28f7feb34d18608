"""What every Adaptive Depth Network here shares: a stem, S gated stages, a head.

A model's ``forward(x, gates)`` is ``forward_head(stage_S(...stage_1(forward_stem(x))))`` where each
stage runs ``forward_stage(i, x, skip)``. Export lowers one stage per gate, so every model
implements these three methods and nothing else needs to know its architecture.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .context_norm import entry_context
from .gates import Gates, GatesLike

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "AdnModel", "AdnStage", "InputSpec", "add_skip_norms", "n_mandatory"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def n_mandatory(n_blocks: int) -> int:
    """Mandatory blocks of an n-block stage (ADN: Kang, NeurIPS 2024): the first min(n-1, (n+1)//2) blocks."""
    if n_blocks < 2:
        raise ValueError(f"an ADN stage needs at least 2 blocks (1 mandatory + 1 skippable), got {n_blocks}")
    return min(n_blocks - 1, (n_blocks + 1) // 2)


def add_skip_norms(module: nn.Module, names: tuple[str, ...]) -> None:
    """Give a mandatory module an independent ``<name>_skip`` copy of each norm (skip-aware normalization)."""
    for name in names:
        setattr(module, f"{name}_skip", copy.deepcopy(getattr(module, name)))


@dataclass(frozen=True)
class InputSpec:
    """The input a model expects; recorded with checkpoints and bundles so the apps preprocess the same way."""

    in_chans: int
    image_size: int
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.in_chans, self.image_size, self.image_size)


class AdnStage(nn.ModuleList):
    """Blocks of one stage: the first ``n_mandatory`` always run, the rest only when the stage is not skipped.

    Every block is called as ``block(x, skip)`` so mandatory blocks can pick their *_skip norms.
    Indexing keeps the official state-dict keys (``layer1.0``, ``features.2.1``).
    """

    def __init__(self, blocks: list[nn.Module], n_mandatory: int) -> None:
        super().__init__(blocks)
        self.n_mandatory = n_mandatory

    def forward(self, x: Tensor, skip: bool) -> Tensor:  # type: ignore[override]
        for i, block in enumerate(self):
            if skip and i >= self.n_mandatory:
                break
            x = block(x, skip)
        return x


class AdnModel(nn.Module):
    """Base class: subclasses set ``num_stages``/``input_spec`` and define stem, stage and head."""

    num_stages: int
    input_spec: InputSpec

    def forward_stem(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_stage(self, index: int, x: Tensor, skip: bool) -> Tensor:
        raise NotImplementedError

    def forward_head(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def entry_norms(self, index: int) -> tuple[str, ...]:
        """Names of stage ``index``'s entry norms: the BatchNorms right after the convs that read its input.

        Their statistics depend on the previous stage's gate (``norm_stats.enable_entry_contexts``);
        models without BatchNorm statistics (LayerNorm transformers) have none.
        """
        return ()

    def run_stage(self, index: int, x: Tensor, skip: bool, previous: bool | None) -> Tensor:
        """``forward_stage`` with the entry norms in the context of ``previous``, the gate of stage index-1."""
        with entry_context(self, index, previous):
            return self.forward_stage(index, x, skip)

    def forward(self, x: Tensor, gates: GatesLike = None, *, stage_outputs: list[Tensor] | None = None) -> Tensor:
        """Logits of the sub-network chosen by ``gates`` (None: super-net, as in the official ResNet/ViT).

        ``stage_outputs``: a list that receives each stage's output (feature distillation during training).
        """
        gates = Gates.coerce(gates, self.num_stages)
        if x.dim() != 4 or x.shape[1] != self.input_spec.in_chans:
            raise ValueError(f"expected images of shape [N, {self.input_spec.in_chans}, H, W], got {list(x.shape)}")
        x = self.forward_stem(x)
        previous = None
        for index, skip in enumerate(gates):
            x = self.run_stage(index, x, skip, previous)
            previous = skip
            if stage_outputs is not None:
                stage_outputs.append(x)
        return self.forward_head(x)

    @torch.no_grad()
    def example_input(self, batch: int = 1) -> Tensor:
        return torch.randn(self.input_spec.shape(batch))
