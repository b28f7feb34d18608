"""Generate ``tests/expect/official_<arch>.json``: logits of the official ADN models on deterministic weights.

What it does: for each architecture (resnet50_adn, mobilenet_v2_adn, vit_b_16_adn, swin_t_adn) it imports the
official model constructor named by ``tests/official/<arch>.keys.json`` ("constructor", e.g.
``models.resnet50(num_classes=1000)``) from a checkout of the official code, builds it and loads
``official_layout.layout_state_dict(arch)`` with ``strict=True`` (so the official model has exactly the layout
the tests use). It then builds the same model with a 10-class head and loads, again with ``strict=True``, the same
state dict except for the two head tensors, re-made at that size by ``fill_state_dict`` (values are seeded by key,
so every other tensor is unchanged), and the integer buffers, taken from the model itself (the layout has only
their shapes); the parity tests fill their 10-class models the same way. In eval mode under ``torch.no_grad`` it
runs ``reference_input(...)`` once per gate setting. A gate setting is a string of 'F'/'T', one letter per
skippable stage ("TFFT"); it goes to the official forward as ``forward(x, skip=[...])``, a list of bools with
True = skip that stage's skippable blocks (keys.json "skip_semantics"). The list is always given explicitly:
the official forwards disagree on what a missing ``skip`` means (MobileNetV2: base-net, the others: super-net).
The result has the same keys and compact formatting as the files in ``tests/expect``; every logit is written as
the shortest decimal that reads back as the same float32.

Official code: it is NOT part of this repository. Get it from the public GitHub repository wchkang/depth at commit
7a51ea1afb8af5f63be8ff600a86d2f67211e506 (the commit the keys.json files name as "source") and pass the root of
that checkout, the directory holding the ``models`` package. The official code needs torchvision only for one
enum base class; where torchvision is not installed a shim stands in (see ``_import_official_models``).

How it was run, from the repository root (OFFICIAL_CHECKOUT: that checkout; OUT_DIR: any directory)::

    python tests/expect/make_official_logits.py OFFICIAL_CHECKOUT --out OUT_DIR --compare

The committed files record torch 2.14.1; with torch 2.13.0 on CPU this reproduces all four byte for byte except
the torch version in "source" (max abs difference 0 for every gate setting). ``--write-expect`` instead of
``--out OUT_DIR`` overwrites tests/expect.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import json
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

TESTS = Path(__file__).resolve().parent.parent
EXPECT = TESTS / "expect"
ARCHS = ("resnet50_adn", "mobilenet_v2_adn", "vit_b_16_adn", "swin_t_adn")
NUM_CLASSES = 10
# Input per architecture: the convnets run on small images; the official ViT asserts 224x224 and Swin is run
# at its native size.
INPUTS: dict[str, dict[str, int]] = {
    "resnet50_adn": {"in_chans": 3, "size": 64, "batch": 2},
    "mobilenet_v2_adn": {"in_chans": 3, "size": 64, "batch": 2},
    "vit_b_16_adn": {"in_chans": 3, "size": 224, "batch": 2},
    "swin_t_adn": {"in_chans": 3, "size": 224, "batch": 2},
}

sys.path.insert(0, str(TESTS))
from official_layout import fill_state_dict, layout_state_dict, official_layout, reference_input  # noqa: E402


def _import_official_models(checkout: Path) -> ModuleType:
    """The official ``models`` package from ``checkout``."""
    if not (checkout / "models" / "__init__.py").is_file():
        raise SystemExit(f"{checkout} has no models/__init__.py: pass the root of a wchkang/depth checkout")
    if importlib.util.find_spec("torchvision") is None:
        # The official models/_api.py only needs ``torchvision._utils.StrEnum``, which the official tree itself
        # carries verbatim in models/__utils.py: load that file as torchvision._utils instead of installing it.
        spec = importlib.util.spec_from_file_location("torchvision._utils", checkout / "models" / "__utils.py")
        assert spec is not None and spec.loader is not None
        utils = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(utils)
        package = ModuleType("torchvision")
        package.__path__ = []
        package._utils = utils  # type: ignore[attr-defined]
        sys.modules.update({"torchvision": package, "torchvision._utils": utils})
    sys.path.insert(0, str(checkout))
    return importlib.import_module("models")


def _official_commit(checkout: Path, layout: dict) -> str:
    """The checkout's commit when it is a git checkout, else the one the keys.json names."""
    named = layout["source"].split()[-1]
    if not (checkout / ".git").exists():
        return named
    head = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if head != named:
        print(f"warning: checkout is at {head}, keys.json names {named}", file=sys.stderr)
    return head


