"""A gated model as 2S segments: stage i with its gate fixed to skip or run.

A program with switchable gates is a chain of segments, one per stage, each picked by its gate.
Export lowers every segment once; quantization calibrates and converts every segment once. Both get
them here, so "which code runs for stage i when gate i is set" has one definition: ``forward_stage``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .adn import AdnModel
from .gates import Gates

__all__ = ["Segment", "Segments", "model_segments"]


class Segment(nn.Module):
    """Stage ``index`` with a fixed skip flag; the stem before stage 0 and the head after stage S-1."""

    def __init__(self, model: AdnModel, index: int, skip: bool) -> None:
        super().__init__()
        self.model = model
        self.index = index
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        if self.index == 0:
            x = self.model.forward_stem(x)
        x = self.model.forward_stage(self.index, x, self.skip)
        if self.index == self.model.num_stages - 1:
            x = self.model.forward_head(x)
        return x


@dataclass
class Segments:
    """``skips[i]``/``runs[i]``: stage i skipped / run; ``examples[i]``: an input stage i sees (batch 1)."""

    skips: list[nn.Module]
    runs: list[nn.Module]
    examples: list[Tensor]

    @property
    def num_stages(self) -> int:
        return len(self.runs)

    def __call__(self, image: Tensor, gates: Gates) -> Tensor:
        """The sub-network ``gates`` as the chain of its segments (what the gated program computes)."""
        x = image
        for skip, run, s in zip(self.skips, self.runs, gates, strict=True):
            x = (skip if s else run)(x)
        return x

    def map(self, fn: Callable[[nn.Module, Tensor], nn.Module]) -> Segments:
        """New segments ``fn(segment, example)``, skip and run branch of every stage."""
        return Segments(
            [fn(m, x) for m, x in zip(self.skips, self.examples)],
            [fn(m, x) for m, x in zip(self.runs, self.examples)],
            self.examples,
        )


def model_segments(model: AdnModel, *, skip_model: AdnModel | None = None) -> Segments:
    """The segments of ``model`` in eval mode; ``skip_model`` (a rewritten copy) supplies the skip branches."""
    skip_model = skip_model or model
    skips, runs, examples = [], [], []
    x = model.example_input()
    with torch.no_grad():
        for index in range(model.num_stages):
            examples.append(x)
            skips.append(Segment(skip_model, index, True).eval())
            runs.append(Segment(model, index, False).eval())
            x = runs[-1](x)
    return Segments(skips, runs, examples)
