"""Small manifests for the policy tests, built with ``new_manifest`` plus latency tables written here."""

from __future__ import annotations

from typing import Any

from ondevice.contract.manifest import new_manifest


def make_manifest(
    rows: list[tuple[str, float, float]] | list[tuple[str, float, float, int]],
    tables: dict[str, dict[str, Any]] | None = None,
    *,
    precision: str = "fp32",
    accuracy_keys: tuple[str, ...] = ("fp32",),
) -> dict[str, Any]:
    """``rows``: (gates, top-1, median ms[, flops]); one table "phone" (p90 = 1.1 x median) unless ``tables``."""
    num_stages = len(rows[0][0])
    subnets = []
    latency = {}
    for row in rows:
        gates, top1, ms = row[0], row[1], row[2]
        flops = row[3] if len(row) > 3 else int(ms * 1e8)
        subnets.append(
            {
                "gates": gates,
                "name": gates,
                "flops": flops,
                "params": 1000,
                "accuracy": {key: top1 for key in accuracy_keys},
            }
        )
        if ms is not None:
            latency[gates] = {"median_ms": ms, "p90_ms": round(ms * 1.1, 6), "min_ms": round(ms * 0.95, 6)}
    manifest = new_manifest(
        model_name="toy_adn",
        class_names=["a", "b"],
        input_shape=(1, 3, 32, 32),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        num_stages=num_stages,
        subnets=subnets,
        precision={"name": precision},
    )
    manifest["latency"] = tables if tables is not None else {"phone": {"backend": "xnnpack", "subnets": latency}}
    return manifest


# A 3-stage toy with a realistic spread (base-net 0.6x the super-net) and one dominated sub-network (FTF).
TOY_ROWS = [
    ("FFF", 0.950, 10.0),
    ("FFT", 0.945, 9.0),
    ("FTF", 0.930, 9.5),  # slower than FFT and less accurate: off the front
    ("FTT", 0.940, 8.0),
    ("TFF", 0.935, 7.5),
    ("TTT", 0.920, 6.0),
]
