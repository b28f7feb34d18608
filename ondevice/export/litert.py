"""LiteRT (TFLite) export: one ``.tflite`` flatbuffer, one signature per sub-network, weights stored once.

``torch.cond`` does not convert to LiteRT ("Lowering not found: cond"), so its gate is the signature name:
``litert-torch`` converts each gate setting as signature ``subnet_<gates>`` (input ``image``, output
``logits``) into one flatbuffer whose signatures share the weight buffers. ``ai-edge-litert``'s interpreter
runs it here, so parity with eager PyTorch is checked before the file is put in place.

Both packages come with the optional extra ``pip install 'ondevice[litert]'`` (they bring jax, ~1 GB).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_dir
from ..models import AdnModel, Gates, GatesLike
from ..models.modes import eval_mode
from .common import (
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_ATOL,
    ExportError,
    FixedGates,
    parity_inputs,
    select_gates,
    subnet_name,
)

__all__ = [
    "INSTALL_HINT",
    "TFLITE_FILE",
    "LiteRTUnavailableError",
    "check_litert_parity",
    "export_litert",
    "litert_signatures",
]

log = logging.getLogger(__name__)

TFLITE_FILE = "model.tflite"
INSTALL_HINT = "pip install 'ondevice[litert]'"


class LiteRTUnavailableError(ImportError):
    """``litert-torch`` or ``ai-edge-litert`` is not installed (they are the optional ``litert`` extra)."""


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise LiteRTUnavailableError(
            f"LiteRT export needs the optional extra: {INSTALL_HINT} (could not import {module}: {err})"
        ) from err


def _interpreter(path: Path) -> Any:
    return _require("ai_edge_litert.interpreter").Interpreter(model_path=str(path))


@contextmanager
def _quiet_progress(verbose: bool) -> Iterator[None]:
    """litert-torch prints a progress tree by default; it reads LITERT_TORCH_SHOW_PROGRESS on each use."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    old = os.environ.get(key)
    os.environ[key] = "1" if verbose else "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def export_litert(
    model: AdnModel,
    path: str | Path,
    gates_list: Sequence[GatesLike] | None = None,
    *,
    atol: float | None = PARITY_ATOL,
    verbose: bool = False,
) -> dict[str, Any]:
    """Write one .tflite with a signature ``subnet_<gates>`` per sub-network; return its manifest entry.

    Args:
        model: any AdnModel; converted in eval mode (its mode is restored afterwards).
        path: the .tflite file to write; built beside it and renamed into place only after the parity check.
        gates_list: the settings to export. None exports all 2^S when that is at most 16 and raises otherwise:
            for deeper models pass a chosen list, e.g. the Pareto sub-networks from evaluation.
        atol: every signature must match eager PyTorch within this max abs difference on fixed inputs
            (:func:`check_litert_parity`); None skips the check.
        verbose: show litert-torch's progress output.

    Raises:
        LiteRTUnavailableError: the optional extra is missing (the message says what to install).
        ExportError: a signature's output differs from eager PyTorch by more than ``atol``.
    """
    litert_torch = _require("litert_torch")
    _require("ai_edge_litert.interpreter")
    gates = select_gates(model, gates_list)
    path = Path(path)
    example = torch.zeros(model.input_spec.shape(1))
    start = time.perf_counter()
    with eval_mode(model), atomic_dir(path) as scratch, _quiet_progress(verbose):
        converter = litert_torch.Converter()
        for g in gates:
            # keyword sample input and a dict output name the signature's tensors "image" and "logits"
            converter.signature(subnet_name(g), FixedGates(model, g, as_dict=True), sample_kwargs={INPUT_NAME: example})
        converter.convert().export(str(scratch / path.name))
        seconds = time.perf_counter() - start
        diffs = None if atol is None else check_litert_parity(scratch / path.name, model, gates, atol)
    log.info("LiteRT: %d signatures -> %s in %.1f s", len(gates), path, seconds)
    entry: dict[str, Any] = {
        "file": path.name,
        "signatures": {str(g): subnet_name(g) for g in gates},
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "size_bytes": path.stat().st_size,
    }
    if diffs is not None:
        entry["parity"] = {"atol": atol, "max_abs_diff": diffs}
    return entry


def litert_signatures(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """Signature name -> {"inputs": [...], "outputs": [...]} as the LiteRT interpreter reads the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no LiteRT model at {path}; write one with `ondevice export --format tflite`")
    return _interpreter(path).get_signature_list()


def check_litert_parity(
    path: str | Path,
    model: AdnModel,
    gates_list: Sequence[GatesLike] | None = None,
    atol: float | None = PARITY_ATOL,
) -> dict[str, float]:
    """Run each signature with ai-edge-litert and eager PyTorch on fixed inputs; return gates -> max abs difference.

    ``gates_list`` None checks every ``subnet_*`` signature in the file. Raises ExportError when a difference
    exceeds ``atol`` (None: measure only) and ValueError when a requested signature is missing.
    """
    path = Path(path)
    interpreter = _interpreter(path)
    available = interpreter.get_signature_list()
    if gates_list is None:
        gates = [
            Gates.parse(name.removeprefix("subnet_"), model.num_stages)
            for name in available
            if name.startswith("subnet_")
        ]
    else:
        gates = [Gates.coerce(g, model.num_stages) for g in gates_list]
    missing = [subnet_name(g) for g in gates if subnet_name(g) not in available]
    if missing:
        raise ValueError(f"{path} has no signature {missing}; it has {sorted(available)}")
    inputs = parity_inputs(model, count=3)
    diffs: dict[str, float] = {}
    with eval_mode(model), torch.no_grad():
        for g in gates:
            runner = interpreter.get_signature_runner(subnet_name(g))
            diffs[str(g)] = max(
                float((torch.from_numpy(runner(**{INPUT_NAME: x.numpy()})[OUTPUT_NAME]) - model(x, g)).abs().max())
                for x in inputs
            )
    if atol is not None:
        bad = {g: d for g, d in diffs.items() if not d <= atol}  # "not <=" also catches NaN
        if bad:
            raise ExportError(
                f"LiteRT {path.name} differs from eager PyTorch by more than atol={atol:g} for {len(bad)} "
                f"sub-network(s): " + ", ".join(f"{g}: {d:.3g}" for g, d in bad.items())
            )
    return diffs
