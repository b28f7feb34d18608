"""``ondevice quant recipes|study|qat``: the quantization commands (the flat ``quant-recipes``, ``quant-study`` and
``qat`` are kept as aliases)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .bundle import DEFAULT_CALIBRATION
from .qat import QatConfig, qat_finetune
from .quant import NOT_OFFERED, RECIPES

__all__ = ["add_quant_parsers"]


def _add_recipes_args(recipes: argparse.ArgumentParser) -> None:
    recipes.set_defaults(run=_run_recipes)


def _add_study_args(study: argparse.ArgumentParser) -> None:
    study.add_argument("checkpoint")
    study.add_argument("--out", required=True, help="directory for quant_study.{json,csv,md}, plots and bundles/")
    study.add_argument("--recipes", default="int8-static", help=f"comma list of {sorted(RECIPES)}")
    study.add_argument(
        "--qat-checkpoint", default=None, help="also int8-static of this QAT checkpoint (`ondevice quant qat`)"
    )
    study.add_argument("--calibration", type=int, default=DEFAULT_CALIBRATION, help="calibration images (int8-static)")
    study.add_argument("--data-root", default=None)
    study.add_argument("--limit", type=int, default=None, help="evaluate on the first N test images only")
    study.add_argument("--threads", type=int, default=1, help="XNNPACK threads for latency (default 1)")
    study.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds over all programs")
    study.add_argument("--runs", type=int, default=20, help="timed runs per sub-network per round")
    study.set_defaults(run=_run_study)


def _add_qat_args(qat: argparse.ArgumentParser) -> None:
    qat.add_argument("checkpoint", help="an ADN checkpoint (`ondevice train --method adn`)")
    qat.add_argument("--out", required=True)
    qat.add_argument("--epochs", type=int, default=2)
    qat.add_argument("--lr", type=float, default=0.005)
    qat.add_argument("--batch-size", type=int, default=64)
    qat.add_argument("--seed", type=int, default=0)
    qat.add_argument("--data-root", default=None)
    qat.add_argument("--resume", action="store_true", help="continue a killed run from OUT/checkpoint.pt")
    qat.set_defaults(run=_run_qat)


# action -> (help, its earlier flat spelling, kept as an alias, how to add its arguments)
_ACTIONS = {
    "recipes": ("list the quantization recipes (and those not offered, with why)", "quant-recipes", _add_recipes_args),
    "study": ("top-1, drop, agreement, latency and size per sub-network x recipe", "quant-study", _add_study_args),
    "qat": ("quantization-aware fine-tuning (int8, two-loss self-distillation)", "qat", _add_qat_args),
}


def add_quant_parsers(verbs: Any) -> None:
    """``ondevice quant recipes|study|qat``; ``quant-recipes``, ``quant-study`` and ``qat`` stay as aliases."""
    quant = verbs.add_parser("quant", help="quantization: recipes, the per-sub-network study, QAT")
    actions = quant.add_subparsers(dest="quant_action", required=True, metavar="ACTION")
    for action, (help_text, alias, add_args) in _ACTIONS.items():
        add_args(actions.add_parser(action, help=help_text))
        add_args(verbs.add_parser(alias))  # no help: not listed, still accepted


def _run_recipes(_: argparse.Namespace) -> int:
    for recipe in RECIPES.values():
        print(f"{recipe.name:<22} {recipe.format:<10} {recipe.summary}")
    print("\nnot offered (checked end to end on the pinned stack):")
    for name, why in NOT_OFFERED.items():
        print(f"{name:<22} {why}")
    return 0


def _run_study(args: argparse.Namespace) -> int:
    from .quant_study import format_table, quant_study  # matplotlib: loaded for this verb only

    report = quant_study(
        args.checkpoint,
        args.out,
        [r.strip() for r in args.recipes.split(",") if r.strip()],
        qat_checkpoint=args.qat_checkpoint,
        calibration=args.calibration,
        data_root=args.data_root,
        limit=args.limit,
        threads=args.threads,
        rounds=args.rounds,
        runs=args.runs,
    )
    print(format_table(report))
    print(json.dumps({"out": args.out, "rows": len(report["rows"])}))
    return 0


def _run_qat(args: argparse.Namespace) -> int:
    cfg = QatConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    path = qat_finetune(args.checkpoint, Path(args.out), cfg, resume=args.resume, data_root=args.data_root)
    print(f"checkpoint: {path}")
    return 0
