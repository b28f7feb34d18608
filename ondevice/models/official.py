"""Import weights saved by the official ADN code (github wchkang/depth) into ondevice models.

The models here use the official state-dict keys, so importing is unwrapping and a strict load:
released files are bare state dicts; training checkpoints are ``{'model': ..., 'model_ema': ...}``
whose EMA copy carries ``module.`` prefixes and an ``n_averaged`` counter.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from .adn import AdnModel

__all__ = ["OfficialCheckpointError", "load_official_state_dict", "read_official_checkpoint", "unwrap_state_dict"]


class OfficialCheckpointError(ValueError):
    """The file or dict is not an official ADN state dict for this model."""


def unwrap_state_dict(obj: Mapping[str, object], *, prefer_ema: bool = False) -> dict[str, Tensor]:
    """The bare state dict inside an official file: itself, ``['model']`` or (``prefer_ema``) ``['model_ema']``."""
    if not isinstance(obj, Mapping):
        raise OfficialCheckpointError(f"expected a state dict or a training-checkpoint dict, got {type(obj).__name__}")
    if "model" in obj or "model_ema" in obj:
        key = "model_ema" if prefer_ema and "model_ema" in obj else "model"
        if key not in obj:
            raise OfficialCheckpointError(f"checkpoint has keys {sorted(obj)} but no 'model' state dict")
        obj = obj[key]  # type: ignore[assignment]
    state = {k: v for k, v in obj.items() if k != "n_averaged"}
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise OfficialCheckpointError(f"entries that are not tensors: {bad[:5]}; is this a state dict?")
    return state


def load_official_state_dict(model: AdnModel, obj: Mapping[str, object], *, prefer_ema: bool = False) -> AdnModel:
    """Load an official state dict (or training checkpoint) into ``model`` strictly; returns the model.

    Raises OfficialCheckpointError listing missing and unexpected keys and shape mismatches, so a
    wrong architecture or ``num_classes`` is named rather than half-loaded.
    """
    state = unwrap_state_dict(obj, prefer_ema=prefer_ema)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = [f"{type(model).__name__} does not match this state dict"]
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if items:
                shown = ", ".join(items[:8]) + (f" ... (+{len(items) - 8} more)" if len(items) > 8 else "")
                parts.append(f"{len(items)} {label}: {shown}")
        parts.append(
            "check the model name and num_classes (ResNet-50: resnet50_adn, MobileNetV2: mobilenet_v2_adn, ...)"
        )
        raise OfficialCheckpointError("; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model


def read_official_checkpoint(path: str | Path, *, prefer_ema: bool = False) -> dict[str, Tensor]:
    """Read an official .pth safely (``weights_only=True``) and return its bare state dict.

    Official training checkpoints also pickle an argparse Namespace, which ``weights_only`` refuses;
    the error asks for a file holding only the state dict instead of unpickling arbitrary code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise OfficialCheckpointError(
            f"{path} holds more than tensors (official training checkpoints pickle their argparse args), so it is "
            "refused for safety: unpickling it could run code. Import a file that holds only the state dict "
            "(the checkpoint's 'model' entry, saved on its own by whoever trusts the file)"
        ) from err
    except Exception as err:  # untrusted bytes: the unpickler can fail in any way (e.g. struct.error)
        raise OfficialCheckpointError(f"{path} is not a readable PyTorch file (truncated or corrupt?): {err}") from err
    return unwrap_state_dict(obj, prefer_ema=prefer_ema)
