"""An example manifest for the policy's tests, benchmarks, vectors and docs: ViT-B/16-ADN on a phone CPU.

Accuracy and FLOPs are the published ImageNet results of the five ViT-B/16-ADN sub-networks in the
official repository's model zoo (github.com/wchkang/depth, README): FFFF 81.4% at 17.58 GFLOPs, FFFT
81.2% / 16.20, TTFF 80.9% / 14.67, TTFT 80.7% / 13.21, TTTT 80.6% / 11.76. The latency table is
illustrative, not measured: 10 ms per GFLOP (fp32 XNNPACK on the big cores of a 2022-23 phone, about
100 GFLOP/s effective), so the base-net takes 0.67x the super-net's time; p90 = 1.1 x median,
min = 0.96 x median. Params: ViT-B/16's 86.6 M less 7.09 M per skipped encoder block.

``example_manifest(thermal=True)`` adds illustrative thermal tables (latency as if measured while the phone
was at MODERATE, SEVERE and CRITICAL): every sub-network slower, the larger ones more so, and at SEVERE
and above FFFT slower than the super-net, so that a hot phone's front differs from the cool one's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract.manifest import new_manifest, save_manifest
from .config import PolicyConfig, write_policy_json

__all__ = ["EXAMPLE_DEVICE", "EXAMPLE_THERMAL_SLOWDOWN", "example_manifest", "write_example_bundle"]

EXAMPLE_DEVICE = "example-phone"
_PUBLISHED = (
    ("FFFF", 17.58, 0.814),
    ("FFFT", 16.20, 0.812),
    ("TTFF", 14.67, 0.809),
    ("TTFT", 13.21, 0.807),
    ("TTTT", 11.76, 0.806),
)
_MS_PER_GFLOP = 10.0
_PARAMS, _BLOCK_PARAMS = 86_567_656, 7_087_872
# Illustrative thermal tables: latency at each status relative to the cool table, per sub-network.
EXAMPLE_THERMAL_SLOWDOWN = {
    "moderate": {"FFFF": 1.12, "FFFT": 1.14, "TTFF": 1.12, "TTFT": 1.1, "TTTT": 1.1},
    "severe": {"FFFF": 1.45, "FFFT": 1.62, "TTFF": 1.5, "TTFT": 1.38, "TTTT": 1.32},
    "critical": {"FFFF": 1.9, "FFFT": 2.1, "TTFF": 1.95, "TTFT": 1.8, "TTTT": 1.7},
}


def _entry(median: float) -> dict[str, float]:
    return {"median_ms": median, "p90_ms": round(median * 1.1, 3), "min_ms": round(median * 0.96, 3)}


def example_manifest(thermal: bool = False) -> dict[str, Any]:
    """A valid manifest (no model files) with the sub-networks above and one latency table, ``EXAMPLE_DEVICE``
    (with ``thermal``, also its illustrative thermal tables)."""
    subnets = []
    latency = {}
    for gates, gflops, top1 in _PUBLISHED:
        name = {"FFFF": "super-net", "TTTT": "base-net"}.get(gates, gates)
        params = _PARAMS - _BLOCK_PARAMS * gates.count("T")
        subnets.append(
            {"gates": gates, "name": name, "flops": round(gflops * 1e9), "params": params, "accuracy": {"fp32": top1}}
        )
        median = round(gflops * _MS_PER_GFLOP, 3)
        latency[gates] = _entry(median)
    manifest = new_manifest(
        model_name="vit_b_16_adn",
        class_names=[f"class_{i}" for i in range(1000)],
        input_shape=(1, 3, 224, 224),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        num_stages=4,
        subnets=subnets,
    )
    manifest["latency"][EXAMPLE_DEVICE] = {
        "backend": "xnnpack",
        "threads": 4,
        "source": "illustrative: 10 ms per GFLOP, not measured (ondevice.policy.example)",
        "subnets": latency,
    }
    if thermal:
        manifest["latency"][EXAMPLE_DEVICE]["thermal"] = {
            status: {"subnets": {g: _entry(round(latency[g]["median_ms"] * f, 3)) for g, f in factors.items()}}
            for status, factors in EXAMPLE_THERMAL_SLOWDOWN.items()
        }
    return manifest


def write_example_bundle(out: str | Path, config: PolicyConfig | None = None, thermal: bool = False) -> Path:
    """A bundle directory with the example ``manifest.json`` and ``policy.json`` (no model files)."""
    out = Path(out)
    save_manifest(out / "manifest.json", example_manifest(thermal))
    write_policy_json(out, config)
    return out
