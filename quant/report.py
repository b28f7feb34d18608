"""The quantization study's table (markdown, CSV) and plots, from its JSON rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ondevice.atomic import atomic_path
from ondevice.pareto import pareto_front

__all__ = ["CSV_COLUMNS", "format_table", "write_report"]

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
