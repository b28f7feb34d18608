"""``ondevice exits eval|export``: multi-exit checkpoints; training is ``ondevice train --method exits-*``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_exits_parser", "run_exits"]


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 0,0.01,0.1, got {text!r}") from None


def add_exits_parser(verbs: Any) -> None:
    """Register ``ondevice exits eval`` and ``ondevice exits export`` under the main parser's subcommands."""
    exits = verbs.add_parser("exits", help="early exits: anytime accuracy and exit policies of a multi-exit checkpoint")
    exits.set_defaults(run=run_exits)
    sub = exits.add_subparsers(dest="exits_verb", required=True, metavar="ACTION")
    ev = sub.add_parser("eval", help="checkpoint -> exits.json + exits.png (anytime accuracy, policy curves)")
    ev.add_argument("checkpoint", help="a checkpoint trained with --method exits-*")
    ev.add_argument("--out", default=None, help="output directory (default: the checkpoint's directory)")
    ev.add_argument("--data-root", default=None, help="override the data directory of the checkpoint")
    ev.add_argument("--holdout-fraction", type=float, default=0.5, help="share of the test split the policies fit on")
    ev.add_argument("--gates", default=None, help="gate setting whose exits the exit policies use (default: super-net)")
    ev.add_argument("--lambdas", type=_floats, default=None, help="learned policies' cost trade-offs, e.g. 0,0.05")
    ev.add_argument("--bundle", default=None, help="bundle with this checkpoint's exits.pte: adds measured latency")
    ev.add_argument("--threads", type=int, default=1, help="XNNPACK threads for the latency measurement")
    ev.add_argument("--runs", type=int, default=50, help="timed rounds per method for the latency measurement")
    ex = sub.add_parser("export", help="checkpoint -> BUNDLE/exits.pte + the exits section of BUNDLE/manifest.json")
    ex.add_argument("checkpoint", help="an ADN checkpoint trained with --method exits-*")
    ex.add_argument("--out", required=True, help="bundle directory (an existing manifest.json is extended)")
    ex.add_argument("--lambda", dest="lam", type=float, default=0.1, help="cost trade-off of the learned policy")
    ex.add_argument("--holdout-fraction", type=float, default=0.5, help="share of the test split the policies fit on")
    ex.add_argument("--data-root", default=None, help="override the data directory of the checkpoint")
    ex.add_argument("--share-weights", action=argparse.BooleanOptionalAction, default=True, help="store convs once")


def run_exits(args: argparse.Namespace) -> int:
    """Run ``ondevice exits ACTION`` (ValueError/FileNotFoundError are reported by the main CLI)."""
    if args.exits_verb == "eval":
        from .evaluate import DEFAULT_LAMBDAS, EXITS_JSON, EXITS_PNG, evaluate_exits_checkpoint, format_report

        out = Path(args.out) if args.out else Path(args.checkpoint).parent
        report = evaluate_exits_checkpoint(
            args.checkpoint,
            out,
            data_root=args.data_root,
            holdout_fraction=args.holdout_fraction,
            gates=args.gates,
            lambdas=tuple(args.lambdas) if args.lambdas else DEFAULT_LAMBDAS,
            bundle=args.bundle,
            threads=args.threads,
            runs=args.runs,
        )
        print(format_report(report))
        print(f"wrote {out / EXITS_JSON} and {out / EXITS_PNG}")
        return 0
    if args.exits_verb == "export":
        from .export import EXITS_PTE, export_exits_bundle

        entry = export_exits_bundle(
            args.checkpoint,
            args.out,
            lam=args.lam,
            holdout_fraction=args.holdout_fraction,
            data_root=args.data_root,
            share_weights=args.share_weights,
        )
        size, parity = entry["size_bytes"], entry["parity_max_abs_diff"]
        print(f"wrote {Path(args.out) / EXITS_PTE} ({size:,} bytes, max |program - eager| {parity:.2g})")
        print(f"and the exits section of {Path(args.out) / 'manifest.json'} ({len(entry['policies'])} gate settings)")
        return 0
    raise AssertionError(f"unhandled exits action {args.exits_verb}")
