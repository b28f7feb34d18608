"""Run a bundle's ExecuTorch program from Python: load once, switch gates between calls with no reload.

    from ondevice.runtime import load_bundle
    program = load_bundle("bundle/")
    logits = program.run(image, "TFT")   # Gates, a "TFT" string or bools; 1/True = skip
    logits = program.run(image, "FFF")   # same loaded program, another sub-network

Every check that the apps would otherwise hit as an opaque ``[ExecuTorch Error 0x12]`` is made here
first, with the expected value in the message: gate vector length/type, input shape/dtype, a
truncated or corrupt ``.pte``, a manifest that does not describe the program.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .contract.manifest import MANIFEST_NAME, load_manifest
from .models import GATES_DTYPE, Gates, GatesLike, gates_tensor
from .native_log import start_executorch_threadpool

__all__ = ["BundleError", "GatedProgram", "load_bundle", "set_threads"]

# ExecuTorch ScalarType codes (runtime/core/portable_type/scalar_type.h) of the dtypes a manifest may name.
_SCALAR_TYPES = {"uint8": 0, "int8": 1, "int16": 2, "int32": 3, "int64": 4, "float32": 6, "bool": 11}


PTE_IDENTIFIER = b"ET12"  # the flatbuffer file identifier of ExecuTorch programs (bytes 4..8)


class BundleError(ValueError):
    """A bundle that cannot be run: missing, truncated or corrupt program, or one its manifest does not describe."""


def set_threads(threads: int) -> int:
    """Set the ExecuTorch threadpool size (used by XNNPACK) for this process; returns the size now in effect."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    from executorch.extension.pybindings import portable_lib

    start_executorch_threadpool()

    if portable_lib._threadpool_get_thread_count() != threads:
        portable_lib._unsafe_reset_threadpool(threads)
    return int(portable_lib._threadpool_get_thread_count())


def thread_count() -> int:
    """The ExecuTorch threadpool size in effect (default: one thread per core)."""
    from executorch.extension.pybindings import portable_lib

    start_executorch_threadpool()

    return int(portable_lib._threadpool_get_thread_count())


