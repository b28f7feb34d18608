"""``ondevice demo``: the whole flow on the embedded MNIST, in a few minutes on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

from .evaluate import evaluate_checkpoint, format_table
from .train import TrainConfig, train

__all__ = ["run_demo"]


def run_demo(out: Path, *, epochs: int = 6, seed: int = 0) -> None:
    """Train the default ResNet-ADN with self-distillation, then evaluate every sub-network."""
    cfg = TrainConfig(model="resnet20_adn", data="mnist", epochs=epochs, seed=seed)
    print(f"[1/2] training {cfg.model} on the embedded MNIST (ADN self-distillation, {epochs} epochs)")
    checkpoint = train(cfg, out / "train")
    print(f"[2/2] evaluating all sub-networks of {checkpoint}")
    rows = evaluate_checkpoint(checkpoint, out)
    print(format_table(rows))
    print(f"\nwrote {checkpoint}, {out / 'eval.json'} and {out / 'pareto.png'}")
