"""The error every quantization recipe raises, defined apart so the recipes and their implementations share it."""

__all__ = ["RecipeError"]


class RecipeError(ValueError):
    """An unknown recipe name, a recipe for another format, or calibration data that cannot be used."""
