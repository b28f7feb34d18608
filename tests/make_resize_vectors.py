"""Writes tests/resize_vectors.json: small images resized and normalized exactly as training does, for the apps.

Training (``ondevice.data``) turns 8-bit pixels into floats ``x / 255``, resizes them with
``ondevice.data._resize`` (torch ``F.interpolate``, bilinear, ``antialias=True``, ``align_corners=False``, then
clamped to [0, 1]; no-op at the same size) and normalizes ``(x - mean) / std``. The apps reimplement that on the
phone; their unit tests (android_demo/policy, ios_demo/Tests) read this file and must agree within ``tolerance``.
tests/test_apps.py regenerates the file and compares, so a change in training's resize fails until it is rewritten:

    python tests/make_resize_vectors.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ondevice.data import _resize

OUT = Path(__file__).resolve().parent / "resize_vectors.json"
COMMAND = "python tests/make_resize_vectors.py"
TOLERANCE = 1e-5  # absolute, on both arrays; float32 reimplementations differ from torch by about 1e-7

# name, channels, height, width, size: every model input is size x size, as training resizes to
CASES = (
    ("rgb 19x29 -> 7x7: downscale by 2.71 and 4.14", 3, 19, 29, 7),
    ("gray 31x17 -> 6x6: downscale by 5.17 and 2.83", 1, 31, 17, 6),
    ("rgb 12x5 -> 8x8: downscale the height, upscale the width", 3, 12, 5, 8),
    ("rgb 4x3 -> 7x7: upscale (plain bilinear)", 3, 4, 3, 7),
    ("gray 9x9 -> 9x9: same size, no resize", 1, 9, 9, 9),
)
MEAN = {1: (0.5,), 3: (0.485, 0.456, 0.406)}
STD = {1: (0.25,), 3: (0.229, 0.224, 0.225)}


def _floats(x: torch.Tensor) -> list[float]:
    """float32 values, each written with the fewest digits that parse back to the same float32."""
    return [float(np.format_float_positional(v, unique=True)) for v in x.reshape(-1).numpy().astype(np.float32)]


def _case(name: str, channels: int, height: int, width: int, size: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    # smooth gradients plus noise: the resize's weights matter, and no value sits exactly on a rounding edge
    yy, xx = np.mgrid[0:height, 0:width]
    base = (yy * 255 // max(height - 1, 1) + xx * 97 // max(width - 1, 1))[..., None]
    pixels = ((base + rng.integers(0, 120, (height, width, channels))) % 256).astype(np.uint8)
    x = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255).unsqueeze(0)  # as ondevice.data._pixels
    resized = _resize(x, size)[0]
    mean = torch.tensor(MEAN[channels]).view(-1, 1, 1)
    std = torch.tensor(STD[channels]).view(-1, 1, 1)
    return {
        "name": name,
        "channels": channels,
        "height": height,
        "width": width,
        "pixels": pixels.reshape(-1).tolist(),
        "out_height": size,
        "out_width": size,
        "mean": list(MEAN[channels]),
        "std": list(STD[channels]),
        "resized": _floats(resized),
        "normalized": _floats((resized - mean) / std),
    }


def generate() -> dict[str, Any]:
    return {
        "format": "ondevice-resize-vectors",
        "version": 1,
        "generated_by": COMMAND,
        "spec": (
            "pixels: uint8, row-major height x width x channels (1 = gray, already PIL's L; 3 = RGB). "
            "resized: float32 [channels, out_height, out_width] of torch F.interpolate(x / 255, bilinear, "
            "antialias=True, align_corners=False) clamped to [0, 1] (unchanged at the same size). "
            "normalized: (resized - mean) / std per channel, float32. "
            "Implementations must agree with both within tolerance (absolute)."
        ),
        "tolerance": TOLERANCE,
        "cases": [_case(*case, seed=i) for i, case in enumerate(CASES)],
    }


def to_text(vectors: dict[str, Any]) -> str:
    """The file's text: one line per case, so that it stays small and diffs show which case changed."""
    head = json.dumps({k: v for k, v in vectors.items() if k != "cases"}, indent=1)[:-2]
    cases = ",\n  ".join(json.dumps(case) for case in vectors["cases"])
    return f'{head},\n "cases": [\n  {cases}\n ]\n}}\n'


def main() -> None:
    OUT.write_text(to_text(generate()))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
