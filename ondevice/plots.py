"""Plots people look at, written as PNG next to the JSON they come from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plot_compare", "plot_pareto"]


class _Point(Protocol):
    gates: str
    top1: float
    flops: int
    pareto: bool
    top1_own_stats: float | None


def plot_pareto(rows: Sequence[_Point], path: str | Path, *, title: str = "") -> Path:
    """Accuracy vs FLOPs of every sub-network, the Pareto front joined by a line, points labelled by gates;
    hollow markers: each sub-network with norm statistics re-estimated for it alone (when diagnosed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([r.flops / 1e6 for r in rows], [100 * r.top1 for r in rows], color="0.6", label="sub-network")
    own = [r for r in rows if r.top1_own_stats is not None]
    if own:
        ax.scatter(
            [r.flops / 1e6 for r in own],
            [100 * r.top1_own_stats for r in own],
            facecolors="none",
            edgecolors="C3",
            label="own norm statistics",
        )
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.flops)
    ax.plot([r.flops / 1e6 for r in front], [100 * r.top1 for r in front], "o-", color="C0", label="Pareto front")
    for r in rows:
        ax.annotate(r.gates, (r.flops / 1e6, 100 * r.top1), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("MFLOPs per image (batch 1)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_compare(rows: Sequence[dict], path: str | Path) -> Path:
    """Accuracy vs FLOPs per gate setting for ADN, static networks and random-skip (``compare.json`` rows)."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = [r["mflops"] for r in rows]
    for key, label, marker in (
        ("adn_top1", "ADN (self-distillation)", "o"),
        ("static_top1", "static, own run", "s"),
        ("random_skip_top1", "random-skip", "^"),
    ):
        ax.scatter(x, [100 * r[key] for r in rows], marker=marker, label=label)
    ax.set_xlabel("MFLOPs per image (batch 1)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
