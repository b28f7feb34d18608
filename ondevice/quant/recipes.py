"""Quantization recipes: the names the CLI, the export and the study accept, and what each one does.

A recipe targets one export format. ExecuTorch recipes carry their own ``quantize``: float segments
of the gated program (``ondevice.models.Segments``) -> quantized segments, which the exporter lowers
to XNNPACK as it does float ones, so every recipe keeps the one-program, switchable-gates layout.
Core ML recipes compress the weights of the multifunction package.

Recipes checked end to end here and *not* offered (each fails on the pinned stack):
see ``NOT_OFFERED``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from torch import Tensor

from ..models import Segments
from .errors import RecipeError
from .linear import quantize_segments_linear
from .pt2e import check_calibration, quantize_segments_pt2e

__all__ = ["NOT_OFFERED", "RECIPES", "Recipe", "RecipeError", "SegmentsQuantizer", "get_recipe", "segment_quantizer"]


class SegmentsQuantizer(Protocol):
    """An ExecuTorch recipe's own quantization: float segments (+ calibration images) -> quantized segments."""

    def __call__(self, segments: Segments, calibration: Tensor | None, *, progress: bool) -> Segments: ...


@dataclass(frozen=True)
class Recipe:
    """One quantization recipe. ``parity_rtol``: program vs eager-quantized tolerance, relative to max |logit|."""

    name: str
    format: str
    summary: str
    needs_calibration: bool = False
    parity_rtol: float = 0.0
    compression: str | None = None  # Core ML: the mode of ondevice.export.coreml
    quantize: SegmentsQuantizer | None = field(default=None, repr=False)  # ExecuTorch: segments -> quantized


# Program vs the quantized segments run eagerly: XNNPACK's integer kernels and PyTorch's reference int8 ops round
# apart by a step or two per layer. 15% of max |logit| passes that and still catches a wrong branch or a lost op.
QUANT_PARITY_RTOL = 0.15

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "int8-static",
            "executorch",
            "PT2E static int8, XNNPACK quantizer: per-channel int8 weights, per-tensor int8 activations, "
            "calibrated on every gate setting (each segment quantized before it is lowered)",
            needs_calibration=True,
            parity_rtol=QUANT_PARITY_RTOL,
            quantize=lambda segments, calibration, *, progress: quantize_segments_pt2e(
                segments, calibration, progress=progress
            ),
        ),
        Recipe(
            "int8-dynamic",
            "executorch",
            "PT2E dynamic int8, XNNPACK quantizer: per-channel int8 weights of convs and linears, activations "
            "quantized at run time (no calibration)",
            parity_rtol=QUANT_PARITY_RTOL,
            quantize=lambda segments, _, *, progress: quantize_segments_pt2e(
                segments, None, dynamic=True, progress=progress
            ),
        ),
        Recipe(
            "8da4w",
            "executorch",
            "torchao Int8DynamicActivationIntxWeightConfig: int4 weights in groups of 32 and dynamic int8 "
            "activations on Linear layers (transformer MLPs and heads); convs stay fp32",
            parity_rtol=QUANT_PARITY_RTOL,
            quantize=lambda segments, _, *, progress: quantize_segments_linear(segments, "8da4w"),
        ),
        Recipe(
            "8da8w",
            "executorch",
            "torchao Int8DynamicActivationIntxWeightConfig: per-channel int8 weights and dynamic int8 "
            "activations on Linear layers; convs stay fp32",
            parity_rtol=QUANT_PARITY_RTOL,
            quantize=lambda segments, _, *, progress: quantize_segments_linear(segments, "8da8w"),
        ),
        Recipe(
            "coreml-int8",
            "coreml",
            "Core ML weight-only int8 linear quantization (per channel) of every function",
            compression="int8-linear",
        ),
        Recipe(
            "coreml-palettize-4bit",
            "coreml",
            "Core ML 4-bit weight palettization (k-means LUT) of every function",
            compression="palettize-4bit",
        ),
    )
}

NOT_OFFERED: dict[str, str] = {
    "int8-weight-only": "torchao IntxWeightOnlyConfig(int8): the weight is dequantized by torchao::dequantize_affine "
    "outside XNNPACK, so a segment no longer lowers to one delegate (and to_executorch has no out variant of that "
    "op); the gated program cannot hold it",
    "int4-weight-only": "torchao IntxWeightOnlyConfig(int4, groups of 32): same failure as int8-weight-only",
    "int8-int8-dynamic": "torchao Int8DynamicActivationInt8WeightConfig lowers to aten._int_mm, which is not in "
    "the core ATen opset: to_edge fails (use int8-dynamic, the PT2E equivalent, or 8da8w)",
}


def get_recipe(name: str, fmt: str | None = None) -> Recipe:
    """The recipe called ``name`` (for format ``fmt`` when given); a clear error names the choices."""
    if name not in RECIPES:
        why = f" ({NOT_OFFERED[name]})" if name in NOT_OFFERED else ""
        raise RecipeError(f"unknown quantization recipe {name!r}{why}; choose one of {sorted(RECIPES)}")
    recipe = RECIPES[name]
    if fmt is not None and recipe.format != fmt:
        same = sorted(r.name for r in RECIPES.values() if r.format == fmt)
        raise RecipeError(f"recipe {name!r} is for {recipe.format}, not {fmt}; for {fmt} choose one of {same}")
    return recipe


def segment_quantizer(
    recipe: Recipe | str, calibration: Tensor | None = None, *, progress: bool = True
) -> Callable[[Segments], Segments]:
    """``segments -> quantized segments`` for an ExecuTorch recipe (what ``export_executorch(quantize=...)`` takes).

    ``calibration``: float images [N, C, H, W] (normalized as the model expects) for recipes that need them.
    """
    recipe = get_recipe(recipe, "executorch") if isinstance(recipe, str) else recipe
    quantize = recipe.quantize
    if quantize is None:
        raise RecipeError(f"recipe {recipe.name!r} is for {recipe.format}, not executorch: it quantizes no segments")
    if recipe.needs_calibration:
        check_calibration(calibration, recipe.name)
    return lambda segments: quantize(segments, calibration, progress=progress)
