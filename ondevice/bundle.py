"""``ondevice export``: checkpoint -> bundle/ (model.pte, model.mlpackage, model.tflite, manifest.json).

Everything is built in a temporary directory beside ``out_dir`` and only moved into place once every
requested format has been exported and has passed its parity check, so a failed or killed export
never leaves a half-written bundle where the apps look for one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset
from tqdm import tqdm

from .atomic import atomic_dir, write_json_atomic
from .checkpoint import checkpoint_data, checkpoint_sha256, load_model
from .contract.device_check import DEVICE_CHECK_NAME, check_input, device_check
from .contract.manifest import MANIFEST_NAME, ManifestError, load_manifest, new_manifest, save_manifest
from .data import sample_images
from .evaluate import EVAL_JSON, evaluate
from .export.common import MAX_DEFAULT_SUBNETS
from .export.norm_sharing import DEFAULT_SIZE_BUDGET, check_size_budget
from .models import AdnModel, Gates
from .models.cost import subnet_costs
from .policy.config import POLICY_NAME, PolicyConfig, PolicyConfigError, load_policy_config, write_policy_json
from .quant import get_recipe, segment_quantizer

__all__ = [
    "FORMATS",
    "MissingExtraError",
    "available_formats",
    "calibration_images",
    "export_bundle",
    "find_eval_json",
    "resolve_formats",
]

# format -> (file in the bundle, modules it needs, how to install them)
FORMATS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "executorch": ("model.pte", ("executorch",), "pip install executorch==1.5.1 (a dependency of ondevice)"),
    "coreml": ("model.mlpackage", ("coremltools",), "pip install coremltools==9.0 (a dependency of ondevice)"),
    "tflite": ("model.tflite", ("litert_torch", "ai_edge_litert"), "pip install 'ondevice[litert]'"),
}
DEFAULT_CALIBRATION = 256  # training images that calibrate static int8 (each one runs every covering gate setting)


class MissingExtraError(ImportError):
    """A requested format whose optional dependencies are not installed; the message names what to install."""


def _installed(modules: Sequence[str]) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def available_formats() -> list[str]:
    """Formats whose dependencies are installed here (what ``--format all`` exports)."""
    return [name for name, (_, modules, _) in FORMATS.items() if _installed(modules)]


def resolve_formats(formats: str | Sequence[str]) -> list[str]:
    """``"all"``, ``"executorch,coreml"`` or a list -> the checked list of format names."""
    names = [f.strip() for f in formats.split(",")] if isinstance(formats, str) else list(formats)
    if names == ["all"]:
        return available_formats()
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(f"unknown format(s) {unknown or names}; choose from {[*FORMATS, 'all']}")
    return list(dict.fromkeys(names))


def _exporter(fmt: str) -> Callable[..., dict[str, Any]]:
    """The export function of a format, imported on first use; a clear error when its extra is missing."""
    _, modules, hint = FORMATS[fmt]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(f"--format {fmt} needs {', '.join(missing)}, which is not installed: {hint}")
    module_name, func = {
        "executorch": ("ondevice.export.executorch", "export_executorch"),
        "coreml": ("ondevice.export.coreml", "export_coreml"),
        "tflite": ("ondevice.export.litert", "export_litert"),
    }[fmt]
    try:
        return getattr(importlib.import_module(module_name), func)
    except (ImportError, AttributeError) as err:
        raise MissingExtraError(f"--format {fmt} is not available ({err}); {hint}") from err


def find_eval_json(checkpoint: str | Path) -> Path | None:
    """``eval.json`` of this checkpoint: beside it, or in the run directory above it (``ondevice demo``).

    Only a file written for these exact weights counts (its ``checkpoint_sha256`` is the checkpoint's): one left
    by an earlier run in the same folder, or written by an ondevice that recorded no hash, is ignored.
    """
    checkpoint = Path(checkpoint).resolve()
    digest = checkpoint_sha256(checkpoint)
    for directory in (checkpoint.parent, checkpoint.parent.parent):
        path = directory / EVAL_JSON
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("checkpoint_sha256") == digest:
            return path
    return None


def _accuracy_rows(
    model: AdnModel, state: dict[str, Any], checkpoint: Path, eval_json: Path | None, data_root: str | None
) -> tuple[list[dict[str, Any]], str]:
    """(rows with gates/name/top1/pareto, where they came from): eval.json, else a fresh evaluation."""
    path = eval_json or find_eval_json(checkpoint)  # a found one already matches the checkpoint's hash
    if path is not None:
        data = json.loads(Path(path).read_text())
        if eval_json is not None and data.get("checkpoint_sha256") != checkpoint_sha256(checkpoint):
            raise ValueError(
                f"{path} was not written for {checkpoint} (its checkpoint_sha256 differs: other weights, or an "
                f"ondevice that recorded none); run `ondevice eval {checkpoint}` again, or leave out --eval-json"
            )
        rows = data["subnets"]
        for row in rows:
            Gates.parse(row["gates"], model.num_stages)
        return rows, str(path)
    cfg = state["train_config"]
    data = checkpoint_data(state, data_root)
    rows = [vars(r) for r in evaluate(model, data.test, progress=False)]
    return rows, f"evaluated on the {cfg['data']} test split ({len(data.test)} images)"


def build_manifest(
    model: AdnModel, state: dict[str, Any], rows: list[dict[str, Any]], checkpoint: str | Path
) -> dict[str, Any]:
    """The bundle's manifest (no formats, no latency yet) from a checkpoint and its accuracy rows."""
    spec = state.get("data_spec") or {}
    class_names = spec.get("class_names") or [str(i) for i in range(_num_classes(model))]
    subnets = []
    settings = [Gates.parse(row["gates"], model.num_stages) for row in rows]
    for row, gates, cost in zip(rows, settings, subnet_costs(model, settings), strict=True):
        subnet = {
            "gates": str(gates),
            "name": gates.name,
            "flops": cost.flops,
            "params": cost.params,
            "accuracy": {"fp32": float(row["top1"])},
        }
        if "pareto" in row:
            subnet["pareto"] = bool(row["pareto"])
        subnets.append(subnet)
    input_spec = model.input_spec
    return new_manifest(
        model_name=state["model_name"],
        class_names=list(class_names),
        input_shape=input_spec.shape(1),
        mean=input_spec.mean or (0.0,) * input_spec.in_chans,
        std=input_spec.std or (1.0,) * input_spec.in_chans,
        num_stages=model.num_stages,
        subnets=subnets,
        checkpoint=str(checkpoint),
        method=(state.get("train_config") or {}).get("method"),
    )


def _num_classes(model: AdnModel) -> int:
    with_head = model(model.example_input(), None)
    return int(with_head.shape[-1])


def export_bundle(
    checkpoint: str | Path,
    out_dir: str | Path,
    formats: str | Sequence[str] = ("executorch",),
    *,
    eval_json: str | Path | None = None,
    data_root: str | None = None,
    quant: str | None = None,
    calibration: int = DEFAULT_CALIBRATION,
    share_weights: bool | str = "auto",
    size_budget: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export a checkpoint to a bundle directory; returns the manifest written there.

    Accuracy per sub-network comes from ``eval_json`` or the ``eval.json`` of the checkpoint's run (see
    :func:`find_eval_json`); without one, every sub-network is evaluated on the test split first.
    FLOPs and parameters are counted here. Each format checks its own parity before anything is moved.
    ``quant`` names a recipe of ``ondevice.quant`` for the one format it targets: ExecuTorch recipes are
    calibrated on ``calibration`` training images where they need it, and the quantized program's top-1 on the
    test split is recorded per sub-network under the recipe's name. ``share_weights`` and ``size_budget`` (the
    "auto" plan's, None: its default) go to :func:`ondevice.export.executorch.export_executorch`.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if size_budget is not None and share_weights != "auto":
        raise ValueError(f"a size budget applies to share_weights 'auto' only, not {share_weights!r}")
    budget = DEFAULT_SIZE_BUDGET if size_budget is None else check_size_budget(size_budget)
    names = resolve_formats(formats)
    if not names:
        raise MissingExtraError("--format all: no export format has its dependencies installed")
    recipe = _check_recipe(quant, names)
    exporters = {fmt: _exporter(fmt) for fmt in names}  # fail on a missing extra before any work
    _check_out_dir(out_dir)
    model, state = load_model(checkpoint)
    rows, source = _accuracy_rows(model, state, checkpoint, Path(eval_json) if eval_json else None, data_root)
    log(f"accuracy per sub-network: {source}")
    manifest = build_manifest(model, state, rows, checkpoint)
    settings = [Gates.parse(s["gates"], model.num_stages) for s in manifest["subnets"]]
    if len(settings) > MAX_DEFAULT_SUBNETS:  # per-sub-network formats (Core ML, LiteRT) then get the Pareto ones
        settings = [Gates.parse(s["gates"]) for s in manifest["subnets"] if s.get("pareto")]
    data = _program_test_data(state, data_root, recipe, names, log)

    with atomic_dir(out_dir) as scratch:  # a killed or failed export leaves the previous bundle whole
        bundle = scratch / out_dir.name
        bundle.mkdir()
        for fmt, export in exporters.items():
            target = bundle / FORMATS[fmt][0]
            log(f"exporting {fmt} -> {out_dir / target.name}" + (f" ({recipe.name})" if recipe else ""))
            if fmt == "executorch":
                quantize, rtol = None, 0.0
                if recipe is not None:
                    images = calibration_images(data.train, calibration, seed=state["train_config"]["seed"])
                    quantize, rtol = segment_quantizer(recipe, images), recipe.parity_rtol
                entry = export(
                    model, target, quantize=quantize, rtol=rtol, share_weights=share_weights, size_budget=budget
                )
            else:
                compression = recipe.compression if recipe is not None else None
                entry = export(model, target, settings, compression=compression)
            entry.setdefault("file", target.name)
            manifest["formats"][fmt] = entry
        if recipe is not None:
            manifest["precision"] = {"name": recipe.name, "recipe": recipe.summary, "format": recipe.format}
        save_manifest(bundle / MANIFEST_NAME, manifest)
        program = None  # the written program on the runtime: scored and checked as users will run it
        if "executorch" in manifest["formats"]:
            from .runtime import load_bundle

            program = load_bundle(bundle)
        if data is not None:  # only with an ExecuTorch program (_program_test_data)
            if recipe is not None:
                manifest["precision"]["calibration_images"] = calibration if recipe.needs_calibration else 0
            _record_program_accuracy(program, manifest, data.test, recipe.name if recipe else "fp32", log)
        policy = _keep_from_previous(out_dir, manifest, log)
        save_manifest(bundle / MANIFEST_NAME, manifest)
        write_policy_json(bundle, policy)
        if program is not None:
            _write_device_check(bundle, program, manifest, quantized=recipe is not None)
    return manifest


def _keep_from_previous(out_dir: Path, manifest: dict[str, Any], log: Callable[[str], None]) -> PolicyConfig | None:
    """What a re-export keeps of the bundle it replaces: the latency tables measured on the same program (same
    sha256; phones measured with ``profile --merge`` included) and the user's policy.json (returned)."""
    try:
        previous = load_manifest(out_dir) if (out_dir / MANIFEST_NAME).is_file() else None
    except ManifestError:
        previous = None
    if previous and previous["latency"]:
        old, new = (m["formats"].get("executorch", {}).get("sha256") for m in (previous, manifest))
        if old is not None and old == new:
            manifest["latency"] = previous["latency"]
            log(f"kept the latency tables of {', '.join(previous['latency'])} (same program)")
        else:
            log(
                f"the program changed: the latency tables of {', '.join(previous['latency'])} were measured on the "
                "old one and are dropped; measure again (`ondevice profile`, the apps + `ondevice profile --merge`)"
            )
    try:
        return load_policy_config(out_dir) if (out_dir / POLICY_NAME).is_file() else None
    except (PolicyConfigError, FileNotFoundError):
        log(f"{out_dir / POLICY_NAME} is not a valid policy.json: the new bundle gets the default one")
        return None


def _check_recipe(quant: str | None, formats: list[str]) -> Any:
    """The recipe for ``--quant`` (None: float), checked against the formats exported with it."""
    if quant is None:
        return None
    recipe = get_recipe(quant)
    if formats != [recipe.format]:
        raise ValueError(
            f"--quant {quant} quantizes the {recipe.format} format only, but --format asks for {formats}; "
            f"export --format {recipe.format} with it, and the other formats into another bundle"
        )
    return recipe


def calibration_images(train: TensorDataset, count: int, *, seed: int = 0) -> Tensor:
    """``count`` training images drawn without replacement (seeded), for post-training quantization."""
    if count < 1:
        raise ValueError(f"--calibration must be >= 1 image, got {count}")
    return sample_images(train, count, seed=seed)


def _program_test_data(
    state: dict[str, Any], data_root: str | None, recipe: Any, formats: list[str], log: Callable[[str], None]
) -> Any:
    """The data set whose test split the ExecuTorch program is scored on (accuracy of the artifact users ship).

    A quantized program needs it (calibration too); a float one is scored when its data set is at hand, and
    otherwise keeps the eager accuracy of eval.json, which parity ties to the program.
    """
    if "executorch" not in formats:
        return None
    if recipe is not None:
        return checkpoint_data(state, data_root) if recipe.format == "executorch" else None
    try:
        return checkpoint_data(state, data_root)
    except (FileNotFoundError, ValueError) as err:
        log(f"fp32 top-1 from eager PyTorch (the data set to score the program on is not at hand: {err})")
        return None


def _record_program_accuracy(
    program: Any, manifest: dict[str, Any], test: TensorDataset, precision: str, log: Callable[[str], None]
) -> None:
    """Top-1 of every sub-network of the bundle's program on ``test``, stored as ``accuracy[precision]``."""
    images, labels = test.tensors
    for subnet in tqdm(manifest["subnets"], desc=f"{precision} top-1 per sub-network", leave=False):
        top1 = float((program.predict(images, subnet["gates"]) == labels).float().mean())
        eager = subnet["accuracy"]["fp32"]
        subnet["accuracy"][precision] = top1
        log(f"  {subnet['gates']}  fp32 (eager) {eager:.4f}  {precision} (program) {top1:.4f}")


def _write_device_check(bundle: Path, program: Any, manifest: dict[str, Any], *, quantized: bool) -> None:
    """device_check.json: the program's logits here, per sub-network, on the check input (the apps' first run)."""
    shape = manifest["input"]["shape"]
    x = torch.from_numpy(check_input(shape))
    logits = {s["gates"]: program.run(x, s["gates"]).numpy() for s in manifest["subnets"]}
    entry = manifest["formats"]["executorch"]
    document = device_check(entry["file"], entry["sha256"], shape, logits, quantized)
    write_json_atomic(bundle / DEVICE_CHECK_NAME, document)


def _check_out_dir(target: Path) -> None:
    """Only a bundle (or an empty directory) may be replaced."""
    if target.exists() and not (target.is_dir() and ((target / MANIFEST_NAME).is_file() or not any(target.iterdir()))):
        raise FileExistsError(f"{target} exists and is not a bundle (no {MANIFEST_NAME}); choose another --out")


# ---------------------------------------------------------------------------------------------------
# CLI


def add_export_parser(verbs: Any) -> None:
    """``ondevice export CHECKPOINT --format ... --out BUNDLE``."""
    p = verbs.add_parser("export", help="checkpoint -> bundle/ (model.pte, model.mlpackage, model.tflite, manifest)")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="bundle directory (replaced atomically when the export succeeds)")
    p.add_argument(
        "--format",
        default="executorch",
        help=f"one of {[*FORMATS, 'all']} or a comma list; all = every format whose dependencies are installed",
    )
    p.add_argument("--eval-json", default=None, help="accuracy per sub-network (default: the run's eval.json)")
    p.add_argument("--data-root", default=None, help="data directory, when accuracy must be evaluated first")
    p.add_argument(
        "--share-weights",
        choices=("auto", "none", "skip", "run"),
        default="auto",
        help="executorch: which convs are stored once; auto (default) shares the ones that cost least time until "
        "the program is within 1.10x the static super-net's size (under 1 MB of copies: none), skip / run all of "
        "them, none none (docs/export.md)",
    )
    p.add_argument(
        "--size-budget",
        type=float,
        default=None,
        help=f"executorch, --share-weights auto: the largest program size / static super-net size (default "
        f"{DEFAULT_SIZE_BUDGET}); a larger one keeps more convs copied, so sub-networks that skip stages pay fewer "
        "affines",
    )
    p.add_argument(
        "--quant",
        default=None,
        metavar="RECIPE",
        help="quantization recipe (`ondevice quant recipes` lists them); the manifest records its top-1",
    )
    p.add_argument(
        "--calibration",
        type=int,
        default=DEFAULT_CALIBRATION,
        help="training images that calibrate static int8 (default %(default)s)",
    )
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Run ``ondevice export`` (the CLI reports a missing extra or a failed check as an error message)."""
    manifest = export_bundle(
        args.checkpoint,
        args.out,
        args.format,
        eval_json=args.eval_json,
        data_root=args.data_root,
        quant=args.quant,
        calibration=args.calibration,
        share_weights=args.share_weights,
        size_budget=args.size_budget,
    )
    for fmt, entry in manifest["formats"].items():
        size = entry.get("size_bytes")
        print(f"{fmt:<11} {Path(args.out) / entry['file']}" + (f"  {size / 1e6:.2f} MB" if size else ""))
    print(f"manifest    {Path(args.out) / MANIFEST_NAME} ({len(manifest['subnets'])} sub-networks)")
    return 0
