"""Checkpoints that describe themselves: written atomically, read with ``weights_only=True``.

A checkpoint holds the model's registry name and kwargs, the data spec (normalization, input size),
the training config, progress and RNG state, so ``--resume``, ``eval`` and ``export`` rebuild
everything from the file alone.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_path
from .data import DataSplits, load_data
from .models import AdnModel, build_model
from .models.norm_stats import CONTEXT_KEY_SUFFIX, enable_entry_contexts

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "checkpoint_data",
    "checkpoint_sha256",
    "load_checkpoint",
    "load_model",
    "register_model_loader",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "ondevice-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with the reason and the fix."""


# training method -> the network its checkpoints hold, from (model name, model kwargs)
_MODEL_LOADERS: dict[str, Callable[[str, dict[str, Any]], nn.Module]] = {}


def register_model_loader(method: str, loader: Callable[[str, dict[str, Any]], nn.Module]) -> None:
    """Checkpoints of ``method`` hold the network ``loader(model_name, model_kwargs)`` builds, not a registry model
    (``ondevice.exits`` registers its multi-exit methods)."""
    _MODEL_LOADERS[method] = loader


def checkpoint_sha256(path: str | Path) -> str:
    """The checkpoint file's content hash: what eval.json and a bundle record to name the exact weights."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a killed process leaves the previous file whole."""
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; clear errors for missing, truncated or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `ondevice train --out DIR`")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes); use the previous checkpoint or retrain")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise _unreadable(path, err) from err
        raise CheckpointError(
            f"{path} holds Python objects besides tensors and plain values, so it is refused for safety (loading "
            "it could run code). An ondevice checkpoint never needs that: use one written by `ondevice train`"
        ) from None
    except Exception as err:  # untrusted bytes: the unpickler can fail in any way (e.g. struct.error)
        raise _unreadable(path, err) from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not an ondevice checkpoint; official ADN weights are imported with "
            "ondevice.models.official.read_official_checkpoint"
        )
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {state.get('version')}, this ondevice reads version {CHECKPOINT_VERSION}"
        )
    return state


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    reason = (str(err).splitlines() or [""])[0][:200]
    return CheckpointError(
        f"{path} cannot be read ({type(err).__name__}: {reason}); the file is truncated, corrupt or not a PyTorch "
        "checkpoint. Use the previous checkpoint or retrain"
    )


def load_model(path_or_state: str | Path | dict[str, Any]) -> tuple[AdnModel, dict[str, Any]]:
    """The trained model (eval mode) and its checkpoint dict."""
    state = path_or_state if isinstance(path_or_state, dict) else load_checkpoint(path_or_state)
    method = state.get("train_config", {}).get("method")
    loader = _MODEL_LOADERS.get(method, lambda name, kwargs: build_model(name, **kwargs))
    hint = (
        f". If --method {method} comes from an extension (the multi-exit methods of ondevice.exits), import it first"
        if method not in _MODEL_LOADERS
        else ""
    )
    try:
        model = loader(state["model_name"], state["model_kwargs"])
        if any(key.endswith(CONTEXT_KEY_SUFFIX) for key in state["model"]):
            enable_entry_contexts(model)  # statistics per gate of the previous stage (norm_stats)
        model.load_state_dict(state["model"])
    except (ValueError, RuntimeError) as err:
        raise CheckpointError(f"the weights do not fit model {state['model_name']!r} ({err}){hint}") from err
    return model.eval(), state


def checkpoint_data(state: dict[str, Any], data_root: str | None = None) -> DataSplits:
    """The data set a checkpoint was trained on, same split (``data_root`` overrides the recorded directory)."""
    cfg = state["train_config"]
    data = load_data(
        cfg["data"], data_root or cfg["data_root"], image_size=cfg["image_size"], seed=cfg["seed"], limit=cfg["limit"]
    )
    trained = (state.get("data_spec") or {}).get("class_names")
    if trained is not None and list(data.spec.class_names) != list(trained):
        raise ValueError(
            f"the data at {data_root or cfg['data_root']} has classes {list(data.spec.class_names)[:10]}, the "
            f"checkpoint was trained on {list(trained)[:10]}: its accuracy there would mean nothing; pass the folder "
            "it was trained on (--data-root)"
        )
    return data
