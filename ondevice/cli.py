"""The ``ondevice`` command: one subcommand per pipeline stage, each reading the files the stage before wrote.

Each stage defines its own verbs beside its code (``add_*_parser``) and the function that runs them
(``set_defaults(run=...)``); this module only puts them together.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .bundle import MissingExtraError, add_export_parser
from .compare import add_compare_parser
from .demo import add_demo_parser
from .evaluate import add_eval_parser
from .exits.cli import add_exits_parser
from .export.common import ExportError
from .policy.cli import add_policy_parser
from .profile import add_profile_parser
from .quant_cli import add_quant_parsers
from .train import add_train_parsers

__all__ = ["main"]


def _add_models_parser(verbs: Any) -> None:
    verbs.add_parser("models", help="list the registered ADN models").set_defaults(run=_run_models)


def _run_models(_: argparse.Namespace) -> int:
    from .models import build_model, list_models, model_description

    for name in list_models():
        model = build_model(name)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{name:<24} {model.num_stages} gates  {n_params / 1e6:7.2f} M params  {model_description(name)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ondevice", description="One subcommand per pipeline stage, each reading the files the stage before wrote."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for add in (
        _add_models_parser,
        add_train_parsers,
        add_eval_parser,
        add_compare_parser,
        add_demo_parser,
        add_policy_parser,
        add_exits_parser,
        add_export_parser,
        add_profile_parser,
        add_quant_parsers,
    ):
        add(verbs)
    return parser


def _show_notes() -> None:
    """What the stages log at INFO (e.g. images resized while loading) goes to stderr, one line each."""
    log = logging.getLogger("ondevice")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


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
    _show_notes()
    try:
        return args.run(args)
    except BrokenPipeError:  # the output was piped into a reader that stopped early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except (ValueError, OSError, MissingExtraError, ExportError) as err:  # OSError: missing, read-only, disk full
        print(f"ondevice {args.verb}: error: {err}", file=sys.stderr)
        return 2
