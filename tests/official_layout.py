"""The official ADN checkpoint layouts (tests/official/*.keys.json: keys, shapes, dtypes) as state dicts.

Used by the import and parity tests.

``fill_state_dict`` gives every float tensor deterministic values seeded by its key alone, so the
same weights come out whatever the key order; the expected logits in ``tests/expect/official_*.json``
were computed by the official wchkang/depth models (torch 2.14.1) from weights made by this same
function, on ``reference_input``.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch

ADN_OFFICIAL = Path(__file__).resolve().parent / "official"
EXPECT = Path(__file__).resolve().parent / "expect"


def official_layout(arch: str) -> dict:
    """The parsed ``<arch>.keys.json`` (arch: resnet50_adn, mobilenet_v2_adn, vit_b_16_adn, swin_t_adn)."""
    return json.loads((ADN_OFFICIAL / f"{arch}.keys.json").read_text())


def layout_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """A state dict with exactly the official keys, shapes and dtypes, filled deterministically."""
    layout = official_layout(arch)
    dtypes = {"float32": torch.float32, "int64": torch.int64}
    empty = {key: torch.zeros(shape, dtype=dtypes[dtype]) for key, shape, dtype, *_ in layout["state_dict"]}
    return fill_state_dict(empty)


def fill_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Deterministic, well-scaled values for every float tensor; integer buffers are kept as they are."""
    filled = {}
    for key, tensor in state_dict.items():
        if not tensor.is_floating_point():
            filled[key] = tensor.clone()
            continue
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        noise = torch.randn(tensor.shape, generator=g, dtype=torch.float32)
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "running_var":
            value = 0.5 + noise.abs()
        elif leaf == "running_mean":
            value = 0.1 * noise
        elif tensor.dim() >= 2 and leaf == "weight":
            value = noise / math.sqrt(tensor[0].numel())
        elif leaf == "weight":  # norm scales
            value = 1.0 + 0.1 * noise
        else:  # biases, class token, position embeddings, relative position bias tables
            value = 0.02 * noise
        filled[key] = value.to(tensor.dtype)
    return filled


def reference_input(in_chans: int = 3, size: int = 224, batch: int = 2) -> torch.Tensor:
    """The images the expected logits were computed on."""
    g = torch.Generator().manual_seed(1234)
    return torch.randn((batch, in_chans, size, size), generator=g)
