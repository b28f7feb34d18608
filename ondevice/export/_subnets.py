"""What the per-sub-network exporters (Core ML functions, LiteRT signatures) share: which gate settings to
export, how each one is named in the file, a module that runs one fixed setting, and fixed parity inputs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from ..models import AdnModel, Gates, GatesLike, all_gates

__all__ = [
    "INPUT_NAME",
    "MAX_DEFAULT_SUBNETS",
    "OUTPUT_NAME",
    "FixedGates",
    "ParityError",
    "atomic_dir",
    "dir_size",
    "eval_mode",
    "parity_inputs",
    "select_gates",
    "subnet_name",
]

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
# With more than this many settings (S > 4) an exporter needs an explicit list, e.g. the Pareto sub-networks.
MAX_DEFAULT_SUBNETS = 16


class ParityError(RuntimeError):
    """A converted program's output differs from eager PyTorch by more than the tolerance."""


def subnet_name(gates: Gates) -> str:
    """The function/signature name of one sub-network in a file: ``subnet_FFT``."""
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


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for an export and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def parity_inputs(model: AdnModel, count: int = 3, seed: int = 0) -> list[Tensor]:
    """Fixed batch-1 inputs (standard normal, seeded) for comparing a converted program with eager PyTorch."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(model.input_spec.shape(1), generator=generator) for _ in range(count)]


def dir_size(path: str | Path) -> int:
    """Bytes of a file, or of every file under a directory (an .mlpackage)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a scratch directory beside ``path``; build the output at ``scratch / path.name``.

    On success that output replaces ``path`` (a file or a directory) by renames, so a killed export leaves the
    previous one whole; on error the scratch directory is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield scratch
        built = scratch / path.name
        if not built.exists():
            raise FileNotFoundError(f"export wrote nothing at {built}")
        if path.is_dir() and not path.is_symlink():
            old = scratch / ".previous"
            os.replace(path, old)  # a directory cannot be replaced by rename while it has files
        os.replace(built, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