class GatedProgram:
    """A loaded ``model.pte`` and its manifest; ``run(image, gates)`` picks the sub-network per call."""

    def __init__(self, bundle: str | Path, *, enable_etdump: bool = False) -> None:
        self.bundle = Path(bundle)
        self.manifest = load_manifest(self.bundle)
        entry = self.manifest["formats"].get("executorch")
        if entry is None:
            raise BundleError(
                f"{self.bundle / MANIFEST_NAME} lists no executorch program (formats: "
                f"{sorted(self.manifest['formats'])}); export one with `ondevice export CHECKPOINT --format executorch`"
            )
        self.entry: dict[str, Any] = entry
        self.path = self.bundle / entry["file"]
        self.num_stages: int = self.manifest["gates"]["num_stages"]
        self.input_shape = tuple(self.manifest["input"]["shape"])
        self.program = _load_program(self.path, enable_etdump, entry.get("sha256"))
        self._check_program()
        self._method = self.program.load_method(entry["method"])

    def _check_program(self) -> None:
        where = f"{self.path} vs {self.bundle / MANIFEST_NAME}"
        method = self.entry["method"]
        if method not in self.program.method_names:
            raise BundleError(
                f"{where}: the manifest names method {method!r} but the program has {sorted(self.program.method_names)}"
            )
        meta = self.program.metadata(method)
        if meta.num_inputs() != len(self.entry["inputs"]):
            raise BundleError(
                f"{where}: the program's {method} takes {meta.num_inputs()} inputs, the manifest lists "
                f"{self.entry['inputs']}; re-export the bundle"
            )
        image, gates = meta.input_tensor_meta(0), meta.input_tensor_meta(1)
        if tuple(image.sizes()) != self.input_shape:
            raise BundleError(
                f"{where}: the program takes images of shape {list(image.sizes())}, the manifest says "
                f"{list(self.input_shape)}; re-export the bundle"
            )
        gate_shape = self.entry["gates_input"]["shape"]
        if list(gates.sizes()) != [self.num_stages] or gate_shape != [self.num_stages]:
            raise BundleError(
                f"{where}: the program takes {list(gates.sizes())} gates, the manifest has num_stages "
                f"{self.num_stages} and gates_input shape {gate_shape}; re-export the bundle"
            )
        dtype = self.entry["gates_input"]["dtype"]
        if _SCALAR_TYPES.get(dtype) != gates.dtype() or dtype != str(GATES_DTYPE).removeprefix("torch."):
            raise BundleError(
                f"{where}: the manifest's gates dtype {dtype!r} does not match the program's (ExecuTorch scalar type "
                f"{gates.dtype()}); this ondevice writes {GATES_DTYPE}"
            )

    @property
    def method(self) -> Any:
        """The loaded ExecuTorch method; ``method.execute([image, gates_int32])`` skips this wrapper's checks."""
        return self._method

    @property
    def subnets(self) -> list[dict[str, Any]]:
        """The manifest's sub-networks (gates, FLOPs, params, accuracy)."""
        return self.manifest["subnets"]

    def gates(self, gates: GatesLike) -> Gates:
        """Check and normalize a gate setting (Gates, "TFT", bools or 0/1 ints; None = super-net)."""
        return Gates.coerce(gates, self.num_stages)

    def run(self, image: Tensor | np.ndarray, gates: GatesLike = None) -> Tensor:
        """Logits [1, num_classes] of the sub-network ``gates`` for one normalized image [1, C, H, W] or [C, H, W]."""
        x = self._image(image)
        return self._method.execute([x, gates_tensor(self.gates(gates), self.num_stages)])[0]

    def predict(self, images: Tensor, gates: GatesLike = None) -> Tensor:
        """Class ids [N] of the sub-network ``gates`` for normalized images [N, C, H, W], one program call each."""
        g = gates_tensor(self.gates(gates), self.num_stages)
        return torch.stack([self._method.execute([self._image(x), g])[0][0].argmax() for x in images])

    def _image(self, image: Tensor | np.ndarray) -> Tensor:
        if isinstance(image, np.ndarray):
            image = torch.from_numpy(image)
        if not isinstance(image, Tensor):
            raise TypeError(f"image must be a torch.Tensor or numpy array, got {type(image).__name__}")
        if image.dim() == len(self.input_shape) - 1:
            image = image.unsqueeze(0)
        if tuple(image.shape) != self.input_shape:
            raise ValueError(
                f"image of shape {list(image.shape)}: this program takes {list(self.input_shape)} "
                f"(batch 1, NCHW, normalized with the manifest's mean/std)"
            )
        if not image.is_floating_point():
            raise TypeError(f"image must be float32 (normalized), got {image.dtype}")
        return image.to(torch.float32).contiguous()

    def __repr__(self) -> str:
        return f"GatedProgram({str(self.path)!r}, stages={self.num_stages}, input={list(self.input_shape)})"


def _load_program(path: Path, enable_etdump: bool, sha256: str | None = None) -> Any:
    """The program in ``path``, checked before the runtime sees it: the runtime aborts the process on some
    corrupt files instead of raising, so a changed file (checksum) or a foreign one (identifier) stops here."""
    if not path.is_file():
        raise BundleError(f"the manifest names {path.name} but {path} does not exist; re-export the bundle")
    start_executorch_threadpool()
    from executorch.runtime import Runtime, Verification

    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise BundleError(
            f"{path} ({len(data):,} bytes) is not the program this bundle was exported with (its sha256 differs from "
            "the manifest's): the file was truncated, corrupted or replaced. Copy it again or re-export the bundle"
        )
    if data[4:8] != PTE_IDENTIFIER:
        raise BundleError(
            f"{path} is not an ExecuTorch program (no {PTE_IDENTIFIER.decode()} identifier at byte 4); "
            "re-export the bundle with `ondevice export`"
        )
    try:
        return Runtime.get().load_program(
            data,
            verification=Verification.InternalConsistency,
            enable_etdump=enable_etdump,
            debug_buffer_size=0,
        )
    except RuntimeError as err:
        raise BundleError(
            f"{path} ({len(data):,} bytes) is not a loadable ExecuTorch program ({err}): the file is truncated or "
            "corrupt. Copy it again or re-export the bundle"
        ) from None


def load_bundle(bundle: str | Path, *, threads: int | None = None) -> GatedProgram:
    """Load a bundle directory (manifest.json + model.pte); ``threads`` sets the XNNPACK threadpool size.

    Raises ManifestError for a missing, foreign-version or invalid manifest, BundleError for a program that is
    missing, truncated, corrupt or not the one the manifest describes.
    """
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise FileNotFoundError(f"no bundle directory {bundle}; create one with `ondevice export CHECKPOINT --out DIR`")
    if threads is not None:
        set_threads(threads)
    return GatedProgram(bundle)
