"""``ondevice demo``: the whole flow on the embedded MNIST, in a few minutes on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

from .evaluate import evaluate_checkpoint, format_table
from .train import TrainConfig, train

__all__ = ["run_demo"]


def run_demo(out: Path, *, epochs: int = 6, seed: int = 0) -> None:
    """Train the default ResNet-ADN with self-distillation, evaluate every sub-network, export and profile it."""
    cfg = TrainConfig(model="resnet20_adn", data="mnist", epochs=epochs, seed=seed)
    print(f"[1/4] training {cfg.model} on the embedded MNIST (ADN self-distillation, {epochs} epochs)")
    checkpoint = train(cfg, out / "train")
    print(f"[2/4] evaluating all sub-networks of {checkpoint}")
    rows = evaluate_checkpoint(checkpoint, out)
    print(format_table(rows))
    print(f"\nwrote {checkpoint}, {out / 'eval.json'} and {out / 'pareto.png'}")

    from .export.bundle import export_bundle
    from .profile import format_latency_table, profile_bundle

    bundle = out / "bundle"
    print(f"[3/4] exporting one ExecuTorch program with switchable gates to {bundle}")
    manifest = export_bundle(checkpoint, bundle, ("executorch",), log=lambda line: print(f"  {line}"))
    entry = manifest["formats"]["executorch"]
    stages = entry["gates_input"]["shape"][0]
    size = entry["size_bytes"] / 1e6
    print(f"  {bundle / entry['file']}: {size:.2f} MB, one method forward(image, gates int32[{stages}])")
    print("[4/4] profiling every sub-network on the ExecuTorch runtime (XNNPACK, batch 1)")
    result = profile_bundle(bundle, runs=20, warmup=3)
    from .export.manifest import load_manifest

    print(format_latency_table(load_manifest(bundle), result["device"]))
    print(f"\nbundle: {bundle} (manifest.json with this latency table, model.pte, latency.png)")
