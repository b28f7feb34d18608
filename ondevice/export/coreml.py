"""Core ML export: one multifunction ``.mlpackage``, one function per sub-network, weights stored once.

Core ML has no converter for ``torch.cond``, so its gate is the function name: each gate setting is exported
with ``torch.export`` as its own mlprogram (input ``image``, output ``logits``), and coremltools'
``save_multifunction`` combines them and de-duplicates identical weights across functions. Multifunction
packages need iOS 18 / macOS 15. Prediction only runs on Apple platforms: on Linux a package is checked from
its spec (:func:`inspect_coreml`), never executed.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_dir
from ..models import AdnModel, Gates, GatesLike
from ..models.modes import eval_mode
from .common import INPUT_NAME, OUTPUT_NAME, FixedGates, dir_size, select_gates, subnet_name

__all__ = [
    "COMPRESSION_MODES",
    "COREML_FILE",
    "MINIMUM_DEPLOYMENT_TARGET",
    "compress_coreml",
    "export_coreml",
    "inspect_coreml",
]

log = logging.getLogger(__name__)

COREML_FILE = "model.mlpackage"
MINIMUM_DEPLOYMENT_TARGET = "iOS18"  # the first with multifunction models
COMPRESSION_MODES = ("int8-linear", "palettize-4bit")
_PRECISIONS = ("float16", "float32")
_META = "ondevice."  # prefix of our keys in the package's user-defined metadata


def _coremltools() -> Any:
    import coremltools  # imported on first use: slow, and it logs about untested torch/sklearn versions

    return coremltools


def export_coreml(
    model: AdnModel,
    path: str | Path,
    gates_list: Sequence[GatesLike] | None = None,
    *,
    compute_precision: str = "float16",
    compression: str | None = None,
    fold_norms: bool = True,
) -> dict[str, Any]:
    """Write one multifunction .mlpackage with a function ``subnet_<gates>`` per sub-network; return its manifest entry.

    Args:
        model: any AdnModel; converted in eval mode (its mode is restored afterwards).
        path: the .mlpackage directory to write; built beside it, then renamed into place.
        gates_list: the settings to export. None exports all 2^S when that is at most 16 and raises otherwise:
            for deeper models pass a chosen list, e.g. the Pareto sub-networks from evaluation.
        compute_precision: "float16" (Core ML's default; what the Neural Engine runs) or "float32".
        compression: None, or one of COMPRESSION_MODES applied to every function before they are combined.
        fold_norms: True folds every BatchNorm into its conv (Core ML's default graph). A mandatory block then
            has two folded copies of its conv weights (main and ``*_skip`` norms), so the package holds them
            twice. False keeps ``batch_norm`` ops: each conv weight is stored once across all functions
            (smaller package), at the price of one per-channel op per conv whose latency cost is unmeasured.

    The default function is the super-net when it is exported, else the first setting in ``gates_list``.
    """
    if compute_precision not in _PRECISIONS:
        raise ValueError(f"compute_precision {compute_precision!r}: choose one of {_PRECISIONS}")
    if compression is not None and compression not in COMPRESSION_MODES:
        raise ValueError(f"compression {compression!r}: choose None or one of {COMPRESSION_MODES}")
    path = _check_suffix(path)
    ct = _coremltools()
    gates = select_gates(model, gates_list)
    shape = model.input_spec.shape(1)
    start = time.perf_counter()
    with eval_mode(model), atomic_dir(path) as scratch:
        parts = []
        for g in gates:
            mlmodel = _convert_subnet(ct, model, g, shape, compute_precision, fold_norms)
            if compression is not None:
                mlmodel = _compress_mlmodel(ct, mlmodel, compression)
            part = scratch / "functions" / f"{subnet_name(g)}.mlpackage"
            mlmodel.save(str(part))
            parts.append((subnet_name(g), part))
        default = subnet_name(next((g for g in gates if g.is_super_net), gates[0]))
        metadata = {
            "compute_precision": compute_precision,
            "compression": compression or "none",
            "fold_norms": str(fold_norms).lower(),
            "model": type(model).__name__,
        }
        _combine(ct, parts, default, scratch / path.name, metadata)
    log.info("Core ML: %d functions -> %s in %.1f s", len(gates), path, time.perf_counter() - start)
    return _manifest_entry(path)


def _convert_subnet(
    ct: Any, model: AdnModel, gates: Gates, shape: tuple[int, ...], precision: str, fold_norms: bool
) -> Any:
    """One sub-network as an in-memory mlprogram with function ``main``."""
    passes = ct.PassPipeline.DEFAULT  # a new pipeline object on each access
    if not fold_norms:
        passes.remove_passes(["common::fuse_conv_batchnorm"])
    program = torch.export.export(FixedGates(model, gates), (torch.zeros(shape),)).run_decompositions({})
    return ct.convert(
        program,
        inputs=[ct.TensorType(name=INPUT_NAME, shape=shape, dtype=np.float32)],
        outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
        convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, MINIMUM_DEPLOYMENT_TARGET),
        compute_precision=ct.precision.FLOAT16 if precision == "float16" else ct.precision.FLOAT32,
        pass_pipeline=passes,
        skip_model_load=True,  # loading compiles the model, which only works on macOS
    )


def _compress_mlmodel(ct: Any, mlmodel: Any, mode: str) -> Any:
    """Weight compression of a single-function mlprogram (coremltools' PTQ refuses multifunction models)."""
    cto = ct.optimize.coreml
    if mode == "int8-linear":
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
        return cto.linear_quantize_weights(mlmodel, config)
    if mode == "palettize-4bit":
        # k-means with a fixed seed inside coremltools: the same weight gets the same LUT in every function,
        # so the combined package still stores it once
        config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=4))
        return cto.palettize_weights(mlmodel, config)
    raise ValueError(f"compression {mode!r}: choose one of {COMPRESSION_MODES}")


def _combine(ct: Any, parts: list[tuple[str, Path]], default: str, out: Path, metadata: dict[str, str]) -> None:
    """``save_multifunction`` the single-function packages (weights de-duplicated), then record our metadata."""
    desc = ct.utils.MultiFunctionDescriptor()
    for name, part in parts:
        desc.add_function(str(part), "main", name)
    desc.default_function_name = default
    combined = out.parent / "functions" / ".combined.mlpackage"  # never out itself, whatever its name
    ct.utils.save_multifunction(desc, str(combined))
    # save_multifunction writes a fresh description; put the metadata the package should describe itself with
    spec = ct.utils.load_spec(str(combined))
    for key, value in metadata.items():
        spec.description.metadata.userDefined[_META + key] = value
    spec.description.metadata.userDefined[_META + "functions"] = json.dumps([name for name, _ in parts])
    weights_dir = combined / "Data" / "com.apple.CoreML" / "weights"
    ct.models.MLModel(spec, weights_dir=str(weights_dir), skip_model_load=True).save(str(out))
    shutil.rmtree(combined)


def _manifest_entry(path: Path) -> dict[str, Any]:
    info = inspect_coreml(path)
    names = list(info["functions"])
    return {
        "file": path.name,
        "functions": {name.removeprefix("subnet_"): name for name in names},
        "default_function": info["default_function"],
        "minimum_deployment_target": info["minimum_deployment_target"],
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "compute_units": "ALL",
        "compute_precision": info["metadata"].get("compute_precision", "float16"),
        "compression": info["metadata"].get("compression", "none"),
        "fold_norms": info["metadata"].get("fold_norms", "true") == "true",
        "size_bytes": info["size_bytes"],
    }


def compress_coreml(path_in: str | Path, path_out: str | Path, mode: str) -> dict[str, Any]:
    """Compress the weights of a package written by :func:`export_coreml`; return the new manifest entry.

    ``mode``: "int8-linear" (per-channel symmetric int8) or "palettize-4bit" (16-entry k-means LUT per weight).
    coremltools' compression API refuses multifunction models, so each function is taken out of the package
    (spec only: no re-conversion from PyTorch), compressed, and the functions are combined again, which
    de-duplicates the compressed weights across functions as before.
    """
    if mode not in COMPRESSION_MODES:
        raise ValueError(f"compression {mode!r}: choose one of {COMPRESSION_MODES}")
    ct = _coremltools()
    path_in, path_out = Path(path_in), _check_suffix(path_out)
    if path_in.resolve() == path_out.resolve():
        raise ValueError(f"compress_coreml writes a new package; path_out must differ from path_in ({path_in})")
    spec = _load_spec(ct, path_in)
    metadata = {
        k.removeprefix(_META): v
        for k, v in spec.description.metadata.userDefined.items()
        if k.startswith(_META) and k != _META + "functions"
    }
    if metadata.get("compression", "none") != "none":
        raise ValueError(f"{path_in} is already compressed ({metadata['compression']}); compress the float package")
    metadata["compression"] = mode
    weights_dir = path_in / "Data" / "com.apple.CoreML" / "weights"
    with atomic_dir(path_out) as scratch:
        parts = []
        for name in _function_names(spec):
            single = ct.models.MLModel(
                _single_function_spec(spec, name), weights_dir=str(weights_dir), skip_model_load=True
            )
            part = scratch / "functions" / f"{name}.mlpackage"
            _compress_mlmodel(ct, single, mode).save(str(part))
            parts.append((name, part))
        default = spec.description.defaultFunctionName or parts[0][0]
        _combine(ct, parts, default, scratch / path_out.name, metadata)
    return _manifest_entry(path_out)


def _check_suffix(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise ValueError(f"a Core ML program is saved as a .mlpackage directory; got {path}")
    return path


def _load_spec(ct: Any, path: Path) -> Any:
    if not (path / "Manifest.json").is_file():
        raise FileNotFoundError(f"no Core ML package at {path}; write one with `ondevice export --format coreml`")
    return ct.utils.load_spec(str(path))


def _function_names(spec: Any) -> list[str]:
    names = [f.name for f in spec.description.functions]
    return names or ["main"]


def _single_function_spec(spec: Any, name: str) -> Any:
    """A copy of ``spec`` holding only function ``name``, as an ordinary single-function (``main``) model."""
    single = type(spec)()
    single.CopyFrom(spec)
    if not spec.description.functions:
        return single
    function = next(f for f in spec.description.functions if f.name == name)
    program = single.mlProgram
    body = type(program.functions[name])()
    body.CopyFrom(program.functions[name])
    for key in list(program.functions):
        del program.functions[key]
    program.functions["main"].CopyFrom(body)
    description = single.description
    del description.functions[:]
    description.defaultFunctionName = ""
    del description.input[:]
    del description.output[:]
    description.input.extend(function.input)
    description.output.extend(function.output)
    return single


def inspect_coreml(path: str | Path) -> dict[str, Any]:
    """What a package holds, read from its spec alone (Core ML prediction does not run on Linux).

    Returns the functions with their inputs/outputs (name -> shape, dtype), op counts and compressed-weight ops
    (``constexpr_*``: decompressed when the model loads), the default function,
    specification version and minimum deployment target, our metadata, sizes, and weight sharing:
    ``weights["unique_bytes"]`` (stored) vs ``weights["sum_over_functions_bytes"]`` (what separate packages
    would store), from the weight blobs each function references.
    """
    ct = _coremltools()
    path = Path(path)
    spec = _load_spec(ct, path)
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError(f"{path} holds a {spec.WhichOneof('Type')} model, not an mlprogram")
    descriptions = {f.name: f for f in spec.description.functions} or {"main": spec.description}
    weight_file = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weight_bytes = weight_file.stat().st_size if weight_file.is_file() else 0

    functions: dict[str, Any] = {}
    blobs: dict[str, set[int]] = {}
    for name, description in descriptions.items():
        body = spec.mlProgram.functions[name]
        ops = list(_operations(body.block_specializations[body.opset]))
        blobs[name] = {offset for op in ops for offset in _blob_offsets(op)}
        functions[name] = {
            "inputs": {f.name: _feature(ct, f) for f in description.input},
            "outputs": {f.name: _feature(ct, f) for f in description.output},
            "ops": len(ops),
            "constexpr_ops": dict(Counter(op.type for op in ops if op.type.startswith("constexpr_"))),
        }
    blob_sizes = _blob_sizes(set().union(*blobs.values()), weight_bytes)
    per_function = {name: sum(blob_sizes[o] for o in offsets) for name, offsets in blobs.items()}
    metadata = {
        k.removeprefix(_META): v
        for k, v in spec.description.metadata.userDefined.items()
        if k.startswith(_META) and k != _META + "functions"
    }
    return {
        "file": path.name,
        "functions": functions,
        "default_function": spec.description.defaultFunctionName or next(iter(functions)),
        "specification_version": spec.specificationVersion,
        "minimum_deployment_target": _target_name(ct, spec.specificationVersion),
        "metadata": metadata,
        "size_bytes": dir_size(path),
        "weights": {
            "file_bytes": weight_bytes,
            "unique_bytes": sum(blob_sizes.values()),
            "per_function_bytes": per_function,
            "sum_over_functions_bytes": sum(per_function.values()),
            "max_function_bytes": max(per_function.values(), default=0),
        },
    }


def _operations(block: Any) -> Any:
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _operations(inner)


def _blob_offsets(op: Any) -> Any:
    """Offsets into weight.bin that an op reads: a const's value, or a constexpr op's inline inputs."""
    values = list(op.attributes.values())
    values += [b.value for arg in op.inputs.values() for b in arg.arguments if b.WhichOneof("binding") == "value"]
    for value in values:
        if value.WhichOneof("value") == "blobFileValue":
            yield value.blobFileValue.offset


def _blob_sizes(offsets: set[int], file_bytes: int) -> dict[int, int]:
    """Bytes of each blob (with its header and padding): the distance to the next blob or the end of the file."""
    ordered = sorted(offsets)
    return {o: (ordered[i + 1] if i + 1 < len(ordered) else file_bytes) - o for i, o in enumerate(ordered)}


def _feature(ct: Any, feature: Any) -> dict[str, Any]:
    kind = feature.type.WhichOneof("Type")
    if kind != "multiArrayType":
        return {"type": kind}
    array = feature.type.multiArrayType
    dtype = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
    return {"shape": list(array.shape), "dtype": dtype.lower()}


def _target_name(ct: Any, version: int) -> str:
    names = [name for name, value in ct.target.__members__.items() if name.startswith("iOS") and int(value) == version]
    return names[0] if names else f"specification version {version}"
