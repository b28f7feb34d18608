"""Quantization recipes (torchao / PT2E, Core ML) for gated ADN programs: float segments -> quantized segments."""

from .recipes import NOT_OFFERED, RECIPES, Recipe, RecipeError, get_recipe, segment_quantizer

__all__ = ["NOT_OFFERED", "RECIPES", "Recipe", "RecipeError", "get_recipe", "segment_quantizer"]
