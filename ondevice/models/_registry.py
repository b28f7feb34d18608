"""Model registry: builders register by name; ``build_model`` and ``list_models`` read the one table."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

from .adn import AdnModel

__all__ = ["build_model", "list_models", "model_description", "register_model"]

_BUILDERS: dict[str, Callable[..., AdnModel]] = {}
Builder = TypeVar("Builder", bound=Callable[..., AdnModel])


def register_model(fn: Builder) -> Builder:
    """Decorator: register a builder under its function name; a duplicate name is an error."""
    name = fn.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is already registered")
    _BUILDERS[name] = fn
    return fn


def build_model(name: str, **kwargs: Any) -> AdnModel:
    """Build a registered model, e.g. ``build_model("resnet20_adn", num_classes=10, in_chans=1)``."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(_BUILDERS)} (see `ondevice models`)")
    return _BUILDERS[name](**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def model_description(name: str) -> str:
    """First line of the builder's docstring."""
    doc = _BUILDERS[name].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
