"""``ondevice quant-study``: what each sub-network loses under each recipe, measured on the real program.

For every recipe a bundle is exported (the fp32 one too), and every sub-network of every ExecuTorch
program is run by the ExecuTorch runtime on the test split: top-1, drop vs the fp32 program,
agreement with the fp32 program's predictions. Latency is measured side by side: rounds that visit
every program in turn, the median over rounds. Core ML packages cannot predict on Linux: their
rows carry size only (docs/quantization.md).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ondevice.atomic import write_json_atomic
from ondevice.bundle import DEFAULT_CALIBRATION, export_bundle
from ondevice.checkpoint import checkpoint_data, load_model
from ondevice.contract.manifest import load_manifest
from ondevice.runtime import load_bundle, set_threads

from .recipes import get_recipe
from .report import write_report

__all__ = ["FP32", "QAT_SUFFIX", "quant_study"]

FP32 = "fp32"
QAT_SUFFIX = "+qat"


def _bundles(
    checkpoint: Path,
    qat_checkpoint: Path | None,
    recipes: Sequence[str],
    out: Path,
    calibration: int,
    data_root: str | None,
    log: Callable[[str], None],
) -> dict[str, Path]:
    """Export the fp32 bundle(s) and one bundle per recipe (and the QAT checkpoint's int8-static); name -> dir."""
    formats = {get_recipe(r).format for r in recipes}
    jobs: list[tuple[str, Path, str, str | None]] = [(FP32, checkpoint, "executorch", None)]
    if "coreml" in formats:
        jobs.append((f"{FP32}-coreml", checkpoint, "coreml", None))
    jobs += [(r, checkpoint, get_recipe(r).format, r) for r in recipes]
    if qat_checkpoint is not None:
        jobs.append((f"int8-static{QAT_SUFFIX}", qat_checkpoint, "executorch", "int8-static"))
    bundles = {}
    for name, ckpt, fmt, recipe in jobs:
        log(f"[quant-study] exporting {name}")
        bundles[name] = out / "bundles" / name
        export_bundle(
            ckpt, bundles[name], fmt, quant=recipe, calibration=calibration, data_root=data_root, log=lambda _: None
        )
    return bundles


def _latency(
    programs: dict[str, Any], settings: list[str], *, rounds: int, runs: int, warmup: int
) -> dict[str, dict[str, float]]:
    """Median latency (ms) per program and setting: ``rounds`` rounds visit every program in turn."""
    from ondevice.profile import measure_latency

    medians: dict[str, dict[str, list[float]]] = {name: {g: [] for g in settings} for name in programs}
    for _ in tqdm(range(rounds), desc="latency rounds", leave=False):
        for name, program in programs.items():
            table = measure_latency(program, [program.gates(g) for g in settings], runs=runs, warmup=warmup)
            for g in settings:
                medians[name][g].append(table[g]["median_ms"])
    return {name: {g: statistics.median(v) for g, v in per.items()} for name, per in medians.items()}


def quant_study(
    checkpoint: str | Path,
    out_dir: str | Path,
    recipes: Sequence[str] = ("int8-static",),
    *,
    qat_checkpoint: str | Path | None = None,
    calibration: int = DEFAULT_CALIBRATION,
    data_root: str | None = None,
    limit: int | None = None,
    threads: int = 1,
    rounds: int = 5,
    runs: int = 20,
    warmup: int = 3,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the study; writes ``quant_study.{json,csv,md}`` and plots into ``out_dir`` and returns the JSON."""
    recipes = list(dict.fromkeys(recipes))
    for r in recipes:
        get_recipe(r)  # unknown names fail before any export
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1 test image, got {limit}")
    checkpoint, out = Path(checkpoint), Path(out_dir)
    _, state = load_model(checkpoint)
    test = checkpoint_data(state, data_root).test
    images, labels = test.tensors
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    bundles = _bundles(
        checkpoint, Path(qat_checkpoint) if qat_checkpoint else None, recipes, out, calibration, data_root, log
    )
    manifests = {name: load_manifest(path) for name, path in bundles.items()}
    subnets = manifests[FP32]["subnets"]
    settings = [s["gates"] for s in subnets]

    set_threads(threads)
    programs = {n: load_bundle(p) for n, p in bundles.items() if "executorch" in manifests[n]["formats"]}
    predictions: dict[str, dict[str, torch.Tensor]] = {}
    for name, program in programs.items():
        predictions[name] = {
            g: program.predict(images, g) for g in tqdm(settings, desc=f"{name}: top-1 per sub-network", leave=False)
        }
    log(f"[quant-study] latency: {rounds} rounds x {runs} runs per sub-network and program, {threads} thread(s)")
    latency = _latency(programs, settings, rounds=rounds, runs=runs, warmup=warmup)

    rows = []
    for name, manifest in manifests.items():
        fmt = next(iter(manifest["formats"]))
        size = _size_bytes(bundles[name] / manifest["formats"][fmt]["file"])
        for subnet in subnets:
            g = subnet["gates"]
            row: dict[str, Any] = {
                "recipe": name,
                "format": fmt,
                "gates": g,
                "name": subnet["name"],
                "flops": subnet["flops"],
                "size_bytes": size,
                "top1": None,
                "drop_points": None,
                "agreement": None,
                "latency_ms": None,
            }
            if name in predictions:
                pred, ref = predictions[name][g], predictions[FP32][g]
                top1 = float((pred == labels).float().mean())
                row["top1"] = top1
                row["drop_points"] = 100.0 * (float((ref == labels).float().mean()) - top1)
                row["agreement"] = float((pred == ref).float().mean())
                row["latency_ms"] = latency[name][g]
            rows.append(row)
    report = {
        "checkpoint": str(checkpoint),
        "qat_checkpoint": str(qat_checkpoint) if qat_checkpoint else None,
        "model": state["model_name"],
        "test_images": len(labels),
        "calibration_images": calibration,
        "threads": threads,
        "latency_note": f"ExecuTorch runtime (Python), batch 1; median over {rounds} interleaved rounds of "
        f"{runs} runs' medians",
        "recipes": {name: manifests[name]["precision"] for name in manifests},
        "rows": rows,
    }
    write_report(report, out)
    write_json_atomic(out / "quant_study.json", report)
    return report


def _size_bytes(path: Path) -> int:
    """A file's size, or a package directory's total (``.mlpackage``)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size
