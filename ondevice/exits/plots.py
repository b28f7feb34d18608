"""The early-exit figure: anytime accuracy per exit beside accuracy vs average FLOPs (and latency) per policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plot_exits"]

_LABELS = {
    "exits/thresholds": "exits: confidence thresholds",
    "exits/learned": "exits: learned policy (Bolukbasi)",
    "exits/learned_representation": "exits: learned policy + representation",
    "subnets/thresholds": "sub-networks: confidence thresholds",
    "subnets/learned": "sub-networks: learned selection (Bolukbasi)",
    "combined/thresholds": "cheapest exits + sub-networks: thresholds",
    "combined/learned": "cheapest exits + sub-networks: learned",
}


def plot_exits(report: dict[str, Any], path: str | Path, *, title: str = "") -> Path:
    """Left: each exit's top-1 vs cumulative MFLOPs per gate setting. Then top-1 vs average MFLOPs per policy,
    and, when the report has measured latency, top-1 vs average latency beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    costs = [("mflops", "average MFLOPs per image (batch 1)")]
    if "latency" in report:
        costs.append(("latency_ms", f"average latency per image (ms, {report['latency']['threads']} thread(s))"))
    fig, axes = plt.subplots(1, 1 + len(costs), figsize=(6.5 * (1 + len(costs)), 5))
    left = axes[0]
    for row in report["anytime"]:
        left.plot(row["mflops"], [100 * a for a in row["top1"]], "o-", ms=4, label=row["gates"])
    left.set_title("anytime prediction (each exit)")
    left.set_xlabel("MFLOPs to reach the exit (batch 1)")
    left.set_ylabel("top-1 accuracy (%)")
    left.legend(fontsize=7, title="gates", title_fontsize=7)
    for ax, (cost, label) in zip(axes[1:], costs):
        _plot_policies(ax, report, cost)
        ax.set_xlabel(label)
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_policies(ax: Any, report: dict[str, Any], cost: str) -> None:
    """Top-1 vs average ``cost`` of every policy curve, the sub-networks as points, the reference - 1 pt line."""
    for i, (name, entry) in enumerate(report["policies"].items()):
        for kind, style in (("thresholds", "--"), ("learned", "-"), ("learned_representation", ":")):
            if kind not in entry:
                continue
            points = sorted(entry[kind], key=lambda p: p[cost])
            ax.plot(
                [p[cost] for p in points],
                [100 * p["top1"] for p in points],
                style,
                marker="s" if kind == "thresholds" else "o",
                ms=3,
                color=f"C{i}",
                label=_LABELS.get(f"{name}/{kind}", f"{name}/{kind}"),
            )
    subnets = report["subnets"]
    x, y = [r[cost] for r in subnets], [100 * r["top1"] for r in subnets]
    ax.scatter(x, y, color="0.5", zorder=3, label="sub-networks")
    ref = report["reference"]
    ax.axhline(100 * ref["top1"] - 1, color="0.3", lw=0.8, ls=":", label=f"{ref['gates']} top-1 - 1 pt")
    ax.set_title("budgeted classification (test split)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.legend(fontsize=7, loc="lower right")
