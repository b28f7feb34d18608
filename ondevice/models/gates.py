"""Gates: which stages of an Adaptive Depth Network skip their skippable sub-path.

This is the one definition of a gate setting used everywhere: models, training, evaluation,
export, the policy and the apps' manifest. The convention is the official ADN code's
(`forward(x, skip=[bool] * S)`): ``True`` skips that stage's skippable sub-path and switches its
mandatory blocks to their ``*_skip`` norms. Printed as the official "TFTF" strings.

A program that takes the setting as a tensor (the ExecuTorch ``forward(image, gates)``) gets it as
:func:`gates_tensor`: int32 [S], 1 = skip. The ExecuTorch Android ``Tensor`` has no bool dtype
(``Tensor.fromBlob(IntArray, shape)`` is int32) and iOS has ``Tensor<Int32>``, so int32 is the one
dtype both apps create without conversion.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "GATES_DTYPE",
    "Gates",
    "GatesLike",
    "all_gates",
    "base_net",
    "covering_gates",
    "gates_tensor",
    "super_net",
]

GATES_DTYPE = torch.int32


@dataclass(frozen=True, order=True)
class Gates:
    """Per-stage skip flags. ``skip[i]`` True: stage i runs only its mandatory blocks, with its *_skip norms."""

    skip: tuple[bool, ...]

    def __post_init__(self) -> None:
        if not self.skip:
            raise ValueError("gates need at least one stage")
        bad = [s for s in self.skip if not isinstance(s, bool)]
        if bad:
            raise TypeError(f"gates must be bools (True = skip), got {bad[0]!r} in {self.skip!r}")

    @classmethod
    def parse(cls, text: str, num_stages: int | None = None) -> Gates:
        """Parse the official "TFTF" form (T = skip). ``num_stages`` checks the length when given."""
        if not isinstance(text, str) or not text or set(text) - {"T", "F"}:
            example = "F" * (num_stages or 4)
            raise ValueError(
                f"gates {text!r}: use one letter T (skip) or F (run) per stage, e.g. {example!r} (super-net)"
            )
        gates = cls(tuple(c == "T" for c in text))
        if num_stages is not None:
            gates.check(num_stages)
        return gates

    @classmethod
    def coerce(cls, value: GatesLike, num_stages: int) -> Gates:
        """Accept Gates, a "TFTF" string, a sequence of bools/0-1 ints, or None (super-net); check the length."""
        if value is None:
            return super_net(num_stages)
        if isinstance(value, Gates):
            gates = value
        elif isinstance(value, str):
            gates = cls.parse(value)
        elif isinstance(value, Sequence) or hasattr(value, "tolist"):
            items = value.tolist() if hasattr(value, "tolist") else list(value)
            if not all(isinstance(v, bool) or (isinstance(v, int) and v in (0, 1)) for v in items):
                raise TypeError(f"gates {items!r}: every entry must be a bool or 0/1 (True = skip)")
            gates = cls(tuple(bool(v) for v in items))
        else:
            raise TypeError(f"gates must be Gates, a 'TFTF' string or a sequence of bools, got {type(value).__name__}")
        gates.check(num_stages)
        return gates

    def check(self, num_stages: int) -> None:
        """Raise a ValueError naming the expected length if this setting does not fit a model of ``num_stages``."""
        if len(self.skip) != num_stages:
            raise ValueError(
                f"gates {self} have {len(self.skip)} entries but the model has {num_stages} stages; "
                f"pass {num_stages} flags, e.g. {'F' * num_stages!r} (super-net) or {'T' * num_stages!r} (base-net)"
            )

    @property
    def num_stages(self) -> int:
        return len(self.skip)

    @property
    def num_skipped(self) -> int:
        return sum(self.skip)

    @property
    def is_super_net(self) -> bool:
        return not any(self.skip)

    @property
    def is_base_net(self) -> bool:
        return all(self.skip)

    @property
    def name(self) -> str:
        """ "super-net", "base-net", or the TF string for the sub-networks in between."""
        if self.is_super_net:
            return "super-net"
        if self.is_base_net:
            return "base-net"
        return str(self)

    def __str__(self) -> str:
        return "".join("T" if s else "F" for s in self.skip)

    def __iter__(self) -> Iterator[bool]:
        return iter(self.skip)

    def __len__(self) -> int:
        return len(self.skip)

    def __getitem__(self, index: int) -> bool:
        return self.skip[index]


GatesLike = Gates | str | Sequence[bool] | Sequence[int] | None


def super_net(num_stages: int) -> Gates:
    """Every stage runs its skippable sub-path ("FF..F")."""
    return Gates((False,) * num_stages)


def base_net(num_stages: int) -> Gates:
    """Every stage skips its skippable sub-path ("TT..T")."""
    return Gates((True,) * num_stages)


def all_gates(num_stages: int) -> list[Gates]:
    """All 2^S settings in the official order: "FF..F" (super-net) first, "TT..T" (base-net) last."""
    return [Gates(combo) for combo in itertools.product((False, True), repeat=num_stages)]


def covering_gates(num_stages: int) -> list[Gates]:
    """Settings that run every segment after every kind of upstream path: all 2^S up to S = 4; beyond, the
    super-net, the base-net, each stage alone skipped and each stage alone run (2S + 2 settings).

    Export checks parity on these, and quantization calibrates on them, so every ``*_skip`` norm sees data.
    """
    if num_stages <= 4:
        return all_gates(num_stages)
    settings = {super_net(num_stages), base_net(num_stages)}
    for i in range(num_stages):
        settings.add(Gates(tuple(j == i for j in range(num_stages))))
        settings.add(Gates(tuple(j != i for j in range(num_stages))))
    return sorted(settings)


def gates_tensor(gates: GatesLike, num_stages: int) -> Tensor:
    """A setting as a program's ``gates`` input: int32 [S], 1 = skip."""
    return torch.tensor([int(s) for s in Gates.coerce(gates, num_stages)], dtype=GATES_DTYPE)
