"""A gated model as segments: stage i with its gate fixed to skip or run (and, where its entry norms
follow the previous stage's gate, that gate fixed too).

A program with switchable gates is a chain of segments, one per stage, each picked by the gates.
Export lowers every segment once; quantization calibrates and converts every segment once. Both get
them here, so "which code runs for stage i under these gates" has one definition: ``run_stage``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .adn import AdnModel
from .gates import Gates
from .norm_stats import has_entry_contexts

__all__ = ["BranchKey", "Segment", "Segments", "branch_key", "model_segments", "segment_label", "segment_name"]

# (gate of the previous stage, or None where the segment does not depend on it; gate of this stage)
BranchKey = tuple[bool | None, bool]


class Segment(nn.Module):
    """Stage ``index`` with a fixed skip flag (and previous gate); the stem before stage 0, the head after S-1."""

    def __init__(self, model: AdnModel, index: int, skip: bool, previous: bool | None = None) -> None:
        super().__init__()
        self.model = model
        self.index = index
        self.skip = skip
        self.previous = previous

    def forward(self, x: Tensor) -> Tensor:
        if self.index == 0:
            x = self.model.forward_stem(x)
        x = self.model.run_stage(self.index, x, self.skip, self.previous)
        if self.index == self.model.num_stages - 1:
            x = self.model.forward_head(x)
        return x


def branch_key(gates: Gates, index: int, contextual: bool) -> BranchKey:
    """The key of stage ``index``'s segment under ``gates``."""
    return (gates[index - 1] if contextual and index else None, gates[index])


@dataclass
class Segments:
    """``branches[i][key]``: stage i's segment for ``key`` (see BranchKey); ``examples[i]``: an input of stage i.

    ``contextual``: stages 1..S-1 have one segment per (previous gate, own gate), else per own gate.
    """

    branches: list[dict[BranchKey, nn.Module]]
    examples: list[Tensor]
    contextual: bool = False

    @property
    def num_stages(self) -> int:
        return len(self.branches)

    def segment(self, gates: Gates, index: int) -> nn.Module:
        return self.branches[index][branch_key(gates, index, self.contextual)]

    def __call__(self, image: Tensor, gates: Gates) -> Tensor:
        """The sub-network ``gates`` as the chain of its segments (what the gated program computes)."""
        if len(gates) != self.num_stages:
            raise ValueError(f"gates {gates} do not fit {self.num_stages} stages")
        x = image
        for index in range(self.num_stages):
            x = self.segment(gates, index)(x)
        return x

    def items(self) -> Iterator[tuple[int, BranchKey, nn.Module]]:
        """(stage, key, segment) for every segment."""
        for index, branches in enumerate(self.branches):
            for key, module in branches.items():
                yield index, key, module

    def map(self, fn: Callable[[nn.Module, Tensor], nn.Module]) -> Segments:
        """New segments ``fn(segment, example)`` for every segment."""
        return Segments(
            [{key: fn(m, x) for key, m in branches.items()} for branches, x in zip(self.branches, self.examples)],
            self.examples,
            self.contextual,
        )


def segment_name(index: int, key: BranchKey) -> str:
    """A readable name of one segment, e.g. ``stage1_run`` or ``stage2_skip_after_run``."""
    previous, skip = key
    name = f"stage{index}_{'skip' if skip else 'run'}"
    return name if previous is None else f"{name}_after_{'skip' if previous else 'run'}"


def segment_label(index: int, key: BranchKey) -> str:
    """The segment in words for messages, e.g. ``stage 1 run`` or ``stage 2 skipped after stage 1 ran``."""
    previous, skip = key
    label = f"stage {index} {'skipped' if skip else 'run'}"
    return label if previous is None else f"{label} after stage {index - 1} {'skipped' if previous else 'ran'}"


def model_segments(model: AdnModel, *, skip_model: AdnModel | None = None) -> Segments:
    """The segments of ``model`` in eval mode; ``skip_model`` (a rewritten copy) supplies the skip branches.

    A model with entry contexts gets four segments for each stage after the first, one per
    (previous gate, own gate); the examples are the super-net's inputs to each stage.
    """
    skip_model = skip_model or model
    contextual = has_entry_contexts(model)
    branches, examples = [], []
    x = model.example_input()
    with torch.no_grad():
        for index in range(model.num_stages):
            examples.append(x)
            previous_values = (False, True) if contextual and index else (None,)
            stage = {}
            for previous in previous_values:
                for skip in (False, True):
                    stage[(previous, skip)] = Segment(skip_model if skip else model, index, skip, previous).eval()
            branches.append(stage)
            x = stage[(False if contextual and index else None, False)](x)
    return Segments(branches, examples, contextual)
