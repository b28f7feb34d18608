"""``ondevice quant study``: what each sub-network loses under each recipe, measured on the real program.

For every recipe a bundle is exported (the fp32 one too), and every sub-network of every ExecuTorch
program is run by the ExecuTorch runtime on the test split: top-1, drop vs the fp32 program,
agreement with the fp32 program's predictions. Latency is measured side by side: rounds that visit
every program in turn, the median over rounds. Core ML packages cannot predict on Linux: their
rows carry size only (docs/quantization.md). The table (markdown, CSV) and the plots are written
from the study's JSON rows.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import torch
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .atomic import atomic_path, write_json_atomic
from .bundle import DEFAULT_CALIBRATION, export_bundle
from .checkpoint import checkpoint_data, load_model
from .contract.manifest import load_manifest
from .pareto import pareto_front
from .profile import measure_latency
from .quant import get_recipe
from .runtime import load_bundle, set_threads

__all__ = ["CSV_COLUMNS", "FP32", "QAT_SUFFIX", "format_table", "quant_study", "write_report"]

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


CSV_COLUMNS = (
    "recipe",
    "format",
    "gates",
    "name",
    "flops",
    "top1",
    "drop_points",
    "agreement",
    "latency_ms",
    "size_bytes",
)


def _cell(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def format_table(report: dict[str, Any]) -> str:
    """Markdown: one row per recipe x sub-network, with speed-up and size relative to the fp32 program."""
    rows = report["rows"]
    fp32 = {r["gates"]: r for r in rows if r["recipe"] == "fp32"}
    # sizes compare within a format: the ExecuTorch program with the fp32 program, Core ML with the fp32 package
    fp32_size = {r["format"]: r["size_bytes"] for r in rows if r["recipe"].startswith("fp32")}
    lines = [
        "| recipe | sub-network | top-1 % | drop (points) | agreement % | latency ms | speed-up | size MB | size x |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = fp32[r["gates"]]
        speedup = base["latency_ms"] / r["latency_ms"] if r["latency_ms"] else None
        top1 = None if r["top1"] is None else 100 * r["top1"]
        agreement = None if r["agreement"] is None else 100 * r["agreement"]
        lines.append(
            f"| {r['recipe']} | {r['gates']} ({r['name']}) | {_cell(top1, '.1f')} | {_cell(r['drop_points'], '+.1f')} "
            f"| {_cell(agreement, '.1f')} | {_cell(r['latency_ms'], '.3f')} | {_cell(speedup, '.2f')} "
            f"| {r['size_bytes'] / 1e6:.2f} | {r['size_bytes'] / fp32_size[r['format']]:.2f} |"
        )
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: Path) -> None:
    """``quant_study.md``, ``quant_study.csv``, ``accuracy_vs_latency.png`` and ``drop.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "quant_study.md") as tmp:
        tmp.write_text(
            f"# Quantization study: {report['model']}\n\n{report['test_images']} test images, "
            f"{report['calibration_images']} calibration images. {report['latency_note']}, "
            f"{report['threads']} thread(s).\n\n{format_table(report)}\n"
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(report["rows"])
    with atomic_path(out / "quant_study.csv") as tmp:
        tmp.write_text(buffer.getvalue())
    measured = [r for r in report["rows"] if r["top1"] is not None]
    _plot_accuracy_vs_latency(measured, out / "accuracy_vs_latency.png", report["model"])
    _plot_drop(measured, out / "drop.png", report["model"])


def _by_recipe(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["recipe"], []).append(r)
    return groups


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _plot_accuracy_vs_latency(rows: list[dict[str, Any]], path: Path, model: str) -> None:
    """Top-1 vs latency, one colour per recipe, each recipe's Pareto front joined by a line."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (recipe, group) in enumerate(_by_recipe(rows).items()):
        x = [r["latency_ms"] for r in group]
        y = [100 * r["top1"] for r in group]
        ax.scatter(x, y, color=f"C{i}", alpha=0.5)
        front = pareto_front(x, y)
        ax.plot([x[j] for j in front], [y[j] for j in front], "o-", color=f"C{i}", label=recipe)
    ax.set_xlabel("latency per image (ms, ExecuTorch runtime, batch 1)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{model}: sub-networks per recipe (line: Pareto front)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def _plot_drop(rows: list[dict[str, Any]], path: Path, model: str) -> None:
    """Top-1 drop vs fp32 per sub-network, one bar per quantized recipe."""
    groups = {k: v for k, v in _by_recipe(rows).items() if k != "fp32"}
    settings = [r["gates"] for r in rows if r["recipe"] == "fp32"]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(settings)), 4))
    width = 0.8 / max(1, len(groups))
    for i, (recipe, group) in enumerate(groups.items()):
        drops = {r["gates"]: r["drop_points"] for r in group}
        ax.bar([k + i * width for k in range(len(settings))], [drops[g] for g in settings], width, label=recipe)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(settings))], settings, rotation=45)
    ax.set_ylabel("top-1 drop vs fp32 (points)")
    ax.set_title(f"{model}: accuracy lost per sub-network")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
