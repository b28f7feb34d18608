"""``ondevice demo``: the whole flow on the embedded MNIST, in a few minutes on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

from .evaluate import evaluate_checkpoint, format_table
from .export.bundle import export_bundle
from .export.manifest import load_manifest
from .policy.simulate import SimConfig, format_report, simulate_bundle
from .profile import format_latency_table, profile_bundle
from .train import TrainConfig, train

__all__ = ["run_demo"]


def run_demo(out: Path, *, epochs: int = 4, seed: int = 0) -> None:
    """Train the default ResNet-ADN with self-distillation, evaluate every sub-network, export and profile it,
    then simulate a phone session under the battery- and thermal-aware policy."""
    cfg = TrainConfig(model="resnet20_adn", data="mnist", epochs=epochs, seed=seed)
    print(f"[1/5] training {cfg.model} on the embedded MNIST (ADN self-distillation, {epochs} epochs)")
    checkpoint = train(cfg, out / "train")
    print(f"[2/5] evaluating all sub-networks of {checkpoint}")
    rows = evaluate_checkpoint(checkpoint, out)
    print(format_table(rows))
    print(f"\nwrote {checkpoint}, {out / 'eval.json'} and {out / 'pareto.png'}")

    bundle = out / "bundle"
    print(f"[3/5] exporting one ExecuTorch program with switchable gates to {bundle}")
    manifest = export_bundle(checkpoint, bundle, ("executorch",), log=lambda line: print(f"  {line}"))
    entry = manifest["formats"]["executorch"]
    stages = entry["gates_input"]["shape"][0]
    size = entry["size_bytes"] / 1e6
    print(f"  {bundle / entry['file']}: {size:.2f} MB, one method forward(image, gates int32[{stages}])")
    print("[4/5] profiling every sub-network on the ExecuTorch runtime (XNNPACK, batch 1)")
    result = profile_bundle(bundle, runs=20, warmup=3)
    print(format_latency_table(load_manifest(bundle), result["device"]))
    print(f"\nbundle: {bundle} (manifest.json with this latency table, policy.json, model.pte, latency.png)")
    # The MNIST model is far too small to heat a phone: scale its latency table so that the super-net
    # takes as long as a mid-size ImageNet network (the policy plans with the scaled table too).
    print("[5/5] simulating 10 minutes of a phone session: fixed sub-networks vs the battery/thermal policy")
    report = simulate_bundle(bundle, out / "policy", SimConfig(minutes=10, super_net_ms=175.0))
    print(format_report(report))
    print(f"\nwrote {out / 'policy' / 'simulation.json'} and {out / 'policy' / 'simulation.png'}")
