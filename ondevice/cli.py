"""The ``ondevice`` command: one subcommand per pipeline stage, each reading the files the stage before wrote."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from quant.cli import QUANT_VERBS, add_quant_parsers, run_quant

from .bundle import add_export_parser, run_export
from .exits.cli import add_exits_parser, run_exits
from .policy.cli import add_policy_parser, run_policy
from .profile import add_profile_parser, run_profile
from .train import METHODS, TrainConfig

__all__ = ["main"]


def _add_entry_contexts_arg(p: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    p.add_argument(
        "--entry-contexts",
        action=argparse.BooleanOptionalAction,
        default=defaults.entry_contexts,
        help="entry norms keep statistics per gate of the previous stage",
    )


def _add_train_args(p: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    p.add_argument("--model", default=defaults.model, help="registry name (see `ondevice models`)")
    p.add_argument("--data", default=defaults.data, help="mnist (embedded), digits, imagefolder, cifar10")
    p.add_argument("--data-root", default=None, help="directory for imagefolder / cifar10")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this size")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--norm-images",
        type=int,
        default=defaults.norm_images,
        help="training images for exact norm statistics after training (0: keep the momentum averages)",
    )
    _add_entry_contexts_arg(p, defaults)


def _config(args: argparse.Namespace, **overrides: object) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in known}
    return TrainConfig(**{**values, **overrides})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ondevice", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    defaults = TrainConfig()

    verbs.add_parser("models", help="list the registered ADN models")

    train = verbs.add_parser("train", help="data -> checkpoint (ADN self-distillation or a baseline)")
    _add_train_args(train, defaults)
    train.add_argument("--method", choices=METHODS, default=defaults.method)
    train.add_argument("--gates", default=None, help="static: the gate setting to train, e.g. TTF")
    train.add_argument("--skip-prob", type=float, default=defaults.skip_prob, help="random-skip: P(stage skipped)")
    train.add_argument("--alpha", type=float, default=defaults.alpha, help="adn: super-net CE weight")
    train.add_argument("--temperature", type=float, default=defaults.temperature, help="adn: KD temperature")
    train.add_argument(
        "--sandwich", type=int, default=defaults.sandwich, help="adn: mixed sub-networks distilled per step (0: paper)"
    )
    train.add_argument(
        "--feature-kd", type=float, default=defaults.feature_kd, help="adn: weight of stage-output distillation"
    )
    train.add_argument("--init-from", default=None, help="exits-isc/imta: stage-1 checkpoint (e.g. an exits-ge run)")
    train.add_argument("--ofa-gamma", type=float, default=defaults.ofa_gamma, help="exits-ofa/imta: KD weight")
    train.add_argument("--ofa-temperature", type=float, default=defaults.ofa_temperature, help="OFA-KD temperature")
    train.add_argument("--out", required=True, help="run directory (checkpoint.pt is written there each epoch)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")

    evaluate = verbs.add_parser("eval", help="checkpoint -> eval.json + pareto.png (every sub-network)")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--out", default=None, help="output directory (default: the checkpoint's directory)")
    evaluate.add_argument("--data-root", default=None, help="override the data directory of the checkpoint")
    evaluate.add_argument(
        "--diagnostic-images",
        type=int,
        default=1000,
        help="training images to re-estimate each sub-network's own norm statistics (0: no diagnostics)",
    )

    recalibrate = verbs.add_parser(
        "recalibrate", help="checkpoint -> a copy with exact norm statistics (for checkpoints trained without them)"
    )
    recalibrate.add_argument("checkpoint")
    recalibrate.add_argument("--out", required=True, help="the new checkpoint (must not exist)")
    recalibrate.add_argument("--images", type=int, default=defaults.norm_images, help="training images to use")
    _add_entry_contexts_arg(recalibrate, defaults)
    recalibrate.add_argument("--data-root", default=None, help="override the data directory of the checkpoint")

    compare = verbs.add_parser("compare", help="ADN vs individually trained static nets vs random-skip, one run")
    _add_train_args(compare, defaults)
    compare.add_argument("--out", default="ondevice-compare")

    demo = verbs.add_parser("demo", help="train the default ADN on the embedded MNIST and evaluate it")
    demo.add_argument("--out", default="ondevice-demo")
    demo.add_argument("--epochs", type=int, default=4)
    demo.add_argument("--seed", type=int, default=0)
    add_policy_parser(verbs)
    add_exits_parser(verbs)
    add_export_parser(verbs)
    add_profile_parser(verbs)
    add_quant_parsers(verbs)
    return parser


def _quiet_pinned_stack() -> None:
    """Hide what the pinned libraries print on every export and a user cannot act on: torchao's CUDA
    kernels failing to load on a CPU build, and torch.export's pytree deprecation warnings."""
    logging.getLogger("torchao").setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ondevice`` console script and ``python -m ondevice``."""
    args = _parser().parse_args(argv)
    _quiet_pinned_stack()
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"ondevice {args.verb}: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.verb == "models":
        from .models import build_model, list_models, model_description

        for name in list_models():
            model = build_model(name)
            n_params = sum(p.numel() for p in model.parameters())
            print(f"{name:<24} {model.num_stages} gates  {n_params / 1e6:7.2f} M params  {model_description(name)}")
        return 0
    if args.verb == "train":
        from .train import train

        cfg = _config(args)
        path = train(cfg, args.out, resume=args.resume)
        print(f"checkpoint: {path}")
        return 0
    if args.verb == "eval":
        from .evaluate import evaluate_checkpoint, format_table

        out = Path(args.out) if args.out else Path(args.checkpoint).parent
        rows = evaluate_checkpoint(
            args.checkpoint, out, data_root=args.data_root, diagnostic_images=args.diagnostic_images
        )
        print(format_table(rows))
        print(f"wrote {out / 'eval.json'} and {out / 'pareto.png'}")
        return 0
    if args.verb == "recalibrate":
        from .train import recalibrate_checkpoint

        path = recalibrate_checkpoint(
            args.checkpoint, args.out, images=args.images, entry_contexts=args.entry_contexts, data_root=args.data_root
        )
        print(f"checkpoint with exact norm statistics: {path}")
        return 0
    if args.verb == "compare":
        from .compare import compare_training

        report = compare_training(_config(args), Path(args.out))
        print(report.markdown)
        print(json.dumps({"out": str(args.out)}))
        return 0
    if args.verb == "demo":
        from .demo import run_demo

        run_demo(Path(args.out), epochs=args.epochs, seed=args.seed)
        return 0
    if args.verb == "policy":
        return run_policy(args)
    if args.verb == "exits":
        return run_exits(args)
    if args.verb == "export":
        return run_export(args)
    if args.verb == "profile":
        return run_profile(args)
    if args.verb in QUANT_VERBS:
        return run_quant(args)
    raise AssertionError(f"unhandled verb {args.verb}")
