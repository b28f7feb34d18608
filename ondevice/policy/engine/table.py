"""From a manifest to the policy's table: one latency and one accuracy per sub-network, then the Pareto front.

Rules the apps re-implement (docs/policy.md, "The sub-network table"):

1. Latency table: the one named after this device; else the most recently measured one (largest
   ``measured_at`` string, a table without it counting as older than any with it; ties: the larger device
   name); else no table: ``latency_ms = flops / 1e9 * latency.fallback_ms_per_gflop`` for every sub-network.
2. A sub-network's latency is its entry's ``latency.statistic`` (p90 by default), or its median when the
   entry lacks that statistic; sub-networks without an entry in the chosen table are left out.
2b. Monotone latency: skipping more stages never costs more, so a sub-network's latency is the smallest of
   its own and those of every listed sub-network that skips a subset of its stages (runs at least its
   stages). One burst of noise on a cheap sub-network cannot then push it above a costlier one.
3. Accuracy column: ``accuracy.precision`` from policy.json; if null, the bundle's precision
   (``manifest.precision.name``) when every listed sub-network has it, else ``fp32`` when every one has it.
4. Front: sort by (latency ascending, accuracy descending, gates string ascending) and keep each sub-network
   whose accuracy is strictly higher than every one before it. The front is then strictly increasing in
   both latency and accuracy: "most accurate that fits" is "the last one that fits".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...models.gates import Gates
from ...pareto import pareto_front
from ..config import PolicyConfig

__all__ = ["LatencySource", "SubNetwork", "SubnetTable", "build_table", "monotone_latency", "select_latency"]


@dataclass(frozen=True)
class SubNetwork:
    """One row of the policy's table."""

    gates: str
    name: str
    latency_ms: float
    accuracy: float
    flops: int


@dataclass(frozen=True)
class LatencySource:
    """Where the latencies come from: ``kind`` is "device", "fallback-table" or "flops-estimate"."""

    kind: str
    device: str | None
    backend: str | None

    def describe(self, requested: str | None) -> str:
        if self.kind == "device":
            return f"measured on {self.device!r} ({self.backend})"
        if self.kind == "fallback-table":
            wanted = f"no table for {requested!r}; " if requested else ""
            return f"{wanted}using the most recent table, {self.device!r} ({self.backend}), as measured there"
        return "no latency table in the manifest: estimated from FLOPs (latency.fallback_ms_per_gflop)"


@dataclass(frozen=True)
class SubnetTable:
    """The Pareto front the policy chooses from (index 0 = cheapest), plus every candidate and its provenance."""

    front: tuple[SubNetwork, ...]
    candidates: tuple[SubNetwork, ...]
    source: LatencySource
    accuracy_key: str
    device: str | None

    def index(self, gates: str) -> int:
        for i, s in enumerate(self.front):
            if s.gates == gates:
                return i
        raise KeyError(f"{gates!r} is not on the policy's front {[s.gates for s in self.front]}")


def select_latency(
    manifest: Mapping[str, Any], device: str | None, config: PolicyConfig
) -> tuple[dict[str, float], LatencySource]:
    """Rules 1 and 2: gates -> latency in ms, and where it came from."""
    tables: Mapping[str, Any] = manifest.get("latency") or {}
    statistic = config.latency.statistic
    if device is not None and device in tables:
        name = device
        kind = "device"
    elif tables:
        name = max(
            tables, key=lambda d: (tables[d].get("measured_at") is not None, tables[d].get("measured_at") or "", d)
        )
        kind = "fallback-table"
    else:
        per_gflop = config.latency.fallback_ms_per_gflop
        latency = {s["gates"]: s["flops"] / 1e9 * per_gflop for s in manifest["subnets"]}
        return latency, LatencySource("flops-estimate", None, None)
    table = tables[name]
    latency = {gates: float(entry.get(statistic, entry["median_ms"])) for gates, entry in table["subnets"].items()}
    return monotone_latency(latency), LatencySource(kind, name, table.get("backend"))


def _runs_at_least(other: str, gates: str) -> bool:
    """True when ``other`` runs every stage ``gates`` runs (an ``F`` wherever ``gates`` has one)."""
    return len(other) == len(gates) and all(o == "F" or g == "T" for o, g in zip(other, gates))


def monotone_latency(latency: Mapping[str, float]) -> dict[str, float]:
    """Rule 2b: each sub-network's latency capped by that of every sub-network that runs a superset of its stages."""
    for gates in sorted(latency):
        if not latency[gates] >= 0:
            raise ValueError(f"sub-network {gates}: latency {latency[gates]!r} ms is not a number >= 0")
    return {
        gates: min(ms for other, ms in latency.items() if other == gates or _runs_at_least(other, gates))
        for gates in latency
    }


def _accuracy_key(manifest: Mapping[str, Any], subnets: list[Mapping[str, Any]], config: PolicyConfig) -> str:
    if config.accuracy.precision is not None:
        key = config.accuracy.precision
        missing = [s["gates"] for s in subnets if key not in s["accuracy"]]
        if missing:
            raise ValueError(
                f"policy.json asks for accuracy {key!r} but sub-networks {missing} have none; "
                f"they list {sorted(subnets[0]['accuracy'])}"
            )
        return key
    preferred = (manifest.get("precision") or {}).get("name")
    for key in (preferred, "fp32"):
        if key and all(key in s["accuracy"] for s in subnets):
            return key
    raise ValueError(
        f"the manifest's sub-networks do not all have a {preferred!r} or 'fp32' accuracy, which the policy ranks "
        "them by; evaluate the checkpoint (`ondevice eval`) and re-export the bundle"
    )


def build_table(manifest: Mapping[str, Any], config: PolicyConfig, device: str | None = None) -> SubnetTable:
    """Rules 1-4 on a validated manifest (``ondevice.contract.manifest.load_manifest``)."""
    num_stages = manifest["gates"]["num_stages"]
    latency, source = select_latency(manifest, device, config)
    listed = [s for s in manifest["subnets"] if s["gates"] in latency]
    if not listed:
        raise ValueError(
            f"the latency table {source.device!r} lists none of the manifest's sub-networks; profile the bundle "
            "(`ondevice profile`)"
        )
    key = _accuracy_key(manifest, listed, config)
    rows = []
    for s in sorted(listed, key=lambda s: s["gates"]):
        Gates.parse(s["gates"], num_stages)
        ms = latency[s["gates"]]
        if not ms >= 0:
            raise ValueError(f"sub-network {s['gates']}: latency {ms!r} ms is not a number >= 0")
        rows.append(SubNetwork(s["gates"], s["name"], ms, float(s["accuracy"][key]), int(s["flops"])))
    keep = pareto_front([r.latency_ms for r in rows], [r.accuracy for r in rows])
    return SubnetTable(tuple(rows[i] for i in keep), tuple(rows), source, key, device)
