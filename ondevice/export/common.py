"""What the three export writers share: which gate settings to export, how each sub-network is named in a file,
a module that runs one fixed setting, the parity inputs and tolerance, and the error an export raises."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..models import AdnModel, Gates, GatesLike, all_gates

__all__ = [
    "INPUT_NAME",
    "MAX_DEFAULT_SUBNETS",
    "OUTPUT_NAME",
    "PARITY_ATOL",
    "ExportError",
    "FixedGates",
    "dir_size",
    "parity_inputs",
    "select_gates",
    "subnet_name",
]

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
# Max |program - eager PyTorch| a float program may show on the parity inputs.
PARITY_ATOL = 1e-4
# With more than this many settings (S > 4) an exporter needs an explicit list, e.g. the Pareto sub-networks.
MAX_DEFAULT_SUBNETS = 16


class ExportError(RuntimeError):
    """An export that would produce a wrong or slow program: parity failure or a heavy op not delegated."""


def subnet_name(gates: Gates) -> str:
    """The name of one sub-network in a file (Core ML function, LiteRT signature, ExecuTorch method): ``subnet_FFT``."""
    return f"subnet_{gates}"


def select_gates(model: AdnModel, gates_list: Sequence[GatesLike] | None = None) -> list[Gates]:
    """The settings to export: ``gates_list`` checked and de-duplicated, or all 2^S when that is at most 16."""
    n = model.num_stages
    if gates_list is None:
        if 2**n > MAX_DEFAULT_SUBNETS:
            raise ValueError(
                f"{type(model).__name__} has {n} stages, {2**n} sub-networks; pass gates_list (for instance the "
                f"Pareto sub-networks from `ondevice eval`) to export at most a chosen few"
            )
        return all_gates(n)
    if isinstance(gates_list, str | Gates):
        raise TypeError(f"gates_list must be a list of gate settings, got the single setting {gates_list!r}")
    gates = []
    for value in gates_list:
        g = Gates.coerce(value, n)
        if g not in gates:
            gates.append(g)
    if not gates:
        raise ValueError("gates_list is empty; pass at least one gate setting, e.g. ['F' * num_stages]")
    return gates


class FixedGates(nn.Module):
    """``forward(image)`` = ``model(image, gates)`` for one fixed setting: what an exporter traces."""

    def __init__(self, model: AdnModel, gates: Gates, *, as_dict: bool = False) -> None:
        super().__init__()
        self.model = model
        self.gates = gates
        self.as_dict = as_dict

    def forward(self, image: Tensor) -> Tensor | dict[str, Tensor]:
        logits = self.model(image, self.gates)
        return {OUTPUT_NAME: logits} if self.as_dict else logits


def parity_inputs(model: AdnModel, count: int = 2, seed: int = 0) -> list[Tensor]:
    """Fixed batch-1 inputs (standard normal, seeded) for comparing a converted program with eager PyTorch."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(model.input_spec.shape(1), generator=generator) for _ in range(count)]


def dir_size(path: str | Path) -> int:
    """Bytes of a file, or of every file under a directory (an .mlpackage)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