def _build(models: ModuleType, layout: dict, num_classes: int) -> torch.nn.Module:
    """The official model that keys.json's "constructor" names, with ``num_classes`` outputs."""
    name = layout["constructor"].split("(", 1)[0].removeprefix("models.")
    return getattr(models, name)(num_classes=num_classes)


def _weights(arch: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``layout_state_dict(arch)`` with the classifier re-made at ``model``'s head size and its own integer buffers.

    The layout records only the shape of integer buffers (Swin's ``relative_position_index``), so
    ``layout_state_dict`` holds zeros there; the model's constructor computes the real index, which is kept (as
    ``fill_state_dict`` keeps it in the parity tests).
    """
    state = layout_state_dict(arch)
    own = model.state_dict()
    resized = {key: torch.zeros_like(own[key]) for key in state if key in own and own[key].shape != state[key].shape}
    if len(resized) != 2:
        raise SystemExit(f"{arch}: expected only the classifier weight and bias to change size, got {sorted(resized)}")
    state.update(fill_state_dict(resized))
    state.update({key: value.clone() for key, value in own.items() if not value.is_floating_point()})
    return state


def _float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (as numpy prints a float32)."""
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", candidate))[0] == value:
            return candidate
    return value


def official_logits(models: ModuleType, arch: str, commit: str) -> dict[str, Any]:
    """The JSON document for ``arch``: metadata and the logits for every gate setting."""
    layout = official_layout(arch)
    full = _build(models, layout, num_classes=layout["state_dict"][-1][1][0])  # as the layout: 1000 classes
    full.load_state_dict(layout_state_dict(arch), strict=True)
    del full
    model = _build(models, layout, NUM_CLASSES)
    model.load_state_dict(_weights(arch, model), strict=True)
    model.eval()
    spec = INPUTS[arch]
    x = reference_input(spec["in_chans"], spec["size"], spec["batch"])
    logits = {}
    with torch.no_grad():
        for letters in itertools.product("FT", repeat=layout["num_skippable_stages"]):
            gates = "".join(letters)
            out = model(x.clone(), skip=[letter == "T" for letter in gates])
            logits[gates] = [[_float32(v) for v in row] for row in out.float().tolist()]
    return {
        "arch": arch,
        "source": f"wchkang/depth@{commit[:8]}, torch {torch.__version__.split('+')[0]}",
        "num_classes": NUM_CLASSES,
        "num_state_entries": len(layout["state_dict"]),
        "input": dict(spec),
        "logits": logits,
    }


def _compare(doc: dict[str, Any], expected_file: Path) -> None:
    """Print the max abs difference to ``expected_file`` per gate setting."""
    expected = json.loads(expected_file.read_text())
    for gates, rows in doc["logits"].items():
        diff = (torch.tensor(rows) - torch.tensor(expected["logits"][gates])).abs().max().item()
        print(f"  {doc['arch']} {gates}: max abs diff {diff:.3g}")


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("official", type=Path, help="root of a wchkang/depth checkout (holds models/)")
    parser.add_argument("--out", type=Path, help="directory to write official_<arch>.json into")
    parser.add_argument("--write-expect", action="store_true", help="write into tests/expect (overwrites)")
    parser.add_argument("--arch", action="append", choices=ARCHS, help="repeatable; default: all four")
    parser.add_argument("--compare", action="store_true", help="print max abs differences to tests/expect")
    args = parser.parse_args(argv)
    if args.write_expect == (args.out is not None):
        parser.error("give exactly one of --out DIR or --write-expect")
    out = EXPECT if args.write_expect else args.out.resolve()
    if out == EXPECT and not args.write_expect:
        parser.error("--out is tests/expect: pass --write-expect to overwrite the committed files")
    out.mkdir(parents=True, exist_ok=True)
    checkout = args.official.resolve()
    models = _import_official_models(checkout)
    torch.manual_seed(0)  # constructors draw random initial weights, all of which are then overwritten
    for arch in args.arch or ARCHS:
        doc = official_logits(models, arch, _official_commit(checkout, official_layout(arch)))
        target = out / f"official_{arch}.json"
        if args.compare:  # before writing, which with --write-expect replaces the file compared with
            _compare(doc, EXPECT / target.name)
        target.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
