"""PT2E int8 (static and dynamic) of a gated program's segments with the XNNPACK quantizer.

PT2E inserts no quantize/dequantize nodes inside ``torch.cond`` branches, so each segment (stage i
skipped / run) is quantized on its own before it is lowered. Static int8 needs the range of every
activation: the prepared segments are calibrated by running the chain of every covering
gate setting, so each segment's observers see the inputs that every upstream path gives it, and the
``*_skip`` norms of mandatory blocks see data at all. A segment that saw none is an error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..models import Gates, Segments, covering_gates
from ..models.segments import segment_label
from .errors import RecipeError

__all__ = ["CALIBRATION_BATCH", "calibrate", "check_calibration", "prepare_segment", "quantize_segments_pt2e"]

CALIBRATION_BATCH = 32


def xnnpack_quantizer(*, dynamic: bool = False, qat: bool = False) -> object:
    """The XNNPACK quantizer with per-channel symmetric int8 weights (static or dynamic activations)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic, is_qat=qat)
    return XNNPACKQuantizer().set_global(config)


def export_for_quantization(module: nn.Module, example: Tensor) -> torch.fx.GraphModule:
    """``module`` captured by torch.export with a dynamic batch (calibration runs in batches)."""
    batch = torch.cat([example, example])  # a batch of 1 would be specialized to 1
    dims = ({0: torch.export.Dim.AUTO},)
    return torch.export.export(module, (batch,), dynamic_shapes=dims, strict=False).module()


def prepare_segment(module: nn.Module, example: Tensor, *, dynamic: bool = False) -> torch.fx.GraphModule:
    """One float segment with observers inserted (``prepare_pt2e``)."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    return prepare_pt2e(export_for_quantization(module, example), xnnpack_quantizer(dynamic=dynamic))


def check_calibration(images: Tensor | None, recipe: str = "int8-static") -> Tensor:
    """Calibration images must be a non-empty, finite float batch [N, C, H, W]."""
    if images is None or not isinstance(images, Tensor) or images.ndim != 4 or len(images) == 0:
        shape = None if images is None else tuple(getattr(images, "shape", ()))
        raise RecipeError(
            f"{recipe} needs calibration images [N, C, H, W] with N >= 1, got {shape}; pass --calibration N "
            "with N > 0 (images are taken from the checkpoint's training split)"
        )
    if not torch.isfinite(images).all():
        raise RecipeError(f"{recipe}: calibration images contain NaN or inf; check the data set")
    return images.float()


@torch.no_grad()
def calibrate(
    prepared: Segments,
    images: Tensor,
    settings: Sequence[Gates] | None = None,
    *,
    batch_size: int = CALIBRATION_BATCH,
    progress: bool = True,
) -> None:
    """Run ``images`` through the chain of every gate setting (default: the covering settings)."""
    settings = list(settings) if settings is not None else covering_gates(prepared.num_stages)
    for gates in tqdm(settings, desc="calibrating gate settings", disable=not progress, leave=False):
        for start in range(0, len(images), batch_size):
            prepared(images[start : start + batch_size], gates)


def _unobserved(module: nn.Module) -> list[str]:
    """Names of activation observers in ``module`` that have seen no data."""
    from torchao.quantization.pt2e.observer import ObserverBase

    return [
        name
        for name, m in module.named_modules()
        if isinstance(m, ObserverBase) and hasattr(m, "min_val") and not torch.isfinite(m.min_val).all()
    ]


def check_observed(prepared: Segments) -> None:
    """Every segment's observers saw data; otherwise name the segments that never ran."""
    missing = [segment_label(i, key) for i, key, m in prepared.items() if _unobserved(m)]
    if missing:
        raise RecipeError(
            f"int8-static: segments {missing} saw no calibration data, so their activation ranges are unknown; "
            "calibrate on every gate setting (the default), not only the super-net"
        )


def quantize_segments_pt2e(
    segments: Segments,
    calibration: Tensor | None,
    *,
    dynamic: bool = False,
    settings: Sequence[Gates] | None = None,
    progress: bool = True,
) -> Segments:
    """Float segments -> int8 segments: prepare each, calibrate the chains (static), convert each."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    prepared = segments.map(lambda m, x: prepare_segment(m, x, dynamic=dynamic))
    if dynamic:
        calibrate(prepared, segments.examples[0], settings, progress=False)  # weight observers only
    else:
        calibrate(prepared, check_calibration(calibration), settings, progress=progress)
        check_observed(prepared)
    return prepared.map(lambda m, _: convert_pt2e(m))
