"""ADN self-distillation vs its baselines, side by side in one run on the same data.

For every gate setting: the ADN sub-network, an individually trained static network of the same
gates, and the same sub-network of a random-skip (LayerDrop-style) model; with training times.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_json_atomic
from .checkpoint import load_model
from .data import DataSplits, load_data
from .metrics import accuracy
from .models import AdnModel, all_gates
from .models.cost import count_flops
from .plots import plot_compare
from .train import TrainConfig, add_train_args, config_from_args, train

__all__ = ["CompareReport", "add_compare_parser", "compare_training"]


@dataclass
class CompareReport:
    rows: list[dict]
    train_seconds: dict[str, float]
    markdown: str


def _train_run(cfg: TrainConfig, out: Path, data: DataSplits) -> tuple[AdnModel, float]:
    checkpoint = train(cfg, out, data=data, overwrite=True)  # compare replaces its own earlier runs
    model, state = load_model(checkpoint)
    return model, sum(r["seconds"] for r in state["history"])


def compare_training(base: TrainConfig, out: Path) -> CompareReport:
    """Train ADN, random-skip and one static network per gate setting; write compare.{json,md,png} in ``out``."""
    data = load_data(base.data, base.data_root, image_size=base.image_size, seed=base.seed, limit=base.limit)
    adn, adn_s = _train_run(dataclasses.replace(base, method="adn", gates=None), out / "adn", data)
    rnd, rnd_s = _train_run(dataclasses.replace(base, method="random-skip", gates=None), out / "random-skip", data)
    rows, seconds = [], {"adn": adn_s, "random-skip": rnd_s}
    for g in all_gates(adn.num_stages):
        static, static_s = _train_run(
            dataclasses.replace(base, method="static", gates=str(g)), out / f"static-{g}", data
        )
        seconds[f"static-{g}"] = static_s
        rows.append(
            {
                "gates": str(g),
                "name": g.name,
                "mflops": count_flops(adn, g) / 1e6,
                "adn_top1": accuracy(adn, data.test, g),
                "static_top1": accuracy(static, data.test, g),
                "random_skip_top1": accuracy(rnd, data.test, g),
                "static_train_s": static_s,
            }
        )
    markdown = _markdown(rows, seconds, base)
    write_json_atomic(
        out / "compare.json", {"config": dataclasses.asdict(base), "rows": rows, "train_seconds": seconds}
    )
    (out / "compare.md").write_text(markdown + "\n")
    plot_compare(rows, out / "compare.png")
    return CompareReport(rows, seconds, markdown)


def _norm_treatment(cfg: TrainConfig) -> str:
    if not cfg.norm_images:
        return "the momentum averages left by training"
    contexts = ", entry norms per previous gate" if cfg.entry_contexts else ""
    return f"exact averages over {cfg.norm_images} training images and the gate settings each run trains{contexts}"


def _markdown(rows: list[dict], seconds: dict[str, float], cfg: TrainConfig) -> str:
    lines = [
        f"{cfg.model} on {cfg.data}, {cfg.epochs} epochs each, seed {cfg.seed}. Top-1 on the test split. "
        f"Norm statistics, the same for every run: {_norm_treatment(cfg)}.",
        "",
        "| gates | sub-network | MFLOPs | ADN (one run) | static (own run) | random-skip (one run) | static train s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['gates']} | {r['name']} | {r['mflops']:.2f} | {100 * r['adn_top1']:.2f} | "
            f"{100 * r['static_top1']:.2f} | {100 * r['random_skip_top1']:.2f} | {r['static_train_s']:.0f} |"
        )
    total_static = sum(v for k, v in seconds.items() if k.startswith("static-"))
    lines += [
        "",
        f"Training time: ADN {seconds['adn']:.0f} s (all {len(rows)} sub-networks), random-skip "
        f"{seconds['random-skip']:.0f} s, static {total_static:.0f} s for {len(rows)} separate networks.",
    ]
    return "\n".join(lines)


def add_compare_parser(verbs: Any) -> None:
    """``ondevice compare``."""
    compare = verbs.add_parser("compare", help="ADN vs individually trained static nets vs random-skip, one run")
    add_train_args(compare, TrainConfig())
    compare.add_argument("--out", default="ondevice-compare")
    compare.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    report = compare_training(config_from_args(args), Path(args.out))
    print(report.markdown)
    print(json.dumps({"out": str(args.out)}))
    return 0
